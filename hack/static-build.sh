#!/usr/bin/env bash
# hack/static-build.sh [TARGET] - the container image's binary for one platform without a Docker
# engine: the same static musl release build as the Dockerfile's (cargo-zigbuild, zig as the C
# compiler and linker, so aarch64 cross-links like x86_64), then proof that it is static.
# TARGET: x86_64-unknown-linux-musl (default) or aarch64-unknown-linux-musl. Prints the binary's
# path. The tools come from hack/tools.sh release.
#
# Reproducible: the paths of this checkout and of the cargo registry are remapped, so two clones
# of one commit build the same bytes with the same Rust toolchain (the Dockerfile's: 1.95).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${1:-x86_64-unknown-linux-musl}
log() { printf '[static-build %s] %s\n' "$TARGET" "$*" >&2; }
tools=$("$ROOT/hack/tools.sh" release)
export PATH="$tools:$PATH"
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$ROOT=/src --remap-path-prefix=$CARGO_HOME=/cargo ${IAO_EXTRA_RUSTFLAGS:-}"
t0=$(date +%s)
(cd "$ROOT" && cargo zigbuild -q --release --locked --target "$TARGET" --bin image-access-operator >&2)
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/$TARGET/release/image-access-operator
desc=$(file -b "$BIN")
log "built in $(( $(date +%s) - t0 ))s; file: $desc"
case "$desc" in *"statically linked"*|*"static-pie linked"*) ;; *) log "ERROR: not static"; exit 1 ;; esac
case "$TARGET" in
  x86_64-*) "$BIN" --version >&2 ;;
  aarch64-*) qemu-aarch64-static "$BIN" --version >&2 ;;
esac
log "size: $(du -h "$BIN" | cut -f1)"
echo "$BIN"
