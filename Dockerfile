# The `soulchat` binary in a small image: one image for every role (docker-compose.yml and the
# Deployments of deploy/k8s pick the role with the command: `gateway`, `worker user`, `migrate`,
# …). A sketch: not built in CI (no Docker engine there).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin soulchat \
 && cp target/release/soulchat /usr/local/bin/soulchat

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 soulchat \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/soulchat --create-home soulchat
COPY --from=build /usr/local/bin/soulchat /usr/local/bin/soulchat
USER soulchat
WORKDIR /var/lib/soulchat
ENV SOULCHAT_DATA_DIR=/var/lib/soulchat \
    SOULCHAT_HTTP_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
# The gateway's HTTP API; every role's admin listener (/healthz, /readyz, /metrics) when
# SOULCHAT_METRICS_ADDR=0.0.0.0:9464, as compose and deploy/k8s set it.
EXPOSE 8080 9464
ENTRYPOINT ["soulchat"]
CMD ["--help"]
