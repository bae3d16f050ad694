#!/usr/bin/env bash
# bench/share.sh - one ImageShare of 10 images x 100 members (1,000 children) against 1,000
# hand-written ImageAccess objects applied with kubectl, twice each, on the real API server and
# the in-process Glance (20 ms per request, quota 1,000): time from the start of `kubectl apply`
# to all 1,000 Ready, operator CPU and peak RSS, and whether anything is written in the 30 s
# after. A quicker companion of `make bench` (whose own share case runs on the real Glance).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
"$ROOT/tests/env/up.sh" "$STATE" 2>/dev/null
cd "$ROOT"
# shellcheck disable=SC1091
source "$STATE/env.sh"
OPB=$("$ROOT/hack/static-build.sh" 2>/dev/null)
cargo build -q --release --features testing --bin iao-bench
B=$ROOT/target/release/iao-bench
W=$STATE/bench-share; rm -rf "$W"; mkdir -p "$W"
# The fake and the operators in sessions of their own: Ctrl-C reaches the script's trap, which
# drains the namespace through them before stopping them.
setsid $B serve-fake --out $W/fake --latency-ms 20 --images 10 --member-quota 1000 > $W/fake.log 2>&1 &
FAKE=$!
trap 'kill $FAKE 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
until [ -s $W/fake/images ]; do kill -0 $FAKE 2>/dev/null || exit 1; sleep 0.1; done
run() { # MODE
  ns=sb-$1-$(date +%s | cut -c6-10)
  kubectl create namespace $ns >/dev/null
  kubectl -n $ns create secret generic openstack-credentials --from-file=clouds.yaml=$W/fake/clouds.yaml >/dev/null
  KUBECONFIG=$IAO_OPERATOR_KUBECONFIG setsid $OPB --watch-namespaces $ns --resync-period 10m --concurrency 8 --metrics-addr 127.0.0.1:18960 --health-addr 127.0.0.1:18961 > $W/op-$1.log 2>&1 &
  OP=$!
  until curl -sf 127.0.0.1:18961/readyz >/dev/null; do kill -0 $OP 2>/dev/null || exit 1; sleep 0.2; done
  if [ $1 = objects ]; then
    i=0; while read -r image; do for m in $(seq 1 100); do i=$((i+1)); printf 'apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccess\nmetadata:\n  name: ia-%d\nspec:\n  imageId: %s\n  memberId: member-%03d\n  cloudCredentialsRef: {secretName: openstack-credentials, cloudName: owner}\n---\n' $i $image $m; done; done < $W/fake/images > $W/m.yaml
  else
    { printf 'apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: golden\nspec:\n  cloudCredentialsRef: {secretName: openstack-credentials, cloudName: owner}\n  imageIds:\n'; sed 's/^/  - /' $W/fake/images; printf '  memberIds:\n'; for m in $(seq 1 100); do printf '  - member-%03d\n' $m; done; } > $W/m.yaml
  fi
  t0=$(date +%s.%N)
  $B watch-ready --namespace $ns --count 1000 --start $t0 --timeline $W/tl-$1 --timeout 600 > $W/ready-$1 &
  WATCH=$!
  kubectl -n $ns apply -f $W/m.yaml > /dev/null
  applied=$(awk -v a=$t0 -v b=$(date +%s.%N) 'BEGIN{printf "%.2f", b-a}')
  wait $WATCH
  echo "$1: apply ${applied}s, all 1000 Ready at $(cat $W/ready-$1)s, operator CPU $(awk -v hz=$(getconf CLK_TCK) '{printf "%.2f", ($14+$15)/hz}' /proc/$OP/stat)s, peak RSS $(awk '/VmHWM/{printf "%.1f", $2/1024}' /proc/$OP/status) MiB"
  sleep 5
  # Every object's resourceVersion, twice: equal and whole (all objects listed) is "no write";
  # a listing short of them is no evidence either way.
  local expected=1000 before after
  [ $1 = share ] && expected=1001
  before=$(kubectl get ia,ishare -n $ns -o jsonpath='{range .items[*]}{.metadata.resourceVersion}{"\n"}{end}')
  sleep 30
  after=$(kubectl get ia,ishare -n $ns -o jsonpath='{range .items[*]}{.metadata.resourceVersion}{"\n"}{end}')
  if [ "$(grep -c . <<< "$before")" != "$expected" ] || [ "$(grep -c . <<< "$after")" != "$expected" ]; then
    echo "$1: steady 30 s: no evidence (a listing short of $expected objects)"
  elif [ "$before" = "$after" ]; then
    echo "$1: steady 30 s: no object written"
  else
    echo "$1: steady 30 s: objects WRITTEN"
  fi
  if [ $1 = share ]; then kubectl -n $ns get ishare >&2; fi
  kubectl delete namespace $ns --wait=false >/dev/null
  for _ in $(seq 1 240); do kubectl get namespace $ns >/dev/null 2>&1 || break; sleep 0.5; done
  kill $OP
}
RESULTS=${IAO_BENCH_RESULTS:-$ROOT/bench/results.txt}
{
  # The runs are in this subshell (the pipe to tee): so is the trap that stops its operator and
  # drains its namespace when it ends early.
  drain() { # the namespace first, while its operator runs (it removes the finalizers), bounded
    if [ -n "${ns:-}" ]; then
      kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
      for _ in $(seq 1 240); do kubectl get namespace "$ns" >/dev/null 2>&1 || break; sleep 0.5; done
    fi
    kill ${OP:-} $FAKE 2>/dev/null || true
  }
  trap drain EXIT
  trap 'exit 130' INT TERM
  echo "-- $(date -u +%F): bench/share.sh, one ImageShare of 10 images x 100 members against 1,000 ImageAccess objects (kubectl apply), in-process Glance 20 ms, twice each"
  run objects
  run share
  run objects
  run share
} | tee -a "$RESULTS"
