#!/usr/bin/env bash
# hack/image.sh OUT_DIR [ARCH...] - the operator's container image, as the Dockerfile describes it,
# built without a Docker engine, for each ARCH (amd64, arm64; default both): the static musl
# binary (hack/static-build.sh), the file system of hack/rootfs.sh (the script the Dockerfile
# runs too), and the image config read from the Dockerfile's final stage (USER, EXPOSE,
# ENTRYPOINT). Writes OUT_DIR/image-access-operator.oci.tar, an image index named
# IAO_IMAGE (default localhost/image-access-operator:dev) with one image per ARCH, and
# OUT_DIR/linux-ARCH/image-access-operator, each binary; prints the archive's path.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/target/image}; shift || true
[ $# -gt 0 ] || set -- amd64 arm64
IMAGE=${IAO_IMAGE:-localhost/image-access-operator:dev}
mkdir -p "$OUT"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

platforms=()
for arch in "$@"; do
  case "$arch" in
    amd64) target=x86_64-unknown-linux-musl ;;
    arm64) target=aarch64-unknown-linux-musl ;;
    *) echo "image.sh: unknown ARCH $arch (amd64, arm64)" >&2; exit 2 ;;
  esac
  binary=$("$ROOT/hack/static-build.sh" "$target")
  mkdir -p "$OUT/linux-$arch"
  cp "$binary" "$OUT/linux-$arch/image-access-operator"
  "$ROOT/hack/rootfs.sh" "$work/rootfs-$arch" "$binary"
  platforms+=("$arch=$work/rootfs-$arch")
done
# The config the Dockerfile's last stage declares.
python3 - "$ROOT/Dockerfile" > "$work/config.json" <<'PY'
import json, sys
lines = [l.strip() for l in open(sys.argv[1]) if l.strip() and not l.lstrip().startswith("#")]
last = max(i for i, l in enumerate(lines) if l.upper().startswith("FROM "))
config = {"WorkingDir": "/"}
for line in lines[last:]:
    word, _, rest = line.partition(" ")
    word = word.upper()
    if word == "USER":
        config["User"] = rest.strip()
    elif word == "EXPOSE":
        config["ExposedPorts"] = {(p if "/" in p else p + "/tcp"): {} for p in rest.split()}
    elif word == "ENTRYPOINT":
        config["Entrypoint"] = json.loads(rest)
print(json.dumps(config, sort_keys=True))
PY
"$ROOT/hack/oci.sh" "$OUT/image-access-operator.oci.tar" "$IMAGE" "$work/config.json" "${platforms[@]}"
echo "$OUT/image-access-operator.oci.tar"
