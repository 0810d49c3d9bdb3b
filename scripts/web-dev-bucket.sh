#!/usr/bin/env bash
# scripts/web-dev-bucket.sh BUCKET: the media bucket of `make dev` on the test S3, created
# once with `media/` publicly readable (what the operator does for a real instance), so that
# uploads from the web client work by hand. Needs the services' env (FEDI_TEST_S3_*).
# curl signs the requests itself (--aws-sigv4); the body hash header is required by S3 for a
# signed PUT with a body.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bucket="${1:?usage: scripts/web-dev-bucket.sh BUCKET}"
s3() {
    curl -sS -o /dev/null -w '%{http_code}' --aws-sigv4 "aws:amz:${FEDI_TEST_S3_REGION:-us-east-1}:s3" \
        --user "$FEDI_TEST_S3_ACCESS_KEY:$FEDI_TEST_S3_SECRET_KEY" "$@"
}
code=$(s3 -X PUT "$FEDI_TEST_S3_ENDPOINT/$bucket")
[[ "$code" == 200 || "$code" == 409 ]] || die "creating the dev bucket $bucket failed (HTTP $code)"
policy=$(printf '{"Version":"2012-10-17","Statement":[{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/media/*"]}]}' "$bucket")
code=$(s3 -X PUT "$FEDI_TEST_S3_ENDPOINT/$bucket?policy=" -H 'Content-Type: application/json' \
    -H "x-amz-content-sha256: $(printf %s "$policy" | sha256sum | cut -d' ' -f1)" --data "$policy")
[[ "$code" == 204 || "$code" == 200 ]] || die "making $bucket/media/ public failed (HTTP $code)"
