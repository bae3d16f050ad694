#!/usr/bin/env bash
# tests/env/kube-down.sh STATE_DIR [--clean] - stop the control plane of kube-up.sh,
# by PID file only; --clean also removes their state (etcd data, certificates).
set -uo pipefail
STATE=${1:?usage: kube-down.sh STATE_DIR [--clean]}
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
stop "$STATE/run/kube-scheduler.pid"
stop "$STATE/run/kube-controller-manager.pid"
stop "$STATE/run/kube-apiserver.pid"
stop "$STATE/run/etcd.pid"
if [ "${2:-}" = --clean ]; then
  case "$STATE" in /|/tmp|/root|"") echo "refusing to remove '$STATE'" >&2; exit 1 ;; esac
  rm -rf -- "$STATE"
fi
