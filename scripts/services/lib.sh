# shellcheck shell=bash source-path=SCRIPTDIR disable=SC2034  # variables are used by up.sh/down.sh
# Shared definitions for scripts/services/{up,down}.sh.  Sourced, not executed.
#
# Everything the services write lives under $STATE_DIR (<repo>/.local/services);
# binaries and tools the project builds itself are cached under $CACHE_DIR.

SERVICES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Repo root relative to this file (works without git, e.g. from a tarball).
ROOT="$(cd "$SERVICES_DIR/../.." && pwd)"
# shellcheck source=versions.sh
source "$SERVICES_DIR/versions.sh"

STATE_DIR="$ROOT/.local/services"
RUN_DIR="$STATE_DIR/run"      # pid files
LOG_DIR="$STATE_DIR/logs"
ENV_FILE="$ROOT/.local/services.env"
CACHE_DIR="${FEDI_CACHE_DIR:-$HOME/.cache/fedi-operator}"
# Seconds to wait for one service to become ready.
TIMEOUT="${FEDI_SERVICES_TIMEOUT:-90}"

ALL_SERVICES=(postgres redis s3 smtp opensearch)

# ---- ports (all on 127.0.0.1; deliberately not the services' default ports) ----
BIND_IP=127.0.0.1
PG_PRIMARY_PORT=15432
PG_STANDBY_PORT=15433
REDIS_PORT=16379
REDIS_CLUSTER_PORTS=(17001 17002 17003 17004 17005 17006)   # bus ports are +10000
S3_PORT=18333
# SeaweedFS internals; each also listens on its port+10000 for gRPC.
SWFS_MASTER_PORT=19333
SWFS_VOLUME_PORT=18080
SWFS_FILER_PORT=18888
SMTP_PORT=12525
# OpenSearch REST API; its node-to-node transport port is unused (one node) but bound.
OPENSEARCH_PORT=19200
OPENSEARCH_TRANSPORT_PORT=19300

# ---- credentials (test-only) ----
PG_USER=fedi
PG_PASSWORD=fedi
PG_DB=fedi
PG_REPL_USER=replicator
PG_REPL_PASSWORD=replicator
PG_SLOT=fedi_standby
S3_ACCESS_KEY=fedi-test
S3_SECRET_KEY=fedi-test-secret
S3_REGION=us-east-1

# ---- paths ----
PG_PRIMARY_DIR="$STATE_DIR/pg-primary"
PG_STANDBY_DIR="$STATE_DIR/pg-standby"
REDIS_DIR="$STATE_DIR/redis"
S3_DIR="$STATE_DIR/seaweedfs"
SMTP_DIR="$STATE_DIR/smtp"
SMTP_MAILDIR="$SMTP_DIR/mail"
SMTP_VENV="$CACHE_DIR/venv-smtp"
OPENSEARCH_DIR="$STATE_DIR/opensearch"

# ---------------------------------------------------------------- messages
if [[ -t 1 ]]; then _B=$'\e[1m'; _R=$'\e[31m'; _Y=$'\e[33m'; _N=$'\e[0m'; else _B=; _R=; _Y=; _N=; fi
info() { printf '%s==>%s %s\n' "$_B" "$_N" "$*"; }
warn() { printf '%swarning:%s %s\n' "$_Y" "$_N" "$*" >&2; }
die()  { printf '%serror:%s %s\n' "$_R" "$_N" "$*" >&2; exit 1; }

# die_log LOGFILE MESSAGE: fail and show the end of the log that explains why.
die_log() {
    local logfile="$1"; shift
    printf '%serror:%s %s\n' "$_R" "$_N" "$*" >&2
    if [[ -f "$logfile" ]]; then
        printf -- '--- last lines of %s ---\n' "$logfile" >&2
        tail -n 25 "$logfile" >&2 || true
        printf -- '--- (full log: %s) ---\n' "$logfile" >&2
    else
        printf '(log file %s does not exist)\n' "$logfile" >&2
    fi
    exit 1
}

# print_header_usage FILE: the comment block at the top of FILE (its usage text).
print_header_usage() {
    awk 'NR == 1 { next } /^# shellcheck/ || !/^#/ { exit } { sub(/^# ?/, ""); print }' "$1"
}

# ---------------------------------------------------------------- processes
# pid_from FILE: print the pid stored in FILE (first line), or nothing.
pid_from() {
    [[ -f "$1" ]] || return 0
    local pid
    pid="$(head -n 1 "$1" 2>/dev/null | tr -dc '0-9')"
    [[ -n "$pid" ]] && printf '%s\n' "$pid"
    return 0
}

# pid_alive PIDFILE PATTERN: true if the pid in PIDFILE is running and its command
# line contains PATTERN.  The pattern guards against a stale pid file whose pid has
# since been reused by an unrelated process, which we must never signal.
pid_alive() {
    local pid cmdline
    pid="$(pid_from "$1")"
    [[ -n "$pid" ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$2"* ]]
}

# start_daemon NAME PIDFILE LOGFILE CMD...: run CMD in the background, detached
# from this terminal (setsid) with its output in LOGFILE.  The pid file is written by
# the child shell just before it exec()s CMD, so it holds CMD's own pid whether or
# not setsid had to fork.
start_daemon() {
    local name="$1" pidfile="$2" logfile="$3"; shift 3
    rm -f "$pidfile"
    printf '\n===== %s starting %s =====\n' "$(date -u +%FT%TZ)" "$name" >>"$logfile"
    # shellcheck disable=SC2016  # expanded by the child shell, on purpose
    # 9>&-: do not hand the up/down lock (fd 9) to a long-lived daemon, or the
    # next up.sh/down.sh would wait for it forever.
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    local i
    for i in $(seq 1 50); do   # the pid file appears within milliseconds
        [[ -s "$pidfile" ]] && return 0
        sleep 0.1
    done
    die_log "$logfile" "$name did not start"
}

# stop_pidfile NAME PIDFILE PATTERN [TIMEOUT]: SIGTERM the process of PIDFILE, wait,
# then SIGKILL.  Only ever signals the pid recorded in the pid file, and only if its
# command line still matches PATTERN.
stop_pidfile() {
    local name="$1" pidfile="$2" pattern="$3" timeout="${4:-20}" pid i
    if [[ ! -f "$pidfile" ]]; then
        return 0
    fi
    if ! pid_alive "$pidfile" "$pattern"; then
        info "$name: not running (removing stale pid file)"
        rm -f "$pidfile"
        return 0
    fi
    pid="$(pid_from "$pidfile")"
    info "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name: still running after ${timeout}s, sending SIGKILL to $pid"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$pidfile"
}

# port_open PORT: true if something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    (exec 3<>"/dev/tcp/$BIND_IP/$1") 2>/dev/null
}

# ensure_port_free NAME PORT: before starting NAME, make sure no foreign process
# (one without our pid file) already holds its port.
ensure_port_free() {
    if port_open "$2"; then
        die "$1: port $BIND_IP:$2 is already in use by a process not started by scripts/services (see: ss -ltnp 'sport = :$2')"
    fi
}

# wait_until NAME LOGFILE CHECK...: poll CHECK (a command) until it succeeds or
# $TIMEOUT seconds pass; on timeout fail with the log.
wait_until() {
    local name="$1" logfile="$2"; shift 2
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            die_log "$logfile" "$name did not become ready within ${TIMEOUT}s"
        fi
        sleep 0.25
    done
}

# --------------------------------------------------------------- postgres
# Locate the PostgreSQL server binaries: pg_config --bindir if it has pg_ctl,
# otherwise the newest /usr/lib/postgresql/*/bin.  Prints the directory.
pg_find_bindir() {
    local d
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [[ -n "$d" && -x "$d/pg_ctl" && -x "$d/initdb" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    d="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
    if [[ -n "$d" && -x "$d/pg_ctl" && -x "$d/initdb" ]]; then
        printf '%s\n' "$d"
        return 0
    fi
    return 1
}

# The Unix user that runs postgres.  postgres refuses to run as root, so as root
# we use the `postgres` system user of the Debian package (or create
# `fedi-services`); as a normal user we simply run it as ourselves.
pg_os_user() {
    if [[ $EUID -ne 0 ]]; then
        id -un
    elif id postgres >/dev/null 2>&1; then
        echo postgres
    else
        echo fedi-services
    fi
}

# as_pg_user CMD...: run CMD as the postgres OS user (from a directory it can
# read), without the up/down lock on fd 9 (pg_ctl start leaves a daemon behind).
as_pg_user() {
    if [[ $EUID -eq 0 ]]; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
    else
        (cd / && "$@") 9>&-
    fi
}

# psql_at PORT DB SQL: run SQL over TCP as the fedi superuser; unaligned, tuples only.
psql_at() {
    PGPASSWORD="$PG_PASSWORD" PGCONNECT_TIMEOUT=5 PGOPTIONS='-c client_min_messages=warning' "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At \
        -h "$BIND_IP" -p "$1" -U "$PG_USER" -d "$2" -c "$3"
}

# ---------------------------------------------------------------- redis
redis_cli() { # redis_cli PORT ARGS...
    local port="$1"; shift
    redis-cli -h "$BIND_IP" -p "$port" "$@"
}

# ------------------------------------------------------------------ misc
# version_ge A B: true if version A >= B (dotted numbers).
version_ge() {
    [[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" == "$2" ]]
}

# Keep git away from the state: .local/ only ever holds generated files.
ensure_state_dirs() {
    mkdir -p "$STATE_DIR" "$RUN_DIR" "$LOG_DIR"
    [[ -e "$ROOT/.local/.gitignore" ]] || printf '# generated by scripts/services; nothing here is tracked\n*\n' >"$ROOT/.local/.gitignore"
}

# ------------------------------------------------------------ status / env
# Liveness by pid file only (postgres: its own postmaster.pid).
alive_pg_primary() { pid_alive "$PG_PRIMARY_DIR/postmaster.pid" postgres; }
alive_pg_standby() { pid_alive "$PG_STANDBY_DIR/postmaster.pid" postgres; }
alive_redis() { pid_alive "$RUN_DIR/redis-$REDIS_PORT.pid" redis-server; }
alive_redis_cluster() {
    local port
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        pid_alive "$RUN_DIR/redis-$port.pid" redis-server || return 1
    done
}
alive_s3() { pid_alive "$RUN_DIR/seaweedfs.pid" "weed server"; }
alive_smtp() { pid_alive "$RUN_DIR/smtp-sink.pid" smtp_sink.py; }
alive_opensearch() { pid_alive "$RUN_DIR/opensearch.pid" FediSearchNode; }

# write_env_file: the contract with the tests.  Lists only services that are
# running, so a test can skip when its variable is unset.  Written atomically.
write_env_file() {
    local tmp="$ENV_FILE.tmp.$$" nodes="" port
    mkdir -p "$(dirname "$ENV_FILE")"
    {
        echo "# Generated by scripts/services/up.sh at $(date -u +%FT%TZ); source it before running tests."
        if alive_pg_primary; then
            echo "export FEDI_TEST_DATABASE_URL=postgres://$PG_USER:$PG_PASSWORD@$BIND_IP:$PG_PRIMARY_PORT/$PG_DB"
        fi
        if alive_pg_standby; then
            echo "export FEDI_TEST_DATABASE_REPLICA_URL=postgres://$PG_USER:$PG_PASSWORD@$BIND_IP:$PG_STANDBY_PORT/$PG_DB"
        fi
        if alive_redis; then
            echo "export FEDI_TEST_REDIS_URL=redis://$BIND_IP:$REDIS_PORT"
        fi
        if alive_redis_cluster; then
            for port in "${REDIS_CLUSTER_PORTS[@]}"; do nodes+="${nodes:+,}redis://$BIND_IP:$port"; done
            echo "export FEDI_TEST_REDIS_CLUSTER_NODES=$nodes"
        fi
        if alive_s3; then
            echo "export FEDI_TEST_S3_ENDPOINT=http://$BIND_IP:$S3_PORT"
            echo "export FEDI_TEST_S3_REGION=$S3_REGION"
            echo "export FEDI_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY"
            echo "export FEDI_TEST_S3_SECRET_KEY=$S3_SECRET_KEY"
        fi
        if alive_smtp; then
            echo "export FEDI_TEST_SMTP_HOST=$BIND_IP"
            echo "export FEDI_TEST_SMTP_PORT=$SMTP_PORT"
            # %q: the path is used verbatim even if the checkout path has spaces.
            printf 'export FEDI_TEST_SMTP_MAILDIR=%q\n' "$SMTP_MAILDIR"
        fi
        if alive_opensearch; then
            echo "export FEDI_TEST_SEARCH_URL=http://$BIND_IP:$OPENSEARCH_PORT"
        fi
    } >"$tmp"
    mv -f "$tmp" "$ENV_FILE"
}

_up_or_down() { if "$@"; then echo up; else echo down; fi; }

# print_summary: one line per service with its address, state and log file.
print_summary() {
    _row() { printf '%-17s %-32s %-6s %s\n' "$@"; }
    echo
    _row SERVICE ADDRESS STATE LOG
    _row pg-primary "$BIND_IP:$PG_PRIMARY_PORT" "$(_up_or_down alive_pg_primary)" "$LOG_DIR/pg-primary.log"
    _row pg-standby "$BIND_IP:$PG_STANDBY_PORT" "$(_up_or_down alive_pg_standby)" "$LOG_DIR/pg-standby.log"
    _row redis "$BIND_IP:$REDIS_PORT" "$(_up_or_down alive_redis)" "$LOG_DIR/redis-$REDIS_PORT.log"
    _row redis-cluster "$BIND_IP:${REDIS_CLUSTER_PORTS[0]}-${REDIS_CLUSTER_PORTS[-1]}" "$(_up_or_down alive_redis_cluster)" "$LOG_DIR/redis-<port>.log"
    _row s3-seaweedfs "http://$BIND_IP:$S3_PORT" "$(_up_or_down alive_s3)" "$LOG_DIR/seaweedfs.log"
    _row smtp-sink "$BIND_IP:$SMTP_PORT" "$(_up_or_down alive_smtp)" "$LOG_DIR/smtp-sink.log"
    _row opensearch "http://$BIND_IP:$OPENSEARCH_PORT" "$(_up_or_down alive_opensearch)" "$LOG_DIR/opensearch.log"
    printf '%-17s %s\n' "mail dir" "$SMTP_MAILDIR"
    printf '%-17s %s\n' "env file" "$ENV_FILE"
}

# ---------------------------------------------------------------- arguments
# service_of ARG: the service an argument names (aliases accepted), or nothing.
service_of() {
    case "$1" in
        postgres | pg) echo postgres ;;
        redis) echo redis ;;
        s3 | seaweedfs) echo s3 ;;
        smtp) echo smtp ;;
        opensearch | search) echo opensearch ;;
    esac
}

# selected NAME: whether NAME is among the services this invocation acts on.
selected() { [[ " ${SELECTED[*]} " == *" $1 "* ]]; }
