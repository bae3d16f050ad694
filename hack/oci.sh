#!/usr/bin/env bash
# hack/oci.sh OUT.tar NAME:TAG CONFIG.json ARCH=ROOTFS... - an OCI image archive (an OCI layout
# in a tar) of one single-layer image per platform (linux/ARCH, the file system ROOTFS, the image
# config CONFIG: User, Entrypoint, ExposedPorts...), under an image index tagged NAME:TAG.
# `skopeo copy --all oci-archive:OUT.tar:TAG docker://...` pushes it to a registry as it is;
# `ctr -n k8s.io images import` loads it.
#
# Reproducible: entries sorted, owned by root, dated SOURCE_DATE_EPOCH (default 0), layers
# gzipped without a name or time, JSON with sorted keys: the same inputs make the same digests.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 OUT.tar NAME:TAG CONFIG.json ARCH=ROOTFS..." >&2; exit 2; }
out=$1 name=$2 config=$3; shift 3
epoch=${SOURCE_DATE_EPOCH:-0}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
mkdir -p "$work/oci/blobs/sha256"
reproducible_tar() { tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime "$@"; }
for platform in "$@"; do
  arch=${platform%%=*} rootfs=${platform#*=}
  reproducible_tar -C "$rootfs" -cf "$work/$arch.tar" .
  gzip -n -9 -c "$work/$arch.tar" > "$work/$arch.tar.gz"
done
python3 - "$work" "$name" "$config" "$epoch" "$@" <<'PY'
import datetime, hashlib, json, os, sys
work, name, config_path, epoch = sys.argv[1:5]
platforms = [p.split("=", 1)[0] for p in sys.argv[5:]]
blobs = os.path.join(work, "oci", "blobs", "sha256")

def blob(data: bytes, media_type: str, **extra) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data), **extra}

def canonical(value) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

created = datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
manifests = []
for arch in platforms:
    with open(os.path.join(work, arch + ".tar"), "rb") as f:
        diff_id = "sha256:" + hashlib.sha256(f.read()).hexdigest()
    with open(os.path.join(work, arch + ".tar.gz"), "rb") as f:
        layer = blob(f.read(), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = blob(canonical({
        "architecture": arch, "os": "linux", "created": created,
        "config": json.load(open(config_path)),
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": [layer]}
    manifests.append(blob(canonical(manifest), manifest["mediaType"],
                          platform={"architecture": arch, "os": "linux"}))
index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
tag = name.rsplit(":", 1)[1]
entry = blob(canonical(index), index["mediaType"], annotations={
    "io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag})
with open(os.path.join(work, "oci", "index.json"), "wb") as f:
    f.write(canonical({"schemaVersion": 2, "mediaType": index["mediaType"], "manifests": [entry]}))
with open(os.path.join(work, "oci", "oci-layout"), "w") as f:
    f.write('{"imageLayoutVersion":"1.0.0"}')
PY
mkdir -p "$(dirname "$out")"
reproducible_tar -C "$work/oci" -cf "$out" .
