#!/usr/bin/env bash
# Fails when crds/ is not what the Rust types generate: the YAML users apply must never
# drift from what the operator expects. Fix with `make crds` and commit the result.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
generated=$(mktemp)
trap 'rm -f "$generated"' EXIT
cargo run --quiet --locked --bin crdgen >"$generated"
status=0
for copy in crds/fediinstances.yaml charts/fedi-operator/files/crds/fediinstances.yaml; do
    if ! diff -u "$copy" "$generated"; then
        echo "error: $copy is out of date: run 'make crds' and commit it" >&2
        status=1
    fi
done
cargo run --quiet --locked --bin crdgen -- --reference >"$generated"
if ! diff -u docs/reference/fediinstance.md "$generated" >/dev/null; then
    echo "error: docs/reference/fediinstance.md is out of date: run 'make crds' and commit it" >&2
    status=1
fi
# The chart renders its CRD from files/crds/ (so upgrades update it); a crds/ directory
# would be installed first, unowned, and the release's own CRD would then collide with it.
if [[ -e charts/fedi-operator/crds ]]; then
    echo "error: charts/fedi-operator/crds/ must not exist: the CRD is templates/crds.yaml" >&2
    status=1
fi
# The chart ships the operator of the same release.
workspace=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
app=$(sed -n 's/^appVersion: "\(.*\)"/\1/p' charts/fedi-operator/Chart.yaml)
if [[ "$workspace" != "$app" ]]; then
    echo "error: charts/fedi-operator/Chart.yaml appVersion $app != workspace version $workspace" >&2
    status=1
fi
[[ $status == 0 ]] && echo "crds/ and the chart match the code"
exit $status
