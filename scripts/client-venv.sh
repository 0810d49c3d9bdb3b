#!/usr/bin/env bash
# Usage: scripts/client-venv.sh
#
# Makes sure the Python venv with the Mastodon client libraries of
# scripts/requirements-clients.txt exists in ${FEDI_CACHE_DIR:-~/.cache/fedi-operator}/venv-clients,
# then prints the path of its python on stdout (and nothing else there). Cached: the venv is
# rebuilt only when the requirements file changes or the venv is broken. Safe to run
# concurrently (the test binaries do): one run builds while the others wait.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

REQUIREMENTS="$ROOT/scripts/requirements-clients.txt"
VENV="$CACHE_DIR/venv-clients"
LOG="$CACHE_DIR/venv-clients.log"

fail() {
    printf 'error: %s\n' "$*" >&2
    if [[ -f "$LOG" ]]; then
        printf -- '--- last lines of %s ---\n' "$LOG" >&2
        tail -n 20 "$LOG" >&2 || true
    fi
    exit 1
}

need python3 "install Python 3.9+ with its venv module (Debian/Ubuntu: apt-get install python3 python3-venv)"
need flock "install util-linux (flock)"
mkdir -p "$CACHE_DIR"
exec 9>"$CACHE_DIR/venv-clients.lock"
flock 9

want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
stamp="$VENV/.fedi-requirements.sha256"
if [[ -x "$VENV/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] &&
    "$VENV/bin/python" -c 'import mastodon' 2>/dev/null; then
    printf '%s\n' "$VENV/bin/python"
    exit 0
fi

printf '==> installing the client libraries into %s (log: %s)\n' "$VENV" "$LOG" >&2
: >"$LOG"
python3 -c 'import venv, ensurepip' 2>/dev/null ||
    fail "python3 cannot create virtualenvs: install python3-venv (Debian/Ubuntu: apt-get install python3-venv)"
# Recreate rather than patch: the venv may point at a Python that is gone.
rm -rf "$VENV"
python3 -m venv "$VENV" >>"$LOG" 2>&1 || fail "python3 -m venv $VENV failed"
# --no-deps, then `pip check`: every package comes from the pinned list, and a list that
# misses a dependency fails here instead of pulling in whatever version is newest.
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q --no-deps \
    -r "$REQUIREMENTS" >>"$LOG" 2>&1 ||
    fail "pip install -r $REQUIREMENTS failed (PyPI must be reachable, or PIP_INDEX_URL set to a mirror)"
"$VENV/bin/python" -m pip check --disable-pip-version-check >>"$LOG" 2>&1 ||
    fail "$REQUIREMENTS misses a dependency (see pip check above)"
"$VENV/bin/python" -c 'import mastodon' >>"$LOG" 2>&1 || fail "the venv cannot import mastodon"
printf '%s\n' "$want" >"$stamp"
printf '%s\n' "$VENV/bin/python"
