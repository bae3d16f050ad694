#!/usr/bin/env bash
# bench/scale.sh [COUNT] - the scale run: COUNT (300) ImageAccess objects against the real
# Keystone + Glance and kube-apiserver of tests/env/up.sh. Prints, and appends to
# bench/results.txt:
#   - time until all are Ready, and the same number of memberships created by a plain
#     sequential API client in the same run (the baseline: Glance's own speed);
#   - Glance requests by operation and Keystone authentications (operator's /metrics);
#   - Kubernetes writes by the operator (apiserver audit log, the operator's own identity);
#   - the operator's peak RSS and CPU seconds;
#   - then an idle window of two resync periods: Glance requests and Kubernetes writes in it.
# Goal: one Glance read per object per resync, zero writes when nothing changed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=${1:-300}
RESYNC=${BENCH_RESYNC:-30}
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
OUT=$ROOT/bench/results.txt
NS=bench-$(date +%s)
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

"$ROOT/tests/env/up.sh" "$STATE" 2>/dev/null
# shellcheck disable=SC1091
source "$STATE/env.sh"
(cd "$ROOT" && cargo build --release --bin image-access-operator 2>/dev/null)
BIN=$ROOT/target/release/image-access-operator
AUDIT=$STATE/kube/log/audit.log
IMAGES=$(( (COUNT + 1) / 2 ))   # the test Glance allows 2 members per image

# -------------------------------------------------------------- fixtures (not measured)
log "creating $((IMAGES * 2)) shared images (half for the baseline)"
mapfile -t ALL_IMAGES < <("$ROOT/tests/env/glance.py" images $((IMAGES * 2)) bench)
OPERATOR_IMAGES=("${ALL_IMAGES[@]:0:$IMAGES}")
BASELINE_IMAGES=("${ALL_IMAGES[@]:$IMAGES}")
MEMBERS=("$OSL_MEMBER1_PROJECT_ID" "$OSL_MEMBER2_PROJECT_ID")

# -------------------------------------------------------------- baseline: a plain API client
log "baseline: $COUNT memberships created one after the other by a plain client"
BASELINE=$("$ROOT/tests/env/glance.py" share "$COUNT" "${MEMBERS[@]}" "${BASELINE_IMAGES[@]}")

# -------------------------------------------------------------- the operator
kubectl create namespace "$NS" >/dev/null
kubectl -n "$NS" create secret generic openstack-credentials --from-file=clouds.yaml="$IAO_CLOUDS_YAML" >/dev/null
METRICS_PORT=18080
KUBECONFIG=$IAO_OPERATOR_KUBECONFIG "$BIN" --watch-namespaces "$NS" --resync-period "${RESYNC}s" \
  --metrics-addr 127.0.0.1:$METRICS_PORT --health-addr 127.0.0.1:18081 > "$STATE/bench-operator.log" 2>&1 &
OP=$!
trap 'kill $OP 2>/dev/null || true' EXIT
until curl -sf localhost:18081/readyz >/dev/null; do sleep 0.2; done

audit_writes() { # operator's create/patch/update/delete requests completed so far
  python3 - "$AUDIT" <<'PY'
import json, sys
n = 0
try:
    with open(sys.argv[1]) as f:
        for line in f:
            e = json.loads(line)
            if e.get("user", {}).get("username") == "iao-operator" and e.get("stage") == "ResponseComplete" \
               and e.get("verb") in ("create", "patch", "update", "delete"):
                n += 1
except FileNotFoundError:
    pass
print(n)
PY
}
metrics() { curl -s localhost:$METRICS_PORT/metrics; }
glance_by_op() { # "operation code count" lines
  metrics | sed -n 's/^image_access_operator_openstack_requests_total{service="\([a-z]*\)",operation="\([a-z_]*\)",code="\([0-9a-z]*\)"} \([0-9]*\)$/\1 \2 \3 \4/p' | sort
}
glance_total() { glance_by_op | awk '$1=="image"{s+=$4} END{print s+0}'; }
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$OP/stat"; }
peak_rss_mib() { awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$OP/status"; }

WRITES0=$(audit_writes)
MANIFESTS=$(mktemp)
i=0
for image in "${OPERATOR_IMAGES[@]}"; do
  for member in "${MEMBERS[@]}"; do
    [ "$i" -lt "$COUNT" ] || break
    printf 'apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccess\nmetadata:\n  name: ia-%d\nspec:\n  imageId: %s\n  memberId: %s\n  cloudCredentialsRef: {secretName: openstack-credentials, cloudName: owner}\n---\n' "$i" "$image" "$member" >> "$MANIFESTS"
    i=$((i + 1))
  done
done
log "applying $COUNT ImageAccess objects"
T0=$(date +%s.%N)
kubectl -n "$NS" apply -f "$MANIFESTS" >/dev/null
rm -f "$MANIFESTS"
while :; do
  ready=$(kubectl -n "$NS" get ia -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True || true)
  [ "$ready" -ge "$COUNT" ] && break
  sleep 0.5
done
T1=$(date +%s.%N)
READY_S=$(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.2f", b-a}')
sleep 2   # let the last status writes' own watch events settle
WRITES1=$(audit_writes)
BY_OP=$(glance_by_op)
AUTHS=$(metrics | sed -n 's/^image_access_operator_keystone_authentications_total{result="success"} //p')
G1=$(glance_total)
CPU1=$(cpu_seconds)

log "idle window: two resync periods ($((2 * RESYNC)) s)"
sleep $((2 * RESYNC))
WRITES2=$(audit_writes)
G2=$(glance_total)
IDLE_BY_OP=$(diff <(echo "$BY_OP") <(glance_by_op) | sed -n 's/^> //p' || true)
CPU2=$(cpu_seconds)
RSS=$(peak_rss_mib)

REPORT=$(cat <<TXT
== scale run $(date -u +%Y-%m-%dT%H:%M:%SZ): $COUNT ImageAccess objects, resync ${RESYNC}s, concurrency 8 (release build)
time until all Ready:               ${READY_S} s   ($(awk -v n="$COUNT" -v t="$READY_S" 'BEGIN{printf "%.1f", n/t}') objects/s)
baseline, plain sequential client:  ${BASELINE} s   (same $COUNT memberships, same Glance)
ratio operator / baseline:          $(awk -v a="$READY_S" -v b="$BASELINE" 'BEGIN{printf "%.2f", a/b}')
Glance requests until Ready:        $G1 ($(awk -v g="$G1" -v n="$COUNT" 'BEGIN{printf "%.2f", g/n}') per object); by service, operation, code, count:
$(echo "$BY_OP" | sed 's/^/    /')
Keystone authentications:           ${AUTHS:-0}
Kubernetes writes by the operator:  $((WRITES1 - WRITES0)) ($(awk -v w="$((WRITES1 - WRITES0))" -v n="$COUNT" 'BEGIN{printf "%.2f", w/n}') per object: finalizer, first status, result status, event)
operator CPU until Ready:           ${CPU1} s; peak RSS ${RSS} MiB
idle window ($((2 * RESYNC)) s = 2 resyncs):
  Glance requests:                  $((G2 - G1)) ($(awk -v g="$((G2 - G1))" -v n="$COUNT" 'BEGIN{printf "%.2f", g/n/2}') per object per resync)
$(echo "$IDLE_BY_OP" | sed 's/^/    (now) /')
  Kubernetes writes:                $((WRITES2 - WRITES1))
  operator CPU:                     $(awk -v a="$CPU1" -v b="$CPU2" 'BEGIN{printf "%.2f", b-a}') s
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$OUT"
echo >> "$OUT"
kill $OP 2>/dev/null || true
log "namespace $NS left in place (kubectl delete ns needs a namespace controller, which this apiserver-only setup lacks)"
