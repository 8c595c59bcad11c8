// Coordinator configuration: one JSON Schema (config-schema.ts) gives every key its type, range
// and default; a JSON file (`--config FILE`), --print-config and startCoordinator's options are
// all validated by it and by the cross-key rules below, so they accept and refuse the same things.
// Errors name the key path and what is allowed.
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject, type SchemaObject, type ValidateFunction } from 'ajv';
import type { ProbeCost } from '../analysis/representation.js';
import { type TemplateConfig, validateTemplateConfig } from '../shared/template.js';
import { COORDINATOR_CONFIG_SCHEMA } from './config-schema.js';
import type { EscalationConfig } from './level0/escalation.js';

export interface LimitsConfig {
  /** Registered clients at most (registering more is RESOURCE_EXHAUSTED). */
  maxClients: number;
  /** Tasks one client may declare. */
  maxTasksPerClient: number;
  /** Largest gRPC message accepted (bytes); bigger ones fail with RESOURCE_EXHAUSTED. */
  maxMessageBytes: number;
  /** Largest probe layer upload (bytes): a Gram matrix n·n·4, or a factor n·r·4. */
  maxProbeLayerBytes: number;
  /** Largest similarity matrix a query may ask for (models); filter by task beyond this. */
  maxSimilarityModels: number;
  /** A Session or PushProbeSummary stream without its first message after this long ends (ms). */
  firstMessageMs: number;
  /** Concurrent calls (HTTP/2 streams) on one connection at most. */
  maxStreamsPerConnection: number;
  /** A connection without calls for this long is closed (ms). */
  idleConnectionMs: number;
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
  /** Writes waiting or committing beyond which client writes are refused (RESOURCE_EXHAUSTED). */
  maxQueuedWrites: number;
}

export interface MetricsConfig {
  /** Models exported with client/task labels at most (most divergent first). */
  maxModelSeries: number;
  /** Clients exported with a client label at most (most recently seen first). */
  maxClientSeries: number;
  /** Export prom-client's process_* / nodejs_* metrics. */
  defaultMetrics: boolean;
}

export interface RetentionConfig {
  /** Probe summaries are deleted this long after they arrived (ms); 0 keeps them. */
  probeSummariesMs: number;
  /** Reports are deleted this long after they were written (ms); 0 keeps them. */
  reportsMs: number;
  /** How often retention runs (ms); it also runs at start. */
  intervalMs: number;
}

export interface AnalysisConfig {
  /** Default time to wait for probe answers (ms). */
  probeDeadlineMs: number;
  /** An analysis still running this long after it started ends with outcome `timeout` (ms). */
  timeoutMs: number;
  /** Models one analysis may cover at most (operator requests; escalation has its own cap). */
  maxModels: number;
  /** Analyses allowed to wait behind the running one; more are refused as busy. */
  maxWaiting: number;
  /** What GW compares probe layers by (Euclidean or squared Euclidean distances). */
  cost: ProbeCost;
}

/**
 * The `auth` section as written: secrets may still be file names, and `enabled` may be absent
 * (then it follows the transport). auth/config.ts resolves it into an AuthConfig.
 */
export interface AuthSection {
  enabled?: boolean;
  enrollmentSecret?: string;
  enrollmentSecretFile?: string;
  mtlsEnrollment: boolean;
  tokenTtlSeconds: number;
  operatorTokens?: string[];
  operatorTokenFile?: string;
  metrics: 'open' | 'operator';
  health: 'open' | 'operator';
}

export interface CoordinatorConfig {
  template: TemplateConfig;
  limits: LimitsConfig;
  sessions: SessionsConfig;
  storage: StorageConfig;
  metrics: MetricsConfig;
  analysis: AnalysisConfig;
  retention: RetentionConfig;
  escalation: EscalationConfig;
  auth: AuthSection;
}

export type DeepPartial<T> = T extends (infer U)[]
  ? U[]
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

/** @internal exported for its tests */
export class ConfigError extends Error {}

let compiled: ValidateFunction | undefined;

/** The schema validator, compiled on first use; it fills in defaults as it validates. */
function schemaValidator(): ValidateFunction {
  compiled ??= new Ajv({ useDefaults: true, verbose: true, allErrors: false, strict: true }).compile(
    COORDINATOR_CONFIG_SCHEMA,
  );
  return compiled;
}

/** `/template/layers/0/cIn` → `template.layers[0].cIn`. */
function keyPath(pointer: string): string {
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((path, part) => (/^\d+$/.test(part) ? `${path}[${part}]` : path ? `${path}.${part}` : part), '');
}

/** What a schema node allows, in words: "an integer from 1 to 100", `one of "a", "b"`. */
function expected(node: SchemaObject): string {
  if (Array.isArray(node.enum)) return `one of ${node.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  const range = (noun: string) => {
    if (node.minimum !== undefined && node.maximum !== undefined)
      return `${noun} from ${node.minimum} to ${node.maximum}`;
    if (node.minimum !== undefined) return `${noun} ≥ ${node.minimum}`;
    return noun;
  };
  switch (node.type) {
    case 'integer':
      return range('an integer');
    case 'number':
      return range('a number');
    case 'boolean':
      return 'true or false';
    case 'string':
      return node.pattern ? `a string matching ${node.pattern}` : 'a string';
    case 'object':
      return 'an object';
    case 'array': {
      const items = node.items ? `, each ${expected(node.items as SchemaObject)}` : '';
      const count =
        node.minItems !== undefined && node.minItems === node.maxItems
          ? ` of ${node.minItems}`
          : node.minItems
            ? ` of at least ${node.minItems}`
            : '';
      return `an array${count}${items}`;
    }
    default:
      return 'a valid value';
  }
}

/** One line for a schema violation: the key path, what is allowed, and what was given. */
function describeError(error: ErrorObject): string {
  const path = keyPath(error.instancePath);
  const at = (key: string) => (path ? `${path}.${key}` : key);
  if (error.keyword === 'additionalProperties') {
    const known = Object.keys((error.parentSchema as SchemaObject).properties ?? {});
    return `unknown setting ${at(String(error.params.additionalProperty))} (known: ${known.join(', ')})`;
  }
  if (error.keyword === 'required') return `${at(String(error.params.missingProperty))} is required`;
  const node = error.parentSchema as SchemaObject;
  return `${path || 'the configuration'} must be ${expected(node)}, got ${JSON.stringify(error.data)}`;
}

/** The rules that involve more than one key. */
function checkAcrossKeys(c: CoordinatorConfig): void {
  const s = c.sessions;
  if (s.timeoutMs <= s.heartbeatIntervalMs) {
    throw new ConfigError(
      `sessions.timeoutMs (${s.timeoutMs}) must be larger than sessions.heartbeatIntervalMs (${s.heartbeatIntervalMs}); ` +
        'three intervals is a good choice',
    );
  }
  if (c.auth.enrollmentSecret !== undefined && c.auth.enrollmentSecretFile !== undefined) {
    throw new ConfigError('auth: give enrollmentSecret or enrollmentSecretFile, not both');
  }
  try {
    validateTemplateConfig(c.template);
  } catch (err) {
    throw new ConfigError(`template: ${(err as Error).message}`);
  }
}

/**
 * The configuration `raw` describes: sections and keys it leaves out take their defaults,
 * objects merge key by key, arrays are replaced whole. Throws ConfigError naming the first bad key.
 */
export function resolveConfig(
  raw: DeepPartial<CoordinatorConfig> | Record<string, unknown> = {},
): CoordinatorConfig {
  const config = structuredClone(raw) as unknown;
  const validate = schemaValidator();
  if (!validate(config)) throw new ConfigError(describeError(validate.errors![0]!));
  checkAcrossKeys(config as CoordinatorConfig);
  return config as CoordinatorConfig;
}

/** Escalation settings: `override` over the defaults, validated like the file's section. */
export function resolveEscalationConfig(override: Partial<EscalationConfig> = {}): EscalationConfig {
  return resolveConfig({ escalation: override }).escalation;
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
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  try {
    return resolveConfig(parsed as Record<string, unknown>);
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`config file ${path}: ${err.message}`);
    throw err;
  }
}
