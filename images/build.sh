#!/usr/bin/env bash
# `make images`: builds ghcr.io/fedi-dev/fedi-server and fedi-operator, tagged with the
# workspace version, with whichever engine is installed (docker, podman or nerdctl).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$ROOT"

engine=""
for e in docker podman nerdctl; do
    if command -v "$e" >/dev/null 2>&1; then engine="$e"; break; fi
done
[[ -n "$engine" ]] || die "no container engine (docker, podman or nerdctl) on this machine: \
images are built where one exists; everything else (make test, make dev) needs none"

"$engine" info >/dev/null 2>&1 || die "$engine is installed but cannot reach its daemon or \
runtime ($engine info fails): start it, or build the images on a machine where it runs"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
registry="${IMAGE_REGISTRY:-ghcr.io/fedi-dev}"
for target in fedi-server fedi-operator; do
    say "building $registry/$target:$version with $engine"
    "$engine" build --file images/Dockerfile --target "$target" \
        --build-arg VERSION="$version" --tag "$registry/$target:$version" .
done
