#!/usr/bin/env bash
# Stop the services started by scripts/services/up.sh.
#
# Usage: scripts/services/down.sh [--purge] [postgres|redis|s3|smtp|opensearch]...   (default: all)
#
#   --purge   also delete their state (data, logs, mail).  With no service named,
#             deletes all of <repo>/.local/services and <repo>/.local/services.env.
#
# Only the processes recorded in the pid files are signalled (postgres: pg_ctl stop
# -m fast, which reads postmaster.pid; others: SIGTERM, then SIGKILL after a
# timeout).  Nothing is ever killed by name.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PURGE=0
SELECTED=()
for arg in "$@"; do
    case "$arg" in
        -h | --help) print_header_usage "${BASH_SOURCE[0]}"; exit 0 ;;
        --purge) PURGE=1 ;;
        *)
            svc=$(service_of "$arg")
            [[ -n "$svc" ]] || { die "unknown argument '$arg' (expected --purge and/or: ${ALL_SERVICES[*]})"; }
            SELECTED+=("$svc")
            ;;
    esac
done
ALL=0
if ((${#SELECTED[@]} == 0)); then
    SELECTED=("${ALL_SERVICES[@]}")
    ALL=1
fi

if [[ ! -d "$STATE_DIR" ]]; then
    info "nothing to do: $STATE_DIR does not exist"
    [[ $PURGE == 1 && $ALL == 1 ]] && rm -f "$ENV_FILE"
    exit 0
fi
mkdir -p "$RUN_DIR" "$LOG_DIR"
exec 9>"$STATE_DIR/.lock"
flock -w 600 9 || die "another scripts/services/{up,down}.sh holds $STATE_DIR/.lock"

# pg_stop NAME DATADIR: `pg_ctl stop -m fast` (rolls back open transactions,
# disconnects clients, shuts down cleanly).  pg_ctl finds the pid in postmaster.pid.
pg_stop() {
    local name="$1" dir="$2" bindir
    rm -f "$RUN_DIR/$name.pid"
    if ! pid_alive "$dir/postmaster.pid" postgres; then
        return 0
    fi
    info "$name: pg_ctl stop -m fast"
    # shellcheck disable=SC2034  # read by as_pg_user
    PG_OS_USER="$(stat -c %U "$dir")"   # whoever owns the data dir runs the server
    if bindir="$(pg_find_bindir)"; then
        as_pg_user "$bindir/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null && return 0
        warn "$name: pg_ctl stop failed; falling back to signals"
    fi
    # Without pg_ctl: SIGINT is postgres' "fast shutdown" signal.
    local pid
    pid="$(pid_from "$dir/postmaster.pid")"
    kill -INT "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
    warn "$name: still running after 60s, sending SIGKILL to $pid"
    kill -KILL "$pid" 2>/dev/null || true
}

# The non-postgres services are independent: stop them in parallel (SeaweedFS
# alone takes ~15s to flush and exit; each redis node ~2s).
if selected smtp; then
    stop_pidfile smtp-sink "$RUN_DIR/smtp-sink.pid" smtp_sink.py 10 &
fi
if selected opensearch; then
    stop_pidfile opensearch "$RUN_DIR/opensearch.pid" FediSearchNode 30 &
fi
if selected s3; then
    stop_pidfile seaweedfs "$RUN_DIR/seaweedfs.pid" "weed server" 45 &
fi
if selected redis; then
    for port in "${REDIS_CLUSTER_PORTS[@]}" "$REDIS_PORT"; do
        stop_pidfile "redis :$port" "$RUN_DIR/redis-$port.pid" redis-server 15 &
    done
fi
wait

if [[ $PURGE == 1 && $ALL == 0 ]]; then
    if selected smtp; then rm -rf "$SMTP_DIR" "$LOG_DIR/smtp-sink.log"; fi
    if selected s3; then rm -rf "$S3_DIR" "$LOG_DIR/seaweedfs.log"; fi
    if selected opensearch; then rm -rf "$OPENSEARCH_DIR" "$LOG_DIR/opensearch.log"; fi
    if selected redis; then rm -rf "$REDIS_DIR" "$LOG_DIR"/redis-*.log; fi
fi
if selected postgres; then
    # Standby first, so it does not spend the primary's shutdown reconnecting.
    pg_stop pg-standby "$PG_STANDBY_DIR"
    pg_stop pg-primary "$PG_PRIMARY_DIR"
    if [[ $PURGE == 1 && $ALL == 0 ]]; then
        rm -rf "$PG_PRIMARY_DIR" "$PG_STANDBY_DIR" "$LOG_DIR"/pg-*.log
    fi
fi

if [[ $PURGE == 1 && $ALL == 1 ]]; then
    # Guard the rm -rf against a mis-computed path.
    [[ "$STATE_DIR" == */.local/services && -d "$STATE_DIR" ]] || die "refusing to delete '$STATE_DIR'"
    info "purging $STATE_DIR and $ENV_FILE"
    exec 9>&-
    rm -rf "$STATE_DIR"
    rm -f "$ENV_FILE"
    exit 0
fi

# Keep the env file truthful: only services that are still running stay in it.
if alive_pg_primary || alive_pg_standby || alive_redis || alive_redis_cluster || alive_s3 || alive_smtp || alive_opensearch; then
    write_env_file
else
    rm -f "$ENV_FILE"
fi
info "stopped: ${SELECTED[*]}"
