//go:build tools

// Package tools pins the Kubernetes control-plane binaries that
// tests/e2e/cluster/build.sh compiles. The file is never built; it only keeps
// the main packages (and so their dependencies) in go.mod/go.sum.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
