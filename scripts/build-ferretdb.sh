#!/usr/bin/env bash
# Builds the embedded FerretDB v1 server (tools/ferretdb: its SQLite backend by default, PostgreSQL with -handler postgresql) with the machine's Go toolchain.
# Usage: scripts/build-ferretdb.sh [OUTPUT]   (default: the cache path the service looks in)
# The Go module github.com/FerretDB/FerretDB is pinned in tools/ferretdb/go.mod and fetched by `go`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/tools/ferretdb"
if ! command -v go >/dev/null 2>&1; then
  echo "build-ferretdb: the Go toolchain (go 1.24 or newer) is needed to build FerretDB; install it, or set MONGODB_URI" >&2
  exit 2
fi
out="${1:-$(node "$root/scripts/ferretdb-path.js")}"
mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
cd "$src"
echo "build-ferretdb: building FerretDB ($(grep 'FerretDB/FerretDB v' go.mod | awk '{print $2}')) with $(go version | awk '{print $3}') into $out" >&2
start=$(date +%s)
if ! go build -trimpath -o "$tmp" . ; then
  # Newer Go linkers refuse some go:linkname uses of older dependencies; this is the documented escape hatch.
  echo "build-ferretdb: retrying with -ldflags=-checklinkname=0" >&2
  go build -trimpath -ldflags=-checklinkname=0 -o "$tmp" .
fi
mv -f "$tmp" "$out"
echo "build-ferretdb: done in $(( $(date +%s) - start ))s" >&2
