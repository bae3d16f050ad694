#!/usr/bin/env bash
# hack/static-build.sh - the container image's binary without a Docker engine: the same static
# musl release build as the Dockerfile's, then proof that it is static and runs.
# Prints the path of the binary. Installs the musl target and musl-tools when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=x86_64-unknown-linux-musl
log() { printf '[static-build] %s\n' "$*" >&2; }
if ! rustup target list --installed | grep -qx "$TARGET"; then
  log "rustup target add $TARGET"
  rustup target add "$TARGET" >&2
fi
if ! command -v musl-gcc >/dev/null; then
  log "apt-get install musl-tools (ring compiles its C and assembly with musl-gcc)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends musl-tools >&2 \
    || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends musl-tools >&2; }
fi
command -v file >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends file >&2
(cd "$ROOT" && cargo build --release --locked --target "$TARGET" --bin image-access-operator >&2)
BIN=$ROOT/target/$TARGET/release/image-access-operator
desc=$(file -b "$BIN")
log "file: $desc"
case "$desc" in *"statically linked"*|*"static-pie linked"*) ;; *) log "ERROR: not static"; exit 1 ;; esac
deps=$(ldd "$BIN" 2>&1 || true)
case "$deps" in *"statically linked"*|*"not a dynamic executable"*) ;; *) log "ERROR: ldd found dynamic dependencies: $deps"; exit 1 ;; esac
"$BIN" --version >&2
log "size: $(du -h "$BIN" | cut -f1)"
echo "$BIN"
