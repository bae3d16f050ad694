#!/usr/bin/env bash
# hack/oci.sh OUT.tar NAME:TAG ROOTFS CONFIG.json - a one-layer OCI image archive of ROOTFS with
# the image config CONFIG (User, Entrypoint, ExposedPorts...), reproducible (sorted, mtime 0,
# owned by root), importable with `ctr -n k8s.io images import`. No registry is reachable here,
# so images are assembled, never pulled.
set -euo pipefail
out=$1 name=$2 rootfs=$3 config=$4
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/oci/blobs/sha256"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$rootfs" -cf "$work/layer.tar" .
blob() { local digest; digest=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$work/oci/blobs/sha256/$digest"; echo "$digest $(stat -c %s "$work/oci/blobs/sha256/$digest")"; }
read -r layer_digest layer_size < <(blob "$work/layer.tar")
python3 - "$config" "$layer_digest" > "$work/config.json" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))
print(json.dumps({"architecture": "amd64", "os": "linux", "config": config,
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sys.argv[2]]}}, sort_keys=True))
PY
read -r config_digest config_size < <(blob "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config_digest" "$config_size" "$layer_digest" "$layer_size" > "$work/manifest.json"
read -r manifest_digest manifest_size < <(blob "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest_digest" "$manifest_size" "$name" "${name##*:}" > "$work/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$work/oci/oci-layout"
mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$work/oci" -cf "$out" .
