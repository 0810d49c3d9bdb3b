#!/usr/bin/env bash
# Start the real backing services the tests need, all on 127.0.0.1:
#
#   postgres  primary :15432 + streaming hot standby :15433
#   redis     standalone :16379 + 6-node cluster :17001-17006 (3 masters, 3 replicas)
#   s3        SeaweedFS S3 API :18333
#   smtp      aiosmtpd sink :12525, each mail saved as an .eml file
#   opensearch  single OpenSearch node :19200, assembled from Maven Central jars
#
# Usage: scripts/services/up.sh [postgres|redis|s3|smtp|opensearch]...     (default: all)
#
# Idempotent: services already running (per their pid files) are left alone, data
# directories are reused.  State lives in <repo>/.local/services/; the connection
# settings for the tests are written to <repo>/.local/services.env.  Stop with
# scripts/services/down.sh.  See scripts/services/README.md.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() { print_header_usage "${BASH_SOURCE[0]}"; }

# ------------------------------------------------------------------ arguments
SELECTED=()
for arg in "$@"; do
    case "$arg" in
        -h | --help) usage; exit 0 ;;
        *)
            svc=$(service_of "$arg")
            [[ -n "$svc" ]] || { usage >&2; die "unknown service '$arg' (expected: ${ALL_SERVICES[*]})"; }
            SELECTED+=("$svc")
            ;;
    esac
done
((${#SELECTED[@]})) || SELECTED=("${ALL_SERVICES[@]}")

T0=$SECONDS
# Files must stay readable by the postgres user even under a strict caller umask.
umask 022
ensure_state_dirs
# One up/down at a time: a second concurrent invocation waits here.
exec 9>"$STATE_DIR/.lock"
flock -w 1800 9 || die "another scripts/services/{up,down}.sh holds $STATE_DIR/.lock"

# ----------------------------------------------------------- prerequisites
# Checked (and apt-installed where the brief allows) before anything starts, so a
# missing tool fails in seconds rather than after the other services came up.

apt_install() {
    if [[ $EUID -ne 0 ]]; then
        die "missing $*: install with 'sudo apt-get install $*' (Debian/Ubuntu) and re-run"
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing $* and no apt-get on this machine: install $* with your package manager"
    info "installing $* with apt-get (log: $LOG_DIR/apt.log)"
    # --no-install-recommends: only the server, not e.g. sysstat or the docs.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1; then
        # Typical on a fresh machine: empty or stale package lists.
        DEBIAN_FRONTEND=noninteractive apt-get update >>"$LOG_DIR/apt.log" 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1 ||
            die_log "$LOG_DIR/apt.log" "apt-get install $* failed"
    fi
}

need_cmd() { # need_cmd CMD HINT
    command -v "$1" >/dev/null 2>&1 || die "missing '$1': $2"
}

need_cmd setsid "part of util-linux (apt-get install util-linux)"
need_cmd flock "part of util-linux (apt-get install util-linux)"

if selected postgres; then
    if ! PG_BIN="$(pg_find_bindir)"; then
        apt_install postgresql
        PG_BIN="$(pg_find_bindir)" || die "postgresql installed but no initdb/pg_ctl found in pg_config --bindir or /usr/lib/postgresql/*/bin"
    fi
    PG_VERSION="$("$PG_BIN/postgres" --version | awk '{print $NF}')"
    version_ge "$PG_VERSION" 15 || die "PostgreSQL >= 15 needed, found $PG_VERSION in $PG_BIN (apt-get install postgresql-15 or newer)"
    if [[ $EUID -eq 0 ]]; then
        need_cmd runuser "part of util-linux (apt-get install util-linux); needed to run postgres as a non-root user"
    fi
fi

if selected redis; then
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        apt_install redis-server redis-tools
    fi
    REDIS_VERSION="$(redis-server --version | sed -n 's/.* v=\([0-9.]*\).*/\1/p')"
    version_ge "${REDIS_VERSION:-0}" 7 || die "Redis >= 7 needed, found '${REDIS_VERSION:-unknown}' ($(command -v redis-server)); Debian 12+ ships 7.x: apt-get install redis-server"
fi

if selected s3; then
    # The worker transcodes uploaded video and audio with them (src/tasks/media.rs), and the
    # media tests that use this store run them.
    if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
        apt_install ffmpeg
    fi
    need_cmd curl "apt-get install curl (used to check the S3 endpoint)"
    CURL_VERSION="$(curl --version | awk 'NR==1{print $2}')"
    version_ge "$CURL_VERSION" 7.75 || die "curl >= 7.75 needed for --aws-sigv4, found $CURL_VERSION"
    if [[ ! -x "$CACHE_DIR/seaweedfs/$SEAWEEDFS_VERSION/weed" ]]; then
        need_cmd go "SeaweedFS is built from source: install Go >= 1.26.6 (https://go.dev/dl), or set GOTOOLCHAIN to a newer go"
    fi
fi

if selected opensearch; then
    need_cmd curl "apt-get install curl (used to check the OpenSearch node)"
    need_cmd java "the OpenSearch test node needs Java >= 17: apt-get install openjdk-17-jdk-headless"
fi

if selected smtp; then
    if [[ ! -x "$SMTP_VENV/bin/python" ]]; then
        need_cmd python3 "apt-get install python3 python3-venv"
        python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' || die "Python >= 3.8 needed for the SMTP sink, found $(python3 --version)"
        python3 -c 'import venv, ensurepip' 2>/dev/null || die "python3 cannot create virtualenvs: apt-get install python3-venv"
    fi
fi

# ------------------------------------------------------------------ postgres
# Settings shared by primary and standby; rewritten on every start so that edits
# here apply to existing data directories too.
pg_write_conf() { # pg_write_conf DATADIR PORT
    cat >"$1/fedi-services.conf" <<EOF
# Generated by scripts/services/up.sh on every start; edit there, not here.
listen_addresses = '$BIND_IP'
port = $2
# TCP only: no socket directory to own, and no 107-byte socket path limit.
unix_socket_directories = ''
max_connections = 300
shared_buffers = 128MB
timezone = 'UTC'
log_timezone = 'UTC'

# replication
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 256MB
# the standby uses a slot; cap what a dead standby can make the primary keep
max_slot_wal_keep_size = 4GB
hot_standby = on
hot_standby_feedback = on

# Test data only: trade crash safety for speed (tests create a database per test).
# After a machine crash, 'scripts/services/down.sh --purge' gives a clean slate.
fsync = off
synchronous_commit = off
EOF
    if [[ $EUID -eq 0 ]]; then chown "$PG_OS_USER" "$1/fedi-services.conf" "$1/pg_hba.conf"; fi
    # The include is appended once; later lines override initdb's defaults.
    grep -qx "include = 'fedi-services.conf'" "$1/postgresql.conf" ||
        printf "\ninclude = 'fedi-services.conf'\n" >>"$1/postgresql.conf"
    cat >"$1/pg_hba.conf" <<EOF
# Generated by scripts/services/up.sh.  TCP on loopback only, password auth.
# TYPE  DATABASE     USER          ADDRESS        METHOD
host    all          all           127.0.0.1/32   scram-sha-256
host    replication  $PG_REPL_USER    127.0.0.1/32   scram-sha-256
EOF
}

pg_running() { as_pg_user "$PG_BIN/pg_ctl" -D "$1" status >/dev/null 2>&1; }

# pg_start NAME DATADIR PORT: start one cluster (no-op if it is running).
pg_start() {
    local name="$1" dir="$2" port="$3" log="$LOG_DIR/$1.log"
    touch "$log" && chown "$PG_OS_USER" "$log"
    if pg_running "$dir"; then
        info "$name: already running"
    else
        ensure_port_free "$name" "$port"
        info "$name: starting on $BIND_IP:$port"
        as_pg_user "$PG_BIN/pg_ctl" -D "$dir" -l "$log" -w -t "$TIMEOUT" start >/dev/null ||
            die_log "$log" "$name failed to start"
    fi
    wait_until "$name" "$log" "$PG_BIN/pg_isready" -q -h "$BIND_IP" -p "$port"
    # For symmetry with the other services; down.sh stops postgres with pg_ctl
    # (which reads postmaster.pid itself).
    head -n 1 "$dir/postmaster.pid" >"$RUN_DIR/$name.pid"
}

pg_standby_has_token() {
    [[ "$(psql_at "$PG_STANDBY_PORT" postgres "SELECT count(*) FROM fedi_replication_canary WHERE token = '$1'" 2>/dev/null)" == 1 ]]
}

pg_system_id() { "$PG_BIN/pg_controldata" "$1" 2>/dev/null | awk -F: '/Database system identifier/{gsub(/ /,"",$2); print $2}'; }

up_postgres() {
    PG_OS_USER="$(pg_os_user)"
    if [[ $EUID -eq 0 ]] && ! id "$PG_OS_USER" >/dev/null 2>&1; then
        info "creating system user $PG_OS_USER to run postgres (it refuses to run as root)"
        useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
    as_pg_user test -x "$STATE_DIR" ||
        die "user '$PG_OS_USER' cannot reach $STATE_DIR: every parent directory needs the x bit for others (e.g. chmod o+x on the one that lacks it)"

    # --- primary
    if [[ ! -f "$PG_PRIMARY_DIR/PG_VERSION" ]]; then
        info "postgres: initdb $PG_PRIMARY_DIR"
        # A new primary invalidates any old standby (different system identifier).
        rm -rf "$PG_PRIMARY_DIR" "$PG_STANDBY_DIR"
        install -d -m 700 -o "$PG_OS_USER" "$PG_PRIMARY_DIR"
        local pwfile locale=C
        pwfile="$(mktemp)"
        printf '%s\n' "$PG_PASSWORD" >"$pwfile"
        chown "$PG_OS_USER" "$pwfile"
        # C.UTF-8 keeps byte-order collation but real Unicode case mapping (lower()).
        if locale -a 2>/dev/null | grep -qix 'c.utf-\?8'; then locale=C.UTF-8; fi
        # The bootstrap superuser is `fedi` itself (SUPERUSER: tests create databases).
        as_pg_user "$PG_BIN/initdb" -D "$PG_PRIMARY_DIR" -U "$PG_USER" --pwfile="$pwfile" \
            --auth=scram-sha-256 --encoding=UTF8 --locale="$locale" >>"$LOG_DIR/pg-initdb.log" 2>&1 ||
            { rm -f "$pwfile"; die_log "$LOG_DIR/pg-initdb.log" "initdb failed"; }
        rm -f "$pwfile"
    fi
    pg_write_conf "$PG_PRIMARY_DIR" "$PG_PRIMARY_PORT"
    pg_start pg-primary "$PG_PRIMARY_DIR" "$PG_PRIMARY_PORT"

    # Roles and database; idempotent, so this also repairs a half-finished first run.
    psql_at "$PG_PRIMARY_PORT" postgres "
        ALTER ROLE $PG_USER WITH SUPERUSER LOGIN PASSWORD '$PG_PASSWORD';
        DO \$\$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_REPL_USER') THEN
            CREATE ROLE $PG_REPL_USER WITH REPLICATION LOGIN PASSWORD '$PG_REPL_PASSWORD';
          END IF;
        END \$\$;" >/dev/null
    if [[ "$(psql_at "$PG_PRIMARY_PORT" postgres "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" != 1 ]]; then
        psql_at "$PG_PRIMARY_PORT" postgres "CREATE DATABASE $PG_DB OWNER $PG_USER" >/dev/null
    fi

    # --- standby
    if [[ -f "$PG_STANDBY_DIR/PG_VERSION" && "$(pg_system_id "$PG_STANDBY_DIR")" != "$(pg_system_id "$PG_PRIMARY_DIR")" ]]; then
        warn "pg-standby was cloned from another primary; re-creating it"
        pg_running "$PG_STANDBY_DIR" && as_pg_user "$PG_BIN/pg_ctl" -D "$PG_STANDBY_DIR" -m immediate stop >/dev/null
        rm -rf "$PG_STANDBY_DIR"
    fi
    if [[ ! -f "$PG_STANDBY_DIR/PG_VERSION" ]]; then
        info "postgres: pg_basebackup -R into $PG_STANDBY_DIR"
        rm -rf "$PG_STANDBY_DIR"
        # A slot left by an earlier standby would make `-C` fail.
        psql_at "$PG_PRIMARY_PORT" postgres \
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '$PG_SLOT' AND NOT active" >/dev/null
        install -d -m 700 -o "$PG_OS_USER" "$PG_STANDBY_DIR"
        # -R writes standby.signal + primary_conninfo; -C -S: a physical slot so the
        # primary keeps the WAL the standby still needs.
        as_pg_user env PGPASSWORD="$PG_REPL_PASSWORD" "$PG_BIN/pg_basebackup" \
            -h "$BIND_IP" -p "$PG_PRIMARY_PORT" -U "$PG_REPL_USER" -D "$PG_STANDBY_DIR" \
            -R -X stream -C -S "$PG_SLOT" -c fast >>"$LOG_DIR/pg-basebackup.log" 2>&1 ||
            die_log "$LOG_DIR/pg-basebackup.log" "pg_basebackup failed"
    fi
    # Same settings as the primary (copied by the backup), but its own port.
    pg_write_conf "$PG_STANDBY_DIR" "$PG_STANDBY_PORT"
    pg_start pg-standby "$PG_STANDBY_DIR" "$PG_STANDBY_PORT"

    # --- verify replication: the standby is in recovery and sees a fresh row.
    [[ "$(psql_at "$PG_STANDBY_PORT" postgres 'SELECT pg_is_in_recovery()')" == t ]] ||
        die_log "$LOG_DIR/pg-standby.log" "pg-standby is not in recovery (not a standby)"
    local token
    token="up-$$-$RANDOM-$(date +%s%N)"
    psql_at "$PG_PRIMARY_PORT" postgres "
        CREATE TABLE IF NOT EXISTS fedi_replication_canary (token text PRIMARY KEY, at timestamptz NOT NULL DEFAULT now());
        DELETE FROM fedi_replication_canary WHERE at < now() - interval '1 day';
        INSERT INTO fedi_replication_canary (token) VALUES ('$token');" >/dev/null
    wait_until "pg-standby replication" "$LOG_DIR/pg-standby.log" pg_standby_has_token "$token"
    info "postgres: standby in recovery and replicating"
}

# --------------------------------------------------------------------- redis
redis_write_conf() { # redis_write_conf PORT DIR [EXTRA LINES]
    local port="$1" dir="$2" extra="${3:-}"
    mkdir -p "$dir"
    cat >"$dir/redis.conf" <<EOF
# Generated by scripts/services/up.sh on every start.
bind $BIND_IP
port $port
protected-mode yes
daemonize yes
pidfile "$RUN_DIR/redis-$port.pid"
logfile "$LOG_DIR/redis-$port.log"
dir "$dir"
# No persistence: test data only.
save ""
appendonly no
maxmemory-policy noeviction
$extra
EOF
}

# redis_start PORT DIR: start one redis-server from DIR/redis.conf unless running.
redis_start() {
    local port="$1" dir="$2" pidfile="$RUN_DIR/redis-$1.pid" log="$LOG_DIR/redis-$1.log"
    if pid_alive "$pidfile" redis-server; then
        return 0
    fi
    ensure_port_free "redis :$port" "$port"
    info "redis: starting $BIND_IP:$port"
    rm -f "$pidfile"
    redis-server "$dir/redis.conf" 9>&- || die_log "$log" "redis-server on :$port failed to start"
}

redis_ping() { [[ "$(redis_cli "$1" ping 2>/dev/null)" == PONG ]]; }

# cluster_field PORT FIELD: a value from CLUSTER INFO.
cluster_field() { redis_cli "$1" cluster info 2>/dev/null | tr -d '\r' | sed -n "s/^$2://p"; }

# A healthy cluster: every node says ok and knows all 6 nodes, and node 1 sees
# 3 masters with slots + 3 replicas, none flagged fail/handshake/noaddr.
cluster_healthy() {
    local port nodes
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        [[ "$(cluster_field "$port" cluster_state)" == ok ]] || return 1
        [[ "$(cluster_field "$port" cluster_known_nodes)" == "${#REDIS_CLUSTER_PORTS[@]}" ]] || return 1
    done
    nodes="$(redis_cli "${REDIS_CLUSTER_PORTS[0]}" cluster nodes 2>/dev/null)" || return 1
    # CLUSTER NODES: <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slots...>
    awk '$3 ~ /fail|handshake|noaddr/ || $8 != "connected" { bad++ }
         $3 ~ /master/ && NF >= 9 { masters++ }
         $3 ~ /slave/ { replicas++ }
         END { exit !(bad == 0 && masters == 3 && replicas == 3) }' <<<"$nodes"
}

cluster_fresh() { # no node has joined anything or owns slots yet
    local port
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        [[ "$(cluster_field "$port" cluster_known_nodes)" == 1 && "$(cluster_field "$port" cluster_slots_assigned)" == 0 ]] || return 1
    done
}

up_redis() {
    local port
    # standalone
    redis_write_conf "$REDIS_PORT" "$REDIS_DIR/standalone"
    if pid_alive "$RUN_DIR/redis-$REDIS_PORT.pid" redis-server; then
        info "redis: :$REDIS_PORT already running"
    else
        redis_start "$REDIS_PORT" "$REDIS_DIR/standalone"
    fi
    wait_until "redis :$REDIS_PORT" "$LOG_DIR/redis-$REDIS_PORT.log" redis_ping "$REDIS_PORT"

    # cluster nodes
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        redis_write_conf "$port" "$REDIS_DIR/cluster/$port" "
cluster-enabled yes
# relative to dir: each node keeps its own cluster state file
cluster-config-file nodes.conf
cluster-node-timeout 5000"
        redis_start "$port" "$REDIS_DIR/cluster/$port"
    done
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do
        wait_until "redis cluster node :$port" "$LOG_DIR/redis-$port.log" redis_ping "$port"
    done

    if cluster_healthy; then
        info "redis: cluster already formed and healthy"
        return 0
    fi
    if ! cluster_fresh; then
        # Nodes remember the cluster in nodes.conf; after a restart they need a few
        # seconds of gossip to agree again.  Only a cluster that stays broken is reset.
        info "redis: waiting for the existing cluster to converge"
        local deadline=$((SECONDS + 30))
        until cluster_healthy || ((SECONDS >= deadline)); do sleep 0.5; done
        if cluster_healthy; then
            info "redis: cluster healthy"
            return 0
        fi
        warn "redis: existing cluster is not healthy; resetting and re-creating it (its data is lost)"
        for port in "${REDIS_CLUSTER_PORTS[@]}"; do
            redis_cli "$port" flushall >/dev/null 2>&1 || true   # replicas refuse; fine
            redis_cli "$port" cluster reset hard >/dev/null ||
                die_log "$LOG_DIR/redis-$port.log" "CLUSTER RESET on :$port failed"
        done
    fi
    info "redis: creating cluster (3 masters + 3 replicas)"
    local addrs=()
    for port in "${REDIS_CLUSTER_PORTS[@]}"; do addrs+=("$BIND_IP:$port"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >>"$LOG_DIR/redis-cluster-create.log" 2>&1 ||
        die_log "$LOG_DIR/redis-cluster-create.log" "redis-cli --cluster create failed"
    wait_until "redis cluster (cluster_state:ok on all nodes)" "$LOG_DIR/redis-cluster-create.log" cluster_healthy
    info "redis: cluster healthy"
}

# ------------------------------------------------------------------------ s3
S3_PIDFILE="$RUN_DIR/seaweedfs.pid"
S3_LOG="$LOG_DIR/seaweedfs.log"

# s3_curl ARGS...: curl with SigV4 credentials of the test identity.  curl < 8.x
# sends no x-amz-content-sha256, which S3 requires; given the header, curl signs
# with its value, and UNSIGNED-PAYLOAD is valid for every request.
s3_curl() {
    curl -sS --max-time 10 --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
}
s3_list_buckets_ok() { s3_curl -f -o /dev/null "http://$BIND_IP:$S3_PORT/"; }

# Round trip through the whole store (S3 gateway -> filer -> master -> volume):
# create a bucket, put, get and delete an object, delete the bucket.
s3_roundtrip() {
    local url="http://$BIND_IP:$S3_PORT/fedi-services-check" body="hello from up.sh $$" got
    s3_curl -f -o /dev/null -X PUT "$url" 2>/dev/null ||
        s3_curl -f -o /dev/null "$url" || return 1   # already exists from an aborted run
    s3_curl -f -o /dev/null -X PUT --data-binary "$body" -H 'Content-Type: text/plain' "$url/roundtrip.txt" || return 1
    got="$(s3_curl -f "$url/roundtrip.txt")" || return 1
    [[ "$got" == "$body" ]] || return 1
    s3_curl -f -o /dev/null -X DELETE "$url/roundtrip.txt" || return 1
    # Best effort: leave no bucket behind for tests that list buckets.
    s3_curl -f -o /dev/null -X DELETE "$url" 2>/dev/null || true
}

up_s3() {
    local weed
    if [[ ! -x "$CACHE_DIR/seaweedfs/$SEAWEEDFS_VERSION/weed" ]]; then
        info "s3: building SeaweedFS $SEAWEEDFS_VERSION (one-off; ~10 min on 2 cores; log: $LOG_DIR/build-seaweedfs.log)"
    fi
    weed="$("$SERVICES_DIR/build_seaweedfs.sh" 2>>"$LOG_DIR/build-seaweedfs.log")" ||
        die_log "$LOG_DIR/build-seaweedfs.log" "building SeaweedFS failed"

    mkdir -p "$S3_DIR/data" "$S3_DIR/master"
    # S3 identities (the classic s3.json format of `weed s3 -config`).
    cat >"$S3_DIR/s3.json" <<EOF
{
  "identities": [
    {
      "name": "fedi-test",
      "credentials": [{ "accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY" }],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
    if pid_alive "$S3_PIDFILE" "weed server"; then
        info "s3: SeaweedFS already running"
    else
        local port
        for port in "$S3_PORT" "$SWFS_MASTER_PORT" "$SWFS_VOLUME_PORT" "$SWFS_FILER_PORT"; do
            ensure_port_free "seaweedfs" "$port"
        done
        info "s3: starting SeaweedFS (S3 API on $BIND_IP:$S3_PORT)"
        # master + volume + filer + S3 gateway in one process.  Notes on the flags:
        #  -ip/-ip.bind: identify and listen on loopback only (gRPC = port+10000)
        #  -master.peers=none: single-master mode; on restart the master resumes as
        #     raft leader at once instead of after an election timeout (~17s)
        #  -s3.port.iceberg=0 -s3.port.lance=0: no extra catalog listeners
        #  -volume.minFreeSpace=256MiB: the default (1% of the disk) turned every volume
        #     read-only on a big, nearly full disk
        #  -master.volumeSizeLimitMB=16 -volume.max=0: many small volumes, so many
        #     buckets fit (each bucket is a collection with its own volumes; the
        #     volume count is free disk / size limit, and tests make a bucket each:
        #     with 64 MB and a nearly full disk, buckets ran out in CI)
        #  WEED_MASTER_VOLUME_GROWTH_COPY_1=1: grow one volume per collection at a
        #     time instead of 7 (what `weed mini` does for the same reason)
        #  -s3.autoCreateBucket=false: a PUT to a missing bucket fails like on AWS
        #  HOME=$S3_DIR: ignore any filer.toml/security.toml in the caller's ~/.seaweedfs
        # `cd` so stray relative files land in the state dir.
        (cd "$S3_DIR" && start_daemon seaweedfs "$S3_PIDFILE" "$S3_LOG" \
            env HOME="$S3_DIR" WEED_MASTER_VOLUME_GROWTH_COPY_1=1 "$weed" server \
            -ip="$BIND_IP" -ip.bind="$BIND_IP" \
            -dir="$S3_DIR/data" -master.dir="$S3_DIR/master" \
            -master.port="$SWFS_MASTER_PORT" -master.peers=none -master.volumeSizeLimitMB=16 -master.telemetry=false \
            -volume.port="$SWFS_VOLUME_PORT" -volume.max=0 -volume.minFreeSpace=256MiB -volume.preStopSeconds=0 \
            -filer -filer.port="$SWFS_FILER_PORT" -filer.localSocket="$S3_DIR/filer.sock" \
            -s3 -s3.port="$S3_PORT" -s3.config="$S3_DIR/s3.json" -s3.localSocket="$S3_DIR/s3.sock" \
            -s3.port.iceberg=0 -s3.port.lance=0 -s3.autoCreateBucket=false)
    fi
    wait_until "seaweedfs S3 API" "$S3_LOG" s3_list_buckets_ok
    # The S3 API answers before the volume server has registered with the master;
    # retry the write path until it works.
    wait_until "seaweedfs S3 bucket/object round trip" "$S3_LOG" s3_roundtrip
    pid_alive "$S3_PIDFILE" "weed server" || die_log "$S3_LOG" "seaweedfs exited"
    info "s3: bucket create + put/get object OK"
}

# ---------------------------------------------------------------------- smtp
SMTP_PIDFILE="$RUN_DIR/smtp-sink.pid"
SMTP_LOG="$LOG_DIR/smtp-sink.log"

ensure_smtp_venv() {
    local stamp want
    want="$(sha256sum "$SERVICES_DIR/requirements-smtp.txt" | cut -d' ' -f1)"
    stamp="$SMTP_VENV/.fedi-requirements.sha256"
    if [[ -x "$SMTP_VENV/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] &&
        "$SMTP_VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
        return 0
    fi
    info "smtp: installing aiosmtpd $AIOSMTPD_VERSION into $SMTP_VENV (log: $LOG_DIR/pip-smtp.log)"
    # Recreate rather than patch: the venv may point at a Python that is gone.
    rm -rf "$SMTP_VENV"
    mkdir -p "$CACHE_DIR"
    python3 -m venv "$SMTP_VENV" >>"$LOG_DIR/pip-smtp.log" 2>&1 || die_log "$LOG_DIR/pip-smtp.log" "python3 -m venv failed"
    "$SMTP_VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q \
        -r "$SERVICES_DIR/requirements-smtp.txt" >>"$LOG_DIR/pip-smtp.log" 2>&1 ||
        die_log "$LOG_DIR/pip-smtp.log" "pip install of the SMTP sink requirements failed"
    printf '%s\n' "$want" >"$stamp"
}

# smtp_banner_ok: the sink answers with a "220 ..." greeting.
smtp_banner_ok() {
    local line
    exec 3<>"/dev/tcp/$BIND_IP/$SMTP_PORT" || return 1
    IFS= read -r -t 5 line <&3 || { exec 3>&-; return 1; }
    printf 'QUIT\r\n' >&3 || true
    exec 3>&-
    [[ "$line" == 220* ]]
}

up_smtp() {
    ensure_smtp_venv
    mkdir -p "$SMTP_MAILDIR"
    if pid_alive "$SMTP_PIDFILE" smtp_sink.py; then
        info "smtp: sink already running"
    else
        ensure_port_free "smtp sink" "$SMTP_PORT"
        info "smtp: starting sink on $BIND_IP:$SMTP_PORT"
        start_daemon smtp-sink "$SMTP_PIDFILE" "$SMTP_LOG" \
            "$SMTP_VENV/bin/python" -u "$SERVICES_DIR/smtp_sink.py" \
            --host "$BIND_IP" --port "$SMTP_PORT" --maildir "$SMTP_MAILDIR"
    fi
    wait_until "smtp sink" "$SMTP_LOG" smtp_banner_ok
}

# ---------------------------------------------------------------- opensearch
OPENSEARCH_PIDFILE="$RUN_DIR/opensearch.pid"
OPENSEARCH_LOG="$LOG_DIR/opensearch.log"

opensearch_ready() {
    curl -sf --max-time 5 -o /dev/null "http://$BIND_IP:$OPENSEARCH_PORT/_cluster/health?wait_for_status=yellow&timeout=1s"
}

up_opensearch() {
    local dist
    if ! compgen -G "$CACHE_DIR/opensearch-$OPENSEARCH_VERSION-*/classes" >/dev/null; then
        info "opensearch: assembling OpenSearch $OPENSEARCH_VERSION from Maven Central (one-off; ~30s; log: $LOG_DIR/build-opensearch.log)"
    fi
    dist="$("$SERVICES_DIR/opensearch/build_opensearch.sh" 2>>"$LOG_DIR/build-opensearch.log")" ||
        die_log "$LOG_DIR/build-opensearch.log" "assembling OpenSearch failed"
    mkdir -p "$OPENSEARCH_DIR"
    if pid_alive "$OPENSEARCH_PIDFILE" FediSearchNode; then
        info "opensearch: already running"
    else
        ensure_port_free opensearch "$OPENSEARCH_PORT"
        ensure_port_free "opensearch transport" "$OPENSEARCH_TRANSPORT_PORT"
        info "opensearch: starting on $BIND_IP:$OPENSEARCH_PORT"
        # -Xmx512m: enough for test indices, and 2 cores/limited RAM are shared.
        (cd "$OPENSEARCH_DIR" && start_daemon opensearch "$OPENSEARCH_PIDFILE" "$OPENSEARCH_LOG" \
            java -Xms256m -Xmx512m -XX:+UseSerialGC -Djava.awt.headless=true \
            -cp "$dist/lib/*:$dist/classes" FediSearchNode "$OPENSEARCH_DIR" "$OPENSEARCH_PORT" "$OPENSEARCH_TRANSPORT_PORT")
    fi
    wait_until opensearch "$OPENSEARCH_LOG" opensearch_ready
    pid_alive "$OPENSEARCH_PIDFILE" FediSearchNode || die_log "$OPENSEARCH_LOG" "opensearch exited"
}

# ---------------------------------------------------------------------- main
for svc in "${ALL_SERVICES[@]}"; do
    if selected "$svc"; then
        t=$SECONDS
        "up_$svc"
        info "$svc: ready ($((SECONDS - t))s)"
    fi
done

write_env_file
print_summary
info "done in $((SECONDS - T0))s; settings for the tests: source $ENV_FILE"
