// Who may call what: client enrolment, bearer tokens bound to a client id, operator tokens, and
// the per-call check the gRPC and HTTP servers run before touching any state.
//
// Token design — HMAC-signed, not stored:
//   token = "al1:" clientId ":" issuedAtMs ":" expiresAtMs ":" nonce ":" base64url(HMAC-SHA256(key, payload))
// The key is 32 random bytes kept in the data dir (owner-only), so tokens survive a coordinator
// restart. Verifying a token is one HMAC over ~80 bytes (microseconds) and needs no storage read,
// which matters on the PushAtoms hot path (thousands of calls/s) and keeps the storage schema
// untouched. Expiry is inside the signed payload. Revocation is the one piece of state: a small
// list (per-token nonces until they expire, and per-client "not before" + block flags) kept in
// memory and persisted atomically next to the key. Rotating the key file revokes every token.
//
// Secrets are compared in constant time (crypto.timingSafeEqual on equal-length SHA-256 digests
// or HMACs), never logged, and never echoed in error messages.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { peerCommonName } from '../../shared/tls.js';
import { type Authorize, RpcError } from '../api/rpc.js';
import type { Enroll } from '../federation/federation.js';

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

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

/** SHA-256 hex digest of a token, the form operator tokens may be configured in. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

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

// ---------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------

export type Principal =
  | { kind: 'client'; clientId: string; expiresAtMs: number }
  | { kind: 'operator' }
  /** Authentication disabled. */
  | { kind: 'anonymous' };

export type Requirement = { kind: 'client'; clientId: string } | { kind: 'operator' };

/** A gRPC status error the server can pass straight to a callback or `call.destroy()`. */
export class AuthError extends Error {
  readonly code: grpc.status;
  readonly details: string;
  constructor(code: grpc.status.UNAUTHENTICATED | grpc.status.PERMISSION_DENIED, details: string) {
    super(details);
    this.name = 'AuthError';
    this.code = code;
    this.details = details;
  }
  /** The HTTP status that corresponds: 401 or 403. */
  get httpStatus(): 401 | 403 {
    return this.code === grpc.status.UNAUTHENTICATED ? 401 : 403;
  }
}

export type AuthResult<T> = { ok: true; value: T } | { ok: false; error: AuthError };

const unauthenticated = (details: string): { ok: false; error: AuthError } => ({
  ok: false,
  error: new AuthError(grpc.status.UNAUTHENTICATED, details),
});
const denied = (details: string): { ok: false; error: AuthError } => ({
  ok: false,
  error: new AuthError(grpc.status.PERMISSION_DENIED, details),
});

/** What the checks need from a grpc-js server call (any kind: unary, streaming, duplex). */
export interface CallLike {
  metadata: grpc.Metadata;
  getAuthContext?: () => { sslPeerCertificate?: PeerCertificate } | null;
}

/** CN of the CA-verified client certificate on the call's connection, if there is one. */
export function callPeerCommonName(call: CallLike): string | undefined {
  const ctx = call.getAuthContext?.();
  return peerCommonName(ctx?.sslPeerCertificate);
}

const TOKEN_PREFIX = 'al1';
const HMAC_DOMAIN = 'atomlens-client-token-v1\n';
const CLIENT_ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const MAC_BYTES = 32;

function constantTimeEqualDigests(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** The bearer token in `authorization` metadata/header, or a reason it is unusable. */
export function bearerFrom(values: readonly unknown[]): AuthResult<string> {
  if (values.length === 0) {
    return unauthenticated(
      "missing credentials: send metadata 'authorization: Bearer <token>' (clients get a token from Register)",
    );
  }
  if (values.length > 1) return unauthenticated('more than one authorization value; send exactly one');
  const v = values[0];
  if (typeof v !== 'string') return unauthenticated('authorization must be a text value');
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(v.trim());
  if (!match) return unauthenticated("authorization must have the form 'Bearer <token>'");
  return { ok: true, value: match[1]! };
}

interface RevocationState {
  /** Revoked token nonces → their expiry (dropped once expired). */
  tokens: Map<string, number>;
  /** Per client: tokens issued before notBeforeMs are invalid; blocked clients cannot enrol. */
  clients: Map<string, { notBeforeMs: number; blocked: boolean }>;
}

export interface AuthenticatorOptions {
  /** 32-byte HMAC key. */
  key: Buffer;
  /** Where revocations persist (JSON); memory only when absent. */
  revocationFile?: string;
  /** Clock, injectable for expiry tests. */
  now?: () => number;
}

export interface Enrollment {
  /** Bearer token for later calls; '' when authentication is disabled. */
  token: string;
  expiresAtMs: number;
  /** How the client proved itself. */
  via: 'disabled' | 'secret' | 'mtls';
}

export class Authenticator {
  readonly config: AuthConfig;
  private readonly key: Buffer;
  private readonly now: () => number;
  private readonly revocationFile: string | undefined;
  private revoked: RevocationState;
  /** mtime+size of the revocation file as last read or written, and when it was last checked. */
  private revocationStamp = '';
  private revocationCheckedAt = 0;
  private readonly secretDigest: Buffer | undefined;
  private readonly operatorDigests: Buffer[];

  constructor(config: AuthConfig, options: AuthenticatorOptions) {
    if (options.key.length !== MAC_BYTES) throw new Error(`token key must be ${MAC_BYTES} bytes`);
    this.config = config;
    this.key = options.key;
    this.now = options.now ?? Date.now;
    this.revocationFile = options.revocationFile;
    this.revoked = options.revocationFile ? loadRevocations(options.revocationFile) : emptyRevocations();
    this.revocationStamp = options.revocationFile ? fileStamp(options.revocationFile) : '';
    this.secretDigest = config.enrollmentSecret !== undefined ? sha256(config.enrollmentSecret) : undefined;
    this.operatorDigests = config.operatorTokenDigests.map((h) => Buffer.from(h, 'hex'));
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  // -- tokens ---------------------------------------------------------------

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(HMAC_DOMAIN).update(payload).digest();
  }

  /** A new token for clientId, valid for the configured lifetime. */
  issueClientToken(clientId: string): { token: string; expiresAtMs: number } {
    if (!CLIENT_ID_RE.test(clientId)) throw new Error('client id must be 1–64 characters of [A-Za-z0-9._-]');
    // Never before a revocation's cut-off, so a reinstated client's new token is valid even when
    // it is issued within the same millisecond as the revocation.
    const issuedAt = Math.max(this.now(), this.revoked.clients.get(clientId)?.notBeforeMs ?? 0);
    const expiresAtMs = issuedAt + this.config.tokenTtlSeconds * 1000;
    const nonce = randomBytes(12).toString('base64url');
    const payload = `${TOKEN_PREFIX}:${clientId}:${issuedAt}:${expiresAtMs}:${nonce}`;
    return { token: `${payload}:${this.mac(payload).toString('base64url')}`, expiresAtMs };
  }

  /** The client a token speaks for, if it is authentic, unexpired and not revoked. */
  verifyClientToken(token: string): AuthResult<{ clientId: string; expiresAtMs: number; nonce: string }> {
    this.refreshRevocations();
    const parts = token.split(':');
    const invalid = unauthenticated('invalid token: register again to get a new one');
    if (parts.length !== 6 || parts[0] !== TOKEN_PREFIX) return invalid;
    const [, clientId, iatText, expText, nonce, macText] = parts as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const mac = Buffer.from(macText, 'base64url');
    if (mac.length !== MAC_BYTES) return invalid;
    // Authenticity first, in constant time; nothing below runs on forged input.
    const payload = parts.slice(0, 5).join(':');
    if (!constantTimeEqualDigests(mac, this.mac(payload))) return invalid;
    const issuedAt = Number(iatText);
    const expiresAtMs = Number(expText);
    if (
      !CLIENT_ID_RE.test(clientId) ||
      !Number.isSafeInteger(issuedAt) ||
      !Number.isSafeInteger(expiresAtMs)
    ) {
      return invalid;
    }
    if (this.now() >= expiresAtMs) {
      return unauthenticated(
        `token expired at ${new Date(expiresAtMs).toISOString()}; register again to get a new one`,
      );
    }
    const client = this.revoked.clients.get(clientId);
    if (this.revoked.tokens.has(nonce) || (client && issuedAt < client.notBeforeMs)) {
      return unauthenticated('token has been revoked; register again (if the operator allows it)');
    }
    return { ok: true, value: { clientId, expiresAtMs, nonce } };
  }

  /** True when token is one of the configured operator tokens (constant time over all of them). */
  private isOperatorToken(token: string): boolean {
    const presented = sha256(token);
    let match = false;
    for (const digest of this.operatorDigests) match = constantTimeEqualDigests(presented, digest) || match;
    return match;
  }

  // -- per-call checks ------------------------------------------------------

  /** Who is calling, from the bearer token in the call's metadata. */
  authenticate(call: CallLike): AuthResult<Principal> {
    if (!this.config.enabled) return { ok: true, value: { kind: 'anonymous' } };
    return this.authenticateBearer(call.metadata.get('authorization'));
  }

  private authenticateBearer(values: readonly unknown[]): AuthResult<Principal> {
    const bearer = bearerFrom(values);
    if (!bearer.ok) return bearer;
    if (this.isOperatorToken(bearer.value)) return { ok: true, value: { kind: 'operator' } };
    const client = this.verifyClientToken(bearer.value);
    if (!client.ok) return client;
    return {
      ok: true,
      value: { kind: 'client', clientId: client.value.clientId, expiresAtMs: client.value.expiresAtMs },
    };
  }

  /** Whether an authenticated principal may act as required; mTLS identity checked against the call. */
  permits(principal: Principal, requirement: Requirement, call?: CallLike): AuthResult<Principal> {
    if (principal.kind === 'anonymous') return { ok: true, value: principal };
    if (requirement.kind === 'operator') {
      if (principal.kind !== 'operator')
        return denied('this call needs an operator token; client tokens cannot make it');
      return { ok: true, value: principal };
    }
    if (principal.kind !== 'client') return denied('operator tokens cannot act as a client');
    if (principal.clientId !== requirement.clientId) {
      return denied(
        `token is bound to client '${principal.clientId}'; it cannot act as '${requirement.clientId}'`,
      );
    }
    const cn = call ? callPeerCommonName(call) : undefined;
    if (cn !== undefined && cn !== requirement.clientId) {
      return denied(`TLS client certificate is for '${cn}'; it cannot act as '${requirement.clientId}'`);
    }
    return { ok: true, value: principal };
  }

  /**
   * The per-RPC check: authenticate from metadata, then check the principal may act as required.
   * Returns ok or an AuthError (UNAUTHENTICATED / PERMISSION_DENIED) to answer the call with.
   */
  authorize(call: CallLike, requirement: Requirement): AuthResult<Principal> {
    const who = this.authenticate(call);
    if (!who.ok) return who;
    return this.permits(who.value, requirement, call);
  }

  /**
   * Register: proof by the enrolment secret or by an mTLS certificate whose CN is the client id.
   * A certificate for another id is refused even with the right secret.
   */
  enroll(call: CallLike, request: { clientId: string; enrollmentSecret: string }): AuthResult<Enrollment> {
    if (!this.config.enabled) return { ok: true, value: { token: '', expiresAtMs: 0, via: 'disabled' } };
    this.refreshRevocations();
    const { clientId } = request;
    if (!CLIENT_ID_RE.test(clientId)) {
      return unauthenticated('client id must be 1–64 characters of [A-Za-z0-9._-]');
    }
    if (this.revoked.clients.get(clientId)?.blocked) {
      return denied(`client '${clientId}' has been revoked by the operator and cannot enrol`);
    }
    const cn = callPeerCommonName(call);
    if (cn !== undefined && cn !== clientId) {
      return denied(`TLS client certificate is for '${cn}'; it cannot register as '${clientId}'`);
    }
    let via: Enrollment['via'] | undefined;
    if (cn === clientId && this.config.mtlsEnrollment) {
      via = 'mtls';
    } else if (this.secretDigest) {
      if (!request.enrollmentSecret) {
        return unauthenticated(
          'this coordinator requires an enrolment secret (enrollment_secret in RegisterRequest)',
        );
      }
      if (!constantTimeEqualDigests(sha256(request.enrollmentSecret), this.secretDigest)) {
        return unauthenticated('wrong enrolment secret');
      }
      via = 'secret';
    } else {
      return unauthenticated(
        'this coordinator enrols clients only by mutual TLS: connect with a client certificate whose CN is your client id',
      );
    }
    const { token, expiresAtMs } = this.issueClientToken(clientId);
    return { ok: true, value: { token, expiresAtMs, via } };
  }

  /** HTTP routes: metrics/health as configured; reports and analyses need an operator token. */
  authorizeHttp(
    authorization: string | string[] | undefined,
    route: 'metrics' | 'health' | 'reports' | 'analyses' | 'admin',
  ): AuthResult<Principal> {
    if (!this.config.enabled) return { ok: true, value: { kind: 'anonymous' } };
    if ((route === 'metrics' || route === 'health') && this.config.http[route] === 'open') {
      return { ok: true, value: { kind: 'anonymous' } };
    }
    const values =
      authorization === undefined ? [] : Array.isArray(authorization) ? authorization : [authorization];
    const who = this.authenticateBearer(values);
    if (!who.ok) return who;
    return this.permits(who.value, { kind: 'operator' });
  }

  // -- revocation -----------------------------------------------------------

  /** Revokes one token (until it would have expired anyway). Returns false for a token that is not ours. */
  revokeToken(token: string): boolean {
    const parts = token.split(':');
    if (parts.length !== 6) return false;
    const mac = Buffer.from(parts[5]!, 'base64url');
    if (mac.length !== MAC_BYTES || !constantTimeEqualDigests(mac, this.mac(parts.slice(0, 5).join(':')))) {
      return false;
    }
    this.refreshRevocations(true);
    this.revoked.tokens.set(parts[4]!, Number(parts[3]));
    this.persist();
    return true;
  }

  /** Revokes every token issued to clientId so far and blocks re-enrolment until reinstated. */
  revokeClient(clientId: string): void {
    this.refreshRevocations(true);
    // +1: a token issued in this very millisecond is revoked as well.
    this.revoked.clients.set(clientId, { notBeforeMs: this.now() + 1, blocked: true });
    this.persist();
  }

  /** Lets a revoked client enrol again (its old tokens stay invalid). */
  reinstateClient(clientId: string): void {
    this.refreshRevocations(true);
    const entry = this.revoked.clients.get(clientId);
    if (!entry) return;
    entry.blocked = false;
    this.persist();
  }

  /**
   * Picks up revocations written by another process (`atomlens coordinator --revoke-client … --data
   * DIR` while the coordinator runs): the file is stat'ed at most once a second, re-read when its
   * modification time or size changed. A corrupt file keeps the revocations already known.
   */
  private refreshRevocations(force = false): void {
    if (!this.revocationFile) return;
    const now = Date.now();
    if (!force && now - this.revocationCheckedAt < 1000) return;
    this.revocationCheckedAt = now;
    const stamp = fileStamp(this.revocationFile);
    if (stamp === this.revocationStamp) return;
    try {
      this.revoked = loadRevocations(this.revocationFile);
      this.revocationStamp = stamp;
    } catch {
      // Half-written by a writer that does not rename atomically, or damaged: keep what we have
      // and look again next second.
    }
  }

  private persist(): void {
    const now = this.now();
    for (const [nonce, exp] of this.revoked.tokens) if (exp <= now) this.revoked.tokens.delete(nonce);
    if (this.revocationFile) {
      saveRevocations(this.revocationFile, this.revoked);
      this.revocationStamp = fileStamp(this.revocationFile);
    }
  }
}

// ---------------------------------------------------------------------------
// Files in the data dir
// ---------------------------------------------------------------------------

function fileStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    return '';
  }
}

function emptyRevocations(): RevocationState {
  return { tokens: new Map(), clients: new Map() };
}

function loadRevocations(path: string): RevocationState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyRevocations();
    throw new Error(`cannot read revocation list '${path}': ${(err as Error).message}`);
  }
  try {
    const data = JSON.parse(text) as {
      version: number;
      tokens: Record<string, number>;
      clients: Record<string, { notBeforeMs: number; blocked: boolean }>;
    };
    if (data.version !== 1) throw new Error(`unsupported version ${data.version}`);
    return { tokens: new Map(Object.entries(data.tokens)), clients: new Map(Object.entries(data.clients)) };
  } catch (err) {
    // Refusing to start is safer than silently forgetting revocations.
    throw new Error(
      `revocation list '${path}' is corrupt (${(err as Error).message}); restore it or delete it to forget all revocations`,
    );
  }
}

/** Write to a temp file, fsync, rename over, fsync the directory: never a half-written list. */
function writeFileAtomic(path: string, data: string | Buffer, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

function saveRevocations(path: string, state: RevocationState): void {
  const data = {
    version: 1,
    tokens: Object.fromEntries(state.tokens),
    clients: Object.fromEntries(state.clients),
  };
  writeFileAtomic(path, `${JSON.stringify(data, null, 1)}\n`, 0o600);
}

/** The token key in `<dataDir>/auth/token-key`, created (32 random bytes, mode 0600) on first use. */
export function loadOrCreateTokenKey(dataDir: string): Buffer {
  const dir = join(dataDir, 'auth');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'token-key');
  try {
    const key = readFileSync(path);
    if (key.length !== MAC_BYTES) {
      throw new Error(
        `token key '${path}' has ${key.length} bytes, expected ${MAC_BYTES}; delete it to create a new one (this revokes every token)`,
      );
    }
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const key = randomBytes(MAC_BYTES);
  writeFileAtomic(path, key, 0o600);
  return readFileSync(path);
}

/** An Authenticator whose key and revocation list live under `<dataDir>/auth/`. */
export function openAuthenticator(dataDir: string, config: AuthConfig, now?: () => number): Authenticator {
  const key = config.enabled ? loadOrCreateTokenKey(dataDir) : randomBytes(MAC_BYTES);
  return new Authenticator(config, {
    key,
    ...(config.enabled ? { revocationFile: join(dataDir, 'auth', 'revocations.json') } : {}),
    ...(now ? { now } : {}),
  });
}

// ---------------------------------------------------------------------------
// Hooks for the gRPC server (src/coordinator/rpc.ts Authorize, federation.ts Enroll)
// ---------------------------------------------------------------------------

/**
 * The coordinator's per-call `authorize` and Register-time `enroll` hooks backed by an
 * Authenticator: Operator calls need an operator token; Federation calls need the token of the
 * client they act for (the request's client_id, the Session hello's, each probe chunk's), and
 * under mTLS a certificate for that same id.
 */
export function grpcAuthHooks(auth: Authenticator): { authorize: Authorize; enroll: Enroll } {
  const toRpc = (e: AuthError) => new RpcError(e.code, e.details);
  return {
    authorize: (ctx) => {
      if (!auth.enabled) return undefined;
      let requirement: Requirement;
      if (ctx.service === 'Operator') requirement = { kind: 'operator' };
      else if (ctx.clientId !== undefined) requirement = { kind: 'client', clientId: ctx.clientId };
      else {
        // A Federation call without a client id to check (stream start): authenticate only;
        // the per-message check follows when the id is known.
        const who = auth.authenticate(ctx.call);
        if (!who.ok) return toRpc(who.error);
        return who.value.kind === 'client'
          ? undefined
          : new RpcError(grpc.status.PERMISSION_DENIED, 'federation calls need a client token');
      }
      const r = auth.authorize(ctx.call, requirement);
      return r.ok ? undefined : toRpc(r.error);
    },
    enroll: (request, call) => {
      const r = auth.enroll(call ?? { metadata: new grpc.Metadata() }, request);
      if (!r.ok) throw toRpc(r.error);
      return r.value.token;
    },
  };
}
