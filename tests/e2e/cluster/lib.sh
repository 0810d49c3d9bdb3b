# shellcheck shell=bash disable=SC2034
# Shared paths and helpers for build.sh, up.sh and down.sh. Source it; do not run it.

CLUSTER_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/versions.env
source "${CLUSTER_SCRIPT_DIR}/versions.env"

FEDI_CACHE_DIR="${FEDI_CACHE_DIR:-${HOME}/.cache/fedi-operator}"
BIN_ROOT="${FEDI_CACHE_DIR}/bin"

# One cache directory per component, keyed by its pinned version.
K8S_BIN_DIR="${BIN_ROOT}/kubernetes-${K8S_VERSION}"
ETCD_BIN_DIR="${BIN_ROOT}/etcd-${ETCD_VERSION}"
KWOK_BIN_DIR="${BIN_ROOT}/kwok-${KWOK_VERSION}"
HELM_BIN_DIR="${BIN_ROOT}/helm-${HELM_VERSION}"

# Repo root: git if available, else derived from this file's location (tests/e2e/cluster).
if REPO_ROOT="$(git -C "${CLUSTER_SCRIPT_DIR}" rev-parse --show-toplevel 2>/dev/null)"; then
	:
else
	REPO_ROOT="$(cd "${CLUSTER_SCRIPT_DIR}/../../.." && pwd)"
fi
STATE_DIR="${REPO_ROOT}/.local/cluster"
PKI_DIR="${STATE_DIR}/pki"
PID_DIR="${STATE_DIR}/pids"
LOG_DIR="${STATE_DIR}/logs"
KUBECONFIG_FILE="${STATE_DIR}/kubeconfig"
ENV_FILE="${STATE_DIR}/env"

# Loopback ports (non-default so they do not clash with a real cluster on the host).
ETCD_CLIENT_PORT=12379
ETCD_PEER_PORT=12380
APISERVER_PORT=16443
KCM_PORT=20257
SCHEDULER_PORT=20259
KWOK_PORT=20260

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# pid_alive NAME: succeeds (and prints the pid) if NAME's pid file names a live
# process that is still the binary we started (guards against pid reuse).
pid_alive() {
	local name="$1" pid_file="${PID_DIR}/$1.pid" pid exe
	[[ -s "${pid_file}" ]] || return 1
	pid="$(<"${pid_file}")"
	[[ "${pid}" =~ ^[0-9]+$ ]] || return 1
	kill -0 "${pid}" 2>/dev/null || return 1
	exe="$(readlink "/proc/${pid}/exe" 2>/dev/null || true)"
	exe="${exe% (deleted)}" # the binary may have been replaced since it started
	[[ -z "${exe}" || "$(basename "${exe}")" == "${name}" ]] || return 1
	printf '%s\n' "${pid}"
}
