# syntax=docker/dockerfile:1
# A static musl binary (rustls with ring, no OpenSSL) on an empty image: no shell, no libc,
# UID 65532. One build stage on the build machine's platform cross-compiles for the target's
# (`docker buildx build --platform linux/amd64,linux/arm64 .`): zig links musl for either, through
# cargo-zigbuild. The file system is what hack/rootfs.sh makes; hack/image.sh builds the same
# image without a Docker engine (hack/release.sh, and the tests, which run it as a pod).
FROM --platform=$BUILDPLATFORM docker.io/library/rust:1.95-bookworm AS build
ARG TARGETARCH
# The versions hack/tools.sh builds with (it reads them from here).
ARG ZIG_VERSION=0.15.2
ARG CARGO_ZIGBUILD_VERSION=0.24.1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-pip=23.0.1+dfsg-1 \
 && rm -rf /var/lib/apt/lists/* \
 && pip3 install --no-cache-dir --break-system-packages "ziglang==${ZIG_VERSION}" \
 && cargo install --locked "cargo-zigbuild@${CARGO_ZIGBUILD_VERSION}" \
 && rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY hack/rootfs.sh ./hack/rootfs.sh
# Paths remapped as hack/static-build.sh does (/src, /cargo): no build machine's path in the binary.
RUN case "$TARGETARCH" in \
      amd64) target=x86_64-unknown-linux-musl ;; \
      arm64) target=aarch64-unknown-linux-musl ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac \
 && RUSTFLAGS="--remap-path-prefix=/src=/src --remap-path-prefix=$CARGO_HOME=/cargo" \
    cargo zigbuild --release --locked --target "$target" --bin image-access-operator \
 && hack/rootfs.sh /rootfs "target/$target/release/image-access-operator"

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/image-access-operator"]
