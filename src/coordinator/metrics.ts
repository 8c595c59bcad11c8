// Prometheus metrics of the coordinator. One prom-client Registry per
// coordinator — never the global default registry — so several coordinators (tests, benches) can
// live in one process.
//
// Names are a contract with deploy/ (dashboards, alert rules); do not rename.
//
// Cardinality: `client` and `task` labels come only from registered models and are capped:
//   * atomlens_model_{divergence,drift,round}: at most `maxModelSeries` models per scrape — when
//     there are more, the ones with the highest divergence are exported (those are the ones an
//     operator wants to see);
//   * atomlens_client_last_seen_timestamp_seconds: at most `maxClientSeries` clients, most recently
//     seen first.
// Round numbers, request ids and the like never become labels.
import client from 'prom-client';
import type { DivergenceEntry } from './level0/similarity-index.js';

export interface MetricsOptions {
  version: string;
  /** Cap on models exported with client/task labels (default 2000). */
  maxModelSeries?: number;
  /** Cap on clients exported with a client label (default 2000). */
  maxClientSeries?: number;
  /** Also export prom-client's process_* and nodejs_* metrics (default true). */
  defaultMetrics?: boolean;
}

/** prom-client's process_* and nodejs_* metrics. */
function registerProcessMetrics(registry: client.Registry): void {
  client.collectDefaultMetrics({ register: registry });
  // prom-client names three gauges *_total, which `promtool check metrics` rejects (the suffix is
  // reserved for counters). Their per-type breakdown, nodejs_active_{handles,requests,resources},
  // stays and carries the same information.
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ]) {
    registry.removeSingleMetric(name);
  }
}

/** What the scrape-time gauges read. Bound once the coordinator's parts exist. */
export interface MetricsSources {
  clientsRegistered(): number;
  clientsConnected(): number;
  /** clientId → last time seen (ms since the epoch). */
  lastSeen(): Iterable<[string, number]>;
  /** Divergence, drift and round of every model: O(models) — called once per scrape. */
  divergences(): DivergenceEntry[];
  federationSimilarity(): { perLayer: Float64Array; mean: number; models: number };
  layerNames(): readonly string[];
}

/** What the storage gauges read (the storage exists before the rest is bound). */
export type StorageQueueSource = () => { queued: number; limit: number; refused: number };

export type UploadOutcome =
  | 'accepted'
  | 'duplicate'
  | 'invalid'
  | 'not_found'
  | 'conflict'
  | 'busy'
  | 'rejected';
export type ProbeOutcome = 'answered' | 'failed' | 'timeout' | 'gone';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const COMMIT_BUCKETS = [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1];
const ANALYSIS_BUCKETS = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800];

export class CoordinatorMetrics {
  readonly registry: client.Registry;
  readonly maxModelSeries: number;
  readonly maxClientSeries: number;

  readonly buildInfo: client.Gauge<'version'>;
  readonly clientsRegistered: client.Gauge;
  readonly clientsConnected: client.Gauge;
  readonly sessionsGone: client.Counter;
  readonly atomUploads: client.Counter<'outcome'>;
  readonly federationSimilarity: client.Gauge<'layer'>;
  readonly federationSimilarityMean: client.Gauge;
  /** Incremented by the escalation logic, one per triggered analysis. */
  readonly escalations: client.Counter<'reason'>;
  /** Finished analyses by outcome. */
  readonly analyses: client.Counter<'outcome'>;
  readonly analysisDuration: client.Histogram;
  readonly analysisInProgress: client.Gauge;
  readonly analysisProgress: client.Gauge;
  readonly probeRequests: client.Counter<'outcome'>;
  readonly grpcRequests: client.Counter<'method' | 'code'>;
  readonly grpcDuration: client.Histogram<'method'>;
  readonly storageCommit: client.Histogram;
  readonly storageQueued: client.Gauge;
  readonly storageRefused: client.Counter;
  /** Rows deleted by retention, by kind (probe_summaries, reports). */
  readonly retentionPruned: client.Counter<'kind'>;

  private sources: MetricsSources | undefined;
  private storageQueue: StorageQueueSource | undefined;
  private refusedSeen = 0;
  private warnedCap = false;
  private readonly warn: (msg: string) => void;

  constructor(options: MetricsOptions, warn: (msg: string) => void = () => {}) {
    this.warn = warn;
    this.maxModelSeries = options.maxModelSeries ?? 2000;
    this.maxClientSeries = options.maxClientSeries ?? 2000;
    const registers = [new client.Registry()];
    this.registry = registers[0]!;
    if (options.defaultMetrics ?? true) registerProcessMetrics(this.registry);
    const self = this;

    this.buildInfo = new client.Gauge({
      name: 'atomlens_build_info',
      help: 'Always 1; the version label says which atomlens build is running.',
      labelNames: ['version'],
      registers,
    });
    this.buildInfo.set({ version: options.version }, 1);
    this.clientsRegistered = new client.Gauge({
      name: 'atomlens_clients_registered',
      help: 'Clients that have registered with this coordinator.',
      registers,
      collect() {
        if (self.sources) this.set(self.sources.clientsRegistered());
      },
    });
    this.clientsConnected = new client.Gauge({
      name: 'atomlens_clients_connected',
      help: 'Clients with a live Session stream.',
      registers,
      collect() {
        if (self.sources) this.set(self.sources.clientsConnected());
      },
    });
    this.sessionsGone = new client.Counter({
      name: 'atomlens_sessions_gone_total',
      help: 'Sessions that ended without the client closing them: heartbeat timeout or broken transport.',
      registers,
    });
    this.atomUploads = new client.Counter({
      name: 'atomlens_atom_uploads_total',
      help: 'PushAtoms calls by outcome: accepted, duplicate, invalid, not_found, conflict, busy (write queue full), rejected.',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['accepted', 'duplicate', 'invalid', 'not_found', 'conflict', 'busy', 'rejected']) {
      this.atomUploads.inc({ outcome }, 0);
    }
    this.federationSimilarity = new client.Gauge({
      name: 'atomlens_federation_similarity',
      help: 'Mean pairwise atom cosine over the current models that share alpha, per layer (needs two models).',
      labelNames: ['layer'],
      registers,
      collect() {
        this.reset();
        if (!self.sources) return;
        const sim = self.sources.federationSimilarity();
        if (sim.models < 2) return;
        self.sources.layerNames().forEach((layer, i) => {
          this.set({ layer }, sim.perLayer[i]!);
        });
      },
    });
    this.federationSimilarityMean = new client.Gauge({
      name: 'atomlens_federation_similarity_mean',
      help: 'atomlens_federation_similarity averaged over layers.',
      registers,
      collect() {
        this.reset();
        if (!self.sources) return;
        const sim = self.sources.federationSimilarity();
        if (sim.models >= 2) this.set(sim.mean);
      },
    });
    this.escalations = new client.Counter({
      name: 'atomlens_escalations_total',
      help: 'Escalations to level 1 (probe + GW analysis) by trigger reason.',
      labelNames: ['reason'],
      registers,
    });
    this.analyses = new client.Counter({
      name: 'atomlens_analyses_total',
      help: 'Finished analyses by outcome: completed, failed, timeout, cancelled.',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['completed', 'failed', 'timeout', 'cancelled']) this.analyses.inc({ outcome }, 0);
    this.analysisDuration = new client.Histogram({
      name: 'atomlens_analysis_duration_seconds',
      help: 'Wall time of an analysis from request to report.',
      buckets: ANALYSIS_BUCKETS,
      registers,
    });
    this.analysisInProgress = new client.Gauge({
      name: 'atomlens_analysis_in_progress',
      help: 'Analyses currently running.',
      registers,
    });
    this.analysisProgress = new client.Gauge({
      name: 'atomlens_analysis_progress_ratio',
      help: 'Progress (0..1) of the most recently updated running analysis.',
      registers,
    });
    this.probeRequests = new client.Counter({
      name: 'atomlens_probe_requests_total',
      help: 'Probe requests sent to clients by outcome: answered, failed, timeout, gone.',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['answered', 'failed', 'timeout', 'gone']) this.probeRequests.inc({ outcome }, 0);
    this.grpcRequests = new client.Counter({
      name: 'atomlens_grpc_requests_total',
      help: 'gRPC calls handled, by method (Service/Method) and status code name.',
      labelNames: ['method', 'code'],
      registers,
    });
    this.grpcDuration = new client.Histogram({
      name: 'atomlens_grpc_request_duration_seconds',
      help: 'Handling time of gRPC calls by method (streams: until the call ends).',
      labelNames: ['method'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.storageCommit = new client.Histogram({
      name: 'atomlens_storage_commit_duration_seconds',
      help: 'Duration of one storage commit (a group-commit batch of writes).',
      buckets: COMMIT_BUCKETS,
      registers,
    });
    const storage = this.storageQueueMetrics(registers);
    this.storageQueued = storage.queued;
    this.storageRefused = storage.refused;
    this.retentionPruned = new client.Counter({
      name: 'atomlens_retention_pruned_total',
      help: 'Stored rows deleted by retention (retention.probeSummariesMs, retention.reportsMs), by kind.',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['probe_summaries', 'reports']) this.retentionPruned.inc({ kind }, 0);
  }

  /** The write queue's gauge and refusal counter, read from the storage at scrape time. */
  private storageQueueMetrics(registers: client.Registry[]): {
    queued: client.Gauge;
    refused: client.Counter;
  } {
    const self = this;
    const queued = new client.Gauge({
      name: 'atomlens_storage_queued_writes',
      help: 'Writes waiting for or in a storage commit; client writes are refused (RESOURCE_EXHAUSTED) at storage.maxQueuedWrites.',
      registers,
      collect() {
        if (self.storageQueue) this.set(self.storageQueue().queued);
      },
    });
    const refused = new client.Counter({
      name: 'atomlens_storage_writes_refused_total',
      help: 'Client writes (uploads, registrations, probe summaries) refused because storage.maxQueuedWrites writes were queued.',
      registers,
      collect() {
        if (!self.storageQueue) return;
        const total = self.storageQueue().refused;
        if (total > self.refusedSeen) this.inc(total - self.refusedSeen);
        self.refusedSeen = total;
      },
    });
    return { queued, refused };
  }

  /** Connects the scrape-time gauges to the coordinator's state. */
  bind(sources: MetricsSources): void {
    this.sources = sources;
  }

  /** Connects the storage write-queue gauge and refusal counter to the storage. */
  bindStorage(queue: StorageQueueSource): void {
    this.storageQueue = queue;
  }

  /**
   * The exposition text. The per-model and per-client families are rendered here rather than
   * through prom-client Gauges: at 10,000 models, setting 40,000 labelled gauge children and letting
   * prom-client format them costs several hundred milliseconds, rendering the lines directly a
   * few tens. Their O(models) divergence computation runs once per scrape.
   */
  async scrape(): Promise<string> {
    const standard = await this.registry.metrics();
    return `${standard}\n${this.renderModelFamilies()}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private renderModelFamilies(): string {
    let divergences = this.sources ? this.sources.divergences() : [];
    if (divergences.length > this.maxModelSeries) {
      if (!this.warnedCap) {
        this.warnedCap = true;
        this.warn(
          `${divergences.length} models exceed metrics.maxModelSeries (${this.maxModelSeries}); ` +
            'exporting the most divergent ones only',
        );
      }
      divergences = divergences.sort((a, b) => b.divergence - a.divergence).slice(0, this.maxModelSeries);
    }
    let seen = this.sources ? [...this.sources.lastSeen()] : [];
    if (seen.length > this.maxClientSeries)
      seen = seen.sort((a, b) => b[1] - a[1]).slice(0, this.maxClientSeries);
    const modelLabels = divergences.map(
      (d) => `{client="${escapeLabel(d.clientId)}",task="${escapeLabel(d.taskId)}"}`,
    );
    const family = (name: string, help: string, lines: string[]) =>
      `# HELP ${name} ${help}\n# TYPE ${name} gauge\n${lines.length > 0 ? `${lines.join('\n')}\n` : ''}`;
    return [
      family(
        'atomlens_client_last_seen_timestamp_seconds',
        `Unix time a client was last heard from (register, upload or heartbeat); at most ${this.maxClientSeries} clients, most recent first.`,
        seen.map(
          ([id, ms]) =>
            `atomlens_client_last_seen_timestamp_seconds{client="${escapeLabel(id)}"} ${formatValue(ms / 1000)}`,
        ),
      ),
      family(
        'atomlens_model_divergence',
        `1 - atom cosine to the centroid of the same task's other models (subspace measure when alpha differs); at most ${this.maxModelSeries} models, most divergent first.`,
        divergences.map((d, i) => `atomlens_model_divergence${modelLabels[i]} ${formatValue(d.divergence)}`),
      ),
      family(
        'atomlens_model_drift',
        '1 - atom cosine between a model and its previous round (mean over layers).',
        divergences.flatMap((d, i) =>
          d.drift === undefined ? [] : [`atomlens_model_drift${modelLabels[i]} ${formatValue(d.drift)}`],
        ),
      ),
      family(
        'atomlens_model_round',
        'Latest acknowledged round of a model.',
        divergences.map((d, i) => `atomlens_model_round${modelLabels[i]} ${formatValue(d.round)}`),
      ),
    ].join('\n');
  }
}

/** Label value escaping of the text exposition format (backslash, double quote, newline). */
function escapeLabel(value: string): string {
  return /[\\"\n]/.test(value)
    ? value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
    : value;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(v);
}
