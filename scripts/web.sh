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

# The browser test (instance/tests/web_client.rs, run later by `make unit`) drives Debian's
# Chromium: no browser download is possible here, so the package is installed when missing.
browser() {
    local path="${CHROMIUM:-/usr/bin/chromium}"
    [[ -x "$path" ]] && return
    [[ -z "${CHROMIUM:-}" ]] || die "CHROMIUM=$path is not an executable"
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        die "the web client's browser test needs Chromium: install Debian's 'chromium' package or set CHROMIUM"
    fi
    say "web client: installing Debian's chromium for the browser test"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null ||
            die "apt-get install chromium failed"
    }
}

case "${1:-build}" in
    build) build ;;
    test) install; browser; npx vitest run ;;
    *) die "usage: scripts/web.sh [build|test]" ;;
esac
