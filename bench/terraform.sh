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
python3 - "$OSL_KEYSTONE_URL" "$OSL_GLANCE_URL" "$OSL_USER_PASSWORD" "$IMAGES" "$OSL_MEMBER1_PROJECT_ID" "$OSL_MEMBER2_PROJECT_ID" "$COUNT" > "$WORK/pairs.auto.tfvars.json" <<'PY'
import json, sys, urllib.request
ks, glance, password, n, m1, m2, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6], int(sys.argv[7])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "owner-user", "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": "owner", "domain": {"id": "default"}}}}}
token = opener.open(urllib.request.Request(ks + "/auth/tokens", json.dumps(body).encode(), {"Content-Type": "application/json"})).headers["X-Subject-Token"]
pairs = {}
for i in range(n):
    req = urllib.request.Request(glance + "/v2/images", json.dumps({"name": f"tf-bench-{i}", "visibility": "shared", "disk_format": "raw", "container_format": "bare"}).encode(),
                                 {"Content-Type": "application/json", "X-Auth-Token": token})
    image = json.loads(opener.open(req).read())["id"]
    for j, member in enumerate((m1, m2)):
        if len(pairs) < count:
            pairs[f"ia-{i}-{j}"] = {"image": image, "member": member}
print(json.dumps({"pairs": pairs}))
PY
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

glance_requests() { wc -l < "$GLANCE_LOG"; }
glance_by_method() { # lines added since line $1: "METHOD status count"
  tail -n +"$(($1 + 1))" "$GLANCE_LOG" | sed -n 's/.*\] \([A-Z]*\) \/v2\/images\/[^ ]*\/members[^ ]* => .*(HTTP\/1.1 \([0-9]*\)).*/\1 \2/p' | sort | uniq -c | awk '{print "    " $2 " " $3 ": " $1}'
}

cd "$WORK"
L0=$(glance_requests)
log "terraform apply ($COUNT resources, default parallelism 10)"
T0=$(date +%s.%N)
terraform apply -auto-approve -input=false > "$WORK/apply.log" 2>&1 || { tail -20 "$WORK/apply.log" >&2; exit 1; }
T1=$(date +%s.%N)
L1=$(glance_requests)
log "terraform plan -refresh-only (the drift check)"
terraform plan -refresh-only -input=false > "$WORK/plan.log" 2>&1 || { tail -20 "$WORK/plan.log" >&2; exit 1; }
T2=$(date +%s.%N)
L2=$(glance_requests)

REPORT=$(cat <<TXT
== terraform baseline $(date -u +%Y-%m-%dT%H:%M:%SZ): $COUNT openstack_images_image_access_v2 (provider v${TF_OPENSTACK_VERSION:-3.4.0}, terraform $(terraform version | head -1 | awk '{print $2}'))
terraform apply:                    $(awk -v a="$T0" -v b="$T1" 'BEGIN{printf "%.2f", b-a}') s; Glance member requests $((L1 - L0)):
$(glance_by_method "$L0" | head -n 20)
terraform plan -refresh-only:       $(awk -v a="$T1" -v b="$T2" 'BEGIN{printf "%.2f", b-a}') s; Glance member requests $((L2 - L1))
TXT
)
echo "$REPORT"
echo "$REPORT" >> "$OUT"
echo >> "$OUT"
