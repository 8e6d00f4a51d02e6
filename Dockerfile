# The `soulchat` binary in a small image: one image for every role (docker-compose.yml picks the
# role with the command: `gateway`, `worker user`, …). A sketch: not built in CI (no Docker engine
# there).
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
 && useradd --system --uid 10001 --home-dir /var/lib/soulchat --create-home soulchat
COPY --from=build /usr/local/bin/soulchat /usr/local/bin/soulchat
USER soulchat
WORKDIR /var/lib/soulchat
ENV SOULCHAT_DATA_DIR=/var/lib/soulchat \
    SOULCHAT_HTTP_ADDR=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080
ENTRYPOINT ["soulchat"]
CMD ["--help"]
