// The one JSON Schema of the coordinator's configuration file: every section, key, type, range
// and default. `config.ts` compiles it once (ajv) and uses it for --config files, --print-config
// and the options startCoordinator is given, so all three accept and refuse exactly the same.
// Cross-key rules a schema cannot say clearly (timeout vs heartbeat, the template's layer chain)
// are checked after it, in config.ts.
import type { SchemaObject } from 'ajv';
import { DEFAULT_PROBE_COST, PROBE_COSTS } from '../analysis/representation.js';
import { ID_CHARACTERS, ID_MAX_LENGTH, ID_PATTERN } from '../shared/ids.js';
import { DEFAULT_TEMPLATE_CONFIG } from '../shared/template.js';
import { DEFAULT_ESCALATION_CONFIG } from './level0/escalation.js';

const HOUR_MS = 3_600_000;
const GIB = 1024 * 1024 * 1024;

const int = (minimum: number, maximum: number, value: number | undefined, description: string) => ({
  type: 'integer',
  minimum,
  maximum,
  ...(value !== undefined ? { default: value } : {}),
  description,
});
const nonNegative = (value: number, description: string) => ({
  type: 'number',
  minimum: 0,
  default: value,
  description,
});
const bool = (value: boolean | undefined, description: string) => ({
  type: 'boolean',
  ...(value !== undefined ? { default: value } : {}),
  description,
});
const choice = (values: readonly string[], value: string | undefined, description: string) => ({
  enum: [...values],
  ...(value !== undefined ? { default: value } : {}),
  description,
});
const text = (description: string) => ({ type: 'string', description });
const section = (description: string, properties: Record<string, SchemaObject>): SchemaObject => ({
  type: 'object',
  additionalProperties: false,
  default: {},
  description,
  properties,
});

const NAME_PATTERN = ID_PATTERN.source;
const t = DEFAULT_TEMPLATE_CONFIG;
const e = DEFAULT_ESCALATION_CONFIG;

const layerSchema: SchemaObject = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'cIn', 'cOut', 'k', 'm', 'stride', 'padding', 'activation', 'poolAfter'],
  properties: {
    name: {
      type: 'string',
      pattern: NAME_PATTERN,
      description: `Layer name (1–${ID_MAX_LENGTH} characters of ${ID_CHARACTERS})`,
    },
    cIn: int(1, 65_536, undefined, 'Input channels (the previous layer’s cOut)'),
    cOut: int(1, 65_536, undefined, 'Output channels'),
    k: int(1, 64, undefined, 'Kernel size k (k×k)'),
    m: int(1, 4096, undefined, 'Atoms per layer (at most k·k)'),
    stride: int(1, 64, undefined, 'Convolution stride'),
    padding: choice(['same', 'valid'], undefined, 'Convolution padding'),
    activation: choice(['relu', 'linear'], undefined, 'Activation after the convolution'),
    poolAfter: int(0, 64, undefined, 'Max-pool window after the activation; 0 or 1 = none'),
  },
};

const templateSchema = section('The model template every client trains (α follows from alphaSeed)', {
  federationId: {
    type: 'string',
    pattern: NAME_PATTERN,
    default: t.federationId,
    description: 'Federation name',
  },
  version: int(1, 2 ** 31 - 1, t.version, 'Template version'),
  inputShape: {
    type: 'array',
    items: { type: 'integer', minimum: 1, maximum: 65_536 },
    minItems: 3,
    maxItems: 3,
    default: t.inputShape,
    description: 'Input [height, width, channels]',
  },
  layers: {
    type: 'array',
    items: layerSchema,
    minItems: 1,
    default: t.layers,
    description: 'The atom-factored convolutions, in order',
  },
  headHidden: int(0, 65_536, t.headHidden, 'Hidden units of the per-task head; 0 = none'),
  headInput: choice(['flatten', 'gap'], t.headInput, 'How the head reads the last layer'),
  alphaSeed: int(0, 2 ** 32 - 1, t.alphaSeed, 'Seed α is generated from'),
  probe: section('The probe set clients run for level-1 analyses', {
    source: choice(['mnist', 'noise'], t.probe.source, 'Where probe inputs come from'),
    size: int(2, 4096, t.probe.size, 'Probe inputs n'),
    seed: int(0, 2 ** 32 - 1, t.probe.seed, 'Seed choosing the probe inputs'),
    pooling: choice(['gap', 'flatten'], t.probe.pooling, 'How spatial outputs are summarised'),
  }),
  probeLayers: {
    type: 'array',
    items: { type: 'string' },
    default: t.probeLayers,
    description: 'Layers whose outputs probe summaries cover',
  },
});

const escalationSchema = section('When level 0 escalates to a level-1 analysis', {
  enabled: bool(e.enabled, 'Automatic escalation (operator requests always work)'),
  divergenceThreshold: nonNegative(e.divergenceThreshold, 'Divergence from the task centroid that escalates'),
  driftThreshold: nonNegative(e.driftThreshold, 'Drift between consecutive rounds that escalates'),
  fingerprintMismatch: bool(e.fingerprintMismatch, 'Escalate for a model whose α fingerprint differs'),
  similarityChange: nonNegative(e.similarityChange, 'Change of the federation similarity that escalates'),
  scheduleMs: nonNegative(e.scheduleMs, 'Analyse every model this often (ms); 0 = never'),
  cooldownMs: nonNegative(e.cooldownMs, 'Minimum time between automatic analyses (ms)'),
  modelCooldownMs: nonNegative(e.modelCooldownMs, 'Minimum time before a model can trigger again (ms)'),
  maxModels: int(2, 100_000, e.maxModels, 'Models in one automatic analysis at most'),
  probeDeadlineMs: nonNegative(e.probeDeadlineMs, 'Probe deadline of automatic analyses (ms); 0 = default'),
});

const authSchema = section('Authentication; on by default with TLS (see docs/security.md)', {
  enabled: bool(undefined, 'Check tokens; absent = on with TLS, off without'),
  enrollmentSecret: text('Enrolment secret (≥ 16 characters); or enrollmentSecretFile'),
  enrollmentSecretFile: text('File holding the enrolment secret, relative to the config file'),
  mtlsEnrollment: bool(true, 'Clients with a CA-verified certificate whose CN is their id may enrol'),
  tokenTtlSeconds: int(1, 365 * 24 * 3600, 24 * 3600, 'Lifetime of client tokens (s)'),
  operatorTokens: {
    type: 'array',
    items: { type: 'string' },
    description: 'Operator tokens, as "sha256:<hex>" or the token itself',
  },
  operatorTokenFile: text('File of operator tokens, one a line, relative to the config file'),
  metrics: choice(['open', 'operator'], 'open', 'Who may read /metrics'),
  health: choice(['open', 'operator'], 'open', 'Who may read /healthz, /readyz and the gRPC health service'),
});

export const COORDINATOR_CONFIG_SCHEMA: SchemaObject = {
  $id: 'atomlens-coordinator-config',
  type: 'object',
  additionalProperties: false,
  properties: {
    template: templateSchema,
    limits: section('Sizes the coordinator accepts', {
      maxClients: int(1, 10_000_000, 10_000, 'Registered clients at most'),
      maxTasksPerClient: int(1, 10_000, 64, 'Tasks one client may declare'),
      maxMessageBytes: int(64 * 1024, GIB, 16 * 1024 * 1024, 'Largest gRPC message accepted (bytes)'),
      maxProbeLayerBytes: int(
        16,
        GIB,
        64 * 1024 * 1024,
        'Largest probe layer upload: Gram matrix n·n·4 or factor n·r·4 (bytes)',
      ),
      maxSimilarityModels: int(1, 100_000, 200, 'Largest similarity matrix a query may ask for (models)'),
      firstMessageMs: int(
        10,
        HOUR_MS,
        10_000,
        'A Session or PushProbeSummary stream without its first message after this long ends (ms)',
      ),
      maxStreamsPerConnection: int(2, 100_000, 100, 'Concurrent calls on one connection at most'),
      idleConnectionMs: int(
        100,
        24 * HOUR_MS,
        300_000,
        'A connection without calls this long is closed (ms)',
      ),
    }),
    sessions: section('Client sessions (heartbeats)', {
      heartbeatIntervalMs: int(10, HOUR_MS, 5_000, 'Interval clients heartbeat at (ms)'),
      timeoutMs: int(20, 24 * HOUR_MS, 15_000, 'Silence after which a session is gone (ms)'),
    }),
    storage: section('Embedded SQLite storage', {
      synchronous: choice(['full', 'normal'], 'full', 'SQLite synchronous mode: fsync per commit, or not'),
      maxBatch: int(1, 1_000_000, 4096, 'Writes per group-commit transaction at most'),
      maxQueuedWrites: int(
        1,
        10_000_000,
        10_000,
        'Writes waiting to commit beyond which uploads, registrations and probe summaries are refused with RESOURCE_EXHAUSTED',
      ),
    }),
    metrics: section('Prometheus metrics', {
      maxModelSeries: int(0, 1_000_000, 2_000, 'Models exported with client/task labels at most'),
      maxClientSeries: int(0, 1_000_000, 2_000, 'Clients exported with a client label at most'),
      defaultMetrics: bool(true, 'Export process_* and nodejs_* metrics'),
    }),
    analysis: section('Level-1 analyses', {
      probeDeadlineMs: int(1, 24 * HOUR_MS, 60_000, 'Default time to wait for probe answers (ms)'),
      timeoutMs: int(
        1_000,
        7 * 24 * HOUR_MS,
        HOUR_MS,
        'An analysis running longer than this (ms, from its start) ends with outcome timeout',
      ),
      maxModels: int(2, 100_000, 200, 'Models one analysis may cover at most'),
      maxWaiting: int(0, 1_000, 4, 'Analyses allowed to wait behind the running one; more are refused'),
      cost: choice(
        PROBE_COSTS,
        DEFAULT_PROBE_COST,
        'What GW compares probe layers by: euclidean or sqeuclidean (squared) distances between probe inputs (docs/EVIDENCE.md, "Which cost")',
      ),
    }),
    retention: section('How long stored data is kept (0 = for ever)', {
      probeSummariesMs: int(
        0,
        10 * 365 * 24 * HOUR_MS,
        0,
        'Delete probe summaries this long after they arrived (ms)',
      ),
      reportsMs: int(0, 10 * 365 * 24 * HOUR_MS, 0, 'Delete reports this long after they were written (ms)'),
      intervalMs: int(100, 24 * HOUR_MS, HOUR_MS, 'How often retention runs (ms); also at start'),
    }),
    escalation: escalationSchema,
    auth: authSchema,
  },
};
