#!/usr/bin/env bash
# hack/static-build.sh [TARGET] - the container image's binary for one platform without a Docker
# engine: the same static musl release build as the Dockerfile's (cargo-zigbuild, zig as the C
# compiler and linker, so aarch64 cross-links like x86_64), then proof that it is static.
# TARGET: x86_64-unknown-linux-musl (default) or aarch64-unknown-linux-musl. Prints the binary's
# path. The tools come from hack/tools.sh release.
#
# One build folder per machine (IAO_BUILD_DIR, default ~/.cache/image-access-operator/build): the
# sources are copied there (mtimes kept) and built at that fixed path, so every checkout, and the
# previous release the upgrade test rebuilds, share the compiled dependencies, and the binary does
# not depend on where the checkout is. Reproducible: that path and the cargo registry's are
# remapped (/src, /cargo, as in the Dockerfile), so two clones of one commit build the same bytes
# with the same Rust toolchain (the Dockerfile's: 1.95). Builds take turns (a lock).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${1:-x86_64-unknown-linux-musl}
log() { printf '[static-build %s] %s\n' "$TARGET" "$*" >&2; }
tools=$("$ROOT/hack/tools.sh" release)
export PATH="$tools:$PATH"
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
BUILD=${IAO_BUILD_DIR:-$HOME/.cache/image-access-operator/build}
mkdir -p "$BUILD"
exec 8>"$BUILD/.lock"
flock 8
rm -rf "$BUILD/src" && mkdir -p "$BUILD/src"
cp -a "$ROOT/Cargo.toml" "$ROOT/Cargo.lock" "$ROOT/src" "$BUILD/src/"
export RUSTFLAGS="--remap-path-prefix=$BUILD/src=/src --remap-path-prefix=$CARGO_HOME=/cargo ${IAO_EXTRA_RUSTFLAGS:-}"
t0=$(date +%s)
(cd "$BUILD/src" && CARGO_TARGET_DIR="$BUILD/target" cargo zigbuild -q --release --locked --target "$TARGET" \
  --bin image-access-operator >&2)
# Out of the shared folder before the lock is let go (the next build overwrites it).
BIN=$ROOT/target/$TARGET/release/image-access-operator
mkdir -p "$(dirname "$BIN")"
cp "$BUILD/target/$TARGET/release/image-access-operator" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
desc=$(file -b "$BIN")
log "built in $(( $(date +%s) - t0 ))s; file: $desc"
case "$desc" in *"statically linked"*|*"static-pie linked"*) ;; *) log "ERROR: not static"; exit 1 ;; esac
case "$TARGET" in
  x86_64-*) "$BIN" --version >&2 ;;
  aarch64-*) qemu-aarch64-static "$BIN" --version >&2 ;;
esac
log "size: $(du -h "$BIN" | cut -f1)"
echo "$BIN"
