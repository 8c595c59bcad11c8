// Client tokens, HMAC-signed rather than stored:
//   token = "al1:" clientId ":" issuedAtMs ":" expiresAtMs ":" nonce ":" base64url(HMAC-SHA256(key, payload))
// The key is 32 random bytes kept in the data dir (owner-only), so tokens survive a coordinator
// restart. Verifying a token is one HMAC over ~80 bytes (microseconds) and needs no storage read,
// which matters on the PushAtoms hot path (thousands of calls/s). Expiry is inside the signed
// payload; revocation is kept apart (revocations.ts). Rotating the key file revokes every token.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../shared/atomic-file.js';
import { idProblem, isValidId } from '../../shared/ids.js';

export const TOKEN_KEY_BYTES = 32;
const TOKEN_PREFIX = 'al1';
const HMAC_DOMAIN = 'atomlens-client-token-v1\n';

/** What a token says, once its signature has been checked. */
export interface TokenClaims {
  clientId: string;
  issuedAtMs: number;
  expiresAtMs: number;
  nonce: string;
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** Equal-length digests or MACs compared in constant time. */
export function constantTimeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Signs and opens client tokens with one key. */
export class TokenSigner {
  constructor(private readonly key: Buffer) {
    if (key.length !== TOKEN_KEY_BYTES) throw new Error(`token key must be ${TOKEN_KEY_BYTES} bytes`);
  }

  private mac(payload: string): Buffer {
    return createHmac('sha256', this.key).update(HMAC_DOMAIN).update(payload).digest();
  }

  /** A new token with a random nonce. */
  sign(clientId: string, issuedAtMs: number, expiresAtMs: number): string {
    const problem = idProblem('client id', clientId);
    if (problem) throw new Error(problem);
    const nonce = randomBytes(12).toString('base64url');
    const payload = `${TOKEN_PREFIX}:${clientId}:${issuedAtMs}:${expiresAtMs}:${nonce}`;
    return `${payload}:${this.mac(payload).toString('base64url')}`;
  }

  /**
   * A link token that lets a browser open one report's page until `expiresAtMs`: the expiry and
   * an HMAC over (report id, expiry) under a domain of its own, so it is never a client token.
   */
  signReportView(reportId: string, expiresAtMs: number): string {
    return `${expiresAtMs}.${this.viewMac(reportId, expiresAtMs).toString('base64url')}`;
  }

  /** Whether `token` is a report link token for `reportId` that has not expired at `nowMs`. */
  checkReportView(reportId: string, token: string, nowMs: number): boolean {
    const match = /^(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!match) return false;
    const expiresAtMs = Number(match[1]);
    const mac = Buffer.from(match[2]!, 'base64url');
    return constantTimeEqual(mac, this.viewMac(reportId, expiresAtMs)) && nowMs < expiresAtMs;
  }

  private viewMac(reportId: string, expiresAtMs: number): Buffer {
    return createHmac('sha256', this.key)
      .update('atomlens report view v1\n')
      .update(`${reportId}\n${expiresAtMs}`)
      .digest();
  }

  /**
   * The claims of a token signed with this key; undefined for anything else. The MAC is checked
   * first, in constant time: nothing else is parsed from forged input.
   */
  open(token: string): TokenClaims | undefined {
    const parts = token.split(':');
    if (parts.length !== 6 || parts[0] !== TOKEN_PREFIX) return undefined;
    const [, clientId, iatText, expText, nonce, macText] = parts as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const mac = Buffer.from(macText, 'base64url');
    if (mac.length !== TOKEN_KEY_BYTES) return undefined;
    if (!constantTimeEqual(mac, this.mac(parts.slice(0, 5).join(':')))) return undefined;
    const issuedAtMs = Number(iatText);
    const expiresAtMs = Number(expText);
    if (!isValidId(clientId) || !Number.isSafeInteger(issuedAtMs) || !Number.isSafeInteger(expiresAtMs)) {
      return undefined;
    }
    return { clientId, issuedAtMs, expiresAtMs, nonce };
  }
}

/** The token key in `<dataDir>/auth/token-key`, created (32 random bytes, mode 0600) on first use. */
export function loadOrCreateTokenKey(dataDir: string): Buffer {
  const dir = join(dataDir, 'auth');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, 'token-key');
  try {
    const key = readFileSync(path);
    if (key.length !== TOKEN_KEY_BYTES) {
      throw new Error(
        `token key '${path}' has ${key.length} bytes, expected ${TOKEN_KEY_BYTES}; delete it to create a new one (this revokes every token)`,
      );
    }
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  writeFileAtomic(path, randomBytes(TOKEN_KEY_BYTES), 0o600);
  return readFileSync(path);
}

/** SHA-256 hex digest of a token, the form operator tokens may be configured in. */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}
