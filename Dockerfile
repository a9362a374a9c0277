# syntax=docker/dockerfile:1
#
# One image, three binaries: `api` (default, also serving the web client at /), `worker`, `scheduler`.
#   docker build -t marketplace --build-arg GIT_COMMIT="$(git rev-parse HEAD)" .
#   docker run --rm marketplace api migrate      # apply migrations to an existing database, exit
#                                                 # (DATABASE_CREATE=true also creates a missing one)
#   docker run --rm -p 8080:8080 marketplace      # serve HTTP on 0.0.0.0:8080
#   docker run --rm marketplace worker            # or: scheduler
# Configuration is environment only (see README / DESIGN.md "Configuration contract").
# The image defaults to APP_ENV=production, which requires JWT_SECRET (>= 32 bytes),
# STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET, and refuses PAYMENTS=dev.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm
ARG NODE_VERSION=20

# ---------------------------------------------------------------------------------------------------
# The web client: static files the api serves at / (WEB_DIR).
FROM node:${NODE_VERSION}-${DEBIAN_RELEASE}-slim AS web

WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,id=marketplace-npm,target=/root/.npm \
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

# ---------------------------------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder

WORKDIR /src

# SQLX_OFFLINE: never reach for a database at compile time; the query macros are checked against the
# committed .sqlx/ (also set in .cargo/config.toml, which COPY brings along).
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never \
    CARGO_INCREMENTAL=0

COPY . .

# The commit the binaries report as `build_info{commit}` (read at compile time; `unknown` when not
# given): docker build --build-arg GIT_COMMIT="$(git rev-parse HEAD)" .
ARG GIT_COMMIT=unknown
ENV GIT_COMMIT=${GIT_COMMIT}

# The crate registry, git checkouts and the target dir are BuildKit cache mounts, so a rebuild after a
# source edit recompiles only the workspace crates. The target dir is not part of any layer, so the
# binaries are copied out of it in the same RUN.
RUN --mount=type=cache,id=marketplace-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=marketplace-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=marketplace-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p api -p worker -p scheduler \
    && mkdir -p /out \
    && cp target/release/api target/release/worker target/release/scheduler /out/

# ---------------------------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

# ca-certificates: TLS to Stripe, Google, Sentry (rustls with the system roots / webpki roots).
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# /var/lib/marketplace/objects: the default place of a shared image volume
# (OBJECT_STORE_URL=file:///var/lib/marketplace/objects); a named volume mounted there takes its owner
# from this directory.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin app \
    && mkdir -p /var/lib/marketplace/objects \
    && chown 10001:10001 /var/lib/marketplace/objects

COPY --from=builder /out/api /out/worker /out/scheduler /usr/local/bin/
COPY --from=web /web/dist /usr/share/marketplace/web

ENV APP_ENV=production \
    PORT=8080 \
    WEB_DIR=/usr/share/marketplace/web \
    LOG_FORMAT=json \
    RUST_LOG=info

USER 10001:10001
EXPOSE 8080

# Each binary handles SIGTERM itself (drains, exits 0), so it runs as PID 1 without an init.
STOPSIGNAL SIGTERM
CMD ["api"]
