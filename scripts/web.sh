#!/usr/bin/env bash
# The web client (instance/web): `make web` and its parts.
#   scripts/web.sh [build]   npm ci (only when package-lock.json changed) and the Vite build
#                            into instance/web/dist (only when a source changed)
#   scripts/web.sh test      the Vitest unit tests (after `build`'s npm ci)
# Both skips compare SHA-256 stamps kept in node_modules/, so a warm run takes well under a
# second; npm ci itself installs from npm's cache (~/.npm) with --prefer-offline.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WEB="$ROOT/instance/web"
cd "$WEB"

need node "install Node.js 20.19 or later (the web client is built with Vite)"
need npm "install npm (it comes with Node.js)"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
    die "Node.js $(node --version) is too old for Vite 7: install 20.19 or later"

LOCK_STAMP=node_modules/.fedi-lock.sha256
BUILD_STAMP=node_modules/.fedi-build.sha256

install() {
    local want
    want=$(sha256sum package-lock.json | cut -d' ' -f1)
    if [[ -f "$LOCK_STAMP" && "$(cat "$LOCK_STAMP")" == "$want" ]]; then
        return
    fi
    say "web client: npm ci"
    npm ci --prefer-offline --no-audit --no-fund --loglevel=error
    echo "$want" >"$LOCK_STAMP"
}

# Everything the bundle is made of; a change to any of them rebuilds.
sources_hash() {
    find src index.html vite.config.ts tsconfig.json package-lock.json -type f -print0 |
        sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

build() {
    install
    local want
    want=$(sources_hash)
    if [[ -f dist/index.html && -f "$BUILD_STAMP" && "$(cat "$BUILD_STAMP")" == "$want" ]]; then
        say "web client: up to date (instance/web/dist)"
        return
    fi
    say "web client: type check and build"
    npm run --silent build
    echo "$want" >"$BUILD_STAMP"
}

case "${1:-build}" in
    build) build ;;
    test) install; npx vitest run ;;
    *) die "usage: scripts/web.sh [build|test]" ;;
esac
