# phantom-engine in a slim image: the release binary on Debian bookworm.
#
#   docker build -t phantom-engine .
#   docker run --rm --ulimit memlock=67108864 -v /srv/phantom:/var/lib/phantom \
#       -p 7100:7100/udp -p 9100:9100 phantom-engine \
#       node --config /var/lib/phantom/node.toml --genesis /var/lib/phantom/genesis.toml
#
# io_uring needs the memlock limit (--ulimit memlock) and a kernel >= 5.8;
# some container runtimes' seccomp profiles refuse io_uring: allow it or
# run with --security-opt seccomp=unconfined.

FROM rust:1.88-slim-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release -p phantom-engine

FROM debian:bookworm-slim
RUN useradd --system --home-dir /var/lib/phantom --shell /usr/sbin/nologin phantom \
    && install -d -o phantom -g phantom -m 0750 /var/lib/phantom
COPY --from=build /src/target/release/phantom-engine /usr/local/bin/phantom-engine
USER phantom
WORKDIR /var/lib/phantom
VOLUME ["/var/lib/phantom"]
EXPOSE 7100/udp 9100/tcp
ENTRYPOINT ["/usr/local/bin/phantom-engine"]
CMD ["node", "--config", "/var/lib/phantom/node.toml", "--genesis", "/var/lib/phantom/genesis.toml"]
