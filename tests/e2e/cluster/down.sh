#!/usr/bin/env bash
# Stops the local e2e cluster started by up.sh: exactly the processes named by
# the pid files in <repo>/.local/cluster/pids (never by process name), in reverse
# start order, with SIGTERM and then SIGKILL after a timeout.
#
# Usage: down.sh [--purge]   --purge also deletes <repo>/.local/cluster
#                            (etcd data, PKI, kubeconfig, logs).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

STOP_TIMEOUT="${STOP_TIMEOUT:-20}"

# stop NAME...: SIGTERM every live process among NAMEs (in parallel), wait up to
# STOP_TIMEOUT seconds for all of them, SIGKILL whatever is left.
stop() {
	local name pid deadline
	local -a names=() pids=()
	for name in "$@"; do
		[[ -e "${PID_DIR}/${name}.pid" ]] || continue
		if pid="$(pid_alive "${name}")"; then
			log "stopping ${name} (pid ${pid})"
			kill -TERM "${pid}" 2>/dev/null || true
			names+=("${name}")
			pids+=("${pid}")
		else
			log "${name}: not running (stale pid file removed)"
			rm -f "${PID_DIR}/${name}.pid"
		fi
	done
	deadline=$(($(date +%s) + STOP_TIMEOUT))
	local i
	for i in "${!pids[@]}"; do
		while kill -0 "${pids[i]}" 2>/dev/null; do
			if (($(date +%s) >= deadline)); then
				log "${names[i]} (pid ${pids[i]}) still alive after ${STOP_TIMEOUT}s: SIGKILL"
				kill -KILL "${pids[i]}" 2>/dev/null || true
				break
			fi
			sleep 0.2
		done
		rm -f "${PID_DIR}/${names[i]}.pid"
	done
}

main() {
	local purge=false
	case "${1:-}" in
	"") ;;
	--purge) purge=true ;;
	*) die "usage: down.sh [--purge]" ;;
	esac
	# Clients first (together), then the apiserver, then its storage.
	stop kwok kube-scheduler kube-controller-manager
	stop kube-apiserver
	stop etcd
	if [[ "${purge}" == true ]]; then
		# Guard against deleting anything but the expected directory.
		[[ "${STATE_DIR}" == */.local/cluster ]] || die "refusing to delete unexpected path ${STATE_DIR}"
		log "deleting ${STATE_DIR}"
		rm -rf -- "${STATE_DIR}"
	fi
	log "cluster is down"
}

main "$@"
