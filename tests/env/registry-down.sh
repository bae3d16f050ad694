#!/usr/bin/env bash
# tests/env/registry-down.sh STATE_DIR [--clean] - stop registry-up.sh's registry by PID;
# --clean also removes its storage.
set -uo pipefail
STATE=${1:?usage: registry-down.sh STATE_DIR [--clean]}
pid=$(cat "$STATE/registry.pid" 2>/dev/null) || pid=""
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$STATE/registry.pid"
[ "${2:-}" = --clean ] && rm -rf "$STATE"
exit 0
