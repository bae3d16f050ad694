# syntax=docker/dockerfile:1
# A static musl binary (rustls with ring, no OpenSSL) on an empty image: no shell, no libc,
# UID 65532. The file system is what hack/rootfs.sh makes; hack/image.sh builds the same image
# without a Docker engine (the tests run it as a pod).
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY hack/rootfs.sh ./hack/rootfs.sh
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin image-access-operator \
 && hack/rootfs.sh /rootfs target/x86_64-unknown-linux-musl/release/image-access-operator

FROM scratch
COPY --from=build /rootfs/ /
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/image-access-operator"]
