// The `auth` section of the coordinator's configuration, resolved: secrets read from files or the
// environment, operator tokens reduced to SHA-256 digests, and the start-up check that an enabled
// configuration lets someone enrol.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type AuthSection, resolveConfig } from '../config.js';
import { tokenDigest } from './tokens.js';

type HttpAccess = 'open' | 'operator';

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

/** Secrets shorter than this are refused: they could be guessed online. */
const MIN_SECRET_LENGTH = 16;

export class AuthConfigError extends Error {}

function readSecretFile(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new AuthConfigError(`auth.${key}: cannot read '${path}': ${(err as Error).message}`);
  }
}

/** The section checked against the configuration schema, defaults filled in. */
function validatedSection(raw: unknown): AuthSection {
  try {
    return resolveConfig(raw === undefined ? {} : { auth: raw }).auth;
  } catch (err) {
    throw new AuthConfigError((err as Error).message);
  }
}

function enrollmentSecretFrom(
  section: AuthSection,
  env: Record<string, string | undefined>,
  baseDir: string,
): string | undefined {
  let secret: string | undefined;
  if (section.enrollmentSecret !== undefined) secret = section.enrollmentSecret;
  else if (section.enrollmentSecretFile !== undefined) {
    secret = readSecretFile(resolve(baseDir, section.enrollmentSecretFile), 'enrollmentSecretFile');
  } else if (env.ATOMLENS_ENROLLMENT_SECRET) secret = env.ATOMLENS_ENROLLMENT_SECRET;
  if (secret !== undefined && secret.length < MIN_SECRET_LENGTH) {
    throw new AuthConfigError(
      `the enrolment secret must be at least ${MIN_SECRET_LENGTH} characters (generate one with: openssl rand -hex 24)`,
    );
  }
  return secret;
}

/** Operator tokens from the section, its token file and the environment, as SHA-256 hex digests. */
function operatorTokenDigestsFrom(
  section: AuthSection,
  env: Record<string, string | undefined>,
  baseDir: string,
): string[] {
  const tokens = [...(section.operatorTokens ?? [])];
  if (section.operatorTokenFile !== undefined) {
    const text = readSecretFile(resolve(baseDir, section.operatorTokenFile), 'operatorTokenFile');
    tokens.push(
      ...text
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#')),
    );
  }
  if (env.ATOMLENS_OPERATOR_TOKEN) tokens.push(env.ATOMLENS_OPERATOR_TOKEN);
  return tokens.map((t, i) => {
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
}

/**
 * Builds the auth configuration from the `auth` section of the coordinator's JSON config and the
 * environment (ATOMLENS_ENROLLMENT_SECRET, ATOMLENS_OPERATOR_TOKEN). The section is checked by the
 * configuration schema; secret files are read relative to baseDir (the config file's directory).
 * Throws AuthConfigError naming the key.
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
  defaultEnabled = false,
): AuthConfig {
  const section = validatedSection(raw);
  const enrollmentSecret = enrollmentSecretFrom(section, env, baseDir);
  return {
    enabled: section.enabled ?? defaultEnabled,
    ...(enrollmentSecret !== undefined ? { enrollmentSecret } : {}),
    mtlsEnrollment: section.mtlsEnrollment,
    tokenTtlSeconds: section.tokenTtlSeconds,
    operatorTokenDigests: operatorTokenDigestsFrom(section, env, baseDir),
    http: { metrics: section.metrics, health: section.health },
  };
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
