#!/usr/bin/env bash
# Build SeaweedFS's `weed` binary from its Go module into the project cache.
#
#   build_seaweedfs.sh            -> prints the path of the cached binary
#
# The binary is cached under ${FEDI_CACHE_DIR:-$HOME/.cache/fedi-operator}/seaweedfs/<version>/
# so a rebuild only happens when SEAWEEDFS_VERSION changes.
#
# Why not `go install github.com/seaweedfs/seaweedfs/weed@<version>`?  SeaweedFS's
# go.mod carries a `replace` directive, and `go install pkg@version` refuses modules
# with replace directives.  Instead we download the module (read-only copy in the
# module cache) and run `go build` inside it, which honours its own go.mod, go.sum
# and replace directives exactly as upstream builds it.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$SCRIPT_DIR/versions.sh"

CACHE_DIR="${FEDI_CACHE_DIR:-$HOME/.cache/fedi-operator}"
OUT_DIR="$CACHE_DIR/seaweedfs/$SEAWEEDFS_VERSION"
OUT_BIN="$OUT_DIR/weed"

if [[ -x "$OUT_BIN" ]]; then
    echo "$OUT_BIN"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "error: 'go' not found; SeaweedFS needs Go >= 1.26.6 to build (install it from https://go.dev/dl or your distro)" >&2
    exit 1
fi

mkdir -p "$OUT_DIR"
echo "building SeaweedFS $SEAWEEDFS_VERSION (one-off, several minutes on 2 cores)..." >&2
start=$(date +%s)

# Fetch the module source; `Dir` is its extracted (read-only) location.
mod_json="$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION")"
src_dir="$(printf '%s\n' "$mod_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
if [[ -z "$src_dir" || ! -d "$src_dir/weed" ]]; then
    echo "error: could not download github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION:" >&2
    printf '%s\n' "$mod_json" >&2
    exit 1
fi

# -p 2: the machines have 2 cores.  -trimpath/-buildvcs=false: the module cache has no
# VCS metadata and we want a reproducible binary.  CGO off: weed is pure Go.
tmp_bin="$OUT_BIN.tmp.$$"
(
    cd "$src_dir"
    CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false" \
        go build -p 2 -trimpath -ldflags "-s -w" -o "$tmp_bin" ./weed
)
mv -f "$tmp_bin" "$OUT_BIN"
echo "built $OUT_BIN in $(( $(date +%s) - start ))s" >&2
echo "$OUT_BIN"
