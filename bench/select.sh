#!/usr/bin/env bash
# bench/select.sh - the cost of golden images that follow their builds: one ImageShare whose
# imageSelector matches 50 images (tagged golden) and whose memberSelector matches 200 projects
# (tagged analytics), 10,000 memberships, on the real API server and the in-process Keystone +
# Glance (5 ms per request). Time to all Ready, then three refreshes (refreshInterval 30s) with
# nothing changed: Glance and Keystone calls per refresh, and Kubernetes writes (goal: 1 image
# list and 1 project list per refresh, 0 writes). `make bench` runs it; lines go to results.txt.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
RESULTS=${IAO_BENCH_RESULTS:-$ROOT/bench/results.txt}
"$ROOT/tests/env/up.sh" "$STATE" >/dev/null
cd "$ROOT"
# shellcheck disable=SC1091
source "$STATE/env.sh"
OPB=$("$ROOT/hack/static-build.sh" 2>/dev/null)
cargo build -q --release --features testing --bin iao-bench
B=$ROOT/target/release/iao-bench
W=$STATE/bench-select; rm -rf "$W"; mkdir -p "$W"
FAKE='' OP=''
ns=''
# Ctrl-C or the end: the namespace goes while its operator and the fake still run (its objects'
# finalizers need them), then they are stopped.
stop() {
  if [ -n "$ns" ]; then
    kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
    for _ in $(seq 1 240); do kubectl get namespace "$ns" >/dev/null 2>&1 || break; sleep 0.5; done
  fi
  # shellcheck disable=SC2086 # the PIDs, one word each or none
  kill $OP $FAKE 2>/dev/null || true
}
trap stop EXIT
# Ctrl-C ends the script (the EXIT trap stops what it started), never only the trap.
trap 'exit 130' INT TERM
IMAGES=${SELECT_IMAGES:-50} PROJECTS=${SELECT_PROJECTS:-200}
COUNT=$((IMAGES * PROJECTS))
setsid "$B" serve-fake --out "$W/fake" --latency-ms 5 --images "$IMAGES" --tag golden --projects "$PROJECTS" --member-quota 1000 > "$W/fake.log" 2>&1 &
FAKE=$!
until [ -s "$W/fake/images" ]; do
  kill -0 "$FAKE" 2>/dev/null || { echo "the in-process fake did not start: $(tail -3 "$W/fake.log")" >&2; exit 1; }
  sleep 0.1
done
FAKE_URL=$(awk '/auth_url/{print $2; exit}' "$W/fake/clouds.yaml" | sed 's#/v3$##')
counts() { curl -sf --noproxy '*' "$FAKE_URL/_fake/requests"; }
# "COUNT DIGEST" of the namespace's objects' resourceVersions: equal digests over the same
# COUNT+1 objects are the evidence of no write (an empty or failed listing is no evidence).
versions() {
  local list
  list=$(kubectl get ia,ishare -n "$ns" -o jsonpath='{range .items[*]}{.metadata.resourceVersion}{"\n"}{end}')
  echo "$(grep -c . <<< "$list") $(md5sum <<< "$list" | cut -c1-12)"
}
ns=bench-select-$(date +%s | cut -c6-10)
kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" create secret generic openstack-credentials --from-file=clouds.yaml="$W/fake/clouds.yaml" >/dev/null
KUBECONFIG=$IAO_OPERATOR_KUBECONFIG setsid "$OPB" --watch-namespaces "$ns" --concurrency 8 \
  --metrics-addr 127.0.0.1:18962 --health-addr 127.0.0.1:18963 > "$W/op.log" 2>&1 &
OP=$!
until curl -sf --noproxy '*' 127.0.0.1:18963/readyz >/dev/null; do
  kill -0 "$OP" 2>/dev/null || { echo "the operator did not start: $(tail -3 "$W/op.log")" >&2; exit 1; }
  sleep 0.2
done
t0=$(date +%s.%N)
$B watch-ready --namespace "$ns" --count "$COUNT" --start "$t0" --timeout 900 > "$W/ready" &
WATCH=$!
kubectl -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: glance.viettelidc.com.vn/v1alpha1
kind: ImageShare
metadata:
  name: golden
spec:
  imageSelector: {tags: [golden]}
  memberSelector: {tags: [analytics]}
  refreshInterval: 30s
  cloudCredentialsRef: {secretName: openstack-credentials, cloudName: owner-admin}
YAML
wait $WATCH
ready=$(cat "$W/ready")
sleep 10
before=$(counts); evaluations_before=$(grep -c "selectors evaluated" "$W/op.log" || true); rv_before=$(versions)
sleep 100
after=$(counts); evaluations_after=$(grep -c "selectors evaluated" "$W/op.log" || true); rv_after=$(versions)
cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' /proc/$OP/stat)
rss=$(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$OP/status)
line=$(python3 - "$before" "$after" "$evaluations_before" "$evaluations_after" <<'PY'
import json, sys
b, a = json.loads(sys.argv[1]), json.loads(sys.argv[2])
refreshes = int(sys.argv[4]) - int(sys.argv[3])
if refreshes <= 0:
    sys.exit("no refresh in the window: the measurement has no evidence")
d = lambda k: a.get(k, 0) - b.get(k, 0)
print(f"{refreshes} refreshes: per refresh {d('GET images') / refreshes:.2f} image lists (goal 1), "
      f"{d('GET projects') / refreshes:.2f} project lists (goal 1); member requests in the window "
      f"{d('GET member') + d('GET members')} (the children's own resync, not the refresh)")
PY
)
if [ "${rv_before%% *}" != $((COUNT + 1)) ] || [ "${rv_after%% *}" != $((COUNT + 1)) ]; then
  echo "the listing of $ns held ${rv_before%% *} then ${rv_after%% *} objects, not $((COUNT + 1)): no evidence of the writes" >&2
  exit 1
fi
writes=$([ "$rv_before" = "$rv_after" ] && echo 0 || echo "some (resourceVersions changed)")
{
  echo "-- $(date -u +%F): ImageShare selecting $IMAGES images x $PROJECTS projects ($COUNT memberships), fake Keystone + Glance 5 ms, real API server"
  echo "  all $COUNT Ready at ${ready}s; operator CPU ${cpu}s, peak RSS ${rss} MiB"
  echo "  steady, 100 s at refreshInterval 30s: $line; Kubernetes writes $writes (goal 0)"
} | tee -a "$RESULTS"
