#!/usr/bin/env bash
# Prints a directory holding the third-party CRDs of versions.env, one subdirectory per
# project (gateway-api/, cloudnative-pg/, keda/). They come from the projects' Go modules, the same
# YAML their releases ship, through the Go module proxy; cached per version.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null 2>&1 || die "go is needed to fetch the Gateway API, CloudNativePG and KEDA CRDs from their Go modules"
out="${FEDI_CACHE_DIR}/crds/gateway-api-${GATEWAY_API_VERSION}_cnpg-${CNPG_VERSION}_keda-${KEDA_VERSION}"
if [[ ! -f "$out/.complete" ]]; then
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	# module_dir MODULE VERSION: where the module's files are, downloading it if needed.
	module_dir() {
		(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$1@$2") |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'
	}
	gw="$(module_dir sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION")"
	cnpg="$(module_dir github.com/cloudnative-pg/cloudnative-pg "$CNPG_VERSION")"
	keda="$(module_dir github.com/kedacore/keda/v2 "$KEDA_VERSION")"
	mkdir -p "$tmp/out/gateway-api" "$tmp/out/cloudnative-pg" "$tmp/out/keda"
	for kind in gatewayclasses gateways httproutes referencegrants; do
		cp "$gw/config/crd/standard/gateway.networking.k8s.io_${kind}.yaml" "$tmp/out/gateway-api/"
	done
	for kind in clusters poolers scheduledbackups backups; do
		cp "$cnpg/config/crd/bases/postgresql.cnpg.io_${kind}.yaml" "$tmp/out/cloudnative-pg/"
	done
	# Only the kind the operator creates: the others (ScaledJob, TriggerAuthentication)
	# would be installed and removed for nothing.
	cp "$keda/config/crd/bases/keda.sh_scaledobjects.yaml" "$tmp/out/keda/"
	touch "$tmp/out/.complete"
	mkdir -p "$(dirname "$out")"
	rm -rf "$out"
	mv "$tmp/out" "$out"
	log "third-party CRDs cached in $out"
fi
echo "$out"
