# shellcheck shell=bash disable=SC2034  # sourced by the other scripts
# Pinned versions of the tools that scripts/services builds or installs itself
# (apt packages such as postgresql and redis-server come from the distro instead).
# Sourced by the other scripts; bump a version here and the next `up.sh` rebuilds it
# into a new cache directory keyed by the version.

# SeaweedFS (Apache-2.0) S3-compatible object store, as served by the Go module proxy.
# This pseudo-version is SeaweedFS 4.53 (weed/util/version/constants.go).
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"

# aiosmtpd (Apache-2.0) for the SMTP sink, installed into a venv with pip.
AIOSMTPD_VERSION="1.4.6"

# OpenSearch (Apache-2.0) for the search tests, assembled from its Maven Central jars
# (scripts/services/opensearch/pom.xml pins the same version; 2.19.x runs on Java 17).
OPENSEARCH_VERSION="2.19.6"
