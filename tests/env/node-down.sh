#!/usr/bin/env bash
# tests/env/node-down.sh STATE_DIR [--clean] - stop the node of node-up.sh by PID, and leave
# nothing behind: containers and their shims, the mounts under STATE_DIR (overlay root file
# systems, sandbox shm, projected volumes), the kubelet's pod cgroups. --clean also removes
# STATE_DIR.
set -uo pipefail
STATE=${1:?usage: node-down.sh STATE_DIR [--clean]}
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
SOCK=$STATE/containerd/containerd.sock
stop() {
  local pidfile=$1 pid i
  pid=$(cat "$pidfile" 2>/dev/null) || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 100; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}
stop "$STATE/run/kubelet.pid"
if [ -S "$SOCK" ] && command -v ctr >/dev/null; then
  ctr="ctr -a $SOCK -n k8s.io"
  for task in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks kill -s SIGKILL "$task" >/dev/null 2>&1; done
  for _ in $(seq 1 30); do [ -z "$($ctr tasks ls -q 2>/dev/null)" ] && break; sleep 0.1; done
  for task in $($ctr tasks ls -q 2>/dev/null); do $ctr tasks rm -f "$task" >/dev/null 2>&1; done
  for container in $($ctr containers ls -q 2>/dev/null); do $ctr containers rm "$container" >/dev/null 2>&1; done
fi
stop "$STATE/run/containerd.pid"
# Shims are children of nobody once containerd is gone: those serving this state dir.
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
# Mounts under the state dir, deepest first.
grep -oE " $STATE/[^ ]+" /proc/mounts | sort -r | while read -r mount; do
  umount "$mount" 2>/dev/null || umount -l "$mount" 2>/dev/null
done
# The node's cgroup root (its pods' cgroups), deepest first, in every hierarchy (cgroup v1).
node=$(sed -n 's/^cgroupRoot: \///p' "$STATE/kubelet/config.yaml" 2>/dev/null)
if [ -n "$node" ]; then
  for hierarchy in /sys/fs/cgroup/*/; do
    [ -d "$hierarchy$node" ] && find "$hierarchy$node" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
fi
if [ "${2:-}" = --clean ]; then
  case "$STATE" in /|/tmp|/root|"") echo "refusing to remove '$STATE'" >&2; exit 1 ;; esac
  rm -rf -- "$STATE"
fi
exit 0
