//go:build tools

// Package tools pins the helm binary that tests/e2e/cluster/build.sh compiles.
// The file is never built; it only keeps the main package in go.mod/go.sum.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
