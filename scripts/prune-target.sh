#!/usr/bin/env bash
# Keep a shared Cargo target directory from filling the disk between CI runs.
#
# Cargo names an artifact of a path package by a hash that includes the package's path, so
# every clone at a new path builds our own crates again under new names and leaves the old
# ones behind: about 5 GiB per run (test binaries of ~110 MiB each). Third-party crates keep
# their names across clones and are what a cache is for. So: remove our workspace's own
# artifacts (they are rebuilt anyway, the sources having changed), keep everything else, and
# throw the whole directory away only when the disk is still short afterwards.
#
# usage: scripts/prune-target.sh <target-dir> [min-free-GiB]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

target=${1:?usage: prune-target.sh <target-dir> [min-free-GiB]}
min_free_gib=${2:-15}
[[ -d $target ]] || exit 0

free_gib() { df -P -BG "$target" | awk 'NR == 2 { sub(/G$/, "", $4); print $4 }'; }
before=$(free_gib)

# Package names (fingerprints, build scripts) and target names (deps/: `-` becomes `_`) of
# the workspace, less any name a third-party crate also has: those must survive.
# Without a crate cache (a cold machine) only the workspace can be listed; nothing collides.
metadata=$(cargo metadata --offline --format-version 1 2>/dev/null ||
  cargo metadata --no-deps --offline --format-version 1)
mapfile -t packages < <(jq -r '
  ([.packages[] | select(.source != null) | .name]) as $theirs
  | .packages[] | select(.source == null) | .name | select(IN($theirs[]) | not)' <<<"$metadata")
mapfile -t targets < <(jq -r '
  ([.packages[] | select(.source != null) | .targets[].name | gsub("-"; "_")]) as $theirs
  | .packages[] | select(.source == null) | .targets[].name | gsub("-"; "_")
  | select(IN($theirs[]) | not)' <<<"$metadata" | sort -u)

for profile in "$target"/*/; do
  [[ -d $profile/deps ]] || continue
  for t in "${targets[@]}"; do
    # The 16 hex digits keep `fedi_server` from matching another crate's `fedi_server_x`.
    find "$profile/deps" -maxdepth 1 -regextype posix-extended \
      -regex ".*/(lib)?${t}-[0-9a-f]{16}(\..*)?" -delete
  done
  for p in "${packages[@]}"; do
    for dir in .fingerprint build; do
      [[ -d $profile/$dir ]] || continue
      find "$profile/$dir" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
        -regex ".*/${p}-[0-9a-f]{16}" -exec rm -rf {} +
    done
  done
done

after=$(free_gib)
if ((after < min_free_gib)); then
  echo "prune-target: only ${after} GiB free after pruning our own crates; removing $target" >&2
  rm -rf "$target"
  after=$(free_gib)
fi
echo "prune-target: ${before} GiB free before, ${after} GiB after"
