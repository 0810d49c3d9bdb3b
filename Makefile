# The two commands of the README are `make dev` and `make test`; everything else is a step
# of those, usable on its own. Each target installs or builds what it needs.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# Set E2E_KUBECONFIG to run the e2e suite against another cluster (kind, k3d, a cloud)
# instead of the local control plane. KUBECONFIG alone is ignored on purpose: `make test`
# must never touch the cluster a developer's shell happens to point at.
E2E_KUBECONFIG ?=

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: test
test: web-test ## Everything CI runs: lint, licences, unit + integration tests, CRD drift, e2e
	scripts/test.sh

.PHONY: dev
dev: web ## Run the product locally: services, control plane, server on :3000, operator, a sample
	scripts/dev.sh up

.PHONY: dev-down
dev-down: ## Stop what `make dev` started (services and control plane included)
	scripts/dev.sh down

.PHONY: web
web: ## The web client: npm ci + Vite build into instance/web/dist (skipped when unchanged)
	scripts/web.sh build

.PHONY: web-test
web-test: web ## The web client's unit tests (Vitest); its browser test runs in `make unit`
	scripts/web.sh test

.PHONY: lint
lint: ## cargo fmt --check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --locked -- -D warnings

.PHONY: deny
deny: ## Licences, bans and sources of every dependency (and advisories when reachable)
	scripts/deny.sh

.PHONY: crds
crds: ## Regenerate crds/ from the Rust types
	$(CARGO) run --quiet --locked --bin crdgen > crds/fediinstances.yaml
	cp crds/fediinstances.yaml charts/fedi-operator/files/crds/
	$(CARGO) run --quiet --locked --bin crdgen -- --reference > docs/reference/fediinstance.md

.PHONY: crds-check
crds-check: ## Fail if crds/ differs from what the code generates
	scripts/crds-check.sh

.PHONY: crds-install
crds-install: ## Apply crds/ to the cluster of KUBECONFIG
	kubectl apply --server-side -f crds/

.PHONY: unit
unit: ## Unit and integration tests against the local services (starts them if needed)
	scripts/services/up.sh
	set -a; source .local/services.env; set +a; $(CARGO) test --locked --workspace --exclude fedi-e2e

.PHONY: e2e
e2e: ## The e2e suite: on the local control plane, or on E2E_KUBECONFIG
	E2E_KUBECONFIG="$(E2E_KUBECONFIG)" scripts/e2e.sh

.PHONY: services-up
services-up: ## Start PostgreSQL (+standby), Redis (+cluster), S3 and an SMTP sink on loopback
	scripts/services/up.sh

.PHONY: services-down
services-down: ## Stop exactly the services that services-up started
	scripts/services/down.sh

.PHONY: cluster-up
cluster-up: ## Build (once, cached) and start the local Kubernetes control plane
	tests/e2e/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the local control plane
	tests/e2e/cluster/down.sh

.PHONY: images
images: ## Container images of fedi-server and fedi-operator (needs docker, podman or nerdctl)
	images/build.sh

.PHONY: bench
bench: ## Benchmarks: the server under load (BENCH_SCALE=small for a quick run); results in bench/results/
	scripts/bench.sh

.PHONY: clean-local
clean-local: ## Stop everything and delete .local/ (data of services and control plane)
	scripts/dev.sh down || true
	scripts/services/down.sh --purge
	tests/e2e/cluster/down.sh --purge
