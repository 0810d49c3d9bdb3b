#!/usr/bin/env bash
# Smoke test of a running cluster (by default the one from up.sh): a Deployment
# (2 replicas) and a StatefulSet (1 replica) must become fully ready and a Job
# must complete. Runs in a throw-away namespace that is deleted afterwards.
#
# Usage: smoke.sh   (uses $KUBECONFIG if set, else <repo>/.local/cluster/kubeconfig)
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

KUBECTL="${KUBECTL:-${K8S_BIN_DIR}/kubectl}"
[[ -x "${KUBECTL}" ]] || KUBECTL="$(command -v kubectl)" || die "no kubectl (run build.sh or set KUBECTL)"
export KUBECONFIG="${KUBECONFIG:-${KUBECONFIG_FILE}}"
NS="fedi-smoke-$$"
START="$(date +%s)"

k() { "${KUBECTL}" "$@"; }

cleanup() { k delete namespace "${NS}" --wait=false >/dev/null 2>&1 || true; }
trap cleanup EXIT

k create namespace "${NS}" >/dev/null
k apply -n "${NS}" -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: {name: smoke-deploy}
spec:
  replicas: 2
  selector: {matchLabels: {app: smoke-deploy}}
  template:
    metadata: {labels: {app: smoke-deploy}}
    spec:
      containers: [{name: app, image: example.invalid/smoke:1}]
---
apiVersion: v1
kind: Service
metadata: {name: smoke-sts}
spec:
  clusterIP: None
  selector: {app: smoke-sts}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: smoke-sts}
spec:
  serviceName: smoke-sts
  replicas: 1
  selector: {matchLabels: {app: smoke-sts}}
  template:
    metadata: {labels: {app: smoke-sts}}
    spec:
      containers: [{name: app, image: example.invalid/smoke:1}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: smoke-job}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers: [{name: app, image: example.invalid/smoke:1}]
EOF

k wait -n "${NS}" --timeout=90s --for=jsonpath='{.status.readyReplicas}'=2 deployment/smoke-deploy >/dev/null
k wait -n "${NS}" --timeout=90s --for=jsonpath='{.status.readyReplicas}'=1 statefulset/smoke-sts >/dev/null
k wait -n "${NS}" --timeout=90s --for=condition=Complete job/smoke-job >/dev/null
k get -n "${NS}" deployment,statefulset,job,pods -o wide
echo "smoke: Deployment 2/2 ready, StatefulSet 1/1 ready, Job complete in $(($(date +%s) - START))s"
