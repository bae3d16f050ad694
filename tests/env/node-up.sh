#!/usr/bin/env bash
# tests/env/node-up.sh STATE_DIR KUBE_STATE_DIR NAME ADDRESS KUBELET_PORT [REGISTRY] - a real node for the
# control plane of kube-up.sh: its own containerd + runc (Debian's), a loopback-only CNI (pods
# use hostNetwork), and a kubelet built from the same Kubernetes module as the API server, all
# on ADDRESS (a loopback address: 127.0.0.1, 127.0.0.2, ...; two nodes on one machine differ by
# it, so hostNetwork pods of one Deployment do not share ports). Everything lives under
# STATE_DIR; processes are stopped by PID (node-down.sh). Idempotent. Images are imported, never
# pulled: the sandbox's pause image. The operator's image is pulled the way users pull it, from
# REGISTRY (host:port of tests/env/registry-up.sh's plain-HTTP registry on loopback), which
# containerd is told about in a hosts.toml.
#
# Needs containerd, runc, ctr, kubelet, pause and kubectl on PATH (hack/tools.sh node).
set -euo pipefail
usage="usage: node-up.sh STATE_DIR KUBE_STATE_DIR NAME ADDRESS KUBELET_PORT [REGISTRY]"
STATE=${1:?$usage}
KUBE=${2:?$usage}
NODE=${3:?$usage}
ADDRESS=${4:?$usage}
KUBELET_PORT=${5:?$usage}
REGISTRY=${6:-}
case "$STATE" in /*) ;; *) STATE="$PWD/$STATE" ;; esac
case "$KUBE" in /*) ;; *) KUBE="$PWD/$KUBE" ;; esac
case "$ADDRESS" in 127.*) ;; *) echo "node-up: $ADDRESS is not a loopback address" >&2; exit 1 ;; esac
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SOCK=$STATE/containerd/containerd.sock
export KUBECONFIG=$KUBE/kubeconfig
log() { printf '[node-up %s %(%H:%M:%S)T] %s\n' "$NODE" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
alive() { local pid; pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for tool in containerd runc ctr kubelet pause kubectl; do
  command -v "$tool" >/dev/null || die "$tool not on PATH (hack/tools.sh node installs and builds the node's tools)"
done
[ -x /usr/lib/cni/loopback ] || die "/usr/lib/cni/loopback missing (Debian's containernetworking-plugins; hack/tools.sh node)"
mkdir -p "$STATE"/{containerd/certs.d,cni/bin,cni/conf,kubelet/root,kubelet/logs,kubelet/manifests,run,log}
T0=$(date +%s.%N)
elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'; }

# ---------------------------------------------------------------- CNI: loopback only
# Pods run with hostNetwork: no bridge, no iptables. The runtime still wants a CNI config to call
# the node's network ready.
ln -sfn /usr/lib/cni/loopback "$STATE/cni/bin/loopback"
echo '{"cniVersion":"1.0.0","name":"iao-loopback","plugins":[{"type":"loopback"}]}' > "$STATE/cni/conf/10-iao.conflist"

# ---------------------------------------------------------------- containerd
cat > "$STATE/containerd/config.toml" <<EOF
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$STATE/containerd/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:iao"
  # root here lacks CAP_SYS_RESOURCE: without this, every sandbox fails with "can't get final
  # child's PID from pipe: EOF"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$STATE/cni/bin"
    conf_dir = "$STATE/cni/conf"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$STATE/containerd/certs.d"
EOF
if [ -n "$REGISTRY" ]; then
  # The environment's registry speaks plain HTTP on loopback.
  mkdir -p "$STATE/containerd/certs.d/$REGISTRY"
  printf 'server = "http://%s"\n\n[host."http://%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "$REGISTRY" "$REGISTRY" > "$STATE/containerd/certs.d/$REGISTRY/hosts.toml"
fi
if ! alive "$STATE/run/containerd.pid"; then
  log "starting containerd"
  setsid containerd --config "$STATE/containerd/config.toml" > "$STATE/log/containerd.log" 2>&1 &
  echo $! > "$STATE/run/containerd.pid"
fi
for i in $(seq 1 100); do
  ctr -a "$SOCK" version >/dev/null 2>&1 && break
  alive "$STATE/run/containerd.pid" || { tail -20 "$STATE/log/containerd.log" >&2; die "containerd exited"; }
  [ "$i" = 100 ] && die "containerd did not answer in 10 s"
  sleep 0.1
done

# ---------------------------------------------------------------- the sandbox image
if ! ctr -a "$SOCK" -n k8s.io images ls -q | grep -qx "localhost/pause:iao"; then
  pause=$(command -v pause) || die "pause not on PATH (hack/tools.sh node)"
  work=$(mktemp -d)
  mkdir -p "$work/rootfs"; cp "$pause" "$work/rootfs/pause"
  echo '{"Entrypoint":["/pause"],"User":"65535:65535","WorkingDir":"/"}' > "$work/config.json"
  "$ROOT/hack/oci.sh" "$work/pause.tar" localhost/pause:iao "$work/config.json" "amd64=$work/rootfs"
  ctr -a "$SOCK" -n k8s.io images import "$work/pause.tar" >/dev/null
  rm -rf "$work"
fi

# ---------------------------------------------------------------- kubelet
# Each node's pods live under a cgroup root of its own (two kubelets share this machine's
# hierarchies); the kubelet wants it to exist.
CGROUP_ROOT=/$NODE
for hierarchy in /sys/fs/cgroup/*/; do
  case "$hierarchy" in */unified/) continue ;; esac
  mkdir -p "$hierarchy$NODE" 2>/dev/null || true
done
cat > "$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ADDRESS
port: $KUBELET_PORT
healthzBindAddress: $ADDRESS
healthzPort: $((KUBELET_PORT - 2))
cgroupRoot: $CGROUP_ROOT
readOnlyPort: 0
containerRuntimeEndpoint: unix://$SOCK
# cgroup v1 here, managed by cgroupfs; no swap accounting
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
  x509: {clientCAFile: $KUBE/pki/ca.crt}
authorization: {mode: AlwaysAllow}
staticPodPath: $STATE/kubelet/manifests
podLogsDir: $STATE/kubelet/logs
# Absolute, small thresholds: a percentage of a big, busy disk (a CI clone of several GiB beside
# others) tainted the node with disk-pressure mid-run and left every pod unschedulable.
evictionHard: {memory.available: "50Mi", nodefs.available: "256Mi", imagefs.available: "256Mi", nodefs.inodesFree: "1%"}
# images are imported, never pulled: never collect them
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
rotateCertificates: false
serverTLSBootstrap: false
EOF
if ! alive "$STATE/run/kubelet.pid"; then
  port_busy "$KUBELET_PORT" && die "port 127.0.0.1:$KUBELET_PORT is taken (set IAO_KUBELET_PORT)"
  log "starting kubelet on $ADDRESS:$KUBELET_PORT"
  # The kubelet refuses a loopback --node-ip ("nodeIP can't be loopback address") and then
  # leaves the node's addresses alone: they are set below, to ADDRESS only.
  setsid kubelet --config "$STATE/kubelet/config.yaml" --kubeconfig "$KUBECONFIG" \
    --root-dir "$STATE/kubelet/root" --hostname-override "$NODE" --node-ip "$ADDRESS" \
    --v=1 > "$STATE/log/kubelet.log" 2>&1 &
  echo $! > "$STATE/run/kubelet.pid"
fi

# ---------------------------------------------------------------- ready, on loopback only
for i in $(seq 1 300); do
  kubectl get node "$NODE" >/dev/null 2>&1 && break
  alive "$STATE/run/kubelet.pid" || { tail -30 "$STATE/log/kubelet.log" >&2; die "kubelet exited"; }
  [ "$i" = 300 ] && die "node $NODE not registered after 30 s"
  sleep 0.1
done
kubectl patch node "$NODE" --subresource=status --type=merge \
  -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"$ADDRESS\"},{\"type\":\"Hostname\",\"address\":\"$NODE\"}]}}" >/dev/null
for i in $(seq 1 600); do
  ready=$(kubectl get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  taints=$(kubectl get node "$NODE" -o jsonpath='{.spec.taints}' 2>/dev/null || echo pending)
  [ "$ready" = True ] && [ -z "$taints" ] && break
  alive "$STATE/run/kubelet.pid" || { tail -30 "$STATE/log/kubelet.log" >&2; die "kubelet exited"; }
  [ "$i" = 600 ] && { tail -30 "$STATE/log/kubelet.log" >&2; die "node $NODE not Ready and untainted after 60 s (ready=$ready taints=$taints)"; }
  sleep 0.1
done
addresses=$(kubectl get node "$NODE" -o jsonpath='{range .status.addresses[*]}{.type}={.address}{"\n"}{end}')
while IFS='=' read -r type address; do
  [ -z "$type" ] && continue
  case "$type=$address" in
    "InternalIP=$ADDRESS"|"Hostname=$NODE") ;;
    *) die "node $NODE reports $type $address: every node address must be on loopback" ;;
  esac
done <<< "$addresses"
log "node $NODE Ready in $(elapsed)s (addresses: $(echo $addresses))"
