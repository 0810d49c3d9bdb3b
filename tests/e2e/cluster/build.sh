#!/usr/bin/env bash
# Builds (once) the binaries of the local e2e control plane from pinned Go
# modules and caches them under ${FEDI_CACHE_DIR:-$HOME/.cache/fedi-operator}/bin/<name>-<version>/.
#
#   kubernetes-<v>/  kube-apiserver kube-controller-manager kube-scheduler kubectl
#   etcd-<v>/        etcd
#   kwok-<v>/        kwok
#   helm-<v>/        helm
#
# Versions are pinned in versions.env; module graphs in modules/*/go.{mod,sum}.
# A component whose binaries are already in its cache directory is not rebuilt.
#
# Usage: build.sh [kubernetes|etcd|kwok|helm ...]   (default: all)
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

MODULES_DIR="${CLUSTER_SCRIPT_DIR}/modules"
MIN_GO_MINOR=26

GO_CHECKED=false

# require_go: called before the first actual build, so that a machine with all
# binaries cached needs no Go toolchain.
require_go() {
	[[ "${GO_CHECKED}" == false ]] || return 0
	command -v go >/dev/null 2>&1 ||
		die "e2e needs Go 1.${MIN_GO_MINOR}+ to build the control plane, or run e2e against an existing cluster with E2E_KUBECONFIG=path (make e2e)"
	local gov
	gov="$(go env GOVERSION 2>/dev/null || true)"
	if [[ "${gov}" =~ ^go1\.([0-9]+) ]]; then
		((BASH_REMATCH[1] >= MIN_GO_MINOR)) ||
			die "e2e needs Go 1.${MIN_GO_MINOR}+ to build the control plane (found ${gov}), or run e2e against an existing cluster with E2E_KUBECONFIG=path (make e2e)"
	else
		die "cannot determine the Go version ('go env GOVERSION' printed '${gov}')"
	fi
	GO_CHECKED=true
}

# Common environment for every go invocation: the wrapper modules are the main
# modules, their go.sum must already be complete, and no workspace applies.
go_in() {
	local dir="$1"
	shift
	(cd "${MODULES_DIR}/${dir}" && GOWORK=off GOFLAGS="-mod=readonly" CGO_ENABLED=0 go "$@")
}

# module_time MODULE_DIR MODULE: the publication time of MODULE in the wrapper
# module's build list (from the module proxy), used as a reproducible buildDate.
module_time() {
	go_in "$1" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' "$2"
}

# build_component NAME OUT_DIR MODULE_DIR LDFLAGS PACKAGE... : one go build into
# a temporary directory, moved into place only when complete.
build_component() {
	local name="$1" out="$2" moddir="$3" ldflags="$4"
	shift 4
	local tmp="${out}.tmp.$$" start end
	require_go
	rm -rf "${tmp}"
	mkdir -p "${tmp}"
	log "building ${name} -> ${out}"
	start="$(date +%s)"
	if ! go_in "${moddir}" build -p 2 -trimpath -buildvcs=false -ldflags "${ldflags}" -o "${tmp}/" "$@"; then
		rm -rf "${tmp}"
		die "go build of ${name} failed"
	fi
	if [[ -n "${POST_BUILD:-}" ]]; then
		"${POST_BUILD}" "${tmp}" || { rm -rf "${tmp}"; die "post-build step of ${name} failed"; }
	fi
	rm -rf "${out}"
	mv "${tmp}" "${out}"
	end="$(date +%s)"
	log "built ${name} in $((end - start))s:"
	(cd "${out}" && du -h -- * | sed 's/^/    /' >&2)
}

cached() {
	local name="$1" out="$2"
	shift 2
	local bin
	for bin in "$@"; do
		[[ -f "${out}/${bin}" ]] || return 1
	done
	log "${name}: cached in ${out}, nothing to do"
}

build_kubernetes() {
	local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
	cached "kubernetes ${K8S_VERSION}" "${K8S_BIN_DIR}" "${bins[@]}" && return 0
	local major minor date flags=() key val kv b
	major="${K8S_VERSION#v}"
	minor="${major#*.}"
	minor="${minor%%.*}"
	major="${major%%.*}"
	require_go
	date="$(module_time kubernetes k8s.io/kubernetes)"
	# The module zip carries no commit id: gitCommit is left empty rather than
	# the "$Format:%H$" placeholder.
	for kv in "gitVersion=${K8S_VERSION}" "gitMajor=${major}" "gitMinor=${minor}" "gitCommit=" \
		"gitTreeState=clean" "buildDate=${date:-1970-01-01T00:00:00Z}"; do
		key="${kv%%=*}"
		val="${kv#*=}"
		flags+=("-X k8s.io/component-base/version.${key}=${val}" "-X k8s.io/client-go/pkg/version.${key}=${val}")
	done
	local pkgs=()
	for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/${b}"); done
	build_component "kubernetes ${K8S_VERSION}" "${K8S_BIN_DIR}" kubernetes "-s -w ${flags[*]}" "${pkgs[@]}"
}

build_etcd() {
	cached "etcd ${ETCD_VERSION}" "${ETCD_BIN_DIR}" etcd && return 0
	# modules/etcd/main.go is the wrapper module's own main package; its binary is
	# named after the module path's last element: "etcd".
	build_component "etcd ${ETCD_VERSION}" "${ETCD_BIN_DIR}" etcd \
		"-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}" .
	[[ -x "${ETCD_BIN_DIR}/etcd" ]] || die "etcd binary missing in ${ETCD_BIN_DIR}"
}

# kwok_stages DIR: kwok's default "fast" stages (node-initialize,
# node-heartbeat-with-lease, pod-ready, pod-complete, pod-delete) from the pinned
# module, concatenated into DIR/stages.yaml for `kwok --config`. Same set as
# kustomize/stage/fast in the kwok repository.
kwok_stages() {
	local dir="$1" src f
	src="$(go_in kwok list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
	[[ -d "${src}/kustomize/stage" ]] || die "kwok module source not found (${src})"
	for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
		pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
		echo "---"
		cat "${src}/kustomize/stage/${f}"
	done >"${dir}/stages.yaml"
}

build_kwok() {
	cached "kwok ${KWOK_VERSION}" "${KWOK_BIN_DIR}" kwok stages.yaml && return 0
	POST_BUILD=kwok_stages build_component "kwok ${KWOK_VERSION}" "${KWOK_BIN_DIR}" kwok \
		"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" sigs.k8s.io/kwok/cmd/kwok
}

build_helm() {
	cached "helm ${HELM_VERSION}" "${HELM_BIN_DIR}" helm && return 0
	# Like helm's Makefile: the Kubernetes version helm assumes by default
	# follows its k8s.io/client-go dependency (v0.X.Y -> 1.X).
	local cg k8s_major k8s_minor
	require_go
	cg="$(go_in helm list -m -f '{{.Version}}' k8s.io/client-go)"
	cg="${cg#v}"
	k8s_major="$((${cg%%.*} + 1))"
	k8s_minor="${cg#*.}"
	k8s_minor="${k8s_minor%%.*}"
	local flags=(
		"-X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
		"-X helm.sh/helm/v3/internal/version.metadata="
		"-X helm.sh/helm/v3/internal/version.gitTreeState=clean"
		"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=${k8s_major}"
		"-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${k8s_minor}"
		"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=${k8s_major}"
		"-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${k8s_minor}"
	)
	build_component "helm ${HELM_VERSION}" "${HELM_BIN_DIR}" helm "-s -w ${flags[*]}" helm.sh/helm/v3/cmd/helm
}

main() {
	local components=("$@") c total_start
	((${#components[@]} > 0)) || components=(kubernetes etcd kwok helm)
	for c in "${components[@]}"; do
		case "${c}" in
		kubernetes | etcd | kwok | helm) ;;
		*) die "unknown component '${c}' (expected: kubernetes etcd kwok helm)" ;;
		esac
	done
	# openssl is not needed to build, but up.sh (the usual caller) needs it for
	# the cluster's PKI: say so before a long build rather than after it.
	command -v openssl >/dev/null 2>&1 ||
		die "e2e needs openssl to create the cluster's certificates (apt-get install openssl), or run e2e against an existing cluster with E2E_KUBECONFIG=path (make e2e)"
	mkdir -p "${BIN_ROOT}"
	# Serialize concurrent build.sh runs (e.g. two terminals running up.sh).
	exec 9>"${BIN_ROOT}/.build.lock"
	flock 9 2>/dev/null || true
	total_start="$(date +%s)"
	# Sequential on purpose: each go build already uses -p 2 (2-core machines).
	for c in "${components[@]}"; do
		"build_${c}"
	done
	log "build.sh done in $(($(date +%s) - total_start))s; binaries under ${BIN_ROOT}"
}

main "$@"
