#!/usr/bin/env bash
# hack/image.sh [OUT_DIR] - the operator's container image, as the Dockerfile describes it, built
# without a Docker engine: the static musl binary (hack/static-build.sh), the file system of
# hack/rootfs.sh (the script the Dockerfile runs too), and the image config read from the
# Dockerfile's final stage (USER, EXPOSE, ENTRYPOINT). Prints the archive's path,
# OUT_DIR/image-access-operator.oci.tar, an image named localhost/image-access-operator:dev
# (IAO_IMAGE to change it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$ROOT/target/image}
IMAGE=${IAO_IMAGE:-localhost/image-access-operator:dev}
mkdir -p "$OUT"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

binary=$("$ROOT/hack/static-build.sh")
"$ROOT/hack/rootfs.sh" "$work/rootfs" "$binary"
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
"$ROOT/hack/oci.sh" "$OUT/image-access-operator.oci.tar" "$IMAGE" "$work/rootfs" "$work/config.json"
echo "$OUT/image-access-operator.oci.tar"
