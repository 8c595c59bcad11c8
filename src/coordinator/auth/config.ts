// The `auth` section of the coordinator's configuration, resolved: secrets read from files or the
// environment, operator tokens reduced to SHA-256 digests, and the start-up check that an enabled
// configuration lets someone enrol.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { tokenDigest } from './tokens.js';

export type HttpAccess = 'open' | 'operator';

export interface AuthConfig {
  /** false: no checks at all and Register returns an empty token (loopback demos only). */
  enabled: boolean;
  /** Per-federation enrolment secret; absent = enrolment only through an mTLS identity. */
  enrollmentSecret?: string;
  /** A client with a CA-verified certificate whose CN equals its id may enrol without the secret. */
  mtlsEnrollment: boolean;
  /** Lifetime of client tokens. Clients re-register (with the secret) to get a new one. */
  tokenTtlSeconds: number;
  /** Lower-case hex SHA-256 digests of the operator tokens. */
  operatorTokenDigests: string[];
  /** Who may read /metrics and /healthz, /readyz. Reports and analyses always need an operator token. */
  http: { metrics: HttpAccess; health: HttpAccess };
}

export const DEFAULT_AUTH_CONFIG: AuthConfig = {
  enabled: false,
  mtlsEnrollment: true,
  tokenTtlSeconds: 24 * 3600,
  operatorTokenDigests: [],
  http: { metrics: 'open', health: 'open' },
};

/** Secrets shorter than this are refused: they could be guessed online. */
export const MIN_SECRET_LENGTH = 16;

export class AuthConfigError extends Error {}

function readSecretFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new AuthConfigError(`auth.${key}: cannot read '${path}': ${(err as Error).message}`);
  }
}

/**
 * Builds the auth configuration from the `auth` section of the coordinator's JSON config and the
 * environment (ATOMLENS_ENROLLMENT_SECRET, ATOMLENS_OPERATOR_TOKEN). Secret files are resolved
 * relative to baseDir (the config file's directory). Throws AuthConfigError naming the key.
 *
 *   "auth": { "enabled": true, "enrollmentSecret": "…" | "enrollmentSecretFile": "secret.txt",
 *             "mtlsEnrollment": true, "tokenTtlSeconds": 86400,
 *             "operatorTokens": ["sha256:<hex>", "<raw token>"], "operatorTokenFile": "ops.txt",
 *             "metrics": "open" | "operator", "health": "open" | "operator" }
 */
export function resolveAuthConfig(
  raw: unknown,
  env: Record<string, string | undefined> = process.env,
  baseDir = '.',
  /** `enabled` when the section does not say: the CLI turns authentication on with TLS. */
  defaultEnabled = DEFAULT_AUTH_CONFIG.enabled,
): AuthConfig {
  if (raw !== undefined && (raw === null || typeof raw !== 'object' || Array.isArray(raw))) {
    throw new AuthConfigError('auth must be an object');
  }
  const section = (raw ?? {}) as Record<string, unknown>;
  const known = new Set([
    'enabled',
    'enrollmentSecret',
    'enrollmentSecretFile',
    'mtlsEnrollment',
    'tokenTtlSeconds',
    'operatorTokens',
    'operatorTokenFile',
    'metrics',
    'health',
  ]);
  for (const key of Object.keys(section)) {
    if (!known.has(key))
      throw new AuthConfigError(`auth.${key} is not a known setting (known: ${[...known].join(', ')})`);
  }
  const bool = (key: string, fallback: boolean): boolean => {
    const v = section[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new AuthConfigError(`auth.${key} must be true or false`);
    return v;
  };
  const access = (key: string, fallback: HttpAccess): HttpAccess => {
    const v = section[key];
    if (v === undefined) return fallback;
    if (v !== 'open' && v !== 'operator')
      throw new AuthConfigError(`auth.${key} must be "open" or "operator"`);
    return v;
  };

  let enrollmentSecret: string | undefined;
  if (section.enrollmentSecret !== undefined && section.enrollmentSecretFile !== undefined) {
    throw new AuthConfigError('auth: give enrollmentSecret or enrollmentSecretFile, not both');
  }
  if (section.enrollmentSecret !== undefined) {
    if (typeof section.enrollmentSecret !== 'string')
      throw new AuthConfigError('auth.enrollmentSecret must be a string');
    enrollmentSecret = section.enrollmentSecret;
  } else if (section.enrollmentSecretFile !== undefined) {
    if (typeof section.enrollmentSecretFile !== 'string') {
      throw new AuthConfigError('auth.enrollmentSecretFile must be a path');
    }
    enrollmentSecret = readSecretFile(resolve(baseDir, section.enrollmentSecretFile), 'enrollmentSecretFile');
  } else if (env.ATOMLENS_ENROLLMENT_SECRET) {
    enrollmentSecret = env.ATOMLENS_ENROLLMENT_SECRET;
  }
  if (enrollmentSecret !== undefined && enrollmentSecret.length < MIN_SECRET_LENGTH) {
    throw new AuthConfigError(
      `the enrolment secret must be at least ${MIN_SECRET_LENGTH} characters (generate one with: openssl rand -hex 24)`,
    );
  }

  const operatorTokens: string[] = [];
  if (section.operatorTokens !== undefined) {
    if (!Array.isArray(section.operatorTokens) || section.operatorTokens.some((t) => typeof t !== 'string')) {
      throw new AuthConfigError(
        'auth.operatorTokens must be an array of strings ("sha256:<hex>" or the token)',
      );
    }
    operatorTokens.push(...(section.operatorTokens as string[]));
  }
  if (section.operatorTokenFile !== undefined) {
    if (typeof section.operatorTokenFile !== 'string')
      throw new AuthConfigError('auth.operatorTokenFile must be a path');
    const text = readSecretFile(resolve(baseDir, section.operatorTokenFile), 'operatorTokenFile');
    operatorTokens.push(
      ...text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#')),
    );
  }
  if (env.ATOMLENS_OPERATOR_TOKEN) operatorTokens.push(env.ATOMLENS_OPERATOR_TOKEN);
  const operatorTokenDigests = operatorTokens.map((t, i) => {
    if (t.startsWith('sha256:')) {
      const hex = t.slice(7).toLowerCase();
      if (!/^[0-9a-f]{64}$/.test(hex)) {
        throw new AuthConfigError(`operator token #${i + 1}: sha256: must be followed by 64 hex digits`);
      }
      return hex;
    }
    if (t.length < MIN_SECRET_LENGTH) {
      throw new AuthConfigError(
        `operator token #${i + 1} is shorter than ${MIN_SECRET_LENGTH} characters (generate one with: openssl rand -hex 24)`,
      );
    }
    return tokenDigest(t);
  });

  const ttl = section.tokenTtlSeconds ?? DEFAULT_AUTH_CONFIG.tokenTtlSeconds;
  if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 1 || ttl > 365 * 24 * 3600) {
    throw new AuthConfigError('auth.tokenTtlSeconds must be an integer from 1 to 31536000 (one year)');
  }

  const config: AuthConfig = {
    enabled: bool('enabled', defaultEnabled),
    ...(enrollmentSecret !== undefined ? { enrollmentSecret } : {}),
    mtlsEnrollment: bool('mtlsEnrollment', DEFAULT_AUTH_CONFIG.mtlsEnrollment),
    tokenTtlSeconds: ttl,
    operatorTokenDigests,
    http: {
      metrics: access('metrics', DEFAULT_AUTH_CONFIG.http.metrics),
      health: access('health', DEFAULT_AUTH_CONFIG.http.health),
    },
  };
  return config;
}

/**
 * Start-up check of an enabled configuration against the transport: a federation nobody can
 * enrol in, or operator-only HTTP routes without operator tokens, are configuration mistakes.
 */
export function checkAuthUsable(
  config: AuthConfig,
  transport: { tls: boolean; clientCertificates: boolean },
): void {
  if (!config.enabled) return;
  const mtls = transport.tls && transport.clientCertificates && config.mtlsEnrollment;
  if (config.enrollmentSecret === undefined && !mtls) {
    throw new AuthConfigError(
      'authentication is on but no client can enrol: set auth.enrollmentSecret (or ATOMLENS_ENROLLMENT_SECRET), or use mutual TLS (--tls-client-ca) with auth.mtlsEnrollment',
    );
  }
}
