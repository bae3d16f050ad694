#!/usr/bin/env bash
# tests/env/publish-image.sh [STATE_DIR] - `make image`: the release of the current sources, as a
# tag would make it (hack/release.sh: both platforms, the chart, SBOMs), pushed to the
# environment's registry and signed (hack/publish.sh) with a cosign key pair made for the
# environment; the nodes pull the image from there and the tests install the chart from there,
# the way users do. Writes STATE_DIR/release.env (sourced by env.sh): IAO_RELEASE_VERSION,
# IAO_RELEASE_CHART (oci://...), IAO_RELEASE_IMAGE, their digests, IAO_RELEASE_DIST and
# IAO_COSIGN_PUB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${1:-$ROOT/.e2e}
[ -f "$STATE/env.sh" ] || { echo "no environment under $STATE: start it first (tests/env/up.sh)" >&2; exit 1; }
# shellcheck disable=SC1091
source "$STATE/env.sh"
[ -n "${IAO_REGISTRY:-}" ] || { echo "env.sh names no registry: restart the environment (make env-down env-up)" >&2; exit 1; }
tools=$("$ROOT/hack/tools.sh" registry)
export PATH="$tools:$PATH"
keys=$STATE/cosign
if [ ! -f "$keys/cosign.key" ]; then
  mkdir -p "$keys"
  (cd "$keys" && COSIGN_PASSWORD="" cosign generate-key-pair >/dev/null 2>&1)
fi
dist=$("$ROOT/hack/release.sh")
published=$(COSIGN_KEY=$keys/cosign.key COSIGN_PASSWORD="" IAO_PLAIN_HTTP=1 "$ROOT/hack/publish.sh" "$dist" "$IAO_REGISTRY")
{
  sed 's/^/export /' "$published"
  echo "export IAO_RELEASE_DIST='$dist'"
  echo "export IAO_COSIGN_PUB='$keys/cosign.pub'"
} > "$STATE/release.env"
grep -E "VERSION|CHART=" "$STATE/release.env" | sed 's/^export //'
