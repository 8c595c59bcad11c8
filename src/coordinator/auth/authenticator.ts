// The decisions: who is calling (a client token, an operator token, or nobody when authentication
// is off), whether they may act as a call requires, and who may enrol at Register. Secrets are
// compared in constant time (equal-length SHA-256 digests or HMACs), never logged, and never
// echoed in error messages.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { idProblem } from '../../shared/ids.js';
import { peerCommonName } from '../../shared/tls.js';
import type { AuthConfig } from './config.js';
import { type RevocationEvents, RevocationList } from './revocations.js';
import { constantTimeEqual, loadOrCreateTokenKey, sha256, TOKEN_KEY_BYTES, TokenSigner } from './tokens.js';

export type Principal =
  | { kind: 'client'; clientId: string; expiresAtMs: number }
  | { kind: 'operator' }
  /** Authentication disabled. */
  | { kind: 'anonymous' };

export type Requirement = { kind: 'client'; clientId: string } | { kind: 'operator' };

/** A refusal with its gRPC status (UNAUTHENTICATED / PERMISSION_DENIED) and the HTTP equivalent. */
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
function callPeerCommonName(call: CallLike): string | undefined {
  const ctx = call.getAuthContext?.();
  return peerCommonName(ctx?.sslPeerCertificate);
}

/** The bearer token in `authorization` metadata/header, or a reason it is unusable. */
function bearerFrom(values: readonly unknown[]): AuthResult<string> {
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

/** How long a report link printed by `atomlens report` opens the page. */
const REPORT_VIEW_TTL_MS = 15 * 60_000;

export interface AuthenticatorOptions {
  /** 32-byte HMAC key. */
  key: Buffer;
  /** Where revocations persist (JSON); memory only when absent. */
  revocationFile?: string;
  /** Told about revocations made by another process and about an unreadable revocation file. */
  revocationEvents?: RevocationEvents;
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
  private readonly signer: TokenSigner;
  private readonly now: () => number;
  private readonly revocations: RevocationList;
  private readonly secretDigest: Buffer | undefined;
  private readonly operatorDigests: Buffer[];

  constructor(config: AuthConfig, options: AuthenticatorOptions) {
    this.config = config;
    this.signer = new TokenSigner(options.key);
    this.now = options.now ?? Date.now;
    this.revocations = new RevocationList(options.revocationFile, this.now, options.revocationEvents);
    this.secretDigest = config.enrollmentSecret !== undefined ? sha256(config.enrollmentSecret) : undefined;
    this.operatorDigests = config.operatorTokenDigests.map((h) => Buffer.from(h, 'hex'));
  }

  get enabled(): boolean {
    return this.config.enabled;
  }

  /** A new token for clientId, valid for the configured lifetime. */
  issueClientToken(clientId: string): { token: string; expiresAtMs: number } {
    // Never before a revocation's cut-off, so a reinstated client's new token is valid even when
    // it is issued within the same millisecond as the revocation.
    const issuedAt = Math.max(this.now(), this.revocations.notBefore(clientId));
    const expiresAtMs = issuedAt + this.config.tokenTtlSeconds * 1000;
    return { token: this.signer.sign(clientId, issuedAt, expiresAtMs), expiresAtMs };
  }

  /** The client a token speaks for, if it is authentic, unexpired and not revoked. */
  verifyClientToken(token: string): AuthResult<{ clientId: string; expiresAtMs: number; nonce: string }> {
    this.revocations.refresh();
    const claims = this.signer.open(token);
    if (!claims) return unauthenticated('invalid token: register again to get a new one');
    if (this.now() >= claims.expiresAtMs) {
      return unauthenticated(
        `token expired at ${new Date(claims.expiresAtMs).toISOString()}; register again to get a new one`,
      );
    }
    if (this.revocations.isRevoked(claims)) {
      return unauthenticated('token has been revoked; register again (if the operator allows it)');
    }
    return {
      ok: true,
      value: { clientId: claims.clientId, expiresAtMs: claims.expiresAtMs, nonce: claims.nonce },
    };
  }

  /** True when token is one of the configured operator tokens (constant time over all of them). */
  private isOperatorToken(token: string): boolean {
    const presented = sha256(token);
    let match = false;
    for (const digest of this.operatorDigests) match = constantTimeEqual(presented, digest) || match;
    return match;
  }

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
    if (!who.ok) {
      // An operator's fix is its token flag; "register again" is advice for clients only.
      if (requirement.kind === 'operator' && who.error.code === grpc.status.UNAUTHENTICATED) {
        return unauthenticated(
          'this call needs an operator token the coordinator accepts: pass --token or set ' +
            "ATOMLENS_OPERATOR_TOKEN (one of the coordinator's auth.operatorTokens)",
        );
      }
      return who;
    }
    return this.permits(who.value, requirement, call);
  }

  /**
   * Register: proof by the enrolment secret or by an mTLS certificate whose CN is the client id.
   * A certificate for another id is refused even with the right secret. Enrolling by the secret
   * also needs a client credential, which the federation then checks against the id's binding.
   */
  enroll(
    call: CallLike,
    request: { clientId: string; enrollmentSecret: string; clientCredential?: Uint8Array },
  ): AuthResult<Enrollment> {
    if (!this.config.enabled) return { ok: true, value: { token: '', expiresAtMs: 0, via: 'disabled' } };
    this.revocations.refresh();
    const { clientId } = request;
    const problem = idProblem('client id', clientId);
    if (problem) return unauthenticated(problem);
    if (this.revocations.isBlocked(clientId)) {
      return denied(`client '${clientId}' has been revoked by the operator and cannot enrol`);
    }
    const cn = callPeerCommonName(call);
    if (cn !== undefined && cn !== clientId) {
      return denied(`TLS client certificate is for '${cn}'; it cannot register as '${clientId}'`);
    }
    const via = this.proofOfEnrolment(cn === clientId, request.enrollmentSecret);
    if (!via.ok) return via;
    if (via.value === 'secret' && (request.clientCredential?.length ?? 0) === 0) {
      return unauthenticated(
        'enrolling by the enrolment secret needs a client_credential too: random bytes this client ' +
          'keeps and presents at every Register (atomlens client and the SDK keep one in their state directory)',
      );
    }
    const { token, expiresAtMs } = this.issueClientToken(clientId);
    return { ok: true, value: { token, expiresAtMs, via: via.value } };
  }

  /** How a client proves it may enrol: its certificate (when allowed), else the secret. */
  private proofOfEnrolment(certificateMatches: boolean, secret: string): AuthResult<'mtls' | 'secret'> {
    if (certificateMatches && this.config.mtlsEnrollment) return { ok: true, value: 'mtls' };
    if (!this.secretDigest) {
      return unauthenticated(
        'this coordinator enrols clients only by mutual TLS: connect with a client certificate whose CN is your client id',
      );
    }
    if (!secret) {
      return unauthenticated(
        'this coordinator requires an enrolment secret: start the client with --enrollment-secret ' +
          'or ATOMLENS_ENROLLMENT_SECRET (the federation operator has it)',
      );
    }
    if (!constantTimeEqual(sha256(secret), this.secretDigest))
      return unauthenticated(
        "wrong enrolment secret: check --enrollment-secret or ATOMLENS_ENROLLMENT_SECRET against the federation operator's",
      );
    return { ok: true, value: 'secret' };
  }

  /** A link token that opens one report's page in a browser for REPORT_VIEW_TTL_MS. */
  reportViewToken(reportId: string): string {
    return this.signer.signReportView(reportId, this.now() + REPORT_VIEW_TTL_MS);
  }

  /**
   * HTTP routes: metrics/health as configured; reports and analyses need an operator token, or
   * (for one report's page or JSON) a link token for that report.
   */
  authorizeHttp(
    authorization: string | string[] | undefined,
    route: 'metrics' | 'health' | 'reports' | 'analyses' | 'admin',
    view?: { reportId: string; token: string },
  ): AuthResult<Principal> {
    if (!this.config.enabled) return { ok: true, value: { kind: 'anonymous' } };
    if (route === 'reports' && view && this.signer.checkReportView(view.reportId, view.token, this.now())) {
      return { ok: true, value: { kind: 'anonymous' } };
    }
    if ((route === 'metrics' || route === 'health') && this.config.http[route] === 'open') {
      return { ok: true, value: { kind: 'anonymous' } };
    }
    const values =
      authorization === undefined ? [] : Array.isArray(authorization) ? authorization : [authorization];
    const who = this.authenticateBearer(values);
    if (!who.ok) return who;
    return this.permits(who.value, { kind: 'operator' });
  }

  /** Revokes one token (until it would have expired anyway). Returns false for a token that is not ours. */
  revokeToken(token: string): boolean {
    const claims = this.signer.open(token);
    if (!claims) return false;
    this.revocations.revokeToken(claims);
    return true;
  }

  /** Revokes every token issued to clientId so far and blocks re-enrolment until reinstated. */
  revokeClient(clientId: string): void {
    this.revocations.revokeClient(clientId);
  }

  /**
   * Ends every token issued to clientId so far without blocking it (the operator removed the
   * client: whoever enrols the id next must not share it with a holder of an old token).
   */
  endClientTokens(clientId: string): void {
    this.revocations.cutOff(clientId);
  }

  /** Lets a revoked client enrol again (its old tokens stay invalid). */
  reinstateClient(clientId: string): void {
    this.revocations.reinstateClient(clientId);
  }
}

/** An Authenticator whose key and revocation list live under `<dataDir>/auth/`. */
export function openAuthenticator(
  dataDir: string,
  config: AuthConfig,
  now?: () => number,
  revocationEvents?: RevocationEvents,
): Authenticator {
  const key = config.enabled ? loadOrCreateTokenKey(dataDir) : randomBytes(TOKEN_KEY_BYTES);
  return new Authenticator(config, {
    key,
    ...(config.enabled ? { revocationFile: join(dataDir, 'auth', 'revocations.json') } : {}),
    ...(now ? { now } : {}),
    ...(revocationEvents ? { revocationEvents } : {}),
  });
}
