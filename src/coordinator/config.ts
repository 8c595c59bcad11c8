// Coordinator configuration: defaults, a JSON file (`--config FILE`) merged over them, and
// validation that names the offending key and what is allowed.
import { readFileSync } from 'node:fs';
import { DEFAULT_TEMPLATE_CONFIG, type TemplateConfig, validateTemplateConfig } from '../shared/template.js';
import { parseEscalationConfig } from './level0/escalation.js';

export interface LimitsConfig {
  /** Registered clients at most (registering more is RESOURCE_EXHAUSTED). */
  maxClients: number;
  /** Tasks one client may declare. */
  maxTasksPerClient: number;
  /** Largest gRPC message accepted (bytes); bigger ones fail with RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** Largest probe Gram matrix per layer (bytes, n·n·4). */
  maxProbeLayerBytes: number;
  /** Largest similarity matrix a query may ask for (models); filter by task beyond this. */
  maxSimilarityModels: number;
}

export interface SessionsConfig {
  /** Interval clients heartbeat at (told at register/welcome). */
  heartbeatIntervalMs: number;
  /** Silence after which a session is gone. */
  timeoutMs: number;
}

export interface StorageConfig {
  /** SQLite synchronous mode: "full" (fsync per commit, default) or "normal". */
  synchronous: 'full' | 'normal';
  /** Writes per group-commit transaction at most. */
  maxBatch: number;
}

export interface MetricsConfig {
  /** Models exported with client/task labels at most (most divergent first). */
  maxModelSeries: number;
  /** Clients exported with a client label at most (most recently seen first). */
  maxClientSeries: number;
  /** Export prom-client's process_* / nodejs_* metrics. */
  defaultMetrics: boolean;
}

export interface AnalysisConfig {
  /** Default time to wait for probe answers (ms). */
  probeDeadlineMs: number;
}

export interface CoordinatorConfig {
  template: TemplateConfig;
  limits: LimitsConfig;
  sessions: SessionsConfig;
  storage: StorageConfig;
  metrics: MetricsConfig;
  analysis: AnalysisConfig;
  /** Escalation thresholds; typed by src/coordinator/escalation.ts, validated here through it. */
  escalation: Record<string, unknown>;
  /** Authentication (issue 8); typed and resolved by src/coordinator/auth.ts (resolveAuthConfig). */
  auth: Record<string, unknown>;
}

export const DEFAULT_CONFIG: CoordinatorConfig = {
  template: DEFAULT_TEMPLATE_CONFIG,
  limits: {
    maxClients: 10_000,
    maxTasksPerClient: 64,
    maxMessageBytes: 16 * 1024 * 1024,
    maxProbeLayerBytes: 64 * 1024 * 1024,
    maxSimilarityModels: 200,
  },
  sessions: { heartbeatIntervalMs: 5_000, timeoutMs: 15_000 },
  storage: { synchronous: 'full', maxBatch: 4096 },
  metrics: { maxModelSeries: 2_000, maxClientSeries: 2_000, defaultMetrics: true },
  analysis: { probeDeadlineMs: 60_000 },
  escalation: {},
  auth: {},
};

export type DeepPartial<T> = T extends (infer U)[]
  ? U[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

export class ConfigError extends Error {}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Sections whose keys belong to another module (validated there, not by key lists here). */
const OPEN_SECTIONS = new Set(['escalation', 'auth']);

/**
 * Merges `override` over `base`: objects key by key, everything else (arrays included) replaced.
 * Keys absent from `base` are errors, except inside open sections (`escalation`).
 */
function mergeInto(base: unknown, override: unknown, path: string, open: boolean): unknown {
  if (override === undefined) return structuredClone(base);
  if (isPlainObject(base)) {
    if (!isPlainObject(override)) throw new ConfigError(`${path} must be an object`);
    const out: Record<string, unknown> = structuredClone(base);
    for (const [key, value] of Object.entries(override)) {
      const where = path ? `${path}.${key}` : key;
      if (!(key in base) && !open) {
        throw new ConfigError(`unknown setting ${where} (known: ${Object.keys(base).join(', ')})`);
      }
      const openSection = open || OPEN_SECTIONS.has(where);
      out[key] = key in base ? mergeInto(base[key], value, where, openSection) : value;
    }
    return out;
  }
  return structuredClone(override);
}

function checkInt(v: unknown, path: string, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`${path} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
}

function checkChoice(v: unknown, path: string, choices: readonly string[]): void {
  if (typeof v !== 'string' || !choices.includes(v)) {
    throw new ConfigError(
      `${path} must be one of ${choices.map((c) => `"${c}"`).join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
}

function checkBool(v: unknown, path: string): void {
  if (typeof v !== 'boolean')
    throw new ConfigError(`${path} must be true or false, got ${JSON.stringify(v)}`);
}

/** Validates a complete configuration; throws ConfigError naming the first bad key. */
export function validateConfig(c: CoordinatorConfig): void {
  const l = c.limits;
  checkInt(l.maxClients, 'limits.maxClients', 1, 10_000_000);
  checkInt(l.maxTasksPerClient, 'limits.maxTasksPerClient', 1, 10_000);
  checkInt(l.maxMessageBytes, 'limits.maxMessageBytes', 64 * 1024, 1024 * 1024 * 1024);
  checkInt(l.maxProbeLayerBytes, 'limits.maxProbeLayerBytes', 16, 1024 * 1024 * 1024);
  checkInt(l.maxSimilarityModels, 'limits.maxSimilarityModels', 1, 100_000);
  const s = c.sessions;
  checkInt(s.heartbeatIntervalMs, 'sessions.heartbeatIntervalMs', 10, 3_600_000);
  checkInt(s.timeoutMs, 'sessions.timeoutMs', 20, 24 * 3_600_000);
  if (s.timeoutMs <= s.heartbeatIntervalMs) {
    throw new ConfigError(
      `sessions.timeoutMs (${s.timeoutMs}) must be larger than sessions.heartbeatIntervalMs (${s.heartbeatIntervalMs}); ` +
        'three intervals is a good choice',
    );
  }
  checkChoice(c.storage.synchronous, 'storage.synchronous', ['full', 'normal']);
  checkInt(c.storage.maxBatch, 'storage.maxBatch', 1, 1_000_000);
  checkInt(c.metrics.maxModelSeries, 'metrics.maxModelSeries', 0, 1_000_000);
  checkInt(c.metrics.maxClientSeries, 'metrics.maxClientSeries', 0, 1_000_000);
  checkBool(c.metrics.defaultMetrics, 'metrics.defaultMetrics');
  checkInt(c.analysis.probeDeadlineMs, 'analysis.probeDeadlineMs', 1, 24 * 3_600_000);
  if (!isPlainObject(c.escalation)) throw new ConfigError('escalation must be an object');
  try {
    parseEscalationConfig(c.escalation);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (!isPlainObject(c.auth)) throw new ConfigError('auth must be an object');
  try {
    validateTemplateConfig(c.template);
  } catch (err) {
    throw new ConfigError(`template: ${(err as Error).message}`);
  }
}

/** Defaults with `override` merged over them, validated. */
export function resolveConfig(
  override: DeepPartial<CoordinatorConfig> | Record<string, unknown> = {},
): CoordinatorConfig {
  const merged = mergeInto(DEFAULT_CONFIG, override, '', false) as CoordinatorConfig;
  validateConfig(merged);
  return merged;
}

/** Reads a JSON configuration file and resolves it over the defaults. */
export function loadConfigFile(path: string): CoordinatorConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (!isPlainObject(parsed)) throw new ConfigError(`config file ${path} must hold a JSON object`);
  try {
    return resolveConfig(parsed);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`config file ${path}: ${err.message}`);
    throw err;
  }
}
