#!/usr/bin/env bash
# `make bench`: the server under load. Starts the test services if needed, builds
# fedi-server and fedi-bench (release), seeds a database of its own, runs the api, streamer
# and worker as separate processes and measures each benchmark against them, then writes
# bench/results/<date>.{md,json} and bench/results/latest.{md,json}.
#
#   BENCH_SCALE=small    a quick run (1,000 statuses, 100 WebSocket connections) to check
#                        the harness; default: the issue's figures.
#   BENCH_PROFILE=debug  a debug build (figures meaningless; for working on the harness).
#   BENCH_ACCOUNTS, BENCH_STATUSES, BENCH_FOLLOWERS, BENCH_CONNECTIONS, BENCH_EVENTS,
#   BENCH_INBOX (deliveries), BENCH_SECONDS (per wrk run): one figure of the scale.
#   BENCH_BIN_DIR (+ BENCH_COMMIT): use fedi-server, fedi-bench and fedi-operator from
#                        there, no build.
#   BENCH_REDIS_DB, BENCH_DOMAIN: the Redis database (9) and domain (bench.example) of the
#                        server half, so that two runs on one machine stay apart.
#   CARGO_TARGET_DIR     where the build goes and the binaries are taken from (target).
#   BENCH_ONLY=server|operator  one half only; default both. The operator half runs on the
#                        local control plane (tests/e2e/cluster/up.sh, started if needed,
#                        left running): BENCH_INSTANCES FediInstances (1,000; small: 50).
#   BENCH_OPERATOR_LOG   the benched operator's RUST_LOG (warn), e.g. fedi_operator=debug
#                        for each reconcile's queueing and duration (its log: .local/logs/
#                        bench-operator.log; the drift samples name their Deployments).
# Stops on exit exactly what it started (roles, services) and drops its database.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

SCALE="${BENCH_SCALE:-full}"
PROFILE="${BENCH_PROFILE:-release}"
case "$SCALE" in
    full) accounts=10000 statuses=1000000 followers=1000 connections=10000 events=20 inbox=10000 seconds=20 ;;
    small) accounts=500 statuses=1000 followers=100 connections=100 events=10 inbox=500 seconds=5 ;;
    *) die "BENCH_SCALE is full (default) or small, not $SCALE" ;;
esac
ONLY="${BENCH_ONLY:-all}"
case "$ONLY" in all | server | operator) ;; *) die "BENCH_ONLY is server or operator, not $ONLY" ;; esac
case "$SCALE" in full) instances=1000 ;; small) instances=50 ;; esac
instances="${BENCH_INSTANCES:-$instances}"
# Any figure can be overridden on its own, e.g. BENCH_CONNECTIONS=2000.
accounts="${BENCH_ACCOUNTS:-$accounts}" statuses="${BENCH_STATUSES:-$statuses}"
followers="${BENCH_FOLLOWERS:-$followers}" connections="${BENCH_CONNECTIONS:-$connections}"
events="${BENCH_EVENTS:-$events}" inbox="${BENCH_INBOX:-$inbox}" seconds="${BENCH_SECONDS:-$seconds}"
case "$PROFILE" in
    release) build_flag=--release ;;
    debug) build_flag= ;;
    *) die "BENCH_PROFILE is release (default) or debug, not $PROFILE" ;;
esac

need cargo "install Rust with rustup (https://rustup.rs)"
# The server half (everything up to the report) is skipped with BENCH_ONLY=operator.
if [[ "$ONLY" != operator ]]; then
need psql "install the PostgreSQL client (apt-get install postgresql-client)"
need curl "install curl"
if ! command -v wrk >/dev/null; then
    # wrk from Debian: a load generator with Lua hooks, no compile needed.
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        say "installing wrk (apt-get)"
        apt-get install -y wrk >/dev/null
    else
        die "wrk is missing: apt-get install wrk"
    fi
fi
command -v perf >/dev/null || say "perf is missing: hotspots will say so (apt-get install linux-perf)"
fi

role_pids=()
started_services=0
bench_db=
cleanup() {
    local rc=$?
    set +e
    for pid in "${role_pids[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${role_pids[@]}"; do wait "$pid" 2>/dev/null; done
    if [[ -n "$bench_db" ]]; then
        psql "$FEDI_TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$bench_db\" WITH (FORCE)" >/dev/null
        # Feeds and the jobs the worker had not reached yet.
        redis-cli -u "$FEDI_REDIS_URL" FLUSHDB >/dev/null
    fi
    [[ "$started_services" == 1 ]] && scripts/services/down.sh >/dev/null
    phase_report
    exit "$rc"
}
trap cleanup EXIT

# 10,000 WebSocket clients in one process, and as many sockets in the streamer.
ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) >= connections + 1000 )) ||
    say "ulimit -n is $(ulimit -n): fewer than $connections WebSocket connections may open"

any_alive "$SERVICES_PIDS" || started_services=1
# Only what the bench uses: the server's PostgreSQL and Redis, the operator half's S3. The
# others (OpenSearch's JVM above all) would only add their background work to the figures;
# services already running are left as they are.
phase "services up" scripts/services/up.sh postgres redis s3 >/dev/null
# shellcheck source=/dev/null
set -a; source "$SERVICES_ENV"; set +a

if [[ -n "${BENCH_BIN_DIR:-}" ]]; then
    # Binaries built elsewhere, e.g. from a clean checkout of one commit (BENCH_COMMIT).
    server="$BENCH_BIN_DIR/fedi-server" bench="$BENCH_BIN_DIR/fedi-bench"
    operator="$BENCH_BIN_DIR/fedi-operator"
    [[ -x "$server" && -x "$bench" ]] || die "BENCH_BIN_DIR has no fedi-server and fedi-bench"
    commit="${BENCH_COMMIT:-binaries of $BENCH_BIN_DIR}"
else
    phase "build ($PROFILE)" cargo build $build_flag --locked -p fedi-server -p fedi-bench \
        -p fedi-operator
    target_dir="${CARGO_TARGET_DIR:-target}"
    server="$target_dir/$PROFILE/fedi-server" bench="$target_dir/$PROFILE/fedi-bench"
    operator="$target_dir/$PROFILE/fedi-operator"
    commit="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- instance operator bench || echo +dirty)"
fi

stamp="$(date -u +%Y-%m-%dT%H%M%SZ)"
work="$LOCAL_DIR/bench/$stamp"
mkdir -p "$work/outcomes" "$LOCAL_DIR/logs" bench/results

if [[ "$ONLY" != operator ]]; then
bench_db="fedi_bench_$$"
psql "$FEDI_TEST_DATABASE_URL" -qc "CREATE DATABASE $bench_db" >/dev/null
export FEDI_DOMAIN="${BENCH_DOMAIN:-bench.example}"
export FEDI_DATABASE_URL="${FEDI_TEST_DATABASE_URL%/*}/$bench_db"
# A Redis database of its own: feeds and queues stay out of the tests' keyspace. Pub/sub is
# shared across databases, so fedi-bench publishes on a hashtag channel of its own.
export FEDI_REDIS_URL="$FEDI_TEST_REDIS_URL/${BENCH_REDIS_DB:-9}"
redis-cli -u "$FEDI_REDIS_URL" FLUSHDB >/dev/null
phase "migrate" "$server" migrate >/dev/null

phase "seed" "$bench" seed --accounts "$accounts" --statuses "$statuses" \
    --followers "$followers" --out "$work"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_role() {
    local role="$1" port="$2"
    # Rate limits off: they would cap the load generator, not measure the server.
    FEDI_LISTEN="127.0.0.1:$port" FEDI_RATE_LIMITS="api=off,statuses=off,media=off" \
        FEDI_FEDERATION_ALLOW_LOOPBACK=true RUST_LOG=warn \
        "$server" "$role" >"$LOCAL_DIR/logs/bench-$role.log" 2>&1 &
    role_pids+=($!)
    roles+="${roles:+,}$role=$!"
}
wait_for() {
    local url="$1" i
    for i in $(seq 100); do
        curl -fsS -o /dev/null "$url" && return 0
        sleep 0.2
    done
    die "$url did not answer (logs: .local/logs/bench-*.log)"
}
roles=
api_port=$(free_port); streamer_port=$(free_port); worker_port=$(free_port)
start_role api "$api_port"
start_role streamer "$streamer_port"
start_role worker "$worker_port"
api="http://127.0.0.1:$api_port"
streamer="http://127.0.0.1:$streamer_port"
wait_for "$api/health"
wait_for "$streamer/api/v1/streaming/health"
wait_for "http://127.0.0.1:$worker_port/metrics"
export FEDI_BENCH_ROLES="$roles"

http() { "$bench" http --api "$api" --seconds "$seconds" --out "$work/outcomes" "$@"; }
phase "verify_credentials" http --order 10 --name "verify_credentials" \
    --path /api/v1/accounts/verify_credentials --tokens "$work/tokens.txt"
phase "home timeline" http --order 20 --name "home timeline (Redis feed)" \
    --path /api/v1/timelines/home --tokens "$work/followers.txt" --target cached-read \
    --note "$followers readers with warm feeds"
phase "public timeline" http --order 30 --name "public timeline" \
    --path /api/v1/timelines/public --tokens "$work/tokens.txt" \
    --note "read from PostgreSQL ($statuses statuses), no cache: no target"
# Streaming before status creation: posting leaves the worker thousands of fan-outs to
# finish, which would run on the cores the streamer is measured on.
phase "streaming fan-out" "$bench" ws-fanout --streamer "$streamer" --tokens "$work/tokens.txt" \
    --author-id "$(cat "$work/author_id")" --connections "$connections" --events "$events" \
    --out "$work/outcomes"
phase "status creation" http --order 40 --name "status creation, fan-out to $followers" \
    --method POST --path /api/v1/statuses --tokens "$work/author.txt" \
    --status-text "benchmark" --connections 8 --target posting \
    --worker-metrics "http://127.0.0.1:$worker_port/metrics" \
    --note "the worker runs and fans each status out to $followers home feeds meanwhile"
phase "inbox" "$bench" inbox --api "$api" --requests "$inbox" --out "$work/outcomes"
fi

if [[ "$ONLY" != server ]]; then
    phase "cluster up" tests/e2e/cluster/up.sh >/dev/null
    # shellcheck source=/dev/null
    source "$LOCAL_DIR/cluster/env"
    # CloudNativePG's CRDs for the managed databases (installed by fedi-bench only if
    # missing, and removed afterwards only then).
    FEDI_E2E_CRDS_DIR="$(tests/e2e/cluster/third-party-crds.sh)"
    export FEDI_E2E_CRDS_DIR
    [[ -x "$operator" ]] || die "no $operator"
    phase "operator fleet ($instances instances)" "$bench" fleet --instances "$instances" \
        --operator "$operator" --log "$LOCAL_DIR/logs/bench-operator.log" \
        --note "scale=$SCALE, build=$PROFILE" --out "$work/outcomes"
fi

phase "report" "$bench" report --outcomes "$work/outcomes" \
    --markdown "bench/results/$stamp.md" --json "bench/results/$stamp.json" \
    --meta "date=$stamp" --meta "scale=$SCALE" --meta "halves=$ONLY" --meta "build=$PROFILE" --meta "commit=$commit" \
    --meta "machine=$(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(free -g | awk '/Mem:/ {print $2}') GiB" \
    --meta "load average at the end=$(cut -d' ' -f1-3 /proc/loadavg)"
cp "bench/results/$stamp.md" bench/results/latest.md
cp "bench/results/$stamp.json" bench/results/latest.json
# The README shows the latest table of a full release run only: quick runs would replace
# it with figures that mean nothing.
if [[ "$SCALE" == full && "$PROFILE" == release && "$ONLY" == all &&
    -z "${BENCH_CONNECTIONS:-}${BENCH_STATUSES:-}${BENCH_INSTANCES:-}" ]]; then
    awk -v table=bench/results/latest.md '
        /<!-- bench:server:end -->/ { while ((getline l < table) > 0) print l; skip = 0 }
        !skip { print }
        /<!-- bench:server:begin -->/ { skip = 1 }' README.md >README.md.bench && mv README.md.bench README.md
fi
cat bench/results/latest.md
