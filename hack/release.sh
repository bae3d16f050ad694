#!/usr/bin/env bash
# hack/release.sh [VERSION] [DIST] - everything a release publishes, built here for VERSION
# (default: Cargo.toml's version; it must be that version, so the binary says what it is),
# into DIST (default dist/VERSION):
#   image-access-operator-VERSION.oci.tar   the image index, linux/amd64 + linux/arm64
#                                           (hack/image.sh: the image the Dockerfile describes)
#   linux-ARCH/image-access-operator        the static musl binary of each platform
#   image-access-operator-VERSION.tgz       the Helm chart, version and appVersion VERSION
#   sbom/image-access-operator-linux-ARCH.cdx.json   a CycloneDX SBOM per image (cargo-cyclonedx)
#   SHA256SUMS
# IAO_PLATFORMS="amd64" builds fewer platforms (the upgrade test's old release); IAO_IMAGE_REPOSITORY
# (default ghcr.io/viettelidc/image-access-operator) names the image in the archive. The release
# workflow (.github/workflows/release.yaml) and `make image` call this script, then hack/publish.sh.
#
# Reproducible: SOURCE_DATE_EPOCH is the commit's time, paths are remapped (hack/static-build.sh),
# archives are sorted and dated by it, the SBOMs' timestamp is it and their serial number is drawn
# from their content. What still differs between two machines: the CA bundle the image carries
# (/etc/ssl/certs/ca-certificates.crt of the build machine) and the Rust toolchain, if it is not
# the Dockerfile's.
set -euo pipefail
# File modes in the image and the chart must not depend on the caller's umask.
umask 022
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARGO_VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -1)
VERSION=${1:-$CARGO_VERSION}
VERSION=${VERSION#v}
DIST=${2:-$ROOT/dist/$VERSION}
PLATFORMS=${IAO_PLATFORMS:-amd64 arm64}
REPOSITORY=${IAO_IMAGE_REPOSITORY:-ghcr.io/viettelidc/image-access-operator}
log() { printf '[release %s %(%H:%M:%S)T] %s\n' "$VERSION" -1 "$*" >&2; }
[ "$VERSION" = "$CARGO_VERSION" ] \
  || { log "ERROR: Cargo.toml's version is $CARGO_VERSION: set it to $VERSION first (README, Releases)"; exit 1; }
# Every tool lands in one folder (the one hack/tools.sh prints).
tools=$("$ROOT/hack/tools.sh" release)
"$ROOT/hack/tools.sh" helm >/dev/null
export PATH="$tools:$PATH"
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null || echo 0)
fi
export SOURCE_DATE_EPOCH
t0=$(date +%s)
rm -rf "$DIST" && mkdir -p "$DIST/sbom"

# shellcheck disable=SC2086  # PLATFORMS is a list
IAO_IMAGE="$REPOSITORY:$VERSION" "$ROOT/hack/image.sh" "$DIST" $PLATFORMS >/dev/null
mv "$DIST/image-access-operator.oci.tar" "$DIST/image-access-operator-$VERSION.oci.tar"
t1=$(date +%s); log "binaries and image index ($PLATFORMS) in $((t1 - t0))s"

for arch in $PLATFORMS; do
  case "$arch" in amd64) target=x86_64-unknown-linux-musl ;; arm64) target=aarch64-unknown-linux-musl ;; esac
  (cd "$ROOT" && cargo cyclonedx -q --format json --spec-version 1.5 --target "$target" \
     --override-filename "iao-sbom-$arch" >&2)
  # cargo-cyclonedx stamps the time and a random serial number: the commit's time, and a serial
  # number derived from the rest, so the same sources make the same SBOM.
  python3 - "$ROOT/iao-sbom-$arch.json" "$SOURCE_DATE_EPOCH" > "$DIST/sbom/image-access-operator-linux-$arch.cdx.json" <<'PY'
import datetime, hashlib, json, sys, uuid
bom = json.load(open(sys.argv[1]))
bom.setdefault("metadata", {})["timestamp"] = datetime.datetime.fromtimestamp(
    int(sys.argv[2]), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
bom.pop("serialNumber", None)
digest = hashlib.sha256(json.dumps(bom, sort_keys=True).encode()).digest()
bom["serialNumber"] = "urn:uuid:" + str(uuid.UUID(bytes=digest[:16], version=5))
print(json.dumps(bom, indent=2, sort_keys=True))
PY
  rm -f "$ROOT/iao-sbom-$arch.json"
done

helm package -u=false "$ROOT/charts/image-access-operator" --version "$VERSION" --app-version "$VERSION" \
  -d "$DIST" >/dev/null
# Helm dates the chart's files now: the same archive again, dated SOURCE_DATE_EPOCH, sorted.
chart=$DIST/image-access-operator-$VERSION.tgz
unpacked=$(mktemp -d)
tar -xzf "$chart" -C "$unpacked"
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner -C "$unpacked" -cf - image-access-operator \
  | gzip -n -9 > "$chart"
rm -rf "$unpacked"
(cd "$DIST" && find . -type f | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum > "$DIST.SHA256SUMS" && mv "$DIST.SHA256SUMS" SHA256SUMS)
log "done in $(( $(date +%s) - t0 ))s: $DIST"
echo "$DIST"
