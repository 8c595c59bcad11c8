// Composition root: builds the coordinator's parts from options, starts the gRPC and HTTP
// servers, and stops them in order (stop accepting → end sessions → drain calls → close storage).
import type { Server as HttpServer } from 'node:http';
import type { ServerOptions as HttpsOptions } from 'node:https';
import type * as grpc from '@grpc/grpc-js';
import { createLogger, type Logger } from '../shared/log.js';
import { buildTemplate, type ModelTemplate } from '../shared/template.js';
import { probeSetIdentity } from '../shared/template-file.js';
import { encodeFloat32 } from '../shared/tensor.js';
import { ATOMLENS_VERSION } from '../shared/version.js';
import { bindGrpcServer, createGrpcServer } from './api/grpc-server.js';
import type { HealthStatus } from './api/health.js';
import { createHttpServer, type HttpAuthorize, listenHttp } from './api/http.js';
import { OperatorQueries } from './api/operator-queries.js';
import type { Authorize } from './calls.js';
import { type CoordinatorConfig, type DeepPartial, resolveConfig } from './config.js';
import { type Enroll, FederationCore } from './federation/federation.js';
import { SessionRegistry } from './federation/sessions.js';
import { SimilarityIndex } from './level0/similarity-index.js';
import type { AnalysisFactory, AnalysisService } from './level1/types.js';
import { CoordinatorMetrics } from './metrics.js';
import { lockDataDir } from './storage/data-dir-lock.js';
import { openStorage } from './storage/open.js';
import type { Storage } from './storage/types.js';

export interface CoordinatorOptions {
  /** Directory for the SQLite file (created if missing). */
  dataDir: string;
  /** Default 127.0.0.1. */
  grpcHost?: string;
  /** 0 (default) = pick a free port. */
  grpcPort?: number;
  /** Default: grpcHost. */
  httpHost?: string;
  /** 0 (default) = pick a free port. */
  httpPort?: number;
  /** A resolved configuration, or overrides merged over the defaults (validated either way). */
  config?: DeepPartial<CoordinatorConfig>;
  /**
   * The federation's template, e.g. from a template file (α and initial atoms explicit). When
   * absent, the template is generated from the configuration's `template` section (α from its seed).
   */
  template?: ModelTemplate;
  /**
   * An operator-chosen probe set (float32, [n, ...input shape]): the template's probe becomes
   * source 'operator' with its SHA-256, and clients fetch it with FetchProbeSet.
   */
  probeSet?: { values: Float32Array; shape: number[] };
  /** Level-1 analysis; without it, report/analysis calls answer UNIMPLEMENTED / 501. */
  analysis?: AnalysisFactory;
  logger?: Logger;
  /** gRPC transport credentials (TLS). Default insecure. */
  grpcCredentials?: grpc.ServerCredentials;
  /** Per-call authorisation on metadata (bearer tokens, mTLS identity). */
  authorize?: Authorize;
  /** Enrolment check at Register. */
  enroll?: Enroll;
  /** Told when the operator removed a client (its tokens end). */
  clientRemoved?: (clientId: string) => void;
  /** HTTP authorisation. */
  httpAuthorize?: HttpAuthorize;
  /** Link tokens for report pages (GetReportResponse.view_token); absent = none issued. */
  reportViewToken?: (reportId: string) => string;
  /** Serve the HTTP side over TLS with these node:https options. */
  httpsOptions?: HttpsOptions;
  /** PostgreSQL connection URL (postgres://…); without it the state is SQLite in dataDir. */
  store?: string;
  /** Storage to use instead of opening one (tests). */
  storage?: Storage;
}

export interface RunningCoordinator {
  grpcPort: number;
  httpPort: number;
  config: CoordinatorConfig;
  template: ModelTemplate;
  storage: Storage;
  sessions: SessionRegistry;
  similarity: SimilarityIndex;
  metrics: CoordinatorMetrics;
  federation: FederationCore;
  operator: OperatorQueries;
  analysis: AnalysisService | undefined;
  /**
   * Stops the coordinator. With drain (default) it waits up to `graceMs` for calls in flight and
   * commits queued writes; without, it cuts connections at once (queued writes are still
   * committed — they were never acknowledged, but there is no reason to drop them).
   */
  stop(options?: { drain?: boolean; graceMs?: number }): Promise<void>;
}

const TEMPLATE_META = 'template';

/** Refuses a data directory written for a different template (its atoms would not fit). */
async function checkTemplate(storage: Storage, template: ModelTemplate): Promise<void> {
  const identity = JSON.stringify({
    alphaFingerprint: template.alphaFingerprint,
    layers: template.layers.map((l) => ({ name: l.name, m: l.m, k: l.k })),
  });
  const stored = await storage.getMeta(TEMPLATE_META);
  if (stored === undefined) {
    await storage.setMeta(TEMPLATE_META, identity);
    return;
  }
  if (stored !== identity) {
    throw new Error(
      'the data directory holds atoms for a different model template (α fingerprint or layer shapes differ); ' +
        'start with the template it was created with, or use a new --data directory',
    );
  }
}

/** The coordinator's state and roles, before any server listens. */
interface Core {
  config: CoordinatorConfig;
  template: ModelTemplate;
  logger: Logger;
  metrics: CoordinatorMetrics;
  storage: Storage;
  similarity: SimilarityIndex;
  sessions: SessionRegistry;
  federation: FederationCore;
  operator: OperatorQueries;
  analysis: AnalysisService | undefined;
  stopRetention: () => void;
}

type Cleanup = (() => Promise<void> | void)[];

/**
 * Deletes what `retention` says is old enough, at start and every `retention.intervalMs`; counts
 * it in atomlens_retention_pruned_total. Returns the stop function.
 */
function startRetention(base: Pick<Core, 'config' | 'logger' | 'metrics' | 'storage'>): () => void {
  const { probeSummariesMs, reportsMs, intervalMs } = base.config.retention;
  if (probeSummariesMs === 0 && reportsMs === 0) return () => {};
  let running = false;
  const prune = async () => {
    if (running) return;
    running = true;
    const now = Date.now();
    try {
      const pruned = await base.storage.prune({
        ...(probeSummariesMs > 0 ? { probeSummariesBeforeMs: now - probeSummariesMs } : {}),
        ...(reportsMs > 0 ? { reportsBeforeMs: now - reportsMs } : {}),
      });
      base.metrics.retentionPruned.inc({ kind: 'probe_summaries' }, pruned.probeSummaries);
      base.metrics.retentionPruned.inc({ kind: 'reports' }, pruned.reports);
      if (pruned.probeSummaries + pruned.reports > 0)
        base.logger.info('retention pruned stored data', { ...pruned });
    } catch (err) {
      base.logger.error('retention failed', { error: (err as Error)?.stack ?? String(err) });
    } finally {
      running = false;
    }
  };
  void prune();
  const timer = setInterval(() => void prune(), intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** Checks the data directory against the template, loads the state and builds the roles. */
async function buildCore(
  options: CoordinatorOptions,
  base: Pick<Core, 'config' | 'template' | 'logger' | 'metrics' | 'storage'>,
  cleanup: Cleanup,
): Promise<Core> {
  const { config, template, logger, metrics, storage } = base;
  await checkTemplate(storage, template);
  const similarity = new SimilarityIndex(template.layers);
  const sessions = new SessionRegistry({
    heartbeatIntervalMs: config.sessions.heartbeatIntervalMs,
    timeoutMs: config.sessions.timeoutMs,
    metrics,
    logger: logger.child('sessions'),
  });
  cleanup.unshift(() => sessions.stop());
  const federation = new FederationCore({
    ...base,
    similarity,
    sessions,
    ...(options.enroll ? { enroll: options.enroll } : {}),
    ...(options.clientRemoved ? { clientRemoved: options.clientRemoved } : {}),
  });
  const warm = await federation.warmUp();
  logger.info('state loaded', {
    clients: warm.clients,
    models: warm.models,
    uploads: await storage.countUploads(),
  });
  const operator = new OperatorQueries({ config, federation, storage, similarity, sessions });
  metrics.bind({
    clientsRegistered: () => federation.clientCount,
    clientsConnected: () => sessions.connectedCount(),
    lastSeen: () => sessions.lastSeenAll().entries(),
    divergences: () => similarity.divergences(),
    federationSimilarity: () => similarity.federationSimilarity(),
    layerNames: () => template.layers.map((l) => l.name),
  });
  const analysis = options.analysis?.({
    ...base,
    sessions,
    similarity,
    logger: logger.child('analysis'),
    onUpload: (listener) => federation.onUpload(listener),
  });
  if (analysis?.close) cleanup.unshift(() => analysis.close!());
  const stopRetention = startRetention(base);
  cleanup.unshift(stopRetention);
  return { ...base, similarity, sessions, federation, operator, analysis, stopRetention };
}

interface Servers {
  grpcServer: grpc.Server;
  grpcPort: number;
  httpServer: HttpServer;
  httpPort: number;
  health: HealthStatus;
  /** Why the coordinator is not ready (HTTP /readyz); undefined while it is. */
  stopping: string | undefined;
}

/** Binds gRPC, then HTTP; reports SERVING on the health service once both listen. */
async function startServers(
  options: CoordinatorOptions,
  core: Core & { probeSetBytes: Buffer | undefined },
  cleanup: Cleanup,
): Promise<Servers> {
  const { server: grpcServer, health } = createGrpcServer({
    ...core,
    authorize: options.authorize,
    reportViewToken: options.reportViewToken,
    ...(core.probeSetBytes ? { probeSet: core.probeSetBytes } : {}),
  });
  const grpcHost = options.grpcHost ?? '127.0.0.1';
  const grpcPort = await bindGrpcServer(grpcServer, {
    host: grpcHost,
    port: options.grpcPort ?? 0,
    ...(options.grpcCredentials ? { credentials: options.grpcCredentials } : {}),
  });
  cleanup.unshift(() => grpcServer.forceShutdown());
  const servers: Partial<Servers> & { stopping: string | undefined } = { stopping: undefined };
  const httpServer = createHttpServer({
    metrics: core.metrics,
    analysis: core.analysis,
    logger: core.logger,
    notReady: () => servers.stopping,
    ...(options.httpAuthorize ? { authorize: options.httpAuthorize } : {}),
    ...(options.httpsOptions ? { https: options.httpsOptions } : {}),
  });
  const httpPort = await listenHttp(httpServer, options.httpHost ?? grpcHost, options.httpPort ?? 0);
  cleanup.unshift(() => closeHttp(httpServer, 0));
  health.serving();
  return Object.assign(servers, { grpcServer, grpcPort, httpServer, httpPort, health });
}

/**
 * Stop in order: not ready → end sessions → close the analysis → drain calls → close storage →
 * release the data directory.
 */
function stopper(core: Core, servers: Servers, unlock: () => void): RunningCoordinator['stop'] {
  const { sessions, analysis, logger, storage } = core;
  let stopped: Promise<void> | undefined;
  return (stopOptions = {}) => {
    stopped ??= (async () => {
      const drain = stopOptions.drain ?? true;
      const graceMs = stopOptions.graceMs ?? 5_000;
      servers.stopping = 'shutting down';
      servers.health.shutDown();
      core.stopRetention();
      sessions.stop();
      if (analysis?.close) {
        await analysis
          .close()
          .catch((err: unknown) => logger.error('analysis close failed', { error: String(err) }));
      }
      if (drain) await shutdownGrpc(servers.grpcServer, graceMs);
      else servers.grpcServer.forceShutdown();
      await closeHttp(servers.httpServer, drain ? graceMs : 0);
      try {
        await storage.close();
      } finally {
        unlock();
      }
      logger.info('stopped');
    })();
    return stopped;
  };
}

/** The template with the operator's probe set in place of its own (validated against the input shape). */
function withProbeSet(
  template: ModelTemplate,
  probeSet: CoordinatorOptions['probeSet'],
): { template: ModelTemplate; probeSetBytes: Buffer | undefined } {
  if (!probeSet) {
    if (template.customNetwork) {
      throw new Error('a template for a custom network needs the operator probe set: --probe-set probe.npy');
    }
    return { template, probeSetBytes: undefined };
  }
  const identity = probeSetIdentity(probeSet.values, probeSet.shape);
  if (template.probe.sha256 && template.probe.sha256 !== identity.sha256) {
    throw new Error(
      `the probe set given (SHA-256 ${identity.sha256}) is not the one the template records (${template.probe.sha256})`,
    );
  }
  const n = probeSet.shape[0]!;
  if (probeSet.shape.slice(1).join() !== template.inputShape.join()) {
    throw new Error(
      `the probe set's inputs have shape [${probeSet.shape.slice(1).join(', ')}] but the template's input shape is [${template.inputShape.join(', ')}]`,
    );
  }
  if (n < 2 || n > 4096) throw new Error(`the probe set has ${n} inputs; use 2 to 4096`);
  const probe = {
    ...template.probe,
    source: 'operator' as const,
    size: n,
    seed: 0,
    sha256: identity.sha256,
    shape: identity.shape,
  };
  return {
    template: { ...template, probe },
    probeSetBytes: Buffer.from(encodeFloat32(probeSet.values, probeSet.shape).data),
  };
}

export async function startCoordinator(options: CoordinatorOptions): Promise<RunningCoordinator> {
  const logger = options.logger ?? createLogger('coordinator');
  const config = resolveConfig(options.config ?? {});
  const { template, probeSetBytes } = withProbeSet(
    options.template ?? buildTemplate(config.template),
    options.probeSet,
  );
  const metrics = new CoordinatorMetrics(
    {
      version: ATOMLENS_VERSION,
      maxModelSeries: config.metrics.maxModelSeries,
      maxClientSeries: config.metrics.maxClientSeries,
      defaultMetrics: config.metrics.defaultMetrics,
    },
    (msg) => logger.warn(msg),
  );
  // Before anything in the directory is opened: a second coordinator stops here.
  const unlock = lockDataDir(options.dataDir);
  let storage: Storage;
  try {
    storage =
      options.storage ??
      (await openStorage({
        store: options.store,
        dataDir: options.dataDir,
        synchronous: config.storage.synchronous,
        maxBatch: config.storage.maxBatch,
        maxQueuedWrites: config.storage.maxQueuedWrites,
      }));
  } catch (err) {
    unlock();
    throw err;
  }
  storage.onCommit((seconds) => metrics.storageCommit.observe(seconds));
  metrics.bindStorage(() => storage.writeQueue());
  const cleanup: Cleanup = [() => storage.close(), unlock];
  try {
    const core = await buildCore(options, { config, template, logger, metrics, storage }, cleanup);
    const servers = await startServers(options, { ...core, probeSetBytes }, cleanup);
    const { similarity, sessions, federation, operator, analysis } = core;
    return {
      grpcPort: servers.grpcPort,
      httpPort: servers.httpPort,
      config,
      template,
      storage,
      sessions,
      similarity,
      metrics,
      federation,
      operator,
      analysis,
      stop: stopper(core, servers, unlock),
    };
  } catch (err) {
    for (const fn of cleanup) {
      try {
        await fn();
      } catch {
        // Already failing; the original error is the one to report.
      }
    }
    throw err;
  }
}

function shutdownGrpc(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function closeHttp(server: HttpServer, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    server.closeIdleConnections();
    if (graceMs === 0) server.closeAllConnections();
    else setTimeout(() => server.closeAllConnections(), graceMs).unref();
  });
}
