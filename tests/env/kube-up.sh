#!/usr/bin/env bash
# tests/env/kube-up.sh - run a real etcd + kube-apiserver + kube-controller-manager +
# kube-scheduler on loopback.
# The controller-manager runs the namespace and garbage-collector controllers, so deleting a
# namespace and owner-reference garbage collection behave as on a real cluster; nodes come from
# tests/env/node-up.sh. Idempotent; stop with tests/env/kube-down.sh STATE_DIR.
#
#   tests/env/kube-up.sh STATE_DIR        prints 'export KUBECONFIG=...' on stdout
#
# Needs kube-apiserver, kube-controller-manager, kube-scheduler, etcd (and kubectl for callers) on PATH:
# hack/tools.sh builds them.
# Tunables: IAO_APISERVER_PORT (16443), IAO_ETCD_PORT (12379), IAO_KCM_PORT (16257),
# IAO_SCHEDULER_PORT (16259).
set -euo pipefail

STATE=${1:?usage: kube-up.sh STATE_DIR}
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
API_PORT=${IAO_APISERVER_PORT:-16443}
ETCD_PORT=${IAO_ETCD_PORT:-12379}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
KCM_PORT=${IAO_KCM_PORT:-16257}
SCHEDULER_PORT=${IAO_SCHEDULER_PORT:-16259}
PKI="$STATE/pki"
log() { printf '[kube-up %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
for tool in kube-apiserver kube-controller-manager kube-scheduler etcd openssl curl; do command -v "$tool" >/dev/null || die "$tool not on PATH (hack/tools.sh builds the Kubernetes tools)"; done
mkdir -p "$STATE"/{pki,etcd,log,run}
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
T0=$(date +%s.%N)

alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
busy_message() { echo "port 127.0.0.1:$1 is in use by something this state dir did not start (another environment? stop it with its tests/env/down.sh, or set $2)"; }

# ---------------------------------------------------------------- certificates (once)
if [ ! -f "$PKI/admin.crt" ]; then
  log "creating a CA, the serving certificate, an admin client certificate and service-account keys"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=iao-test-ca" \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$PKI/apiserver.key" -out "$PKI/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > "$PKI/apiserver.ext"
  openssl x509 -req -in "$PKI/apiserver.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/apiserver.ext" -out "$PKI/apiserver.crt" 2>/dev/null
  # O=system:masters: the admin group bound to cluster-admin
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=iao-admin" \
    -keyout "$PKI/admin.key" -out "$PKI/admin.csr" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$PKI/admin.ext"
  openssl x509 -req -in "$PKI/admin.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/admin.ext" -out "$PKI/admin.crt" 2>/dev/null
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
if [ ! -f "$PKI/operator.crt" ]; then
  # A separate identity for the operator run out of cluster, so the audit log (below) can
  # count exactly the operator's requests.
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=iao-operator" \
    -keyout "$PKI/operator.key" -out "$PKI/operator.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/operator.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/admin.ext" -out "$PKI/operator.crt" 2>/dev/null
fi

write_kubeconfig() { # FILE USER CERT KEY
cat > "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: iao-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $3
    client-key: $4
contexts:
- name: iao-test
  context: {cluster: iao-test, user: $2, namespace: default}
current-context: iao-test
EOF
}
KUBECONFIG_FILE="$STATE/kubeconfig"
write_kubeconfig "$KUBECONFIG_FILE" iao-admin "$PKI/admin.crt" "$PKI/admin.key"
write_kubeconfig "$STATE/kubeconfig-operator" iao-operator "$PKI/operator.crt" "$PKI/operator.key"
# Audit only the operator's own identity: the benchmark counts its Kubernetes writes here.
cat > "$STATE/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["iao-operator"]
- level: None
EOF

# ---------------------------------------------------------------- etcd
if ! alive "$STATE/run/etcd.pid"; then
  port_busy "$ETCD_PORT" && die "$(busy_message "$ETCD_PORT" IAO_ETCD_PORT)"
  log "starting etcd on 127.0.0.1:$ETCD_PORT"
  setsid etcd --name iao-test --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "iao-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 \
    >"$STATE/log/etcd.log" 2>&1 &
  echo $! > "$STATE/run/etcd.pid"
fi
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$ETCD_PORT/health" >/dev/null 2>&1 && break
  alive "$STATE/run/etcd.pid" || { tail -20 "$STATE/log/etcd.log" >&2; die "etcd exited"; }
  sleep 0.1
done

# ---------------------------------------------------------------- kube-apiserver
if ! alive "$STATE/run/kube-apiserver.pid"; then
  port_busy "$API_PORT" && die "$(busy_message "$API_PORT" IAO_APISERVER_PORT)"
  log "starting kube-apiserver on https://127.0.0.1:$API_PORT"
  setsid kube-apiserver \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --api-audiences https://kubernetes.default.svc \
    --service-cluster-ip-range 10.0.0.0/24 \
    --authorization-mode RBAC \
    --allow-privileged=true \
    --kubelet-preferred-address-types InternalIP \
    --enable-priority-and-fairness=false \
    --event-ttl 1h \
    --audit-policy-file "$STATE/audit-policy.yaml" --audit-log-path "$STATE/log/audit.log" \
    --audit-log-maxsize 200 --audit-log-maxbackup 20 \
    >"$STATE/log/kube-apiserver.log" 2>&1 &
  echo $! > "$STATE/run/kube-apiserver.pid"
fi
for i in $(seq 1 600); do
  code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://127.0.0.1:$API_PORT/readyz" || true)
  [ "$code" = 200 ] && break
  alive "$STATE/run/kube-apiserver.pid" || { tail -30 "$STATE/log/kube-apiserver.log" >&2; die "kube-apiserver exited"; }
  [ "$i" = 600 ] && { tail -30 "$STATE/log/kube-apiserver.log" >&2; die "kube-apiserver not ready after 60 s"; }
  sleep 0.1
done

# ---------------------------------------------------------------- kube-controller-manager
# Its default controllers, as on any cluster: namespace deletion, garbage collection by owner
# references, Deployments and ReplicaSets, ServiceAccounts and their tokens, EndpointSlices,
# node lifecycle (taints).
if ! alive "$STATE/run/kube-controller-manager.pid"; then
  port_busy "$KCM_PORT" && die "$(busy_message "$KCM_PORT" IAO_KCM_PORT)"
  log "starting kube-controller-manager on 127.0.0.1:$KCM_PORT"
  setsid kube-controller-manager \
    --kubeconfig "$KUBECONFIG_FILE" \
    --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" \
    --leader-elect=false \
    --root-ca-file "$PKI/ca.crt" \
    --service-account-private-key-file "$PKI/sa.key" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --service-cluster-ip-range 10.0.0.0/24 \
    >"$STATE/log/kube-controller-manager.log" 2>&1 &
  echo $! > "$STATE/run/kube-controller-manager.pid"
fi
for i in $(seq 1 300); do
  code=$(curl -sk -o /dev/null -w '%{http_code}' "https://127.0.0.1:$KCM_PORT/healthz" || true)
  [ "$code" = 200 ] && break
  alive "$STATE/run/kube-controller-manager.pid" || { tail -30 "$STATE/log/kube-controller-manager.log" >&2; die "kube-controller-manager exited"; }
  [ "$i" = 300 ] && { tail -30 "$STATE/log/kube-controller-manager.log" >&2; die "kube-controller-manager not healthy after 30 s"; }
  sleep 0.1
done
# ---------------------------------------------------------------- kube-scheduler
if ! alive "$STATE/run/kube-scheduler.pid"; then
  port_busy "$SCHEDULER_PORT" && die "$(busy_message "$SCHEDULER_PORT" IAO_SCHEDULER_PORT)"
  log "starting kube-scheduler on 127.0.0.1:$SCHEDULER_PORT"
  setsid kube-scheduler --kubeconfig "$KUBECONFIG_FILE" \
    --authentication-kubeconfig "$KUBECONFIG_FILE" --authorization-kubeconfig "$KUBECONFIG_FILE" \
    --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false \
    > "$STATE/log/kube-scheduler.log" 2>&1 &
  echo $! > "$STATE/run/kube-scheduler.pid"
fi
log "control plane ready in $(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')s; kubeconfig: $KUBECONFIG_FILE"
echo "export KUBECONFIG='$KUBECONFIG_FILE'"
echo "export IAO_OPERATOR_KUBECONFIG='$STATE/kubeconfig-operator'"
