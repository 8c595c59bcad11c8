// Tokens, enrolment and per-call authorisation (src/coordinator/auth/), without a server:
// calls are plain objects with real grpc.Metadata and, for mTLS, a peer certificate.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { Authenticator, type CallLike, openAuthenticator } from '../../src/coordinator/auth/authenticator.js';
import {
  type AuthConfig,
  AuthConfigError,
  checkAuthUsable,
  resolveAuthConfig,
} from '../../src/coordinator/auth/config.js';
import { loadOrCreateTokenKey, tokenDigest } from '../../src/coordinator/auth/tokens.js';

const SECRET = 'federation-secret-0123456789';
const CREDENTIAL = randomBytes(32);
const OPERATOR = 'operator-token-abcdefghijklmnop';

function config(over: Partial<AuthConfig> = {}): AuthConfig {
  return {
    enabled: true,
    enrollmentSecret: SECRET,
    mtlsEnrollment: true,
    tokenTtlSeconds: 60,
    operatorTokenDigests: [tokenDigest(OPERATOR)],
    http: { metrics: 'open', health: 'open' },
    ...over,
  };
}

/** A call with optional bearer token and optional mTLS peer CN. */
function call(token?: string, cn?: string): CallLike {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('authorization', `Bearer ${token}`);
  return {
    metadata,
    getAuthContext: () =>
      cn === undefined
        ? {}
        : ({ sslPeerCertificate: { subject: { CN: cn } } } as unknown as ReturnType<
            NonNullable<CallLike['getAuthContext']>
          >),
  };
}

function enrolled(auth: Authenticator, clientId: string): string {
  const r = auth.enroll(call(), { clientId, enrollmentSecret: SECRET, clientCredential: CREDENTIAL });
  if (!r.ok) throw r.error;
  return r.value.token;
}

describe('enrolment', () => {
  it('issues a token bound to the client id for the right secret', () => {
    const auth = new Authenticator(config(), { key: randomBytes(32) });
    const r = auth.enroll(call(), {
      clientId: 'alice',
      enrollmentSecret: SECRET,
      clientCredential: CREDENTIAL,
    });
    expect(r.ok && r.value.via).toBe('secret');
    const token = r.ok ? r.value.token : '';
    expect(auth.authorize(call(token), { kind: 'client', clientId: 'alice' })).toMatchObject({
      ok: true,
      value: { kind: 'client', clientId: 'alice' },
    });
  });

  it('needs a client credential with the secret (not with a certificate), naming the field', () => {
    const auth = new Authenticator(config(), { key: randomBytes(32) });
    const bare = auth.enroll(call(), { clientId: 'alice', enrollmentSecret: SECRET });
    expect(!bare.ok && bare.error.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(!bare.ok && bare.error.details).toMatch(/client_credential/);
    const empty = auth.enroll(call(), {
      clientId: 'alice',
      enrollmentSecret: SECRET,
      clientCredential: new Uint8Array(0),
    });
    expect(empty.ok).toBe(false);
    expect(auth.enroll(call(undefined, 'alice'), { clientId: 'alice', enrollmentSecret: '' }).ok).toBe(true);
  });

  it('refuses a wrong or missing secret with UNAUTHENTICATED, never echoing it', () => {
    const auth = new Authenticator(config(), { key: randomBytes(32) });
    const wrong = auth.enroll(call(), { clientId: 'alice', enrollmentSecret: 'not-the-secret-at-all' });
    expect(wrong.ok).toBe(false);
    if (!wrong.ok) {
      expect(wrong.error.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(wrong.error.details).not.toContain('not-the-secret');
      expect(wrong.error.details).not.toContain(SECRET);
      expect(wrong.error.details).toMatch(/--enrollment-secret.*ATOMLENS_ENROLLMENT_SECRET/);
    }
    const missing = auth.enroll(call(), { clientId: 'alice', enrollmentSecret: '' });
    expect(!missing.ok && missing.error.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(!missing.ok && missing.error.details).toMatch(/requires an enrolment secret/);
    // Both name the client's flag and environment variable.
    expect(!missing.ok && missing.error.details).toMatch(/--enrollment-secret.*ATOMLENS_ENROLLMENT_SECRET/);
  });

  it('mTLS: a certificate whose CN is the id enrols without the secret; one for another id is refused', () => {
    const auth = new Authenticator(config(), { key: randomBytes(32) });
    const byCert = auth.enroll(call(undefined, 'alice'), { clientId: 'alice', enrollmentSecret: '' });
    expect(byCert.ok && byCert.value.via).toBe('mtls');
    const other = auth.enroll(call(undefined, 'bob'), {
      clientId: 'alice',
      enrollmentSecret: SECRET,
      clientCredential: CREDENTIAL,
    });
    expect(!other.ok && other.error.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(!other.ok && other.error.details).toMatch(/certificate is for 'bob'/);
  });

  it('with mTLS enrolment off, a matching certificate still needs the secret', () => {
    const auth = new Authenticator(config({ mtlsEnrollment: false }), { key: randomBytes(32) });
    expect(auth.enroll(call(undefined, 'alice'), { clientId: 'alice', enrollmentSecret: '' }).ok).toBe(false);
    expect(
      auth.enroll(call(undefined, 'alice'), {
        clientId: 'alice',
        enrollmentSecret: SECRET,
        clientCredential: CREDENTIAL,
      }).ok,
    ).toBe(true);
  });

  it('disabled authentication returns an empty token and allows everything', () => {
    const auth = new Authenticator(config({ enabled: false }), { key: randomBytes(32) });
    expect(auth.enroll(call(), { clientId: 'alice', enrollmentSecret: '' })).toMatchObject({
      ok: true,
      value: { token: '' },
    });
    expect(auth.authorize(call(), { kind: 'operator' }).ok).toBe(true);
  });
});

describe('per-call authorisation', () => {
  const auth = new Authenticator(config(), { key: randomBytes(32) });
  const alice = enrolled(auth, 'alice');
  const bob = enrolled(auth, 'bob');

  it('missing or malformed credentials are UNAUTHENTICATED', () => {
    for (const c of [call(), call(''), call('x y')]) {
      const r = auth.authorize(c, { kind: 'client', clientId: 'alice' });
      expect(!r.ok && r.error.code).toBe(grpc.status.UNAUTHENTICATED);
    }
    const md = new grpc.Metadata();
    md.set('authorization', `Basic ${alice}`);
    expect(auth.authorize({ metadata: md }, { kind: 'client', clientId: 'alice' }).ok).toBe(false);
  });

  it('a client cannot act as another client (PERMISSION_DENIED)', () => {
    const r = auth.authorize(call(bob), { kind: 'client', clientId: 'alice' });
    expect(!r.ok && r.error.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(!r.ok && r.error.details).toMatch(/bound to client 'bob'.*cannot act as 'alice'/);
    expect(!r.ok && r.error.details).not.toContain(bob);
  });

  it('a token with a changed client id or signature is rejected', () => {
    const forged = alice.replace(':alice:', ':bob:');
    expect(forged).not.toBe(alice);
    expect(auth.authorize(call(forged), { kind: 'client', clientId: 'bob' }).ok).toBe(false);
    // Flip one character inside the MAC (not the last one, whose low bits are base64 padding).
    const at = alice.length - 10;
    const flipped = alice.slice(0, at) + (alice[at] === 'A' ? 'B' : 'A') + alice.slice(at + 1);
    expect(auth.authorize(call(flipped), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
    // A token from another coordinator (other key) is worthless here.
    const elsewhere = enrolled(new Authenticator(config(), { key: randomBytes(32) }), 'alice');
    expect(auth.authorize(call(elsewhere), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
  });

  it('mTLS: a valid token over a connection whose certificate is for another id is refused', () => {
    expect(auth.authorize(call(alice, 'alice'), { kind: 'client', clientId: 'alice' }).ok).toBe(true);
    const r = auth.authorize(call(alice, 'bob'), { kind: 'client', clientId: 'alice' });
    expect(!r.ok && r.error.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('operator calls need an operator token; operator tokens cannot push as a client', () => {
    expect(auth.authorize(call(OPERATOR), { kind: 'operator' })).toMatchObject({
      ok: true,
      value: { kind: 'operator' },
    });
    const asClient = auth.authorize(call(alice), { kind: 'operator' });
    expect(!asClient.ok && asClient.error.code).toBe(grpc.status.PERMISSION_DENIED);
    const guess = auth.authorize(call('operator-token-abcdefghijklmnoq'), { kind: 'operator' });
    expect(!guess.ok && guess.error.code).toBe(grpc.status.UNAUTHENTICATED);
    // An operator with a wrong token is told which flag carries it, not to register.
    expect(!guess.ok && guess.error.details).not.toMatch(/register/i);
    expect(!guess.ok && guess.error.details).toMatch(/--token.*ATOMLENS_OPERATOR_TOKEN/);
    const none = auth.authorize(call(), { kind: 'operator' });
    expect(!none.ok && none.error.details).toMatch(/--token.*ATOMLENS_OPERATOR_TOKEN/);
    const opAsClient = auth.authorize(call(OPERATOR), { kind: 'client', clientId: 'alice' });
    expect(!opAsClient.ok && opAsClient.error.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('HTTP: metrics open by config, reports need an operator token (401 vs 403)', () => {
    expect(auth.authorizeHttp(undefined, 'metrics').ok).toBe(true);
    const none = auth.authorizeHttp(undefined, 'reports');
    expect(!none.ok && none.error.httpStatus).toBe(401);
    const client = auth.authorizeHttp(`Bearer ${alice}`, 'reports');
    expect(!client.ok && client.error.httpStatus).toBe(403);
    expect(auth.authorizeHttp(`Bearer ${OPERATOR}`, 'reports').ok).toBe(true);
    const closed = new Authenticator(config({ http: { metrics: 'operator', health: 'open' } }), {
      key: randomBytes(32),
    });
    expect(closed.authorizeHttp(undefined, 'metrics').ok).toBe(false);
    expect(closed.authorizeHttp(undefined, 'health').ok).toBe(true);
    expect(closed.authorizeHttp(`Bearer ${OPERATOR}`, 'metrics').ok).toBe(true);
  });
});

describe('expiry and revocation', () => {
  it('a token stops working at its expiry', () => {
    let now = 1_000_000;
    const auth = new Authenticator(config({ tokenTtlSeconds: 60 }), { key: randomBytes(32), now: () => now });
    const token = enrolled(auth, 'alice');
    now += 59_999;
    expect(auth.authorize(call(token), { kind: 'client', clientId: 'alice' }).ok).toBe(true);
    now += 1;
    const r = auth.authorize(call(token), { kind: 'client', clientId: 'alice' });
    expect(!r.ok && r.error.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(!r.ok && r.error.details).toMatch(/expired/);
    // Re-enrolment gives a working token again.
    expect(auth.authorize(call(enrolled(auth, 'alice')), { kind: 'client', clientId: 'alice' }).ok).toBe(
      true,
    );
  });

  it('revoking one token leaves the client’s other tokens valid', () => {
    const auth = new Authenticator(config(), { key: randomBytes(32) });
    const first = enrolled(auth, 'alice');
    const second = enrolled(auth, 'alice');
    expect(auth.revokeToken(first)).toBe(true);
    const r = auth.authorize(call(first), { kind: 'client', clientId: 'alice' });
    expect(!r.ok && r.error.details).toMatch(/revoked/);
    expect(auth.authorize(call(second), { kind: 'client', clientId: 'alice' }).ok).toBe(true);
    expect(auth.revokeToken('al1:alice:1:2:nonce:AAAA')).toBe(false);
  });

  it("ending a removed client's tokens leaves enrolment as it was (open, or blocked when revoked)", () => {
    const auth = new Authenticator(config(), { key: randomBytes(32) });
    const alice = enrolled(auth, 'alice');
    auth.endClientTokens('alice');
    expect(auth.authorize(call(alice), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
    const fresh = enrolled(auth, 'alice');
    expect(auth.authorize(call(fresh), { kind: 'client', clientId: 'alice' }).ok).toBe(true);
    auth.revokeClient('bob');
    auth.endClientTokens('bob');
    const bob = auth.enroll(call(), {
      clientId: 'bob',
      enrollmentSecret: SECRET,
      clientCredential: CREDENTIAL,
    });
    expect(!bob.ok && bob.error.code).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('revoking a client kills its tokens and blocks enrolment until reinstated', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-auth-'));
    const auth = openAuthenticator(dataDir, config());
    const token = enrolled(auth, 'alice');
    const bob = enrolled(auth, 'bob');
    auth.revokeClient('alice');
    expect(auth.authorize(call(token), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
    const again = auth.enroll(call(), {
      clientId: 'alice',
      enrollmentSecret: SECRET,
      clientCredential: CREDENTIAL,
    });
    expect(!again.ok && again.error.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(auth.authorize(call(bob), { kind: 'client', clientId: 'bob' }).ok).toBe(true);

    // Survives a restart: same key (bob's token still valid), same revocations.
    const reopened = openAuthenticator(dataDir, config());
    expect(reopened.authorize(call(bob), { kind: 'client', clientId: 'bob' }).ok).toBe(true);
    expect(reopened.authorize(call(token), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
    expect(
      reopened.enroll(call(), { clientId: 'alice', enrollmentSecret: SECRET, clientCredential: CREDENTIAL })
        .ok,
    ).toBe(false);
    reopened.reinstateClient('alice');
    const fresh = enrolled(reopened, 'alice');
    expect(reopened.authorize(call(fresh), { kind: 'client', clientId: 'alice' }).ok).toBe(true);
    expect(reopened.authorize(call(token), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
  });

  it('a running coordinator hears of revocations made by another process, and of an unreadable list', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-auth-'));
    const events: string[] = [];
    const running = openAuthenticator(dataDir, config(), undefined, {
      revoked: (clientId) => events.push(`revoked ${clientId}`),
      unreadable: (message) => events.push(`unreadable: ${message}`),
    });
    const token = enrolled(running, 'alice');
    // The CLI's --revoke-client, in another process, edits the same file.
    openAuthenticator(dataDir, config()).revokeClient('alice');
    await new Promise((r) => setTimeout(r, 1_100)); // the file is looked at once a second
    expect(running.authorize(call(token), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
    expect(events).toEqual(['revoked alice']);
    writeFileSync(join(dataDir, 'auth', 'revocations.json'), '{"version":1,');
    await new Promise((r) => setTimeout(r, 1_100));
    expect(running.authorize(call(token), { kind: 'client', clientId: 'alice' }).ok).toBe(false);
    running.authorize(call(token), { kind: 'client', clientId: 'alice' });
    expect(events.slice(1)).toHaveLength(1);
    expect(events[1]).toMatch(/^unreadable: .*corrupt.*1 client revocation\(s\) already known stay in force/);
  });

  it('keeps the key owner-only and refuses a corrupt key or revocation list', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-auth-'));
    const key = loadOrCreateTokenKey(dataDir);
    expect(key.length).toBe(32);
    expect(loadOrCreateTokenKey(dataDir).equals(key)).toBe(true);
    expect(statSync(join(dataDir, 'auth', 'token-key')).mode & 0o777).toBe(0o600);
    writeFileSync(join(dataDir, 'auth', 'token-key'), 'short');
    expect(() => loadOrCreateTokenKey(dataDir)).toThrow(/expected 32/);

    const other = mkdtempSync(join(tmpdir(), 'atomlens-auth-'));
    openAuthenticator(other, config()).revokeClient('x');
    expect(JSON.parse(readFileSync(join(other, 'auth', 'revocations.json'), 'utf8')).clients.x.blocked).toBe(
      true,
    );
    writeFileSync(join(other, 'auth', 'revocations.json'), '{"version":1,');
    expect(() => openAuthenticator(other, config())).toThrow(/corrupt/);
  });
});

describe('configuration', () => {
  it('reads secrets from config, files and environment, storing operator tokens as digests', () => {
    const dir = mkdtempSync(join(tmpdir(), 'atomlens-authcfg-'));
    writeFileSync(join(dir, 'secret.txt'), `${SECRET}\n`);
    writeFileSync(join(dir, 'ops.txt'), `# operators\n${OPERATOR}\n`);
    const c = resolveAuthConfig(
      {
        enabled: true,
        enrollmentSecretFile: 'secret.txt',
        operatorTokenFile: 'ops.txt',
        metrics: 'operator',
      },
      { ATOMLENS_OPERATOR_TOKEN: `sha256:${tokenDigest('env-operator-token-123456')}` },
      dir,
    );
    expect(c.enrollmentSecret).toBe(SECRET);
    expect(c.operatorTokenDigests).toEqual([tokenDigest(OPERATOR), tokenDigest('env-operator-token-123456')]);
    expect(c.http).toEqual({ metrics: 'operator', health: 'open' });
    expect(resolveAuthConfig(undefined, { ATOMLENS_ENROLLMENT_SECRET: SECRET }).enrollmentSecret).toBe(
      SECRET,
    );
  });

  it('rejects bad settings with the key named', () => {
    expect(() => resolveAuthConfig({ enabeld: true }, {})).toThrow(/unknown setting auth\.enabeld/);
    expect(() => resolveAuthConfig({ enrollmentSecret: 'short' }, {})).toThrow(/at least 16 characters/);
    expect(() => resolveAuthConfig({ operatorTokens: ['sha256:xyz'] }, {})).toThrow(/64 hex digits/);
    expect(() => resolveAuthConfig({ tokenTtlSeconds: 0 }, {})).toThrow(/tokenTtlSeconds/);
    expect(() => resolveAuthConfig({ metrics: 'closed' }, {})).toThrow(/auth\.metrics/);
    expect(() => resolveAuthConfig({ enrollmentSecretFile: '/nonexistent/x' }, {})).toThrow(AuthConfigError);
  });

  it('refuses an enabled configuration nobody can enrol in', () => {
    const noSecret = config({ enrollmentSecret: undefined });
    delete noSecret.enrollmentSecret;
    expect(() => checkAuthUsable(noSecret, { tls: true, clientCertificates: false })).toThrow(
      /no client can enrol/,
    );
    expect(() => checkAuthUsable(noSecret, { tls: true, clientCertificates: true })).not.toThrow();
  });
});
