#!/usr/bin/env bash
# tests/env/check-clean.sh [STATE_DIR] - after tests/env/down.sh: fails if the environment left
# anything running or mounted: processes started for STATE_DIR (containerd and its shims,
# kubelets, the control plane, Keystone and Glance), mounts under it, or the nodes' cgroups.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=${1:-$ROOT/.e2e}
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
left=()
while read -r pid args; do
  [ "$pid" = $$ ] && continue
  case "$args" in *check-clean.sh*) continue ;; *"$STATE"*) left+=("process $pid: ${args:0:160}") ;; esac
done < <(ps -eo pid=,args=)
while read -r mount; do left+=("mount $mount"); done < <(grep -oE " $STATE/[^ ]+" /proc/mounts)
for dir in /sys/fs/cgroup/*/iao-node-*; do [ -e "$dir" ] && left+=("cgroup $dir"); done
if [ ${#left[@]} -gt 0 ]; then
  printf 'left behind by the environment:\n' >&2
  printf '  %s\n' "${left[@]}" >&2
  exit 1
fi
echo "environment stopped cleanly: no process, mount or cgroup left"
