#!/usr/bin/env bash
# bench/terraform.sh [COUNT] - the baseline users compare us with: Terraform's
# openstack_images_image_access_v2 (terraform-provider-openstack, built from its Go module)
# sharing COUNT (300) memberships on the same real Keystone + Glance as bench/scale.sh.
# Prints and appends to bench/results.txt: `terraform apply` time, a drift check
# (`terraform plan -refresh-only`) time, and the Glance requests of each, counted in Glance's
# own request log. Terraform notices drift only when someone runs it; the operator checks every
# resync period by itself.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=${1:-300}
STATE=${IAO_E2E_STATE:-$ROOT/.e2e}
OUT=$ROOT/bench/results.txt
WORK=$STATE/terraform-bench
log() { printf '[bench-tf %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

"$ROOT/tests/env/up.sh" "$STATE" 2>/dev/null
# shellcheck disable=SC1091
source "$STATE/env.sh"
TOOLS=$("$ROOT/hack/tools.sh" terraform)
GLANCE_LOG=$OSL_STATE_DIR/log/glance-uwsgi.log
rm -rf "$WORK" && mkdir -p "$WORK/plugins"
ln -s "$TOOLS/terraform-provider-openstack" "$WORK/plugins/terraform-provider-openstack"
cat > "$WORK/terraformrc" <<EOF
provider_installation {
  dev_overrides {
    "terraform-provider-openstack/openstack" = "$WORK/plugins"
  }
  direct {}
}
EOF
export TF_CLI_CONFIG_FILE=$WORK/terraformrc TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1

IMAGES=$(( (COUNT + 1) / 2 ))
log "creating $IMAGES shared images"
mapfile -t TF_IMAGES < <("$ROOT/tests/env/glance.py" images "$IMAGES" tf-bench)
{
  printf '{"pairs": {'
  sep="" n=0
  for image in "${TF_IMAGES[@]}"; do
    for member in "$OSL_MEMBER1_PROJECT_ID" "$OSL_MEMBER2_PROJECT_ID"; do
      [ "$n" -lt "$COUNT" ] || break
      printf '%s"ia-%d": {"image": "%s", "member": "%s"}' "$sep" "$n" "$image" "$member"
      sep=", " n=$((n + 1))
    done
  done
  printf '}}\n'
} > "$WORK/pairs.auto.tfvars.json"
cat > "$WORK/main.tf" <<EOF
terraform {
  required_providers {
    openstack = { source = "terraform-provider-openstack/openstack" }
  }
}
provider "openstack" {
  auth_url            = "$OSL_KEYSTONE_URL"
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

# Glance's request log (uwsgi) stamps each request to the second: count member requests between
# two epoch seconds, by method and status. The phases are kept 2 s apart so none straddles.
glance_member_requests() { # FROM TO -> "    METHOD status: count" lines, then "total N"
  python3 - "$GLANCE_LOG" "$1" "$2" <<'PY'
import re, sys, time, collections
path, start, end = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
pattern = re.compile(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\] (\w+) /v2/images/[^ ]*/members[^ ]* => .*\(HTTP/1\.1 (\d+)\)")
counts = collections.Counter()
with open(path, errors="replace") as f:
    for line in f:
        m = pattern.search(line)
        if not m:
            continue
        when = time.mktime(time.strptime(m.group(1), "%a %b %d %H:%M:%S %Y"))
        if start <= when <= end:
            counts[(m.group(2), m.group(3))] += 1
for (method, status), n in sorted(counts.items()):
    print(f"    {method} {status}: {n}")
print(f"total {sum(counts.values())}")
PY
}

cd "$WORK"
sleep 2
T0=$(date +%s)
log "terraform apply ($COUNT resources, default parallelism 10)"
S0=$(date +%s.%N)
terraform apply -auto-approve -input=false > "$WORK/apply.log" 2>&1 || { tail -20 "$WORK/apply.log" >&2; exit 1; }
S1=$(date +%s.%N)
T1=$(date +%s)
sleep 2
T2=$(date +%s)
log "terraform plan -refresh-only (the drift check)"
S2=$(date +%s.%N)
terraform plan -refresh-only -input=false > "$WORK/plan.log" 2>&1 || { tail -20 "$WORK/plan.log" >&2; exit 1; }
S3=$(date +%s.%N)
T3=$(date +%s)
sleep 1   # let uwsgi flush its log
APPLY=$(glance_member_requests "$T0" "$T1")
PLAN=$(glance_member_requests "$T2" "$T3")

REPORT=$(cat <<TXT
== terraform baseline $(date -u +%Y-%m-%dT%H:%M:%SZ): $COUNT openstack_images_image_access_v2 (provider v${TF_OPENSTACK_VERSION:-3.4.0}, terraform $(terraform version | head -1 | awk '{print $2}'))
terraform apply:                    $(awk -v a="$S0" -v b="$S1" 'BEGIN{printf "%.2f", b-a}') s; Glance member requests $(echo "$APPLY" | sed -n 's/^total //p'):
$(echo "$APPLY" | grep -v '^total')
terraform plan -refresh-only:       $(awk -v a="$S2" -v b="$S3" 'BEGIN{printf "%.2f", b-a}') s; Glance member requests $(echo "$PLAN" | sed -n 's/^total //p'):
$(echo "$PLAN" | grep -v '^total')
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$OUT"
echo >> "$OUT"
