#!/usr/bin/env bash
# Builds the resident mode's per-call client (client/trestle-client.c) into
# dist/client/trestle-client: static, musl-gcc (Debian musl-tools), no library beyond libc.
#   scripts/build-client.sh [build-id]
#
# The build id (16 lowercase hex digits) is what client and daemon compare (X-Trestle-Build):
# on a mismatch the call runs one-shot. Without an argument it is, from the repository root,
# the first 16 hex digits of the SHA-256 of these files' bytes concatenated in this order:
# dist/*.cjs sorted by name in byte order (LC_ALL=C), then client/trestle-client.c:
#   cat $(LC_ALL=C ls dist/*.cjs) client/trestle-client.c | sha256sum | cut -c1-16
# The daemon computes the same from the same files, so run this after the bundles are built.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
source=client/trestle-client.c

if [ $# -ge 1 ]; then
  id=$1
else
  shopt -s nullglob
  bundles=(dist/*.cjs)
  if [ "${#bundles[@]}" -eq 0 ]; then
    echo "build-client: no dist/*.cjs to derive the build id from (run node scripts/build.mjs first)" >&2
    exit 1
  fi
  id=$(printf '%s\n' "${bundles[@]}" | sort | { mapfile -t sorted; cat "${sorted[@]}" "$source"; } | sha256sum | cut -c1-16)
fi
if ! [[ $id =~ ^[0-9a-f]{16}$ ]]; then
  echo "build-client: the build id must be 16 lowercase hex digits, not '$id'" >&2
  exit 2
fi
command -v musl-gcc >/dev/null || {
  echo "build-client: musl-gcc is missing (apt-get install musl-tools, or scripts/install-deps.sh)" >&2
  exit 1
}

mkdir -p dist/client
# Write, then rename: a client running right now keeps its inode ("Text file busy" otherwise).
musl-gcc -static -O2 -s -Wall -Wextra -DTRESTLE_BUILD="\"$id\"" -o dist/client/trestle-client.tmp "$source"
mv -f dist/client/trestle-client.tmp dist/client/trestle-client
# The daemon reads the same id from beside its bundle.
printf '%s\n' "$id" > dist/trestle.build.tmp
mv -f dist/trestle.build.tmp dist/trestle.build
echo "dist/client/trestle-client (build $id)"
