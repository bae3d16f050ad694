#!/usr/bin/env bash
# tests/env/registry-up.sh STATE_DIR PORT - a real OCI registry (distribution's `registry`, built
# from its Go module by hack/tools.sh registry) on 127.0.0.1:PORT, plain HTTP, its storage under
# STATE_DIR. The release is pushed here (hack/publish.sh) and the nodes' containerd pulls from it
# (tests/env/node-up.sh writes their hosts.toml). Idempotent; stopped by PID (registry-down.sh).
# Prints the registry's address.
set -euo pipefail
STATE=${1:?usage: registry-up.sh STATE_DIR PORT}
PORT=${2:?usage: registry-up.sh STATE_DIR PORT}
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
log() { printf '[registry-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
command -v registry >/dev/null || { log "ERROR: registry not on PATH (hack/tools.sh registry)"; exit 1; }
mkdir -p "$STATE/data"
cat > "$STATE/config.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: false}}
storage:
  filesystem: {rootdirectory: $STATE/data}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$PORT
YAML
if ! alive "$STATE/registry.pid"; then
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && { log "ERROR: 127.0.0.1:$PORT is taken (set IAO_REGISTRY_PORT)"; exit 1; }
  OTEL_TRACES_EXPORTER=none setsid registry serve "$STATE/config.yml" >> "$STATE/registry.log" 2>&1 &
  echo $! > "$STATE/registry.pid"
fi
for i in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
  alive "$STATE/registry.pid" || { tail -20 "$STATE/registry.log" >&2; log "ERROR: registry exited"; exit 1; }
  [ "$i" = 100 ] && { log "ERROR: registry did not answer in 10 s"; exit 1; }
  sleep 0.1
done
echo "127.0.0.1:$PORT"
