#!/usr/bin/env bash
# Builds the DNS server's batched UDP addon (dns/native/udpbatch.c) into dist/native/udpbatch.node
# (or the path given as the first argument).
# Plain cc against the Node-API headers from the npm package node-api-headers: node-gyp would download
# Node's headers, which a build without internet access cannot. The libuv functions it calls are
# resolved from the node binary at load time (declared in the source; no libuv headers needed).
# Without a C compiler it warns and exits 0: the DNS server then uses Node's dgram.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src=$root/dns/native/udpbatch.c
out=${1:-$root/dist/native/udpbatch.node}
cc=${CC:-cc}
if ! command -v "$cc" >/dev/null 2>&1; then
  echo "build-native: no C compiler ($cc); the DNS server will use Node's dgram" >&2
  exit 0
fi
headers=$(cd "$root" && node -p "require('node-api-headers').include_dir")
mkdir -p "$(dirname "$out")"
"$cc" -O2 -std=gnu11 -Wall -Wextra -fPIC -shared -fvisibility=hidden \
  -I "$headers" -o "$out.tmp" "$src"
mv "$out.tmp" "$out"
echo "build-native: $out"
