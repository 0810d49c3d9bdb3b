# shellcheck shell=bash
# Shared by scripts/test.sh, scripts/dev.sh and scripts/e2e.sh. Sourced, not executed.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${FEDI_CACHE_DIR:-$HOME/.cache/fedi-operator}"
LOCAL_DIR="$ROOT/.local"
SERVICES_PIDS="$LOCAL_DIR/services/run"
CLUSTER_PIDS="$LOCAL_DIR/cluster/pids"
CLUSTER_ENV="$LOCAL_DIR/cluster/env"
SERVICES_ENV="$LOCAL_DIR/services.env"

if [[ -t 1 ]]; then _B=$'\e[1m'; _R=$'\e[31m'; _N=$'\e[0m'; else _B=; _R=; _N=; fi
say() { printf '%s==>%s %s\n' "$_B" "$_N" "$*"; }
die() { printf '%serror:%s %s\n' "$_R" "$_N" "$*" >&2; exit 1; }

# any_alive DIR: true when a pid file in DIR names a live process (so something is running
# that this invocation did not start, and must not stop).
any_alive() {
    local f pid
    for f in "$1"/*.pid; do
        [[ -f "$f" ]] || continue
        pid=$(head -n1 "$f" 2>/dev/null || true)
        [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && return 0
    done
    return 1
}

# need CMD HOW: fail early, naming the missing tool and how to get it.
need() {
    command -v "$1" >/dev/null 2>&1 || die "$1 is missing: $2"
}

# Phase timing: `phase NAME CMD...` runs CMD and records how long it took; `phase_report`
# prints the table (also after a failure, from an EXIT trap).
PHASE_NAMES=()
PHASE_SECS=()
PHASE_STATUS=()
phase() {
    local name="$1"; shift
    local start=$SECONDS rc=0
    say "$name"
    "$@" || rc=$?
    PHASE_NAMES+=("$name")
    PHASE_SECS+=($((SECONDS - start)))
    PHASE_STATUS+=("$([[ $rc -eq 0 ]] && echo ok || echo "FAILED ($rc)")")
    return "$rc"
}
phase_report() {
    local i total=0
    printf '\n%-34s %8s  %s\n' "phase" "seconds" "result"
    for i in "${!PHASE_NAMES[@]}"; do
        printf '%-34s %8s  %s\n' "${PHASE_NAMES[$i]}" "${PHASE_SECS[$i]}" "${PHASE_STATUS[$i]}"
        total=$((total + PHASE_SECS[i]))
    done
    printf '%-34s %8s\n' "total" "$total"
}
