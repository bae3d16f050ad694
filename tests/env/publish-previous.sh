#!/usr/bin/env bash
# tests/env/publish-previous.sh [STATE_DIR] - the newest release in hack/releases.tsv, rebuilt from
# its recorded commit (its sources from `git archive`, built by today's release scripts, amd64
# only: the nodes' platform) and cached by commit outside the repository; then pushed to the
# environment's registry and signed like the current one (hack/publish.sh). The upgrade test
# (tests/upgrade.rs) installs it and upgrades to the current release. Writes
# STATE_DIR/previous.env (sourced by env.sh): IAO_PREVIOUS_VERSION, IAO_PREVIOUS_CHART,
# IAO_PREVIOUS_IMAGE, IAO_PREVIOUS_CRDS (the release's crds/ folder).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${1:-$ROOT/.e2e}
log() { printf '[publish-previous %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
# The newest release that is not the sources' own version (on a release commit, the one before).
current=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -1)
read -r version commit _ < <(grep -v '^#' "$ROOT/hack/releases.tsv" | awk -v v="$current" '$1 != v' | tail -1)
[ -n "${commit:-}" ] || { log "ERROR: no release but $current in hack/releases.tsv"; exit 1; }
git -C "$ROOT" cat-file -e "$commit^{commit}" 2>/dev/null \
  || { log "ERROR: commit $commit of release $version is not in this clone (fetch its history)"; exit 1; }
# Keyed by the commit and by today's release scripts and zig: a fix to them rebuilds it.
BUILT_WITH=(release image oci static-build tools rootfs)
key=$( (cd "$ROOT/hack" && cat "${BUILT_WITH[@]/%/.sh}"; grep '^ARG ' "$ROOT/Dockerfile") | sha256sum | cut -c1-12)
CACHES=${IAO_RELEASES_CACHE:-$HOME/.cache/image-access-operator/releases}
CACHE=$CACHES/$version-$commit-$key
mkdir -p "$CACHES"
# Two runs sharing the cache (two clones) build it once.
exec 9>"$CACHES/.lock"
flock 9
if [ ! -f "$CACHE/dist/SHA256SUMS" ]; then
  log "building release $version from $commit into $CACHE (once per machine)"
  rm -rf "$CACHE" && mkdir -p "$CACHE/src"
  git -C "$ROOT" archive "$commit" | tar -x -C "$CACHE/src"
  # Today's release scripts (the old commit predates them) on the old sources, chart and Dockerfile.
  for script in "${BUILT_WITH[@]}"; do cp "$ROOT/hack/$script.sh" "$CACHE/src/hack/"; done
  ZIG_VERSION=$(sed -n 's/^ARG ZIG_VERSION=//p' "$ROOT/Dockerfile") \
  CARGO_ZIGBUILD_VERSION=$(sed -n 's/^ARG CARGO_ZIGBUILD_VERSION=//p' "$ROOT/Dockerfile") \
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct "$commit") IAO_PLATFORMS=amd64 \
    "$CACHE/src/hack/release.sh" "$version" "$CACHE/dist.tmp" >/dev/null
  cp -r "$CACHE/src/charts/image-access-operator/crds" "$CACHE/dist.tmp/crds"
  mv "$CACHE/dist.tmp" "$CACHE/dist"
  rm -rf "$CACHE/src/target"
fi
# shellcheck disable=SC1091
source "$STATE/env.sh"
keys=$STATE/cosign
[ -f "$keys/cosign.key" ] || { log "ERROR: no key pair under $keys: run tests/env/publish-image.sh first"; exit 1; }
published=$(COSIGN_KEY=$keys/cosign.key COSIGN_PASSWORD="" IAO_PLAIN_HTTP=1 "$ROOT/hack/publish.sh" "$CACHE/dist" "$IAO_REGISTRY")
{
  sed -e 's/^IAO_RELEASE_/IAO_PREVIOUS_/' -e 's/^/export /' "$published"
  echo "export IAO_PREVIOUS_CRDS='$CACHE/dist/crds'"
} > "$STATE/previous.env"
grep -E "VERSION|CHART=" "$STATE/previous.env" | sed 's/^export //'
