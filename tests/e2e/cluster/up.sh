#!/usr/bin/env bash
# Starts a local Kubernetes control plane without containers:
#   etcd + kube-apiserver + kube-controller-manager + kube-scheduler + kwok
# (kwok fakes the nodes and the pod lifecycle, so Deployments, StatefulSets and
# Jobs get Running/Ready/Completed pods without any container runtime).
#
# Everything listens on 127.0.0.1 only; state lives in <repo>/.local/cluster/.
# Idempotent: components that are already running are left alone, PKI is reused.
#
# Usage: up.sh            (then: source .local/cluster/env)
# Stop:  down.sh [--purge]
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

UP_START="$(date +%s)"
KUBECONFIG_DIR="${STATE_DIR}/kubeconfigs"
SERVICE_CIDR="10.96.0.0/16"
# Fake pod IPs handed out by kwok. Nothing runs behind them: never dial them.
POD_CIDR="10.244.0.0/16"
# Address kwok reports for its fake nodes. Loopback on purpose, so that the
# apiserver's node connections (kubectl logs/exec) stay on this machine.
NODE_IP="127.0.0.1"
NODE_COUNT=2
API_URL="https://127.0.0.1:${APISERVER_PORT}"

# ---------------------------------------------------------------------------
# PKI (openssl). Each file is created only if missing, so reruns reuse it.

# new_ca NAME CN: a self-signed CA, unless it exists already.
new_ca() {
	local name="$1" cn="$2"
	[[ -s "${PKI_DIR}/${name}.crt" && -s "${PKI_DIR}/${name}.key" ]] && return 0
	openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 3650 \
		-subj "/CN=${cn}" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-keyout "${PKI_DIR}/${name}.key" -out "${PKI_DIR}/${name}.crt" 2>/dev/null
}

# issue_cert CA NAME SUBJECT EXT_KEY_USAGE [SUBJECT_ALT_NAMES]: a leaf certificate
# signed by CA, unless it exists already.
issue_cert() {
	local ca="$1" name="$2" subj="$3" eku="$4" sans="${5:-}"
	[[ -s "${PKI_DIR}/${name}.crt" && -s "${PKI_DIR}/${name}.key" ]] && return 0
	local ext
	ext="$(mktemp)"
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=${eku}"
		[[ -z "${sans}" ]] || echo "subjectAltName=${sans}"
	} >"${ext}"
	openssl req -new -nodes -newkey rsa:2048 -subj "${subj}" \
		-keyout "${PKI_DIR}/${name}.key" -out "${PKI_DIR}/${name}.csr" 2>/dev/null
	openssl x509 -req -in "${PKI_DIR}/${name}.csr" -CA "${PKI_DIR}/${ca}.crt" -CAkey "${PKI_DIR}/${ca}.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 -extfile "${ext}" \
		-out "${PKI_DIR}/${name}.crt" 2>/dev/null
	rm -f "${ext}" "${PKI_DIR}/${name}.csr"
}

ensure_pki() {
	mkdir -p "${PKI_DIR}"
	chmod 700 "${PKI_DIR}"
	local old_umask
	old_umask="$(umask)"
	umask 077
	if [[ ! -s "${PKI_DIR}/ca.crt" || ! -s "${PKI_DIR}/ca.key" ]]; then
		log "creating PKI in ${PKI_DIR}"
		# A new CA invalidates every certificate signed by the old one.
		rm -f "${PKI_DIR}"/*.crt "${PKI_DIR}"/*.key
		new_ca ca fedi-e2e-ca
	else
		log "reusing PKI in ${PKI_DIR}"
	fi
	issue_cert ca apiserver "/CN=kube-apiserver" serverAuth \
		"IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	issue_cert ca admin "/O=system:masters/CN=kubernetes-admin" clientAuth
	issue_cert ca controller-manager "/CN=system:kube-controller-manager" clientAuth
	issue_cert ca scheduler "/CN=system:kube-scheduler" clientAuth
	# kwok updates status of nodes/pods and node leases: simplest as a cluster admin.
	issue_cert ca kwok "/O=system:masters/CN=kwok" clientAuth
	# Front proxy (aggregation layer / request-header authentication). Without it
	# every component logs errors about the missing requestheader client CA.
	if [[ ! -s "${PKI_DIR}/front-proxy-ca.crt" ]]; then
		rm -f "${PKI_DIR}"/front-proxy-*
	fi
	new_ca front-proxy-ca fedi-e2e-front-proxy-ca
	issue_cert front-proxy-ca front-proxy-client "/CN=front-proxy-client" clientAuth
	if [[ ! -s "${PKI_DIR}/sa.key" || ! -s "${PKI_DIR}/sa.pub" ]]; then
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "${PKI_DIR}/sa.key" 2>/dev/null
		openssl pkey -in "${PKI_DIR}/sa.key" -pubout -out "${PKI_DIR}/sa.pub" 2>/dev/null
	fi
	umask "${old_umask}"
}

# write_kubeconfig FILE CERT_NAME: a self-contained kubeconfig (certs embedded).
write_kubeconfig() {
	local file="$1" cert="$2" tmp
	tmp="${file}.tmp.$$"
	(
		umask 077
		cat >"${tmp}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: fedi-e2e
  cluster:
    server: ${API_URL}
    certificate-authority-data: $(base64 -w0 "${PKI_DIR}/ca.crt")
users:
- name: ${cert}
  user:
    client-certificate-data: $(base64 -w0 "${PKI_DIR}/${cert}.crt")
    client-key-data: $(base64 -w0 "${PKI_DIR}/${cert}.key")
contexts:
- name: fedi-e2e
  context:
    cluster: fedi-e2e
    user: ${cert}
current-context: fedi-e2e
EOF
	)
	mv "${tmp}" "${file}"
}

# ---------------------------------------------------------------------------
# Processes

# port_in_use PORT: something listens on 127.0.0.1:PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start NAME PORTS BINARY ARGS...: start in its own session (survives the
# terminal), unless the pid file already names a live process. PORTS (space
# separated) must be free, or another program would answer our health checks.
start() {
	local name="$1" ports="$2" pid port
	shift 2
	if pid="$(pid_alive "${name}")"; then
		log "${name} already running (pid ${pid})"
		return 0
	fi
	for port in ${ports}; do
		! port_in_use "${port}" ||
			die "port ${port} (for ${name}) is in use by another process; stop it or run down.sh"
	done
	rm -f "${PID_DIR}/${name}.pid"
	log "starting ${name} (log: ${LOG_DIR}/${name}.log)"
	printf '\n===== %s starting %s\n' "$(date -u +%FT%TZ)" "${name}" >>"${LOG_DIR}/${name}.log"
	# Scripts run without job control, so this child is no process-group leader
	# and setsid execs in place: $! is the component's own pid.
	setsid "$@" </dev/null >>"${LOG_DIR}/${name}.log" 2>&1 &
	echo "$!" >"${PID_DIR}/${name}.pid"
}

# wait_for NAME WHAT TIMEOUT_SECONDS COMMAND...: poll COMMAND until it succeeds
# ("WHAT" describes it); fail early (with the log tail) if NAME's process dies.
wait_for() {
	local name="$1" what="$2" timeout="$3" deadline
	shift 3
	deadline=$(($(date +%s) + timeout))
	until "$@" >/dev/null 2>&1; do
		if ! pid_alive "${name}" >/dev/null; then
			echo "----- last lines of ${LOG_DIR}/${name}.log" >&2
			tail -n 25 "${LOG_DIR}/${name}.log" >&2 || true
			die "${name} exited; see ${LOG_DIR}/${name}.log"
		fi
		if (($(date +%s) >= deadline)); then
			echo "----- last lines of ${LOG_DIR}/${name}.log" >&2
			tail -n 25 "${LOG_DIR}/${name}.log" >&2 || true
			die "${what}: not ready after ${timeout}s; see ${LOG_DIR}/${name}.log"
		fi
		sleep 0.5
	done
	log "${what}: ready ($(($(date +%s) - UP_START))s since up.sh start)"
}

api_get() {
	curl -fsS --max-time 5 --cacert "${PKI_DIR}/ca.crt" \
		--cert "${PKI_DIR}/admin.crt" --key "${PKI_DIR}/admin.key" "${API_URL}$1"
}

# /healthz of kube-controller-manager and kube-scheduler needs no credentials.
local_healthz() {
	curl -fsSk --max-time 5 "https://127.0.0.1:$1/healthz"
}

kubectl_() {
	"${K8S_BIN_DIR}/kubectl" --kubeconfig "${KUBECONFIG_FILE}" "$@"
}

start_etcd() {
	start etcd "${ETCD_CLIENT_PORT} ${ETCD_PEER_PORT}" "${ETCD_BIN_DIR}/etcd" \
		--name=fedi-e2e \
		--data-dir="${STATE_DIR}/etcd" \
		--listen-client-urls="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
		--advertise-client-urls="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
		--listen-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
		--initial-advertise-peer-urls="http://127.0.0.1:${ETCD_PEER_PORT}" \
		--initial-cluster="fedi-e2e=http://127.0.0.1:${ETCD_PEER_PORT}" \
		--initial-cluster-state=new \
		--unsafe-no-fsync \
		--log-level=warn
	wait_for etcd "etcd /health" 60 curl -fsS --max-time 2 "http://127.0.0.1:${ETCD_CLIENT_PORT}/health"
}

start_apiserver() {
	start kube-apiserver "${APISERVER_PORT}" "${K8S_BIN_DIR}/kube-apiserver" \
		--etcd-servers="http://127.0.0.1:${ETCD_CLIENT_PORT}" \
		--bind-address=127.0.0.1 \
		--advertise-address=127.0.0.1 \
		--secure-port="${APISERVER_PORT}" \
		--tls-cert-file="${PKI_DIR}/apiserver.crt" \
		--tls-private-key-file="${PKI_DIR}/apiserver.key" \
		--client-ca-file="${PKI_DIR}/ca.crt" \
		--authorization-mode=Node,RBAC \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="${PKI_DIR}/sa.pub" \
		--service-account-signing-key-file="${PKI_DIR}/sa.key" \
		--service-cluster-ip-range="${SERVICE_CIDR}" \
		--endpoint-reconciler-type=none \
		--requestheader-client-ca-file="${PKI_DIR}/front-proxy-ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User \
		--requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--proxy-client-cert-file="${PKI_DIR}/front-proxy-client.crt" \
		--proxy-client-key-file="${PKI_DIR}/front-proxy-client.key" \
		--allow-privileged=true \
		--profiling=false
	wait_for kube-apiserver "kube-apiserver /readyz" 120 api_get /readyz
}

start_controller_manager() {
	local kc="${KUBECONFIG_DIR}/controller-manager.kubeconfig"
	# The beta StaleControllerConsistency* gates make the ReplicaSet (and other) controllers
	# wait for their cache to catch up with their own writes. On this loopback cluster under
	# test load they were seen to leave Deployment status stale for minutes ("read version
	# ... is not as new as written version"), so e2e waits timed out. The operator does not
	# depend on them; a real cluster keeps its defaults.
	local gates="StaleControllerConsistencyReplicaSet=false,StaleControllerConsistencyDaemonSet=false"
	gates+=",StaleControllerConsistencyStatefulSet=false,StaleControllerConsistencyJob=false"
	gates+=",StaleControllerConsistencyHPA=false"
	# The e2e suite runs fleets of instances (50 upgrading a few at a time): the defaults of
	# 20 requests/s and 5 concurrent Job and Deployment syncs would make the controllers,
	# not the operator, what the suite measures.
	start kube-controller-manager "${KCM_PORT}" "${K8S_BIN_DIR}/kube-controller-manager" \
		--kubeconfig="${kc}" \
		--authentication-kubeconfig="${kc}" \
		--authorization-kubeconfig="${kc}" \
		--bind-address=127.0.0.1 \
		--secure-port="${KCM_PORT}" \
		--leader-elect=false \
		--controllers='*' \
		--use-service-account-credentials=true \
		--service-account-private-key-file="${PKI_DIR}/sa.key" \
		--root-ca-file="${PKI_DIR}/ca.crt" \
		--cluster-signing-cert-file="${PKI_DIR}/ca.crt" \
		--cluster-signing-key-file="${PKI_DIR}/ca.key" \
		--service-cluster-ip-range="${SERVICE_CIDR}" \
		--cluster-name=fedi-e2e \
		--feature-gates="${gates}" \
		--kube-api-qps=200 \
		--kube-api-burst=400 \
		--concurrent-job-syncs=20 \
		--concurrent-deployment-syncs=20 \
		--concurrent-replicaset-syncs=20 \
		--profiling=false
	wait_for kube-controller-manager "kube-controller-manager /healthz" 60 local_healthz "${KCM_PORT}"
}

start_scheduler() {
	local kc="${KUBECONFIG_DIR}/scheduler.kubeconfig"
	start kube-scheduler "${SCHEDULER_PORT}" "${K8S_BIN_DIR}/kube-scheduler" \
		--kubeconfig="${kc}" \
		--authentication-kubeconfig="${kc}" \
		--authorization-kubeconfig="${kc}" \
		--bind-address=127.0.0.1 \
		--secure-port="${SCHEDULER_PORT}" \
		--leader-elect=false \
		--profiling=false
	wait_for kube-scheduler "kube-scheduler /healthz" 60 local_healthz "${SCHEDULER_PORT}"
}

start_kwok() {
	# The heartbeat stage updates a node's status every 10-20 minutes and expects its Lease
	# to say it is alive in between: without a node lease the node lifecycle controller
	# marks the nodes NotReady within a minute, and every pod with them.
	# KWOK_WORKDIR keeps a user's ~/.kwok/kwok.yaml from being merged in.
	mkdir -p "${STATE_DIR}/kwok"
	KWOK_WORKDIR="${STATE_DIR}/kwok" start kwok "${KWOK_PORT}" "${KWOK_BIN_DIR}/kwok" \
		--config="${KWOK_BIN_DIR}/stages.yaml" \
		--config="${CLUSTER_SCRIPT_DIR}/stages-e2e.yaml" \
		--kubeconfig="${KUBECONFIG_DIR}/kwok.kubeconfig" \
		--manage-all-nodes=false \
		--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
		--cidr="${POD_CIDR}" \
		--node-ip="${NODE_IP}" \
		--node-lease-duration-seconds=40 \
		--server-address="127.0.0.1:${KWOK_PORT}"
	wait_for kwok "kwok /healthz" 60 curl -fsS --max-time 2 "http://127.0.0.1:${KWOK_PORT}/healthz"
}

fake_nodes_manifest() {
	local i
	for ((i = 0; i < NODE_COUNT; i++)); do
		cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-${i}
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    type: kwok
    kubernetes.io/hostname: kwok-node-${i}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
spec: {}
# Room for the fleet benchmark: 1,000 instances run about 5 pods each (api, streamer,
# worker, Redis, a migration Job's), and fake pods cost nothing.
status:
  allocatable: {cpu: "1000", memory: 4Ti, pods: "5000", ephemeral-storage: 1Ti}
  capacity: {cpu: "1000", memory: 4Ti, pods: "5000", ephemeral-storage: 1Ti}
EOF
	done
}

nodes_ready() {
	local ready
	ready="$(kubectl_ get nodes -l type=kwok \
		-o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')"
	((ready >= NODE_COUNT))
}

write_env() {
	local path_dirs="${K8S_BIN_DIR}:${ETCD_BIN_DIR}:${KWOK_BIN_DIR}:${HELM_BIN_DIR}"
	{
		echo "# Generated by tests/e2e/cluster/up.sh: source it to use the local e2e cluster."
		printf 'export KUBECONFIG=%q\n' "${KUBECONFIG_FILE}"
		# shellcheck disable=SC2016 # $PATH is expanded when the file is sourced
		printf 'export PATH=%q:"${PATH}"\n' "${path_dirs}"
	} >"${ENV_FILE}.tmp.$$"
	mv "${ENV_FILE}.tmp.$$" "${ENV_FILE}"
}

main() {
	(($# == 0)) || die "usage: up.sh   (no arguments; see tests/e2e/cluster/README.md)"
	command -v curl >/dev/null 2>&1 || die "up.sh needs curl (apt-get install curl)"
	command -v setsid >/dev/null 2>&1 || die "up.sh needs setsid (util-linux)"
	"${CLUSTER_SCRIPT_DIR}/build.sh"
	mkdir -p "${STATE_DIR}" "${PID_DIR}" "${LOG_DIR}" "${KUBECONFIG_DIR}"
	# Keep keys, etcd data and logs out of git even without a .gitignore entry.
	[[ -e "${STATE_DIR}/.gitignore" ]] || echo '*' >"${STATE_DIR}/.gitignore"
	ensure_pki
	write_kubeconfig "${KUBECONFIG_FILE}" admin
	write_kubeconfig "${KUBECONFIG_DIR}/controller-manager.kubeconfig" controller-manager
	write_kubeconfig "${KUBECONFIG_DIR}/scheduler.kubeconfig" scheduler
	write_kubeconfig "${KUBECONFIG_DIR}/kwok.kubeconfig" kwok
	write_env

	start_etcd
	start_apiserver
	start_controller_manager
	start_scheduler
	start_kwok

	fake_nodes_manifest | kubectl_ apply -f - >/dev/null
	wait_for kwok "${NODE_COUNT} fake nodes Ready" 60 nodes_ready
	# Pods are rejected until the ServiceAccount controller made "default".
	wait_for kube-controller-manager "default ServiceAccount" 60 kubectl_ get serviceaccount default -n default

	cat <<EOF

Local e2e cluster is up ($(($(date +%s) - UP_START))s): Kubernetes ${K8S_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}, ${NODE_COUNT} fake nodes.
  API server:  ${API_URL}
  kubeconfig:  ${KUBECONFIG_FILE}
  logs:        ${LOG_DIR}/
Use it:
  source ${ENV_FILE}     # sets KUBECONFIG and puts kubectl/helm/kwok/etcd on PATH
  kubectl get nodes      # any kubectl works with this kubeconfig
Stop it:
  ${CLUSTER_SCRIPT_DIR}/down.sh [--purge]
EOF
}

main "$@"
