#!/usr/bin/env bash
# hack/demo.sh - `make demo`: from nothing to Ready ImageAccess objects on this machine.
# Builds the tools, starts a real Kubernetes (API server, controller manager, scheduler, two
# nodes with kubelet + containerd), a real Keystone + Glance and an OCI registry on loopback,
# builds the operator's release (image for amd64 and arm64, chart), pushes it to the registry and
# signs it, and installs it with `helm install oci://…`, as users do; then
# creates a shared image, the credentials Secret and the two example objects, and the consumer
# team's ImageAccessAccept in its own namespace, and an ImageShare of two more images with two
# projects, and shows them next to Glance's view. Everything keeps running; `make demo-down` stops it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
DEMO=$STATE/demo
NS=image-access-demo
# The team that receives the image, with only its own project's credentials.
CONSUMER_NS=image-access-demo-consumer
if [ -t 1 ]; then say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }; else say() { printf '\n== %s\n' "$*"; }; fi
mkdir -p "$DEMO"

say "Starting Kubernetes (control plane and two nodes) and Keystone + Glance (first run builds the tools: ~15 min)"
"$ROOT/tests/env/up.sh" "$STATE"
# shellcheck disable=SC1091
source "$STATE/env.sh"
say "Building the operator's release (the Dockerfile's image for amd64 and arm64, the chart) into the registry at $IAO_REGISTRY"
"$ROOT/tests/env/publish-image.sh" "$STATE"
# shellcheck disable=SC1091
source "$STATE/release.env"
if cosign verify --key "$IAO_COSIGN_PUB" --insecure-ignore-tlog=true --allow-http-registry --allow-insecure-registry \
  "$IAO_RELEASE_IMAGE@$IAO_RELEASE_IMAGE_DIGEST" >/dev/null 2>&1; then
  echo "image signature verified: $IAO_RELEASE_IMAGE@$IAO_RELEASE_IMAGE_DIGEST"
else
  echo "the image's signature did not verify: not installing it" >&2; exit 1
fi

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

say "Golden images for every team: one ImageShare of two more images x two projects"
GOLDEN=()
for name in demo-golden-base demo-golden-gpu; do
  id=$(cat "$DEMO/$name" 2>/dev/null || true)
  if [ -z "$id" ] || ! openstack --os-cloud owner image show "$id" >/dev/null 2>&1; then
    id=$(openstack --os-cloud owner image create --shared --disk-format raw --container-format bare -f value -c id "$name")
    echo "$id" > "$DEMO/$name"
  fi
  GOLDEN+=("$id")
done
sed -e "s/6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10/${GOLDEN[0]}/" -e "s/7d1b2f3c-3c2f-4a69-8b64-5a1d2e3f4b21/${GOLDEN[1]}/" \
  -e "s/bed6b6cbb86a4e2d8dc2735c2f1000e4/$OSL_MEMBER1_PROJECT_ID/" -e "s/5f2a9d8e7c6b4a3f9e8d7c6b5a4f3e2d/$OSL_MEMBER2_PROJECT_ID/" \
  "$ROOT/deploy/examples/imageshare.yaml" | kubectl -n "$NS" apply -f -

say "Golden images that follow their builds: an ImageShare of the 2 newest builds tagged golden-build"
build() { # NAME: an uploaded (active) build tagged golden-build
  head -c 64 /dev/zero > "$DEMO/build.raw"
  openstack --os-cloud owner image create --shared --disk-format raw --container-format bare \
    --tag golden-build --file "$DEMO/build.raw" -f value -c id "$1"
}
BUILDS=$(openstack --os-cloud owner image list --tag golden-build --status active -f value -c ID | wc -l)
for i in $(seq $((BUILDS + 1)) 2); do build "demo-golden-build-$i" >/dev/null; sleep 1; done
sed -e "s/bed6b6cbb86a4e2d8dc2735c2f1000e4/$OSL_MEMBER1_PROJECT_ID/" \
  "$ROOT/deploy/examples/imageshare-builds.yaml" | kubectl -n "$NS" apply -f -

say "The consumer team accepts the share, in namespace $CONSUMER_NS with its own project's credentials"
kubectl create namespace "$CONSUMER_NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
printf 'clouds:\n  consumer:\n    auth:\n      auth_url: %s\n      username: member1-user\n      password: %s\n      project_name: member1\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n' \
  "$OSL_KEYSTONE_URL" "$OSL_USER_PASSWORD" > "$DEMO/consumer-clouds.yaml"
kubectl -n "$CONSUMER_NS" create secret generic consumer-credentials --from-file=clouds.yaml="$DEMO/consumer-clouds.yaml" \
  --dry-run=client -o yaml | kubectl apply -f -
sed -e "s/6c0a1e2b-2b1e-4f58-9a53-4f0c7f1c2a10/$IMAGE/" \
  "$ROOT/deploy/examples/imageaccessaccept.yaml" | kubectl -n "$CONSUMER_NS" apply -f -

say "helm install image-access-operator $IAO_RELEASE_CHART --version $IAO_RELEASE_VERSION (two replicas: one leads, one stands by)"
# tests/env/pod-values.yaml: what these nodes need (no pod network: host network on loopback,
# the API server's address). The image comes from the same registry as the chart.
helm upgrade --install image-access-operator "$IAO_RELEASE_CHART" --version "$IAO_RELEASE_VERSION" --plain-http \
  --set image.repository="$IAO_RELEASE_IMAGE" --set image.tag="$IAO_RELEASE_VERSION@$IAO_RELEASE_IMAGE_DIGEST" \
  --namespace image-access-operator --create-namespace \
  -f "$ROOT/tests/env/pod-values.yaml" --set replicaCount=2 --set "watchNamespaces={$NS,$CONSUMER_NS}" \
  --set resyncPeriod=1m \
  --wait --timeout 180s
kubectl -n image-access-operator get pods -o wide
LEADER=$(kubectl -n image-access-operator get lease image-access-operator -o jsonpath='{.spec.holderIdentity}')
LEADER_IP=$(kubectl -n image-access-operator get pod "$LEADER" -o jsonpath='{.status.podIP}')
echo "leader: $LEADER ($LEADER_IP)"
kubectl -n "$NS" wait --for=condition=Ready --timeout=120s imageaccess --all
kubectl -n "$CONSUMER_NS" wait --for=condition=Ready --timeout=120s imageaccessaccept --all
kubectl -n "$NS" wait --for=condition=Ready --timeout=120s imageshare --all

say "kubectl get ia -o wide"
kubectl -n "$NS" get ia -o wide
say "kubectl get ishare: 2 images x 2 projects, as 4 ImageAccess objects it owns"
kubectl -n "$NS" get ishare
kubectl -n "$NS" get ia -l glance.viettelidc.com.vn/image-share=golden-images
say "A new build: it is shared at the next refresh (refreshInterval 30s) and the oldest leaves"
kubectl -n "$NS" wait --for=condition=Ready --timeout=120s imageshare golden-builds
kubectl -n "$NS" get ishare golden-builds -o jsonpath='{range .status.selection.images[*]}  {.id}  {.name}  {.createdAt}{"\n"}{end}'
NEW_BUILD=$(build "demo-golden-build-$(date +%Y%m%d-%H%M%S)")
echo "built $NEW_BUILD; waiting for the share to pick it up"
kubectl -n "$NS" wait --timeout=120s --for=jsonpath='{.status.selection.images[0].id}'="$NEW_BUILD" imageshare golden-builds
kubectl -n "$NS" wait --for=condition=Ready --timeout=120s imageshare golden-builds
kubectl -n "$NS" get ishare golden-builds -o jsonpath='{range .status.selection.images[*]}  {.id}  {.name}  {.createdAt}{"\n"}{end}'
kubectl -n "$NS" get ia -l glance.viettelidc.com.vn/image-share=golden-builds
say "The consumer's side: kubectl -n $CONSUMER_NS get iaa -o wide"
kubectl -n "$CONSUMER_NS" get iaa -o wide
say "Glance's view: openstack image member list $IMAGE"
openstack --os-cloud owner image member list "$IMAGE"
say "The consumer's image list: openstack --os-cloud member1 image list --name demo-golden-image"
# Accepted: the image is in the member's default list (pending or rejected: it is not).
openstack --os-cloud member1 image list --name demo-golden-image
cat <<MSG

The demo keeps running. Try:
  source $STATE/env.sh
  kubectl -n $NS describe ia share-golden-image
  kubectl -n $CONSUMER_NS describe iaa accept-golden-image
  kubectl -n $NS describe ishare golden-images
  kubectl -n $NS delete ia -l glance.viettelidc.com.vn/image-share=golden-images --wait=false   (the share makes them again)
  kubectl -n $CONSUMER_NS delete iaa accept-golden-image   (rejects: the image leaves member1's list)
  kubectl -n image-access-operator logs deploy/image-access-operator | tail
  curl -s $LEADER_IP:8080/metrics | grep controller_runtime_reconcile_total   (the leader's metrics)
  kubectl -n image-access-operator delete pod $LEADER   (the standby takes over at once)
  OS_CLIENT_CONFIG_FILE=$IAO_CLOUDS_YAML openstack --os-cloud owner image remove project $IMAGE $OSL_MEMBER1_PROJECT_ID
      (the operator puts it back at its next resync: the demo installs it with a 1-minute
       resyncPeriod, instead of the default 10 minutes, so you can watch it happen)
Stop everything with: make demo-down
MSG
