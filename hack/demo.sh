#!/usr/bin/env bash
# hack/demo.sh - `make demo`: from nothing to Ready ImageAccess objects on this machine.
# Builds the tools and the operator, starts a real kube-apiserver and a real Keystone + Glance
# on loopback, installs the CRD, creates a shared image, the credentials Secret and the two
# example objects, runs the operator out of cluster, and shows the objects next to Glance's
# view. Everything keeps running; `make demo-down` stops it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
DEMO=$STATE/demo
NS=image-access-demo
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
mkdir -p "$DEMO"

say "Building the operator"
(cd "$ROOT" && cargo build --bins)
say "Starting kube-apiserver + etcd and Keystone + Glance (first run builds the tools: ~10 min)"
"$ROOT/tests/env/up.sh" "$STATE"
# shellcheck disable=SC1091
source "$STATE/env.sh"

# tests/env/up.sh wrote a clouds.yaml for the test projects; the openstack CLI reads it too.
export OS_CLIENT_CONFIG_FILE=$IAO_CLOUDS_YAML
unset OS_AUTH_URL OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_AUTH_TYPE OS_USER_DOMAIN_NAME OS_PROJECT_DOMAIN_NAME OS_REGION_NAME OS_INTERFACE

say "Creating a shared image in Glance (as the owner project)"
IMAGE=$(cat "$DEMO/image-id" 2>/dev/null || true)
if [ -z "$IMAGE" ] || ! openstack --os-cloud owner image show "$IMAGE" >/dev/null 2>&1; then
  IMAGE=$(openstack --os-cloud owner image create --shared --disk-format raw --container-format bare \
    -f value -c id "demo-golden-image")
  echo "$IMAGE" > "$DEMO/image-id"
fi
echo "image $IMAGE"

say "Credentials Secret and the example ImageAccess objects in namespace $NS"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NS" create secret generic openstack-credentials --from-file=clouds.yaml="$IAO_CLOUDS_YAML" \
  --dry-run=client -o yaml | kubectl apply -f -
sed -e "s/6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10/$IMAGE/" -e "s/bed6b6cbb86a4e2d8dc2735c2f1000e4/$OSL_MEMBER1_PROJECT_ID/" \
  "$ROOT/deploy/examples/imageaccess-share.yaml" | kubectl -n "$NS" apply -f -
sed -e "s/6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10/$IMAGE/" -e "s/5f2a9d8e7c6b4a3f9e8d7c6b5a4f3e2d/$OSL_MEMBER2_PROJECT_ID/" \
  "$ROOT/deploy/examples/imageaccess-accepted.yaml" | kubectl -n "$NS" apply -f -

say "Running the operator out of cluster (log: $DEMO/operator.log)"
if ! { pid=$(cat "$DEMO/operator.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; }; then
  nohup "$ROOT/target/debug/image-access-operator" --resync-period 1m \
    --metrics-addr 127.0.0.1:8080 --health-addr 127.0.0.1:8081 > "$DEMO/operator.log" 2>&1 &
  echo $! > "$DEMO/operator.pid"
fi
kubectl -n "$NS" wait --for=condition=Ready --timeout=120s imageaccess --all

say "kubectl get ia -o wide"
kubectl -n "$NS" get ia -o wide
say "Glance's view: openstack image member list $IMAGE"
openstack --os-cloud owner image member list "$IMAGE"
cat <<MSG

The demo keeps running. Try:
  source $STATE/env.sh
  kubectl -n $NS describe ia share-golden-image
  curl -s localhost:8080/metrics | grep controller_runtime_reconcile_total
  OS_CLIENT_CONFIG_FILE=$IAO_CLOUDS_YAML openstack --os-cloud owner image remove project $IMAGE $OSL_MEMBER1_PROJECT_ID
      (then watch the operator put it back within the 1-minute resync)
Stop everything with: make demo-down
MSG
