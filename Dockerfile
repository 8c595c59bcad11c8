# syntax=docker/dockerfile:1
# atomlens coordinator (and client) image. Not built on the project's own machines (they have no
# container engine); see deploy/README.md. Build from the repository root:
#   docker build -t atomlens:0.1.0 .
# atomlens runs from its TypeScript sources through tsx (a runtime dependency), so there is no
# compile step: the build stage only installs dependencies, which needs a toolchain because
# better-sqlite3 is a native addon.

FROM node:20-slim AS build
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Manifests, the proto contract and the generator first: `npm ci` runs `prepare`, which
# generates the gRPC types from proto/, and this layer stays cached while only sources change.
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY proto ./proto
# The optional @tensorflow/tfjs-node is attempted too; where it cannot be installed npm skips
# it and the clients use the pure-JavaScript TensorFlow backends.
RUN npm ci --no-audit --no-fund \
  && npm prune --omit=dev --no-audit --no-fund \
  && npm cache clean --force
COPY bin ./bin
COPY src ./src
# The report JSON schema, for operators validating reports taken from the image.
COPY schemas ./schemas
COPY tsconfig.json ./

FROM node:20-slim AS runtime
ENV NODE_ENV=production \
    ATOMLENS_HTTP_PORT=9464
WORKDIR /app
# The `node` user (uid 1000) ships with the base image; nothing in /app is writable by it.
COPY --from=build --chown=root:root /app /app
RUN mkdir -p /data && chown node:node /data
USER node
# The embedded database, atom history and reports live here; mount a volume to keep them.
VOLUME ["/data"]
# 50051: gRPC (Federation + Operator services); 9464: HTTP (/metrics, /healthz, /readyz, /reports).
EXPOSE 50051 9464
# The probe (deploy/docker/healthcheck.mjs) is Node itself (slim images have no curl); it asks
# /healthz over HTTPS or plain HTTP, whichever the coordinator serves.
COPY deploy/docker/healthcheck.mjs /app/healthcheck.mjs
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "/app/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/bin/atomlens.js"]
# Secure by default: the coordinator serves plaintext only on loopback. Mount its certificate and
# key at /etc/atomlens/secrets (scripts/make-certs.sh: server.pem -> tls.crt, server-key.pem ->
# tls.key) and give clients a way to enrol (ATOMLENS_ENROLLMENT_SECRET, or a config file); or, on
# a trusted network only, replace the TLS flags with --insecure (deploy/compose.yaml does).
CMD ["coordinator", "--host", "0.0.0.0", "--grpc-port", "50051", "--http-port", "9464", "--data", "/data", \
     "--tls-cert", "/etc/atomlens/secrets/tls.crt", "--tls-key", "/etc/atomlens/secrets/tls.key"]
