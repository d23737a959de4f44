#!/usr/bin/env bash
# Builds the CNI plugin's network-namespace addon (cni/native/netns.c) into dist/native/netns.node
# (or the path given as the first argument), the same way as scripts/build-native.sh: plain cc
# against node-api-headers. Without a C compiler it warns and exits 0: the pod side of an ADD then
# runs through an `ip -batch` process.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/cni/native/netns.c
out=${1:-$root/dist/native/netns.node}
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "build-native-cni: no C compiler ($cc); CNI ADD will use ip -batch in the pod namespace" >&2
  exit 0
fi
headers=$(cd "$root" && node -p "require('node-api-headers').include_dir")
mkdir -p "$(dirname "$out")"
"$cc" -O2 -std=gnu11 -Wall -Wextra -fPIC -shared -fvisibility=hidden \
  -I "$headers" -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "build-native-cni: $out"
