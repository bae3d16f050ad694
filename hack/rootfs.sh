#!/bin/sh
# hack/rootfs.sh DIR BINARY - the operator image's whole file system, into DIR: the static
# binary, the CA bundle (rustls reads the system roots for https endpoints without a cacert),
# and passwd/group entries for the nonroot user 65532. The Dockerfile runs this in its build
# stage and copies DIR into `FROM scratch`; hack/image.sh runs it to assemble the same image
# locally (no Docker engine here), so the two cannot differ. POSIX sh: it runs in the Rust image.
set -eu
dir=$1 binary=$2
mkdir -p "$dir/etc/ssl/certs" "$dir/tmp"
chmod 1777 "$dir/tmp"
cp "$binary" "$dir/image-access-operator"
chmod 0755 "$dir/image-access-operator"
cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$dir/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$dir/etc/group"
