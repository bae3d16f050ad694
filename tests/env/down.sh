#!/usr/bin/env bash
# tests/env/down.sh [STATE_DIR] [--clean] - stop everything tests/env/up.sh started.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STATE=$ROOT/.e2e; CLEAN=""
for a in "$@"; do case "$a" in --clean) CLEAN=--clean ;; *) STATE=$a ;; esac; done
for node in "$STATE"/node-*/; do [ -d "$node" ] && "$ROOT/tests/env/node-down.sh" "${node%/}" $CLEAN; done
"$ROOT/tests/env/kube-down.sh" "$STATE/kube" $CLEAN
"$ROOT/tests/env/openstack-down.sh" "$STATE/openstack" $CLEAN
"$ROOT/tests/env/registry-down.sh" "$STATE/registry" $CLEAN
if [ -n "$CLEAN" ]; then rm -f "$STATE"/*.env "$STATE"/*.log "$STATE/env.sh"; fi
