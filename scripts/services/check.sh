#!/usr/bin/env bash
# Smoke-test the running services through the settings in <repo>/.local/services.env
# (the same contract the tests use).  Leaves nothing behind: the database, keys,
# bucket and mail it creates are removed again.
#
# Usage: scripts/services/check.sh [postgres|redis|s3|smtp]...   (default: all)
# Prints one PASS/FAIL line per check and a final "N passed, N failed" line;
# exits non-zero if any check failed.
# shellcheck source-path=SCRIPTDIR disable=SC2016  # checks run in `bash -c` children: single quotes are deliberate
set -euo pipefail

# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SELECTED=()
for arg in "$@"; do
    case "$arg" in
        -h | --help) print_header_usage "${BASH_SOURCE[0]}"; exit 0 ;;
        *)
            svc=$(service_of "$arg")
            [[ -n "$svc" ]] || { die "unknown service '$arg' (expected: ${ALL_SERVICES[*]})"; }
            SELECTED+=("$svc")
            ;;
    esac
done
((${#SELECTED[@]})) || SELECTED=("${ALL_SERVICES[@]}")

[[ -f "$ENV_FILE" ]] || die "$ENV_FILE not found: run scripts/services/up.sh first"
# shellcheck disable=SC1090
source "$ENV_FILE"

PASSED=0
FAILED=0
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT

# check NAME CMD...: run CMD quietly, report PASS/FAIL (with its output on failure).
check() {
    local name="$1"; shift
    if "$@" >"$OUT" 2>&1; then
        printf 'PASS  %s\n' "$name"
        PASSED=$((PASSED + 1))
    else
        printf 'FAIL  %s\n' "$name"
        sed 's/^/      | /' "$OUT" | tail -n 15
        FAILED=$((FAILED + 1))
    fi
}

require_var() { [[ -n "${!1:-}" ]] || { echo "$1 is not set in $ENV_FILE (service down?)"; return 1; }; }

# ------------------------------------------------------------------ postgres
if selected postgres; then
    PG_BIN="$(pg_find_bindir)" || die "PostgreSQL binaries not found"
    psql_url() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"; }
    CHECK_DB="fedi_check_$$"
    TOKEN="check-$$-$RANDOM"

    check "postgres: env has FEDI_TEST_DATABASE_URL and _REPLICA_URL" \
        bash -c '[[ -n "${FEDI_TEST_DATABASE_URL:-}" && -n "${FEDI_TEST_DATABASE_REPLICA_URL:-}" ]]'
    check "postgres: primary accepts fedi/fedi" psql_url "$FEDI_TEST_DATABASE_URL" -c 'SELECT version()'
    check "postgres: fedi is superuser and can create/drop a database" bash -c "
        $(declare -f psql_url); PG_BIN='$PG_BIN'
        psql_url '$FEDI_TEST_DATABASE_URL' -c 'CREATE DATABASE $CHECK_DB' &&
        psql_url '$FEDI_TEST_DATABASE_URL' -c 'DROP DATABASE $CHECK_DB'"
    check "postgres: standby is in recovery" \
        test "$(psql_url "$FEDI_TEST_DATABASE_REPLICA_URL" -c 'SELECT pg_is_in_recovery()' 2>&1)" = t
    check "postgres: row written on primary appears on standby" bash -c "
        $(declare -f psql_url); PG_BIN='$PG_BIN'
        psql_url '$FEDI_TEST_DATABASE_URL' -c \"CREATE TABLE IF NOT EXISTS fedi_check_replication (token text PRIMARY KEY); INSERT INTO fedi_check_replication VALUES ('$TOKEN')\" || exit 1
        for i in \$(seq 1 100); do
            [[ \$(psql_url '$FEDI_TEST_DATABASE_REPLICA_URL' -c \"SELECT count(*) FROM fedi_check_replication WHERE token = '$TOKEN'\" 2>/dev/null) == 1 ]] && ok=1 && break
            sleep 0.1
        done
        psql_url '$FEDI_TEST_DATABASE_URL' -c 'DROP TABLE fedi_check_replication'
        [[ \${ok:-} == 1 ]]"
    check "postgres: standby refuses writes" bash -c "
        $(declare -f psql_url); PG_BIN='$PG_BIN'
        psql_url '$FEDI_TEST_DATABASE_REPLICA_URL' -c 'CREATE TABLE must_fail (x int)' 2>&1 | grep -q 'read-only transaction'"
fi

# --------------------------------------------------------------------- redis
if selected redis; then
    check "redis: env has FEDI_TEST_REDIS_URL and _CLUSTER_NODES" \
        bash -c '[[ -n "${FEDI_TEST_REDIS_URL:-}" && -n "${FEDI_TEST_REDIS_CLUSTER_NODES:-}" ]]'
    check "redis: standalone SET/GET" bash -c "
        redis-cli -u '$FEDI_TEST_REDIS_URL' set fedi:check:$$ ok >/dev/null &&
        [[ \$(redis-cli -u '$FEDI_TEST_REDIS_URL' get fedi:check:$$) == ok ]] &&
        redis-cli -u '$FEDI_TEST_REDIS_URL' del fedi:check:$$ >/dev/null"
    check "redis: standalone is 7.x with maxmemory-policy noeviction" bash -c "
        redis-cli -u '$FEDI_TEST_REDIS_URL' info server | grep -q '^redis_version:[7-9]' &&
        redis-cli -u '$FEDI_TEST_REDIS_URL' config get maxmemory-policy | grep -qx noeviction"
    IFS=, read -r -a NODES <<<"${FEDI_TEST_REDIS_CLUSTER_NODES:-}"
    check "redis: 6 cluster nodes listed" test "${#NODES[@]}" -eq 6
    check "redis: cluster_state:ok on every node" bash -c "
        for n in ${NODES[*]}; do redis-cli -u \"\$n\" cluster info | tr -d '\r' | grep -qx cluster_state:ok || { echo \"\$n not ok\"; exit 1; }; done"
    check "redis: 3 masters + 3 replicas" bash -c "
        nodes=\$(redis-cli -u '${NODES[0]}' cluster nodes)
        [[ \$(grep -c master <<<\"\$nodes\") == 3 && \$(grep -c slave <<<\"\$nodes\") == 3 ]] || { echo \"\$nodes\"; exit 1; }"
    check "redis: cluster SET/GET across slots (redis-cli -c)" bash -c "
        for k in a b c d e f; do
            redis-cli -c -u '${NODES[0]}' set fedi:check:$$:\$k \$k >/dev/null || exit 1
            [[ \$(redis-cli -c -u '${NODES[3]}' get fedi:check:$$:\$k) == \$k ]] || exit 1
            redis-cli -c -u '${NODES[0]}' del fedi:check:$$:\$k >/dev/null
        done"
fi

# ------------------------------------------------------------------------ s3
if selected s3; then
    # curl < 8 neither sends x-amz-content-sha256 nor signs "?cors" like "?cors=";
    # hence the header and the explicit "=" below.
    s3() {
        curl -sS --fail-with-body --max-time 20 --aws-sigv4 "aws:amz:$FEDI_TEST_S3_REGION:s3" \
            --user "$FEDI_TEST_S3_ACCESS_KEY:$FEDI_TEST_S3_SECRET_KEY" \
            -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"
    }
    md5b64() { openssl md5 -binary | base64; }
    B="${FEDI_TEST_S3_ENDPOINT:-}/fedi-check-$$"
    POLICY='{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::fedi-check-'$$'/public/*"]}]}'
    CORS='<CORSConfiguration><CORSRule><AllowedOrigin>https://fedi.test</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedHeader>*</AllowedHeader><MaxAgeSeconds>600</MaxAgeSeconds></CORSRule></CORSConfiguration>'
    LIFECYCLE='<LifecycleConfiguration><Rule><ID>expire-cache</ID><Filter><Prefix>cache/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule><Rule><ID>abort-mpu</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule></LifecycleConfiguration>'

    check "s3: env has endpoint, region and keys" require_var FEDI_TEST_S3_ENDPOINT
    check "s3: ListBuckets (signed)" s3 -o /dev/null "$FEDI_TEST_S3_ENDPOINT/"
    check "s3: anonymous ListBuckets is refused" bash -c "
        [[ \$(curl -s -o /dev/null -w '%{http_code}' '$FEDI_TEST_S3_ENDPOINT/') == 403 ]]"
    check "s3: CreateBucket" s3 -o /dev/null -X PUT "$B"
    check "s3: PutObject + GetObject" bash -c "
        $(declare -f s3)
        s3 -o /dev/null -X PUT -H 'Content-Type: text/plain' --data-binary 'hello s3' '$B/public/hello.txt' &&
        [[ \$(s3 '$B/public/hello.txt') == 'hello s3' ]]"
    check "s3: PutBucketPolicy + GetBucketPolicy" bash -c "
        $(declare -f s3)
        s3 -o /dev/null -X PUT --data-binary '$POLICY' '$B?policy=' &&
        s3 '$B?policy=' | grep -q PublicRead"
    check "s3: bucket policy is enforced (anonymous GET of public/*)" bash -c "
        [[ \$(curl -s '$B/public/hello.txt') == 'hello s3' ]]"
    check "s3: PutBucketCors + GetBucketCors" bash -c "
        $(declare -f s3 md5b64)
        s3 -o /dev/null -X PUT -H \"Content-MD5: \$(printf %s '$CORS' | md5b64)\" --data-binary '$CORS' '$B?cors=' &&
        s3 '$B?cors=' | grep -q https://fedi.test"
    check "s3: CORS preflight answers the configured origin" bash -c "
        curl -sS -i -X OPTIONS -H 'Origin: https://fedi.test' -H 'Access-Control-Request-Method: GET' '$B/public/hello.txt' |
            tr -d '\r' | grep -qix 'Access-Control-Allow-Origin: https://fedi.test'"
    check "s3: PutBucketLifecycleConfiguration + GetBucketLifecycleConfiguration" bash -c "
        $(declare -f s3 md5b64)
        s3 -o /dev/null -X PUT -H \"Content-MD5: \$(printf %s '$LIFECYCLE' | md5b64)\" --data-binary '$LIFECYCLE' '$B?lifecycle=' &&
        s3 '$B?lifecycle=' | grep -q expire-cache"
    check "s3: DeleteObject + DeleteBucket" bash -c "
        $(declare -f s3)
        s3 -o /dev/null -X DELETE '$B/public/hello.txt' && s3 -o /dev/null -X DELETE '$B'"
fi

# ---------------------------------------------------------------------- smtp
if selected smtp; then
    check "smtp: env has host, port and maildir" require_var FEDI_TEST_SMTP_MAILDIR
    check "smtp: smtplib mail lands as an .eml file" env SUBJECT="fedi check $$-$RANDOM" python3 -c '
import email, glob, os, smtplib, sys, time
from email.message import EmailMessage
host, port, maildir = os.environ["FEDI_TEST_SMTP_HOST"], int(os.environ["FEDI_TEST_SMTP_PORT"]), os.environ["FEDI_TEST_SMTP_MAILDIR"]
msg = EmailMessage()
msg["From"], msg["To"], msg["Subject"] = "check@fedi.test", "to@fedi.test", os.environ["SUBJECT"]
msg.set_content("hello from scripts/services/check.sh")
with smtplib.SMTP(host, port, timeout=10) as s:
    s.send_message(msg, to_addrs=["to@fedi.test", "bcc@fedi.test"])
for _ in range(50):
    for path in glob.glob(os.path.join(maildir, "*.eml")):
        with open(path, "rb") as f:
            m = email.message_from_binary_file(f)
        if m["Subject"] == os.environ["SUBJECT"]:
            assert m["X-Fedi-Envelope-To"] == "to@fedi.test, bcc@fedi.test", m["X-Fedi-Envelope-To"]
            assert "hello from" in m.get_payload(), m.get_payload()
            os.unlink(path)
            sys.exit(0)
    time.sleep(0.1)
sys.exit("mail not found in " + maildir)
'
    check "smtp: no half-written (.tmp) files left" bash -c "! ls -A '${FEDI_TEST_SMTP_MAILDIR:-/nonexistent}' | grep -q '\.tmp$'"
fi

echo
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
