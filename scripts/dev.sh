#!/usr/bin/env bash
# `make dev`: the product running locally, everything on loopback.
#   scripts/dev.sh up     services, control plane + CRDs, fedi-server (all roles) on :3000,
#                         the operator against the control plane, and a sample instance
#   scripts/dev.sh down   stops all of it (by pid files), keeping data in .local/
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

DEV_DIR="$LOCAL_DIR/dev"
SERVER_ADDR=127.0.0.1:3000
OPERATOR_ADDR=127.0.0.1:8081
DEV_DB=fedi_dev

# start NAME CMD...: run CMD in the background with a pid file and a log, unless running.
start() {
    local name="$1"; shift
    local pidfile="$DEV_DIR/$name.pid" log="$DEV_DIR/$name.log"
    if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        say "$name already running (pid $(cat "$pidfile"))"
        return
    fi
    nohup "$@" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    say "$name started (pid $!, log ${log#"$ROOT"/})"
}

stop() {
    local pidfile="$DEV_DIR/$1.pid" pid
    [[ -f "$pidfile" ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        say "$1 stopped"
    fi
    rm -f "$pidfile"
}

wait_for() { # wait_for WHAT SECONDS CMD...
    local what="$1" secs="$2"; shift 2
    for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    die "$what did not come up within ${secs}s; see the logs in ${DEV_DIR#"$ROOT"/}/"
}

up() {
    need cargo "install Rust with rustup (https://rustup.rs)"
    need go "the local control plane is built from Go modules: install Go 1.26+"
    need curl "install curl"
    mkdir -p "$DEV_DIR"

    scripts/services/up.sh
    set -a; source "$SERVICES_ENV"; set +a
    tests/e2e/cluster/up.sh
    source "$CLUSTER_ENV"

    say "building fedi-server and fedi-operator"
    cargo build --locked --bin fedi-server --bin fedi-operator

    local db_url="${FEDI_TEST_DATABASE_URL%/*}/$DEV_DB"
    psql "$FEDI_TEST_DATABASE_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$DEV_DB'" | grep -q 1 ||
        psql "$FEDI_TEST_DATABASE_URL" -qc "CREATE DATABASE $DEV_DB"

    # The web client uploads media: the bucket must exist, its media/ readable by browsers.
    scripts/web-dev-bucket.sh fedi-dev-media
    start server env FEDI_DOMAIN=localhost FEDI_LISTEN="$SERVER_ADDR" \
        FEDI_DATABASE_URL="$db_url" FEDI_DATABASE_REPLICA_URL="${FEDI_TEST_DATABASE_REPLICA_URL%/*}/$DEV_DB" \
        FEDI_REDIS_URL="$FEDI_TEST_REDIS_URL" \
        FEDI_S3_ENDPOINT="$FEDI_TEST_S3_ENDPOINT" FEDI_S3_BUCKET=fedi-dev-media \
        FEDI_S3_ACCESS_KEY_ID="$FEDI_TEST_S3_ACCESS_KEY" FEDI_S3_SECRET_ACCESS_KEY="$FEDI_TEST_S3_SECRET_KEY" \
        FEDI_SMTP_HOST="$FEDI_TEST_SMTP_HOST" FEDI_SMTP_PORT="$FEDI_TEST_SMTP_PORT" FEDI_SMTP_TLS=none \
        FEDI_SMTP_FROM=notifications@localhost \
        FEDI_WEB_ROOT="$ROOT/instance/web/dist" \
        target/debug/fedi-server all
    wait_for "fedi-server" 60 curl -fsS "http://$SERVER_ADDR/readyz"

    kubectl apply --server-side --field-manager=fedi-dev -f crds/ >/dev/null
    kubectl wait --for=condition=Established crd/fediinstances.fedi.dev --timeout=30s >/dev/null
    start operator env KUBECONFIG="$KUBECONFIG" FEDI_OPERATOR_HTTP_ADDR="$OPERATOR_ADDR" \
        target/debug/fedi-operator
    wait_for "fedi-operator" 30 curl -fsS "http://$OPERATOR_ADDR/healthz"

    kubectl apply --server-side --field-manager=fedi-dev -n default -f config/samples/minimal.yaml >/dev/null
    wait_for "the sample's status" 30 \
        bash -c "kubectl get fedi minimal -n default -o jsonpath='{.status.observedGeneration}' | grep -q ."
    kubectl get fedi -n default

    cat <<TXT

Everything is running on loopback:
  server     http://$SERVER_ADDR  (fedi-server all; log .local/dev/server.log)
             curl http://$SERVER_ADDR/readyz
  web        http://$SERVER_ADDR/  (the web client: create an account, sign in)
  operator   metrics http://$OPERATOR_ADDR/metrics (log .local/dev/operator.log)
  cluster    source .local/cluster/env   # sets KUBECONFIG and puts kubectl on PATH
             kubectl get fedi -A; kubectl describe fedi minimal
  services   connection settings in .local/services.env; mail lands in \$FEDI_TEST_SMTP_MAILDIR
Stop everything with: make dev-down
TXT
}

down() {
    stop operator
    stop server
    tests/e2e/cluster/down.sh
    scripts/services/down.sh
}

case "${1:-up}" in
    up) up ;;
    down) down ;;
    *) die "usage: scripts/dev.sh up|down" ;;
esac
