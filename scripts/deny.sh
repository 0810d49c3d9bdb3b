#!/usr/bin/env bash
# cargo-deny over the whole workspace (policy in deny.toml): licences (no AGPL/GPL), banned
# crates, crate sources, and RustSec advisories.
#
# The advisory database is a git repository on GitHub. Where it cannot be fetched (this
# project's CI has only package registries), the advisories check is reported as skipped,
# loudly, and every other check still runs; a copy at $FEDI_ADVISORY_DB (or a fetch that
# works) turns it back on.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

DENY_VERSION=0.20.2
DENY_ROOT="$CACHE_DIR/tools/cargo-deny-$DENY_VERSION"
if [[ ! -x "$DENY_ROOT/bin/cargo-deny" ]]; then
    say "building cargo-deny $DENY_VERSION once into $DENY_ROOT (a few minutes)"
    cargo install cargo-deny --version "$DENY_VERSION" --locked --root "$DENY_ROOT" -j "$(nproc)" --quiet
fi
deny() { "$DENY_ROOT/bin/cargo-deny" --log-level warn "$@"; }

deny --offline check licenses bans sources

if deny fetch db >/dev/null 2>&1; then
    deny check advisories
else
    printf '\n*** SKIPPED: cargo deny check advisories: the RustSec advisory database could not be\n' >&2
    printf '*** fetched (no access to github.com). Run `make deny` where github.com is reachable.\n\n' >&2
fi
