#!/usr/bin/env bash
# hack/publish.sh DIST REGISTRY - pushes what hack/release.sh built into DIST to an OCI registry
# and signs it: the image index as REGISTRY/image-access-operator:VERSION (its digests kept, so
# what was built is what is signed), the chart as oci://REGISTRY/charts/image-access-operator
# VERSION, a cosign signature on each, and each platform's SBOM attached as a signed CycloneDX
# attestation. Writes DIST/published.env (the references and digests) and prints its path.
#
#   COSIGN_KEY=path   sign with that key (the tests: a key pair made for them; COSIGN_PASSWORD
#                     unlocks it); without it, keyless (the release workflow's OIDC identity)
#   IAO_PLAIN_HTTP=1  the registry speaks plain HTTP (the environment's, on loopback)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIST=${1:?usage: publish.sh DIST REGISTRY}
REGISTRY=${2:?usage: publish.sh DIST REGISTRY}
log() { printf '[publish %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
# Every tool lands in one folder (the one hack/tools.sh prints).
tools=$("$ROOT/hack/tools.sh" release)
"$ROOT/hack/tools.sh" registry >/dev/null
"$ROOT/hack/tools.sh" helm >/dev/null
export PATH="$tools:$PATH"
archive=$(ls "$DIST"/image-access-operator-*.oci.tar)
chart=$(ls "$DIST"/image-access-operator-*.tgz)
VERSION=${archive##*/image-access-operator-}; VERSION=${VERSION%.oci.tar}
IMAGE=$REGISTRY/image-access-operator

skopeo_tls=() helm_tls=() cosign_tls=()
if [ "${IAO_PLAIN_HTTP:-}" = 1 ]; then
  skopeo_tls=(--dest-tls-verify=false) helm_tls=(--plain-http) cosign_tls=(--allow-insecure-registry --allow-http-registry)
fi
signing=()
if [ -n "${COSIGN_KEY:-}" ]; then
  # A key of the caller's, no transparency log (none is reachable from the tests).
  signing=(--key "$COSIGN_KEY" --tlog-upload=false)
fi

log "pushing $IMAGE:$VERSION"
skopeo copy -q --all --preserve-digests "${skopeo_tls[@]}" "oci-archive:$archive:$VERSION" "docker://$IMAGE:$VERSION" >&2
# The index's digest, as built (hack/oci.sh wrote it into the layout's index.json).
index_digest=$(tar -xOf "$archive" ./index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')
log "pushing the chart"
# (Not `tee /dev/stderr`: opening /dev/stderr truncates the caller's log file when stderr is one.)
pushed=$(helm push "${helm_tls[@]}" "$chart" "oci://$REGISTRY/charts" 2>&1) || { echo "$pushed" >&2; exit 1; }
echo "$pushed" >&2
chart_digest=$(sed -n 's/^Digest: //p' <<< "$pushed")
[ -n "$chart_digest" ] || { log "ERROR: helm push printed no digest"; exit 1; }

log "signing"
cosign sign -y "${signing[@]}" "${cosign_tls[@]}" "$IMAGE@$index_digest" >&2
cosign sign -y "${signing[@]}" "${cosign_tls[@]}" "$REGISTRY/charts/image-access-operator@$chart_digest" >&2
# Each platform's SBOM on its image, and on the index too (what `cosign verify-attestation
# IMAGE:TAG` finds). </dev/null: cosign must not read the loop's input as a password.
tar -xOf "$archive" "./blobs/sha256/${index_digest#sha256:}" | python3 -c '
import json, sys
for m in json.load(sys.stdin)["manifests"]:
    print(m["platform"]["architecture"], m["digest"])' | while read -r arch digest; do
  for subject in "$IMAGE@$digest" "$IMAGE@$index_digest"; do
    cosign attest -y "${signing[@]}" "${cosign_tls[@]}" --type cyclonedx \
      --predicate "$DIST/sbom/image-access-operator-linux-$arch.cdx.json" "$subject" </dev/null >&2
  done
done
{
  echo "IAO_RELEASE_VERSION=$VERSION"
  echo "IAO_RELEASE_IMAGE=$IMAGE"
  echo "IAO_RELEASE_IMAGE_DIGEST=$index_digest"
  echo "IAO_RELEASE_CHART=oci://$REGISTRY/charts/image-access-operator"
  echo "IAO_RELEASE_CHART_DIGEST=$chart_digest"
} > "$DIST/published.env"
log "published $IMAGE:$VERSION ($index_digest) and the chart ($chart_digest)"
echo "$DIST/published.env"
