#!/usr/bin/env bash
# tests/env/up.sh [STATE_DIR] - the whole local environment, idempotently:
#   1. the upstream tools (kube-apiserver, kubectl, etcd, helm, kstatus) from their Go modules,
#      cached outside the repository (hack/tools.sh);
#   2. a real Keystone + Glance on loopback (tests/env/openstack-up.sh);
#   3. a real etcd + kube-apiserver + kube-controller-manager on loopback (tests/env/kube-up.sh),
#      with the CRDs installed;
#   4. a real OCI registry on loopback (tests/env/registry-up.sh), where `make image` publishes
#      the release and from which the nodes pull;
#   5. two real nodes on 127.0.0.1 and 127.0.0.2, each with its own containerd and kubelet
#      (tests/env/node-up.sh), so pods run (two replicas with hostNetwork need two nodes).
# Writes STATE_DIR/env.sh (default .e2e/env.sh): `source` it to use kubectl and the tests.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${1:-$ROOT/.e2e}
mkdir -p "$STATE"
log() { printf '[env-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
t() { date +%s; }

t0=$(t)
TOOLS_BIN=$("$ROOT/hack/tools.sh" all)
"$ROOT/hack/tools.sh" registry >/dev/null
export PATH="$TOOLS_BIN:$PATH"
t1=$(t); log "tools ready in $((t1 - t0))s"

# Keystone + Glance and the apiserver start side by side (2 cores, mostly waiting on I/O).
"$ROOT/tests/env/openstack-up.sh" "$STATE/openstack" > "$STATE/openstack.env" 2> "$STATE/openstack-up.log" &
OS_PID=$!
"$ROOT/tests/env/kube-up.sh" "$STATE/kube" > "$STATE/kube.env"
REGISTRY=$("$ROOT/tests/env/registry-up.sh" "$STATE/registry" "${IAO_REGISTRY_PORT:-16500}")
"$ROOT/tests/env/node-up.sh" "$STATE/node-a" "$STATE/kube" iao-node-a 127.0.0.1 16250 "$REGISTRY"
"$ROOT/tests/env/node-up.sh" "$STATE/node-b" "$STATE/kube" iao-node-b 127.0.0.2 16350 "$REGISTRY"
if ! wait "$OS_PID"; then tail -30 "$STATE/openstack-up.log" >&2; log "ERROR: Keystone + Glance did not start"; exit 1; fi
t2=$(t); log "Keystone + Glance, the control plane and the node ready in $((t2 - t1))s"

{
  echo "export PATH='$TOOLS_BIN':\"\$PATH\""
  echo "export IAO_E2E_STATE='$STATE'"
  echo "export IAO_REGISTRY='$REGISTRY'"
  echo "export IAO_CONTAINERD_SOCKS='$STATE/node-a/containerd/containerd.sock $STATE/node-b/containerd/containerd.sock'"
  cat "$STATE/kube.env" "$STATE/openstack.env"
  # What `make image` published to the registry (tests/env/publish-image.sh), once it has.
  echo "if [ -f '$STATE/release.env' ]; then source '$STATE/release.env'; fi"
  echo "if [ -f '$STATE/previous.env' ]; then source '$STATE/previous.env'; fi"
} > "$STATE/env.sh"
# shellcheck disable=SC1091
source "$STATE/env.sh"
# A clouds.yaml for the test projects (owner, member1, member2, admin): the demo's Secret, the
# benchmark's, and the openstack CLI's (OS_CLIENT_CONFIG_FILE).
{
  echo "clouds:"
  for who in owner member1 member2 admin; do
    if [ "$who" = admin ]; then user=admin pass=$OSL_ADMIN_PASSWORD
    else user=$who-user pass=$OSL_USER_PASSWORD; fi
    printf '  %s:\n    auth:\n      auth_url: %s\n      username: %s\n      password: %s\n      project_name: %s\n' \
      "$who" "$OSL_KEYSTONE_URL" "$user" "$pass" "$who"
    printf '      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n    interface: public\n'
  done
} > "$STATE/clouds.yaml"
chmod 600 "$STATE/clouds.yaml"
echo "export IAO_CLOUDS_YAML='$STATE/clouds.yaml'" >> "$STATE/env.sh"
kubectl apply --server-side --force-conflicts -f "$ROOT/crds/" >/dev/null
kubectl wait --for=condition=Established --timeout=60s crd/imageaccesses.glance.viettelidc.com.vn crd/imageaccessaccepts.glance.viettelidc.com.vn >/dev/null
log "environment ready in $(( $(t) - t0 ))s: source $STATE/env.sh"
