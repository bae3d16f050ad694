#!/usr/bin/env bash
# hack/static-build.sh [TARGET] - the container image's binary for one platform without a Docker
# engine: the same static musl release build as the Dockerfile's (cargo-zigbuild, zig as the C
# compiler and linker, so aarch64 cross-links like x86_64), then proof that it is static.
# TARGET: x86_64-unknown-linux-musl (default) or aarch64-unknown-linux-musl. Prints the binary's
# path. The tools come from hack/tools.sh release.
#
# One build folder per machine (IAO_BUILD_DIR, default ~/.cache/image-access-operator/build): the
# sources are synced there by content (a file that differs is copied and so is newer than any
# build; one that does not is left alone, so cargo rebuilds exactly what changed, whichever
# checkout it came from) and built at that fixed path, so every checkout, and the
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
flock -n 8 || { log "waiting for another build ($BUILD/.lock)"; flock 8; }
python3 - "$ROOT" "$BUILD/src" <<'PY'
import filecmp, os, shutil, sys
root, build = sys.argv[1:3]
wanted = {"Cargo.toml", "Cargo.lock"}
for folder, _, files in os.walk(os.path.join(root, "src")):
    wanted.update(os.path.relpath(os.path.join(folder, f), root) for f in files)
for rel in wanted:
    source, target = os.path.join(root, rel), os.path.join(build, rel)
    if os.path.exists(target) and filecmp.cmp(source, target, shallow=False):
        continue
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)  # dated now: newer than every earlier build
for folder, _, files in os.walk(build, topdown=False):
    for f in files:
        if os.path.relpath(os.path.join(folder, f), build) not in wanted:
            os.remove(os.path.join(folder, f))
    if folder != build and not os.listdir(folder):
        os.rmdir(folder)
PY
export RUSTFLAGS="--remap-path-prefix=$BUILD/src=/src --remap-path-prefix=$BUILD/target=/src/target --remap-path-prefix=$CARGO_HOME=/cargo ${IAO_EXTRA_RUSTFLAGS:-}"
t0=$(date +%s)
# 8>&-: no process the build leaves behind may keep the lock.
(cd "$BUILD/src" && CARGO_TARGET_DIR="$BUILD/target" cargo zigbuild -q --release --locked --target "$TARGET" \
  --bin image-access-operator >&2 8>&-)
# Out of the shared folder before the lock is let go (the next build overwrites it).
BIN=$ROOT/target/$TARGET/release/image-access-operator
mkdir -p "$(dirname "$BIN")"
rm -f "$BIN"
cp "$BUILD/target/$TARGET/release/image-access-operator" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
desc=$(file -b "$BIN")
log "built in $(( $(date +%s) - t0 ))s; file: $desc"
case "$desc" in *"statically linked"*|*"static-pie linked"*) ;; *) log "ERROR: not static"; exit 1 ;; esac
case "$TARGET" in
  x86_64-*) "$BIN" --version >&2 ;;
  aarch64-*) qemu-aarch64-static "$BIN" --version >&2 ;;
esac
log "size: $(du -h "$BIN" | cut -f1)"
echo "$BIN"
