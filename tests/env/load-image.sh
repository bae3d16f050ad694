#!/usr/bin/env bash
# tests/env/load-image.sh [STATE_DIR] - builds the operator's image from the current sources
# (hack/image.sh: the image the Dockerfile describes) and imports it into every node's containerd,
# where pods use it with imagePullPolicy Never. Prints the image name.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${1:-$ROOT/.e2e}
ls "$STATE"/node-*/containerd/containerd.sock >/dev/null 2>&1 \
  || { echo "no node under $STATE: start the environment first (tests/env/up.sh)" >&2; exit 1; }
archive=$("$ROOT/hack/image.sh" "$ROOT/target/image")
for sock in "$STATE"/node-*/containerd/containerd.sock; do
  ctr -a "$sock" -n k8s.io images import "$archive" >/dev/null
done
echo "${IAO_IMAGE:-localhost/image-access-operator:dev}"
