#!/usr/bin/env bash
# bench/run.sh - `make bench`: the operator against Terraform, OpenTofu and the floor, side by
# side in one run, and at 10,000 objects on a slow Glance. Prints and appends to
# bench/results.txt; draws bench/creation.svg. Stops by itself and removes what it made.
#
#   1. Creation of N (1,000) memberships on a real Keystone + Glance of the benchmark's own
#      (image_member_quota 128, Glance's default), with 1 and then 2 Glance API workers:
#      the operator (from the start of `kubectl apply` to all Ready, split into the apply and the
#      rest), Terraform and OpenTofu (`apply`, default parallelism, the same provider build), and
#      the floor (the same N creates by the project's own Glance client at the operator's
#      concurrency, no Kubernetes). The operator a second time with `kubectl apply
#      --server-side` (one request per object instead of kubectl's GET and POST, as Flux
#      sends, and Argo CD with ServerSideApply=true). RUNS (3) runs each; medians.
#      And one ImageShare of N/100 images × 100 members (1 Glance worker): from `kubectl apply`
#      to all N children Ready, against the N hand-written objects of the same run.
#   2. Steady state over two resync periods (30 s here): Glance and Kubernetes requests (the
#      API server's audit log) and CPU of the operator; `plan -refresh-only` of both tools.
#   3. BIG (10,000) objects on the in-process fake with 20 ms per Glance request, on the real
#      API server: time to all Ready against the floor N·L/C, peak RSS, CPU per resync.
set -euo pipefail
# A failure inside $(...) (a tool's run) stops the bench too, instead of leaving a field empty
# and shifting every column after it.
shopt -s inherit_errexit
ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
N=${BENCH_N:-1000}
RUNS=${BENCH_RUNS:-3}
BIG=${BENCH_BIG:-10000}
CONCURRENCY=${BENCH_CONCURRENCY:-8}
RESYNC=30
# The sections to run (a trial of one; make bench runs them all): local remote big select.
SECTIONS=" ${BENCH_SECTIONS:-local remote big select} "
section() { [[ $SECTIONS == *" $1 "* ]]; }
# A trial run at other sizes writes elsewhere (BENCH_OUT, BENCH_CHART), not over the figures.
OUT=${BENCH_OUT:-$ROOT/bench/results.txt}
CHART=${BENCH_CHART:-$ROOT/bench/creation.svg}
WORK=$STATE/bench
log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.2f", b-a}'; }
# The median of the numbers on stdin; "(no data)" when there are none or one is not a number, so
# missing evidence never reads as 0.
median() { sort -g | awk '$1 !~ /^-?[0-9.]+(e[-+]?[0-9]+)?$/ {bad = 1} {v[NR]=$1}
  END{if (bad || NR == 0) print "(no data)"; else print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# Stops the bench when a row of figures does not have its FIELDS (a tool's run went wrong).
require_fields() { # FIELDS ROW WHAT
  [ "$(wc -w <<< "$2")" -ge "$1" ] || { log "$3: expected $1 figures, got: $2"; exit 1; }
}

"$ROOT/tests/env/up.sh" "$STATE" 2>/dev/null
# shellcheck disable=SC1091
source "$STATE/env.sh"
TOOLS=$("$ROOT/hack/tools.sh" terraform)
export PATH="$TOOLS:$PATH"
log "building the release binaries"
# The operator measured is the image's: the static musl build (its allocator returns memory
# more eagerly than glibc's: 66 against 81 MiB at 10,000 objects, for ~20 % more CPU).
OPERATOR=$("$ROOT/hack/static-build.sh" 2>/dev/null)
(cd "$ROOT" && cargo build -q --release --features testing --bin iao-bench)
BENCH=$ROOT/target/release/iao-bench
AUDIT=$STATE/kube/log/audit.log
BENCH_STARTED=$(date +%s)

# What the run started, one "pid N" or "namespace NS" line each: a file, because operators and
# namespaces are started inside $(...) subshells, whose variables the EXIT trap never sees.
# Removed by a run that stops as it should; one that was killed leaves it for the next run.
STARTED=$WORK/started
track() { echo "$1 $2" >> "$STARTED"; }
cleanup() {
  local kind value pids=() namespaces=() ns left
  if [ -f "$STARTED" ]; then
    while read -r kind value; do
      case $kind in pid) pids+=("$value") ;; namespace) namespaces+=("$value") ;; esac
    done < "$STARTED"
  fi
  # Namespaces first, while their operators (and the fake Glance) run: they remove the
  # memberships and finalizers. Bounded; an interrupted run may leave one Terminating.
  for ns in "${namespaces[@]}"; do kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; done
  for _ in $(seq 1 120); do
    left=0
    for ns in "${namespaces[@]}"; do kubectl get namespace "$ns" >/dev/null 2>&1 && left=1; done
    [ "$left" = 0 ] && break
    sleep 1
  done
  # Only processes of the bench: a pid of a killed run may be another program's by now.
  for value in "${pids[@]}"; do
    grep -qa -e iao-bench -e image-access-operator "/proc/$value/cmdline" 2>/dev/null && kill "$value" 2>/dev/null
  done
  OSL_STATE_DIR=$WORK/openstack "$ROOT/tests/env/openstack-down.sh" "$WORK/openstack" --clean >/dev/null 2>&1 || true
  rm -f "$STARTED"
}
# What an earlier run started and could not stop (it was killed): its namespaces drained through
# its operators, then they, its daemons (sessions of their own, which would hold the proxy's
# ports or be measured) and its Keystone + Glance stopped.
if [ -f "$STARTED" ]; then
  log "stopping what a killed run left"
  cleanup
fi
rm -rf "$WORK" && mkdir -p "$WORK"
trap cleanup EXIT
# Ctrl-C or a kill: the EXIT trap runs (bash skips it when a signal ends the script untrapped).
# The daemons the bench starts run in sessions of their own (setsid), so the terminal's SIGINT
# does not stop them before the trap has drained the namespaces through them.
trap 'log "interrupted: stopping what the bench started"; exit 130' INT TERM

# An environment left with test objects measures them too (their operators' watches, their
# objects in etcd): refuse it, or with BENCH_CLEAN=1 delete them first, saying so.
objects_left() {
  local listed
  listed=$(kubectl get imageaccesses,imageaccessaccepts,imageshares -A --no-headers) || { log "cannot list the environment's objects"; exit 1; }
  awk '{print $1}' <<< "$listed" | sort -u | paste -sd' '
}
left=$(objects_left)
if [ -n "$left" ]; then
  if [ "${BENCH_CLEAN:-0}" = 1 ]; then
    log "deleting the namespaces left with objects: $left"
    for ns in $left; do kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true; done
    for ns in $left; do kubectl wait --for=delete "namespace/$ns" --timeout=300s >/dev/null 2>&1 || true; done
    left=$(objects_left)
    if [ -n "$left" ]; then
      log "objects are still in $left (no operator runs for them, so their finalizers keep them): run make clean-env for a fresh environment"
      exit 1
    fi
  else
    log "this environment has objects in $(wc -w <<< "$left") namespaces ($(cut -d' ' -f1-5 <<< "$left") ...; tests or a demo): they would be measured too; run make clean-env (a fresh environment) first, or BENCH_CLEAN=1 make bench to delete them (with an operator gone, their finalizers keep them)"
    exit 1
  fi
fi

# ------------------------------------------------------------------ the benchmark's OpenStack
# Its own Keystone + Glance (own ports and state), with Glance's default member quota, so one
# image takes 125 members and 1,000 memberships need 8 images.
bench_openstack() { # PROCESSES
  OSL_STATE_DIR=$WORK/openstack "$ROOT/tests/env/openstack-down.sh" "$WORK/openstack" >/dev/null 2>&1 || true
  OSL_KEYSTONE_PORT=5101 OSL_GLANCE_PORT=9393 OSL_IMAGE_MEMBER_QUOTA=128 OSL_GLANCE_PROCESSES=$1 \
    setsid --wait "$ROOT/tests/env/openstack-up.sh" "$WORK/openstack" > "$WORK/openstack.env" 2> "$WORK/openstack-up.log"
  # shellcheck disable=SC1091
  (source "$WORK/openstack.env"
   printf 'clouds:\n  owner:\n    auth:\n      auth_url: %s\n      username: owner-user\n      password: %s\n      project_name: owner\n      user_domain_name: Default\n      project_domain_name: Default\n    region_name: RegionOne\n' \
     "$OSL_KEYSTONE_URL" "$OSL_USER_PASSWORD") > "$WORK/clouds.yaml"
}
bench_env() { (source "$WORK/openstack.env"; "$@"); }

# PAIRS_FILE: N memberships on fresh images, PER_IMAGE (125) synthetic members each (Glance does
# not check member IDs against Keystone).
make_pairs() { # FILE TAG [PER_IMAGE]
  local per=${3:-125} i=0
  local images=$(( (N + per - 1) / per ))
  : > "$1"
  while read -r image; do
    for m in $(seq 1 "$per"); do
      [ "$i" -lt "$N" ] || break
      printf '%s bench-member-%04d\n' "$image" "$m" >> "$1"; i=$((i + 1))
    done
  done < <(bench_env "$ROOT/tests/env/glance.py" images "$images" "$2")
}
images_of() { cut -d' ' -f1 "$1" | sort -u; }
# The same starting state for every tool: what a tool made goes before the next starts (its
# images, and their members with them), and Glance's count is recorded before each.
glance_count() { bench_env "$ROOT/tests/env/glance.py" count; }
forget_images() { # PAIRS
  # shellcheck disable=SC2046 # one argument per image
  bench_env "$ROOT/tests/env/glance.py" delete $(images_of "$1")
}
# The order of the tools in run RUN of a GROUP: an order shuffled once per group by a seed
# printed in the results, rotated by one place each run, so a position effect (a bigger Glance, a
# warmer machine) cannot favour one tool and no tool is last in two runs (of up to as many runs
# as tools).
SEED=${BENCH_SEED:-$(date +%s)}
order_of() { # GROUP RUN TOOL...
  python3 -c 'import random, sys
seed, group, run, tools = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
random.Random(seed + "/" + group).shuffle(tools)
k = (run - 1) % len(tools)
print(" ".join(tools[k:] + tools[:k]))' "$SEED" "$@"
}

# Glance's request log (uwsgi), member requests for the images of a pairs file after a byte
# offset: "total writes" on one line.
glance_log() { echo "$WORK/openstack/log/glance-uwsgi.log"; }
log_size() { stat -c %s "$(glance_log)" 2>/dev/null || echo 0; }
member_requests() { # OFFSET PAIRS -> "total writes"
  tail -c +"$(( $1 + 1 ))" "$(glance_log)" | python3 -c '
import sys
images = set(l.split()[0] for l in open(sys.argv[1]))
total = writes = 0
for line in sys.stdin:
    i = line.find(" /v2/images/")
    if i < 0 or "/members" not in line: continue
    if line[i + 12:i + 48] not in images: continue
    total += 1
    if not line[:i].endswith(("GET", "HEAD")): writes += 1
print(total, writes)' "$2"
}

audit_count() { # operator's Kubernetes requests so far: "reads writes events" (writes without events)
  python3 - "$AUDIT" "$BENCH_STARTED" <<'PY'
import glob, json, os, sys
reads = writes = events = 0
# The API server rotates its audit log at 200 MB (keeping 20): count every file written since
# the bench started (older ones hold nothing it measures, and would only be read again), so the
# count only grows. No log at all is no evidence: fail, never "0 writes".
paths = [p for p in glob.glob(sys.argv[1].replace("audit.log", "audit*.log")) if os.path.getmtime(p) >= float(sys.argv[2])]
if not paths:
    sys.exit("no audit log at " + sys.argv[1])
for path in paths:
  try:
    for line in open(path):
        e = json.loads(line)
        if e.get("user", {}).get("username") != "iao-operator" or e.get("stage") != "ResponseComplete":
            continue
        if e.get("verb") not in ("create", "patch", "update", "delete"):
            reads += 1
        elif e.get("objectRef", {}).get("resource") == "events":
            events += 1
        else:
            writes += 1
  except FileNotFoundError:
    pass
print(reads, writes, events)
PY
}
# CPU seconds so far of each part of the machine, and of all of it: "apiserver etcd glance
# keystone busy" (a part is a process and its children; busy counts every core).
KUBE_RUN=$STATE/kube/run
cpu_parts() {
  python3 - "$(cat "$KUBE_RUN/kube-apiserver.pid")" "$(cat "$KUBE_RUN/etcd.pid")" \
    "$(cat "$WORK/openstack/run/glance.pid")" "$(cat "$WORK/openstack/run/keystone.pid")" <<'PY'
import os, sys
hz = os.sysconf("SC_CLK_TCK")
stat = {}
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except OSError:
        continue
    stat[int(pid)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / hz)
def tree(root):
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += stat.get(pid, (0, 0.0))[1]
        todo += [p for p, (parent, _) in stat.items() if parent == pid]
    return total
busy = sum(int(v) for i, v in enumerate(open("/proc/stat").readline().split()[1:]) if i not in (3, 4)) / hz
print(" ".join(f"{tree(int(p)):.2f}" for p in sys.argv[1:]), f"{busy:.2f}")
PY
}
# What the cluster stored and received so far: "etcd_puts etcd_put_bytes create patch": the
# bodies of ImageAccess requests by verb, in bytes (create: kubectl's client-side apply of a new
# object; patch: the operator's finalizer and status writes, and kubectl --server-side's apply,
# which the API server's metrics also count as patches). Per object: the delta over a run / N.
kube_costs() {
  local etcd apiserver
  etcd=$(curl -sf "http://127.0.0.1:${IAO_ETCD_PORT:-12379}/metrics") || { log "etcd's metrics unreadable"; exit 1; }
  apiserver=$(kubectl get --raw /metrics) || { log "the API server's metrics unreadable"; exit 1; }
  printf '%s\n%s\n' "$etcd" "$apiserver" | awk '
    /^etcd_mvcc_put_total / {puts = $2}
    /^etcd_debugging_mvcc_total_put_size_in_bytes / {bytes = $2}
    /^apiserver_request_body_size_bytes_sum\{group="glance.viettelidc.com.vn",resource="imageaccesses"/ {
      match($0, /verb="[a-z]+"/); verb = substr($0, RSTART + 6, RLENGTH - 7); body[verb] += $2 }
    END {if (puts == "" || bytes == "") exit 1; printf "%.0f %.0f %.0f %.0f\n", puts, bytes, body["create"], body["patch"]}' \
    || { log "etcd's put counters missing from its metrics"; exit 1; }
}
kube_cost_delta() { # "before" "after" -> per object: "puts KiB-put create-bytes patch-bytes"
  awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN{split(a, x); split(b, y)
    printf "%.2f %.2f %.0f %.0f", (y[1]-x[1])/n, (y[2]-x[2])/n/1024, (y[3]-x[3])/n, (y[4]-x[4])/n}'
}
cpu_delta() { # "before" "after" -> "apiserver etcd glance keystone other busy%"
  awk -v a="$1" -v b="$2" -v wall="$3" -v cores="$(nproc)" 'BEGIN{split(a, x); split(b, y)
    for (i = 1; i <= 5; i++) d[i] = y[i] - x[i]
    printf "%.1f %.1f %.1f %.1f %.1f %.0f", d[1], d[2], d[3], d[4], d[5] - d[1] - d[2] - d[3] - d[4], 100 * d[5] / (wall * cores)}'
}
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14+$15)/hz}' "/proc/$1/stat"; }
rss_of() { awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$1/status"; }

start_operator() { # NAMESPACE METRICS_PORT RESYNC -> pid
  KUBECONFIG=$IAO_OPERATOR_KUBECONFIG setsid "$OPERATOR" --watch-namespaces "$1" --resync-period "$3" \
    --concurrency "$CONCURRENCY" --metrics-addr "127.0.0.1:$2" --health-addr "127.0.0.1:$(( $2 + 1 ))" \
    > "$WORK/operator-$1.log" 2>&1 &
  local pid=$!
  track pid "$pid"
  until curl -sf "127.0.0.1:$(( $2 + 1 ))/readyz" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { tail -5 "$WORK/operator-$1.log" >&2; exit 1; }
    sleep 0.2
  done
  echo "$pid"
}
# Reconciles of ImageAccess objects done so far: in steady state, each is one object's resync,
# so (delta / N) is how many resync waves a window held (jitter makes it vary around window/period).
# Both fail when the operator's metrics cannot be read: an unreadable count is not zero.
reconciles_total() { # METRICS_PORT
  local metrics
  metrics=$(curl -sf "127.0.0.1:$1/metrics") || { log "the operator's metrics on port $1 are unreadable"; exit 1; }
  awk -F'[ }]' '/^controller_runtime_reconcile_total\{.*controller="imageaccess".*result="success"/{s+=$NF} END{print s+0}' <<< "$metrics"
}
glance_metric_total() { # METRICS_PORT -> image requests the operator made
  local metrics
  metrics=$(curl -sf "127.0.0.1:$1/metrics") || { log "the operator's metrics on port $1 are unreadable"; exit 1; }
  awk -F'[ }]' '/^image_access_operator_openstack_requests_total\{service="image"/{s+=$NF} END{print s+0}' <<< "$metrics"
}
# Deletes NAMESPACE while its operator runs (every membership goes with its object), bounded.
drain_namespace() { # NAMESPACE
  kubectl delete namespace "$1" --wait=false >/dev/null 2>&1 || true
  for _ in $(seq 1 600); do kubectl get namespace "$1" >/dev/null 2>&1 || return 0; sleep 0.5; done
  log "namespace $1 still there after 300 s"
}

# ------------------------------------------------------------------ the tools, one run each
run_floor() { # PAIRS TIMELINE -> "seconds cpu-parts(6)"
  local before seconds
  before=$(cpu_parts)
  seconds=$("$BENCH" floor --clouds "$WORK/clouds.yaml" --pairs "$1" --concurrency "$CONCURRENCY" --timeline "$2")
  echo "$seconds $(cpu_delta "$before" "$(cpu_parts)" "$seconds")"
}

# One ImageAccess per pair, or with SHARE=1 one ImageShare of the pairs' images × members (the
# pairs must be their full product: make_pairs with 100 per image and N a multiple of 100),
# whose N children the operator makes.
run_operator() { # PAIRS TIMELINE STEADY(0|1) [SHARE(0|1)] [KUBECTL_APPLY_FLAG] -> "apply total glance/object writes/object cpu rss events/object cpu-parts(6) kube-costs(4) [steady(6)]"
  local pairs=$1 ns port pid manifests t0 apply total g0 g1 a0 a1 c1 c2 steady="" share=${4:-0} flag=${5:-}
  ns=bench-$(date +%s%N | cut -c9-16); port=$((18100 + RANDOM % 800 * 2))
  track namespace "$ns"
  kubectl create namespace "$ns" >/dev/null
  kubectl -n "$ns" create secret generic openstack-credentials --from-file=clouds.yaml="$WORK/clouds.yaml" >/dev/null
  pid=$(start_operator "$ns" "$port" "${RESYNC}s")
  manifests=$WORK/manifests.yaml; : > "$manifests"
  awk '{printf "apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageAccess\nmetadata:\n  name: ia-%d\nspec:\n  imageId: %s\n  memberId: %s\n  cloudCredentialsRef: {secretName: openstack-credentials, cloudName: owner}\n---\n", NR, $1, $2}' "$pairs" > "$manifests"
  if [ "$share" = 1 ]; then
    { printf 'apiVersion: glance.viettelidc.com.vn/v1alpha1\nkind: ImageShare\nmetadata:\n  name: golden\nspec:\n  cloudCredentialsRef: {secretName: openstack-credentials, cloudName: owner}\n  imageIds:\n'
      images_of "$pairs" | sed 's/^/  - /'
      printf '  memberIds:\n'
      cut -d' ' -f2 "$pairs" | sort -u | sed 's/^/  - /'; } > "$manifests"
  fi
  local w0 w1 e0 e1 parts0 parts parts1 costs0 costs
  costs0=$(kube_costs)
  read -r a0 w0 e0 < <(audit_count)
  g0=$(glance_metric_total "$port")
  parts0=$(cpu_parts)
  t0=$(now)
  "$BENCH" watch-ready --namespace "$ns" --count "$N" --start "$t0" --timeline "$2" > "$WORK/ready" &
  local watch=$!
  # shellcheck disable=SC2086 # the flag is one word or none
  kubectl -n "$ns" apply $flag -f "$manifests" >/dev/null || { log "kubectl apply${flag:+ $flag} failed"; kill "$watch"; drain_namespace "$ns"; kill "$pid"; exit 1; }
  apply=$(since "$t0")
  wait "$watch" || { log "not all $N objects Ready (watch-ready failed)"; exit 1; }
  total=$(cat "$WORK/ready")
  parts1=$(cpu_parts)
  parts=$(cpu_delta "$parts0" "$parts1" "$total")
  sleep 2   # the last status writes' echoes
  local costs1
  costs1=$(kube_costs)
  costs=$(kube_cost_delta "$costs0" "$costs1")
  g1=$(glance_metric_total "$port")
  read -r a1 w1 e1 < <(audit_count)
  c1=$(cpu_of "$pid")
  if [ "$3" = 1 ]; then
    log "operator steady state: two resync periods ($((2 * RESYNC)) s)"
    local r1 r2
    r1=$(reconciles_total "$port")
    sleep $((2 * RESYNC))
    local g2 a2 w2 images
    g2=$(glance_metric_total "$port"); read -r a2 w2 _ < <(audit_count); c2=$(cpu_of "$pid"); r2=$(reconciles_total "$port")
    images=$(images_of "$pairs" | wc -l)
    steady="$(( (g2 - g1) )) $images $((a2 - a1)) $((w2 - w1)) $(awk -v a="$c1" -v b="$c2" 'BEGIN{printf "%.2f", b-a}') $(awk -v r="$((r2 - r1))" -v n="$N" 'BEGIN{printf "%.2f", r/n}')"
  fi
  per() { awk -v v="$1" -v n="$N" 'BEGIN{printf "%.2f", v/n}'; }
  echo "$apply $total $(per $((g1 - g0))) $(per $((w1 - w0))) $c1 $(rss_of "$pid") $(per $((e1 - e0))) $parts $costs $steady"
  curl -s "127.0.0.1:$port/metrics" > "$WORK/metrics-$ns" || true   # kept for a closer look
  drain_namespace "$ns"
  kill "$pid" 2>/dev/null || true
}

tool_dir() { # TOOL PAIRS -> directory with main.tf
  local dir=$WORK/$1-$(date +%s%N | cut -c9-16)
  mkdir -p "$dir/plugins"
  ln -s "$TOOLS/terraform-provider-openstack" "$dir/plugins/terraform-provider-openstack"
  cat > "$dir/cli.rc" <<EOF
provider_installation {
  dev_overrides {
    "terraform-provider-openstack/openstack" = "$dir/plugins"
  }
  direct {}
}
EOF
  awk 'BEGIN{printf "{\"pairs\": {"} {printf "%s\"ia-%d\": {\"image\": \"%s\", \"member\": \"%s\"}", (NR>1?", ":""), NR, $1, $2} END{print "}}"}' "$2" > "$dir/pairs.auto.tfvars.json"
  # shellcheck disable=SC1091
  (source "$WORK/openstack.env"; cat > "$dir/main.tf" <<EOF
terraform {
  required_providers {
    openstack = { source = "terraform-provider-openstack/openstack" }
  }
}
provider "openstack" {
  auth_url            = "${AUTH_URL:-$OSL_KEYSTONE_URL}"
  user_name           = "owner-user"
  password            = "$OSL_USER_PASSWORD"
  tenant_name         = "owner"
  user_domain_name    = "Default"
  project_domain_name = "Default"
  region              = "RegionOne"
}
variable "pairs" {
  type = map(object({ image = string, member = string }))
}
resource "openstack_images_image_access_v2" "share" {
  for_each  = var.pairs
  image_id  = each.value.image
  member_id = each.value.member
}
EOF
  )
  echo "$dir"
}

# `terraform`/`tofu apply` of the pairs; each "Creation complete" line timed as it comes by one
# process (iao-bench stamp), as the operator's objects are by one watcher.
run_tool() { # TOOL PAIRS TIMELINE STEADY(0|1) [PARALLELISM] -> "seconds [plan_seconds plan_requests]"
  local tool=$1 dir t0 seconds offset plan="" parallelism=${5:-10}
  dir=$(tool_dir "$tool" "$2")
  t0=$(now)
  (cd "$dir" && TF_CLI_CONFIG_FILE=$dir/cli.rc TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 \
     "$tool" apply -auto-approve -input=false -parallelism="$parallelism" 2>&1) \
    | "$BENCH" stamp --match "Creation complete" --start "$t0" --timeline "$3"
  seconds=$(since "$t0")
  [ "$(wc -l < "$3")" -ge "$N" ] || { log "$tool apply created $(wc -l < "$3") of $N"; exit 1; }
  if [ "$4" = 1 ]; then
    sleep 2; offset=$(log_size); t0=$(now)
    (cd "$dir" && TF_CLI_CONFIG_FILE=$dir/cli.rc TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 \
       "$tool" plan -refresh-only -input=false >/dev/null 2>&1)
    plan="$(since "$t0") $(sleep 1; member_requests "$offset" "$2" | cut -d' ' -f1)"
  fi
  echo "$seconds $plan"
}

# ------------------------------------------------------------------ 1 + 2: creation, steady state
REPORT=$WORK/report.txt
: > "$REPORT"
section local && for processes in 1 2; do
  log "the benchmark's Keystone + Glance, $processes Glance API worker(s), image_member_quota 128"
  bench_openstack "$processes"
  : > "$WORK/rows"
  for run in $(seq 1 "$RUNS"); do
    steady=0; [ "$processes" = 1 ] && [ "$run" = 1 ] && steady=1
    # With 1 Glance worker the share takes its turn too (not always last).
    tools="floor operator operator-ssa terraform tofu"
    [ "$processes" = 1 ] && tools="$tools share"
    # shellcheck disable=SC2086 # a list of tools
    order=$(order_of "$processes-workers" "$run" $tools)
    echo "  run $run with $processes Glance worker(s), seed $SEED: $order" >> "$WORK/orders"
    for tool in $order; do
      if [ "$tool" = share ]; then
        log "run $run/$RUNS: one ImageShare of $((N / 100)) images x 100 members"
        make_pairs "$WORK/pairs-share" "share-$run" 100
        share=$(run_operator "$WORK/pairs-share" "$WORK/timeline-share-$run" "$steady" 1)
        require_fields 17 "$share" "the share"
        forget_images "$WORK/pairs-share"
        log "run $run: share $(echo "$share" | cut -d' ' -f2)s"
        continue
      fi
      make_pairs "$WORK/pairs-$tool" "$tool-$processes-$run"
      counted=$(glance_count)
      echo "$tool $counted" >> "$WORK/starts"
      log "run $run/$RUNS: $tool (Glance before it: $counted images and members of the owner project)"
      case $tool in
        floor) floor=$(run_floor "$WORK/pairs-$tool" "$WORK/timeline-floor-$processes-$run"); require_fields 7 "$floor" floor ;;
        operator) operator=$(run_operator "$WORK/pairs-$tool" "$WORK/timeline-operator-$processes-$run" "$steady"); require_fields 17 "$operator" operator ;;
        operator-ssa) operator_ssa=$(run_operator "$WORK/pairs-$tool" "$WORK/timeline-operator-ssa-$processes-$run" 0 0 --server-side); require_fields 17 "$operator_ssa" "operator --server-side" ;;
        terraform) terraform_s=$(run_tool terraform "$WORK/pairs-$tool" "$WORK/timeline-terraform-$processes-$run" "$steady"); require_fields $((1 + 2 * steady)) "$terraform_s" terraform ;;
        tofu) tofu_s=$(run_tool tofu "$WORK/pairs-$tool" "$WORK/timeline-tofu-$processes-$run" "$steady"); require_fields $((1 + 2 * steady)) "$tofu_s" opentofu ;;
      esac
      forget_images "$WORK/pairs-$tool"
    done
    echo "$floor | $operator | $terraform_s | $tofu_s | $operator_ssa" >> "$WORK/rows"
    [ "$processes" = 1 ] && echo "$share | $operator" >> "$WORK/share-rows"
    log "run $run: floor $(echo "$floor" | cut -d" " -f1)s, operator $(echo "$operator" | cut -d' ' -f2)s (--server-side $(echo "$operator_ssa" | cut -d' ' -f2)s), terraform $(echo "$terraform_s" | cut -d' ' -f1)s, tofu $(echo "$tofu_s" | cut -d' ' -f1)s"
    if [ "$steady" = 1 ]; then
      echo "$operator" > "$WORK/steady-operator"; echo "$terraform_s" > "$WORK/steady-terraform"; echo "$tofu_s" > "$WORK/steady-tofu"
    fi
  done
  # Medians of the runs, and of the ratios per run.
  col() { awk -F' [|] ' -v f="$1" -v c="$2" '{split($f, a, " "); print a[c]}' "$WORK/rows"; }
  ratio() { awk -F' [|] ' -v f1="$1" -v c1="$2" -v f2="$3" -v c2="$4" '{split($f1, a, " "); split($f2, b, " "); printf "%.3f\n", a[c1]/b[c2]}' "$WORK/rows"; }
  {
    echo "-- $N memberships, Glance with $processes API worker(s), image_member_quota 128; median of $RUNS runs (seconds)"
    echo "  the order of the tools in each run (shuffled, then rotated a place per run; BENCH_SEED=$SEED repeats it):"
    grep "with $processes Glance" "$WORK/orders"
    printf '  Glance before each tool (the owner project'"'"'s images and members, every tool of every run): %s\n' \
      "$(cut -d' ' -f2- "$WORK/starts" | sort | uniq -c | awk '{printf "%s%s images %s members (%d times)", (NR>1?"; ":""), $2, $3, $1}')"
    : > "$WORK/starts"
    printf '  floor (the project client, %d at once, no Kubernetes): %s\n' "$CONCURRENCY" "$(col 1 1 | median)"
    printf '  operator, kubectl apply start to all Ready:           %s  (the apply itself: %s; per object: Glance requests %s, Kubernetes writes %s plus %s events)\n' \
      "$(col 2 2 | median)" "$(col 2 1 | median)" "$(col 2 3 | median)" "$(col 2 4 | median)" "$(col 2 7 | median)"
    printf '  operator, kubectl apply --server-side start to Ready: %s  (the apply itself: %s; per object: Glance requests %s, Kubernetes writes %s plus %s events)\n' \
      "$(col 5 2 | median)" "$(col 5 1 | median)" "$(col 5 3 | median)" "$(col 5 4 | median)" "$(col 5 7 | median)"
    printf '  terraform apply:                                      %s\n' "$(col 3 1 | median)"
    printf '  opentofu apply:                                       %s\n' "$(col 4 1 | median)"
    printf '  ratios (median of per-run ratios): operator/floor %s (goal <= 1.15); terraform/operator %s, opentofu/operator %s (goal >= 1.9)\n' \
      "$(ratio 2 2 1 1 | median)" "$(ratio 3 1 2 2 | median)" "$(ratio 4 1 2 2 | median)"
    printf '  the same with kubectl apply --server-side: operator/floor %s; terraform/operator %s, opentofu/operator %s\n' \
      "$(ratio 5 2 1 1 | median)" "$(ratio 3 1 5 2 | median)" "$(ratio 4 1 5 2 | median)"
    printf '  operator CPU until Ready %s s, peak RSS %s MiB (median)\n' "$(col 2 5 | median)" "$(col 2 6 | median)"
    printf '  CPU seconds during the run (median) - apiserver %s, etcd %s, Glance %s, Keystone %s, everything else (operator, kubectl, the watcher, controller-manager, scheduler) %s; machine busy %s%% of %s cores\n' \
      "$(col 2 8 | median)" "$(col 2 9 | median)" "$(col 2 10 | median)" "$(col 2 11 | median)" "$(col 2 12 | median)" "$(col 2 13 | median)" "$(nproc)"
    # The machine's CPU seconds during a run over its cores: at that cost (the operator's own
    # and the API server's work for it included) the run cannot be shorter here.
    lower_bound() { awk -F' [|] ' -v f="$1" -v cores="$(nproc)" '{split($f, a, " "); printf "%.2f\n", (a[8] + a[9] + a[10] + a[11] + a[12]) / cores}' "$WORK/rows" | median; }
    printf '  the CPU seconds of the whole machine over its %s cores: no run at that cost can be shorter than %s s (kubectl apply), %s s (--server-side)\n' \
      "$(nproc)" "$(lower_bound 2)" "$(lower_bound 5)"
    # What a real cluster pays per object, whatever this machine's speed.
    per_object_cpu() { awk -F' [|] ' -v f="$1" -v c="$2" -v n="$N" '{split($f, a, " "); printf "%.2f\n", 1000 * a[c] / n}' "$WORK/rows" | median; }
    printf '  the cluster'"'"'s cost per object (median): API server %s ms CPU, etcd %s ms CPU, %s etcd puts of %s KiB in all; request bodies %s B (kubectl'"'"'s create) + %s B (patches: the operator'"'"'s finalizer and status)\n' \
      "$(per_object_cpu 2 8)" "$(per_object_cpu 2 9)" "$(col 2 14 | median)" "$(col 2 15 | median)" "$(col 2 16 | median)" "$(col 2 17 | median)"
    printf '  the same with kubectl apply --server-side: API server %s ms, etcd %s ms, %s puts of %s KiB; bodies %s B (patches: kubectl'"'"'s apply, the operator'"'"'s finalizer and status)\n' \
      "$(per_object_cpu 5 8)" "$(per_object_cpu 5 9)" "$(col 5 14 | median)" "$(col 5 15 | median)" "$(col 5 17 | median)"
    printf '  CPU seconds during the floor (median) - Glance %s, Keystone %s, the rest (the client) %s; machine busy %s%%\n' \
      "$(col 1 4 | median)" "$(col 1 5 | median)" "$(col 1 6 | median)" "$(col 1 7 | median)"
  } >> "$REPORT"
  cp "$WORK/rows" "$WORK/rows-$processes"
  if [ "$processes" = 1 ]; then
    scol() { awk -F' [|] ' -v f="$1" -v c="$2" '{split($f, a, " "); print a[c]}' "$WORK/share-rows"; }
    read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ shg _ shreads shwrites _ < <(head -1 "$WORK/share-rows" | cut -d'|' -f1)
    {
      echo "-- one ImageShare of $((N / 100)) images x 100 members ($N children), same Glance; median of $RUNS runs (seconds)"
      printf '  kubectl apply start to all %s children Ready: %s (the apply itself: %s); %s hand-written ImageAccess objects in the same runs: %s; ratio share/objects %s (goal <= 1)\n' \
        "$N" "$(scol 1 2 | median)" "$(scol 1 1 | median)" "$N" "$(scol 2 2 | median)" \
        "$(awk -F' [|] ' '{split($1, a, " "); split($2, b, " "); printf "%.3f\n", a[2]/b[2]}' "$WORK/share-rows" | median)"
      printf '  per child: Glance requests %s, Kubernetes writes %s plus %s events; steady state (two resyncs, run 1): Kubernetes writes %s (goal 0), reads %s, Glance requests %s\n' \
        "$(scol 1 3 | median)" "$(scol 1 4 | median)" "$(scol 1 7 | median)" "${shwrites:--}" "${shreads:--}" "${shg:--}"
    } >> "$REPORT"
  fi
done
if section local; then
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ sg images sreads swrites scpu swaves < "$WORK/steady-operator"
read -r _ tf_plan tf_plan_requests < "$WORK/steady-terraform"
read -r _ tofu_plan tofu_plan_requests < "$WORK/steady-tofu"
{
  echo "-- steady state, $N objects on $images images, two resync periods (resync ${RESYNC}s), Glance with 1 worker"
  echo "  operator: Glance requests $sg in the window, which held $swaves resyncs per object (the ±10 % jitter makes a 2-period window hold 2 on average, more or less for a given image): $(awk -v g="$sg" -v w="$swaves" 'BEGIN{printf "%.1f", (w > 0) ? g/w : g/2}') per resync (goal <= $images, the images); Kubernetes reads $sreads and writes $swrites (goal 0), CPU ${scpu} s"
  echo "  terraform plan -refresh-only: ${tf_plan} s, $tf_plan_requests Glance member requests; opentofu: ${tofu_plan} s, $tofu_plan_requests"
} >> "$REPORT"
# The chart: for each tool, the run whose total is its median (of the runs with 1 Glance worker,
# whose rows are kept in rows-1), so the picture is of the figures in the results.
median_run() { # FIELD COLUMN -> the run number of the median total
  awk -F' [|] ' -v f="$1" -v c="$2" '{split($f, a, " "); print a[c], NR}' "$WORK/rows-1" | sort -g | awk '{r[NR]=$2} END{print r[int((NR+1)/2)]}'
}
"$BENCH" chart --out "$CHART" --title "$N memberships from nothing to done (Glance with 1 worker, quota 128; each tool's median run)" \
  "operator=$WORK/timeline-operator-1-$(median_run 2 2)" "operator, apply --server-side=$WORK/timeline-operator-ssa-1-$(median_run 5 2)" \
  "terraform=$WORK/timeline-terraform-1-$(median_run 3 1)" "opentofu=$WORK/timeline-tofu-1-$(median_run 4 1)" \
  "floor (the client alone)=$WORK/timeline-floor-1-$(median_run 1 1)"
fi

# ------------------------------------------------------------------ 3: a remote cloud
# Users' clusters reach their cloud over a network, where latency, not this machine's CPU,
# bounds every tool: Keystone and Glance behind a proxy that delays every chunk each way (the
# catalog names the Glance proxy), the same Glance (1 worker), every tool at its defaults
# (operator --concurrency 8, Terraform and OpenTofu -parallelism=10) and at equal concurrency (8).
if section remote; then
REMOTE_MS=${BENCH_REMOTE_MS:-20}
REMOTE_WORKERS=${BENCH_REMOTE_WORKERS:-1}
log "a remote cloud: Keystone and Glance ($REMOTE_WORKERS worker(s)) behind a ${REMOTE_MS} ms proxy each way"
start_proxy() { # NAME LISTEN TARGET -> pid, once it listens
  setsid "$BENCH" proxy --listen "$2" --target "$3" --delay-ms "$REMOTE_MS" > "$WORK/proxy-$1.log" 2>&1 &
  local pid=$!
  track pid "$pid"
  until grep -q '^proxying' "$WORK/proxy-$1.log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { log "the $1 proxy did not start: $(cat "$WORK/proxy-$1.log")"; exit 1; }
    sleep 0.1
  done
  echo "$pid"
}
keystone_proxy=$(start_proxy keystone 127.0.0.1:5102 127.0.0.1:5101)
glance_proxy=$(start_proxy glance 127.0.0.1:9394 127.0.0.1:9393)
export OSL_GLANCE_CATALOG_URL=http://127.0.0.1:9394
bench_openstack "$REMOTE_WORKERS"
unset OSL_GLANCE_CATALOG_URL
AUTH_URL=http://127.0.0.1:5102/v3
sed -i "s#auth_url: .*#auth_url: $AUTH_URL#" "$WORK/clouds.yaml"
: > "$WORK/remote-rows"
for run in $(seq 1 "$RUNS"); do
  # A tool left out (BENCH_REMOTE_TOOLS, for a trial) is "-", which no ratio reads.
  r_floor=- r_operator=- r_tf=- r_tofu=- r_tf8=- r_tofu8=-
  # shellcheck disable=SC2086 # a list of tools
  order=$(order_of remote "$run" ${BENCH_REMOTE_TOOLS:-floor operator terraform tofu terraform-equal tofu-equal})
  echo "  remote run $run, seed $SEED: $order" >> "$WORK/orders"
  for tool in $order; do
    make_pairs "$WORK/pairs-$tool" "remote-$tool-$run"
    echo "$tool $(glance_count)" >> "$WORK/starts"
    log "remote run $run/$RUNS: $tool"
    case $tool in
      floor) r_floor=$(run_floor "$WORK/pairs-$tool" "$WORK/timeline-remote-floor-$run" | cut -d' ' -f1) ;;
      operator) r_operator=$(run_operator "$WORK/pairs-$tool" "$WORK/timeline-remote-operator-$run" 0 | cut -d' ' -f2) ;;
      terraform) r_tf=$(run_tool terraform "$WORK/pairs-$tool" "$WORK/timeline-remote-terraform-$run" 0 10 | cut -d' ' -f1) ;;
      tofu) r_tofu=$(run_tool tofu "$WORK/pairs-$tool" "$WORK/timeline-remote-tofu-$run" 0 10 | cut -d' ' -f1) ;;
      terraform-equal) r_tf8=$(run_tool terraform "$WORK/pairs-$tool" "$WORK/timeline-remote-terraform-equal-$run" 0 "$CONCURRENCY" | cut -d' ' -f1) ;;
      tofu-equal) r_tofu8=$(run_tool tofu "$WORK/pairs-$tool" "$WORK/timeline-remote-tofu-equal-$run" 0 "$CONCURRENCY" | cut -d' ' -f1) ;;
    esac
    forget_images "$WORK/pairs-$tool"
  done
  echo "$r_floor $r_operator $r_tf $r_tofu $r_tf8 $r_tofu8" >> "$WORK/remote-rows"
  log "remote run $run: floor ${r_floor}s, operator ${r_operator}s, terraform ${r_tf}s (at $CONCURRENCY: ${r_tf8}s), tofu ${r_tofu}s (at $CONCURRENCY: ${r_tofu8}s)"
done
unset AUTH_URL
rcol() { cut -d' ' -f"$1" "$WORK/remote-rows" | median; }
rratio() { awk -v a="$1" -v b="$2" '$a + 0 > 0 && $b + 0 > 0 {printf "%.3f\n", $a/$b}' "$WORK/remote-rows" | median; }
{
  echo "-- a remote cloud: $N memberships, Keystone and Glance behind a ${REMOTE_MS} ms proxy each way (Glance $REMOTE_WORKERS worker(s)); median of $RUNS runs (seconds)"
  grep "remote run" "$WORK/orders"
  printf '  Glance before each tool: %s\n' "$(cut -d' ' -f2- "$WORK/starts" | sort | uniq -c | awk '{printf "%s%s images %s members (%d times)", (NR>1?"; ":""), $2, $3, $1}')"
  echo "  floor ($CONCURRENCY at once) $(rcol 1); operator (--concurrency $CONCURRENCY) $(rcol 2); terraform -parallelism=10 $(rcol 3), =$CONCURRENCY $(rcol 5); opentofu -parallelism=10 $(rcol 4), =$CONCURRENCY $(rcol 6)"
  echo "  at their defaults: terraform/operator $(rratio 3 2), opentofu/operator $(rratio 4 2) (goal >= 2)"
  echo "  at equal concurrency ($CONCURRENCY): operator/floor $(rratio 2 1) (goal <= 1.15); terraform/operator $(rratio 5 2), opentofu/operator $(rratio 6 2)"
} >> "$REPORT"
OSL_STATE_DIR=$WORK/openstack "$ROOT/tests/env/openstack-down.sh" "$WORK/openstack" --clean >/dev/null 2>&1 || true
kill "$keystone_proxy" "$glance_proxy" 2>/dev/null || true
fi

# ------------------------------------------------------------------ 4: 10,000 on a slow Glance
if section big; then
log "$BIG objects on the in-process fake, 20 ms per Glance request"
setsid "$BENCH" serve-fake --out "$WORK/fake" --latency-ms 20 --images $(( (BIG + 99) / 100 )) --member-quota 1000 > "$WORK/fake.log" 2>&1 &
fake=$!
track pid "$fake"
until [ -s "$WORK/fake/images" ]; do
  kill -0 "$fake" 2>/dev/null || { log "the in-process fake did not start: $(tail -3 "$WORK/fake.log")"; exit 1; }
  sleep 0.1
done
: > "$WORK/big-pairs"
while read -r image; do for m in $(seq 1 100); do printf '%s big-member-%03d\n' "$image" "$m"; done; done < "$WORK/fake/images" | head -n "$BIG" > "$WORK/big-pairs"
: > "$WORK/big-rows"
for run in $(seq 1 "$RUNS"); do
  ns=bench-big-$run-$(date +%s | cut -c6-10); track namespace "$ns"
  kubectl create namespace "$ns" >/dev/null
  kubectl -n "$ns" create secret generic openstack-credentials --from-file=clouds.yaml="$WORK/fake/clouds.yaml" >/dev/null
  # The same resync in every run (run 1 also measures two of them in steady state).
  pid=$(start_operator "$ns" 18900 60s)
  t0=$(now)
  "$BENCH" watch-ready --namespace "$ns" --count "$BIG" --start "$t0" --timeline "$WORK/timeline-big-$run" --timeout 900 > "$WORK/big-ready" &
  watch=$!
  created=$(KUBECONFIG=$KUBECONFIG "$BENCH" create --namespace "$ns" --pairs "$WORK/big-pairs" --concurrency 64)
  wait "$watch" || { log "not all $BIG objects Ready (watch-ready failed)"; exit 1; }
  ready=$(cat "$WORK/big-ready")
  cpu=$(cpu_of "$pid"); rss=$(rss_of "$pid")
  per_resync="-"
  if [ "$run" = 1 ]; then
    log "10k steady state: two resync periods (60 s)"
    sleep 120
    cpu_after=$(cpu_of "$pid")
    per_resync=$(awk -v a="$cpu" -v b="$cpu_after" 'BEGIN{printf "%.2f", (b-a)/2}')
    rss=$(rss_of "$pid")
  fi
  echo "$created $ready $cpu $rss $per_resync" >> "$WORK/big-rows"
  log "10k run $run: created in ${created}s, all Ready at ${ready}s, peak RSS ${rss} MiB"
  drain_namespace "$ns"
  kill "$pid" 2>/dev/null || true
done
floor_big=$(awk -v n="$BIG" -v c="$CONCURRENCY" 'BEGIN{printf "%.1f", n*0.020/c}')
{
  echo "-- $BIG objects on the fake (20 ms per Glance request, over HTTP), real API server; median of $RUNS runs"
  echo "  objects created (iao-bench create, 64 at once) in $(cut -d' ' -f1 "$WORK/big-rows" | median) s; all Ready at $(cut -d' ' -f2 "$WORK/big-rows" | median) s from the start"
  echo "  floor N·L/C = $BIG × 20 ms / $CONCURRENCY = ${floor_big} s; ratio $(cut -d' ' -f2 "$WORK/big-rows" | median | awk -v f="$floor_big" '{printf "%.2f", $1/f}') (goal <= 1.2)"
  echo "  peak RSS $(cut -d' ' -f4 "$WORK/big-rows" | median) MiB (goal <= 64); CPU until Ready $(cut -d' ' -f3 "$WORK/big-rows" | median) s; CPU per resync of $BIG objects $(head -1 "$WORK/big-rows" | cut -d' ' -f5) s"
} >> "$REPORT"
fi

{
  echo "== bench $(date -u +%Y-%m-%dT%H:%M:%SZ) ($(nproc) cores; operator --concurrency $CONCURRENCY; terraform $(CHECKPOINT_DISABLE=1 terraform version 2>/dev/null | awk '/^Terraform v/{v=$2} END{print v ? v : "(version unknown)"}'), opentofu $(tofu version 2>/dev/null | awk '/^OpenTofu v/{v=$2} END{print v ? v : "(version unknown)"}'), provider terraform-provider-openstack $(go version -m "$(readlink -f "$TOOLS/terraform-provider-openstack")" 2>/dev/null | awk '$1 == "mod" {v=$3} END{print v ? v : "(version unknown)"}'))"
  cat "$REPORT"
  echo
} | tee -a "$OUT"
section local && log "chart: $CHART"

if section select; then
  log "golden images that follow their builds: bench/select.sh"
  IAO_BENCH_RESULTS=$OUT "$ROOT/bench/select.sh"
fi
