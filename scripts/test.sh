#!/usr/bin/env bash
# `make test`: what CI runs. Starts what it needs (services, control plane) and stops, on
# success and on failure, exactly what it started. Prints the duration of each phase.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# ---- prerequisites, checked before anything slow starts
need cargo "install Rust with rustup (https://rustup.rs)"
need python3 "install Python 3 (the SMTP sink runs on it)"
need openssl "install openssl (the control plane's certificates are made with it)"
if [[ -z "${E2E_KUBECONFIG:-}" ]]; then
    need go "the e2e control plane is built from Go modules: install Go 1.26+, or set E2E_KUBECONFIG to run e2e against an existing cluster"
fi

cleanup() {
    local rc=$?
    set +e
    if [[ -n "${cluster_build_pid:-}" ]] && kill -0 "$cluster_build_pid" 2>/dev/null; then
        kill "$cluster_build_pid"; wait "$cluster_build_pid" 2>/dev/null
    fi
    [[ "${started_services:-0}" == 1 ]] && scripts/services/down.sh >/dev/null
    phase_report
    test_totals
    exit "$rc"
}
trap cleanup EXIT

mkdir -p "$LOCAL_DIR/logs"
RESULTS="$LOCAL_DIR/logs/test-output.log"
: >"$RESULTS"
# with_results CMD...: run CMD, keeping its output for the totals below.
with_results() { "$@" 2>&1 | tee -a "$RESULTS"; }
# One closing line for the whole run, summed over every `cargo test` binary.
test_totals() {
    awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
         END { printf "tests: %d passed, %d failed\n", p, f }' "$RESULTS"
}

# The control-plane build (cold: the longest step) overlaps the Rust phases. Warm, it is a
# no-op that returns at once.
if [[ -z "${E2E_KUBECONFIG:-}" ]]; then
    tests/e2e/cluster/build.sh >"$LOCAL_DIR/logs/cluster-build.log" 2>&1 &
    cluster_build_pid=$!
fi

phase "cargo fmt --check" cargo fmt --all -- --check
phase "cargo clippy -D warnings" cargo clippy --all-targets --locked -- -D warnings
phase "cargo deny" scripts/deny.sh
phase "CRD drift check" scripts/crds-check.sh

started_services=0
any_alive "$SERVICES_PIDS" || started_services=1
phase "services up" scripts/services/up.sh
# shellcheck source=/dev/null
set -a; source "$SERVICES_ENV"; set +a
# Every integration test makes its own database (tests/common `fresh_database`); each test
# binary drops those of ended test processes when it starts (`drop_ended_runs`), earlier
# runs' included.
phase "unit + integration tests" with_results cargo test --locked --workspace --exclude fedi-e2e

if [[ -n "${cluster_build_pid:-}" ]]; then
    wait_build() {
        if ! wait "$cluster_build_pid"; then
            tail -n 40 "$LOCAL_DIR/logs/cluster-build.log" >&2
            die "building the control plane failed (log: .local/logs/cluster-build.log)"
        fi
    }
    phase "control-plane build (rest)" wait_build
    cluster_build_pid=
fi
# The e2e instances use the same services as their external PostgreSQL, Redis and S3.
phase "e2e" with_results scripts/e2e.sh
if [[ "$started_services" == 1 ]]; then
    phase "services down" scripts/services/down.sh
    started_services=0
fi
