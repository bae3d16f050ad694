# syntax=docker/dockerfile:1
# A static musl binary (rustls with ring, no OpenSSL) on distroless: no shell, no libc, UID 65532.
FROM docker.io/library/rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools=1.2.3-1 \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --target x86_64-unknown-linux-musl --bin image-access-operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/target/x86_64-unknown-linux-musl/release/image-access-operator /image-access-operator
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/image-access-operator"]
