#!/usr/bin/env bash
# Assemble a single-node OpenSearch from Maven Central into the project cache.
#
#   build_opensearch.sh            -> prints the cache directory (lib/ + classes/)
#
# Cached under ${FEDI_CACHE_DIR:-$HOME/.cache/fedi-operator}/opensearch-<version>-<hash>/,
# the hash being that of pom.xml and FediSearchNode.java, so Maven and javac only run
# again when one of them (or OPENSEARCH_VERSION) changes.  Needs Java >= 17 and
# Maven; no Docker and no tarball download.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail

OS_SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../versions.sh
source "$OS_SRC/../versions.sh"

CACHE_DIR="${FEDI_CACHE_DIR:-$HOME/.cache/fedi-operator}"
SRC_HASH="$(cat "$OS_SRC/pom.xml" "$OS_SRC/FediSearchNode.java" | sha256sum | cut -c1-12)"
OUT_DIR="$CACHE_DIR/opensearch-$OPENSEARCH_VERSION-$SRC_HASH"

if [[ -f "$OUT_DIR/classes/FediSearchNode.class" ]]; then
    echo "$OUT_DIR"
    exit 0
fi

grep -q "<opensearch.version>$OPENSEARCH_VERSION</opensearch.version>" "$OS_SRC/pom.xml" ||
    { echo "error: $OS_SRC/pom.xml does not pin OpenSearch $OPENSEARCH_VERSION (versions.sh)" >&2; exit 1; }
for cmd in java javac mvn; do
    command -v "$cmd" >/dev/null 2>&1 ||
        { echo "error: '$cmd' not found; the OpenSearch test node needs a JDK >= 17 and Maven (apt-get install openjdk-17-jdk-headless maven)" >&2; exit 1; }
done

echo "assembling OpenSearch $OPENSEARCH_VERSION from Maven Central (one-off)..." >&2
start=$(date +%s)
tmp="$OUT_DIR.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/classes"
mvn -B -q -f "$OS_SRC/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp/lib" >&2
javac -d "$tmp/classes" -cp "$tmp/lib/*" "$OS_SRC/FediSearchNode.java" >&2
rm -rf "$OUT_DIR"
mv "$tmp" "$OUT_DIR"
echo "assembled $OUT_DIR in $(( $(date +%s) - start ))s" >&2
echo "$OUT_DIR"
