#!/usr/bin/env bash
# Runs the e2e suite (crate tests/e2e) against a real Kubernetes API server:
#   - E2E_KUBECONFIG=path: that cluster (kind, k3d, a cloud); nothing is started or stopped;
#   - otherwise the local control plane of tests/e2e/cluster, started if needed and stopped
#     afterwards if this script started it (KEEP_CLUSTER=1 leaves it running).
# The test services (scripts/services) are started likewise: instances use them as their
# external PostgreSQL, Redis and S3 (reachable from the operator, which runs on this host).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

# Stops, on exit, what this script started (KEEP_CLUSTER=1 leaves the control plane up).
stop_started=()
cleanup() {
    for cmd in "${stop_started[@]}"; do $cmd >/dev/null || true; done
}
trap cleanup EXIT

# The e2e instances use the local PostgreSQL, Redis and S3 as their external services.
if ! any_alive "$SERVICES_PIDS"; then
    stop_started+=(scripts/services/down.sh)
fi
scripts/services/up.sh >/dev/null
# shellcheck source=/dev/null
set -a; source "$SERVICES_ENV"; set +a

if [[ -n "${E2E_KUBECONFIG:-}" ]]; then
    [[ -r "$E2E_KUBECONFIG" ]] || die "E2E_KUBECONFIG=$E2E_KUBECONFIG is not a readable file"
    export KUBECONFIG="$E2E_KUBECONFIG"
    say "e2e against the cluster of $KUBECONFIG"
else
    command -v go >/dev/null 2>&1 || die "the local control plane is built with Go (1.26+), \
which is missing: install Go, or run the e2e suite against an existing cluster with \
E2E_KUBECONFIG=/path/to/kubeconfig"
    started_cluster=0
    if ! any_alive "$CLUSTER_PIDS"; then
        started_cluster=1
        if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
            stop_started+=(tests/e2e/cluster/down.sh)
        fi
    fi
    tests/e2e/cluster/up.sh
    # shellcheck source=/dev/null
    source "$CLUSTER_ENV"
    [[ $started_cluster == 1 ]] || say "using the control plane that was already running"
fi

# The chart: lint, render, and have the API server validate what it renders.
if command -v helm >/dev/null 2>&1 && command -v kubectl >/dev/null 2>&1; then
    say "helm lint + server-side dry run of the rendered chart"
    helm lint --strict charts/fedi-operator
    for values in "" charts/fedi-operator/ci/*.yaml; do
        say "  values: ${values:-defaults}"
        helm lint --strict charts/fedi-operator ${values:+-f "$values"} >/dev/null
        # The namespaces a values file names must exist for the dry run.
        for ns in $(helm template fedi-operator charts/fedi-operator --namespace default \
                ${values:+-f "$values"} | sed -n 's/^  namespace: //p' | sort -u); do
            kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns" >/dev/null
        done
        # A ServiceMonitor needs the Prometheus Operator's CRD, which this cluster lacks:
        # it is checked for what it selects instead.
        helm template fedi-operator charts/fedi-operator --namespace default ${values:+-f "$values"} |
            python3 -c 'import sys, yaml; docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d.get("kind") != "ServiceMonitor"]; print(yaml.safe_dump_all(docs))' |
            kubectl apply --dry-run=server -f - >/dev/null
    done
    # The Flux example installs the chart with its own values: they must pass the chart's
    # schema and render objects the API server accepts.
    say "  values: the Flux example's HelmRelease"
    flux_values="$(mktemp)"
    python3 -c 'import sys, yaml; r = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "HelmRelease"]; assert len(r) == 1, "one HelmRelease"; assert r[0]["spec"]["chart"]["spec"]["chart"] == "charts/fedi-operator", "the chart path of this repository"; print(yaml.safe_dump(r[0]["spec"].get("values") or {}))' config/gitops/flux/fedi.yaml > "$flux_values"
    helm lint --strict charts/fedi-operator -f "$flux_values" >/dev/null
    helm template fedi-operator charts/fedi-operator --namespace default -f "$flux_values" |
        python3 -c 'import sys, yaml; docs = [d for d in yaml.safe_load_all(sys.stdin) if d and d.get("kind") != "ServiceMonitor"]; print(yaml.safe_dump_all(docs))' |
        kubectl apply --dry-run=server -f - >/dev/null
    rm -f "$flux_values"
else
    say "helm or kubectl not on PATH: chart checks skipped (they run on the local control plane)"
fi

# Gateway API and CloudNativePG CRDs, which some tests install (from their Go modules).
FEDI_E2E_CRDS_DIR="$(tests/e2e/cluster/third-party-crds.sh)"
export FEDI_E2E_CRDS_DIR

# Tests that run the operator as a process use this binary.
cargo build --locked --quiet --bin fedi-operator
export FEDI_OPERATOR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/fedi-operator"

# The suite shares one cluster: tests use their own namespaces but one CRD; two threads keep
# the 2-core machine busy without starving the API server.
cargo test --locked -p fedi-e2e -- --test-threads="${E2E_THREADS:-2}"
