#!/usr/bin/env bash
# Builds the Node-API addons into dist/native/NAME.node: udpbatch (the DNS server's batched UDP,
# dns/native/udpbatch.c), netns (the CNI's pod-side netlink socket, cni/native/netns.c),
# malloc-trim (glibc's malloc_trim after a big job and when the agent goes quiet,
# common/native/malloc-trim.c) and sched (thread affinity and time slice for the DNS threads,
# common/native/sched.c).
# `build-native.sh` builds all four; `build-native.sh NAME [OUT]` builds one, to OUT if given.
# Plain cc against the Node-API headers from the npm package node-api-headers: node-gyp would download
# Node's headers, which a build without internet access cannot. The libuv functions udpbatch calls
# are resolved from the node binary at load time (declared in the source; no libuv headers needed).
# Without a C compiler it warns and exits 0: the DNS server then uses Node's dgram, and the pod side
# of a CNI ADD runs through an `ip -batch` process.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "build-native: no C compiler ($cc); the DNS server will use Node's dgram, CNI ADD ip -batch, no malloc_trim, DNS threads unpinned" >&2
  exit 0
fi
headers=$(cd "$root" && node -p "require('node-api-headers').include_dir")

build() {
  local src=$1 out=$2
  mkdir -p "$(dirname "$out")"
  "$cc" -O2 -std=gnu11 -Wall -Wextra -fPIC -shared -fvisibility=hidden \
    -I "$headers" -o "$out.tmp" "$src"
  mv "$out.tmp" "$out"
  echo "build-native: $out"
}

declare -A sources=([udpbatch]=dns/native/udpbatch.c [netns]=cni/native/netns.c [malloc-trim]=common/native/malloc-trim.c [sched]=common/native/sched.c)
if [ $# -eq 0 ]; then
  for name in udpbatch netns malloc-trim sched; do build "$root/${sources[$name]}" "$root/dist/native/$name.node"; done
else
  name=$1
  [ -n "${sources[$name]:-}" ] || { echo "build-native: unknown addon $name (udpbatch, netns, malloc-trim, sched)" >&2; exit 2; }
  build "$root/${sources[$name]}" "${2:-$root/dist/native/$name.node}"
fi
