// Authentication and authorisation against a real coordinator over TLS (and mutual TLS):
// wrong/missing token, a client pushing as another, expired and revoked tokens, operator calls,
// sessions and probe answers in another client's name, plaintext against TLS, mTLS identity.
// Every refused call must leave storage unchanged.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/coordinator/auth/authenticator.js';
import type { AuthConfig } from '../../src/coordinator/auth/config.js';
import { grpcAuthHooks } from '../../src/coordinator/auth/hooks.js';
import { tokenDigest } from '../../src/coordinator/auth/tokens.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import type { PushAtomsResponse__Output } from '../../src/generated/atomlens/v1/PushAtomsResponse.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import { createLogger } from '../../src/shared/log.js';
import {
  grpcChannelCredentials,
  grpcServerCredentials,
  loadClientTls,
  loadServerTls,
} from '../../src/shared/tls.js';
import {
  atomsRequest,
  bearer,
  type CertDir,
  codeOf,
  federationClient,
  HAS_OPENSSL,
  makeCerts,
  operatorClient,
  rpc,
  testCredential,
  waitFor,
} from './helpers.js';

const SECRET = 'integration-enrolment-secret-42';
const OPERATOR = 'integration-operator-token-0042';
const TASKS = [{ taskId: '0-1', classes: [0, 1] }];

function authConfig(): AuthConfig {
  return {
    enabled: true,
    enrollmentSecret: SECRET,
    mtlsEnrollment: true,
    tokenTtlSeconds: 3600,
    operatorTokenDigests: [tokenDigest(OPERATOR)],
    http: { metrics: 'open', health: 'open' },
  };
}

interface Secured {
  running: RunningCoordinator;
  auth: Authenticator;
  address: string;
  dataDir: string;
  clock: { now: number };
}

async function startSecured(certs: CertDir, mtls: boolean): Promise<Secured> {
  const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-sec-'));
  const clock = { now: Date.now() };
  const auth = new Authenticator(authConfig(), { key: Buffer.alloc(32, 7), now: () => clock.now });
  const material = loadServerTls({
    cert: certs.serverCert,
    key: certs.serverKey,
    ...(mtls ? { clientCa: certs.ca, requireClientCert: true } : {}),
  });
  const running = await startCoordinator({
    dataDir,
    grpcPort: 0,
    httpPort: 0,
    logger: createLogger('test', 'silent'),
    grpcCredentials: grpcServerCredentials(material),
    ...grpcAuthHooks(auth),
  });
  return { running, auth, address: `localhost:${running.grpcPort}`, dataDir, clock };
}

function register(
  fed: FederationServiceClient,
  clientId: string,
  secret = SECRET,
): Promise<RegisterResponse__Output> {
  return rpc<RegisterResponse__Output>((cb) =>
    fed.register(
      {
        clientId,
        tasks: TASKS,
        enrollmentSecret: secret,
        clientCredential: testCredential(clientId),
        clientVersion: 'test',
      },
      cb,
    ),
  );
}

function push(fed: FederationServiceClient, token: string, clientId: string, round: number) {
  return rpc<PushAtomsResponse__Output>((cb) =>
    fed.pushAtoms(atomsRequest(clientId, '0-1', round), bearer(token), cb),
  );
}

describe.skipIf(!HAS_OPENSSL)('TLS coordinator with enrolment secret and tokens', () => {
  let certs: CertDir;
  let s: Secured;
  let fed: FederationServiceClient;
  let op: OperatorServiceClient;
  let alice: string;
  let bob: string;

  beforeAll(async () => {
    certs = makeCerts(['alice', 'bob']);
    s = await startSecured(certs, false);
    const creds = grpcChannelCredentials(loadClientTls({ ca: certs.ca }));
    fed = federationClient(s.address, creds);
    op = operatorClient(s.address, creds);
    alice = (await register(fed, 'alice')).token;
    bob = (await register(fed, 'bob')).token;
  });
  afterAll(async () => {
    fed?.close();
    op?.close();
    await s?.running.stop({ drain: false });
    if (s) rmSync(s.dataDir, { recursive: true, force: true });
  });

  it('hands out tokens bound to the id; a client pushes its own atoms', async () => {
    expect(alice).toMatch(/^al1:alice:/);
    expect(bob).toMatch(/^al1:bob:/);
    const r = await push(fed, alice, 'alice', 1);
    expect(r.round).toBe(1);
    expect(await s.running.storage.getRound('alice', '0-1', 1)).toBeDefined();
  });

  it('a plaintext client against the TLS server cannot even connect', async () => {
    const plain = federationClient(s.address.replace('localhost', '127.0.0.1'));
    try {
      expect(await codeOf(register(plain, 'eve'))).toBe(grpc.status.UNAVAILABLE);
    } finally {
      plain.close();
    }
    expect(await s.running.storage.getClient('eve')).toBeUndefined();
  });

  it('Register with a wrong or missing secret is UNAUTHENTICATED and stores nothing', async () => {
    expect(await codeOf(register(fed, 'eve', 'wrong-secret-but-long-enough'))).toBe(
      grpc.status.UNAUTHENTICATED,
    );
    expect(await codeOf(register(fed, 'eve', ''))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await s.running.storage.getClient('eve')).toBeUndefined();
  });

  it('PushAtoms without a token or with a forged one is UNAUTHENTICATED and stores nothing', async () => {
    const before = await s.running.storage.countUploads();
    expect(await codeOf(push(fed, '', 'alice', 2))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await codeOf(push(fed, 'garbage-token', 'alice', 2))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await codeOf(push(fed, alice.replace(':alice:', ':bob:'), 'bob', 2))).toBe(
      grpc.status.UNAUTHENTICATED,
    );
    expect(await s.running.storage.countUploads()).toBe(before);
  });

  it('a client pushing as another is PERMISSION_DENIED and stores nothing', async () => {
    const before = await s.running.storage.countUploads();
    const err = await push(fed, bob, 'alice', 2).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.PERMISSION_DENIED);
    expect((err as grpc.ServiceError).details).toMatch(/bound to client 'bob'/);
    expect(await s.running.storage.getRound('alice', '0-1', 2)).toBeUndefined();
    expect(await s.running.storage.countUploads()).toBe(before);
  });

  it('an expired token is UNAUTHENTICATED; registering again gives a working one', async () => {
    const carol = (await register(fed, 'carol')).token;
    await push(fed, carol, 'carol', 1);
    s.clock.now += 3600 * 1000;
    const err = await push(fed, carol, 'carol', 2).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAUTHENTICATED);
    expect((err as grpc.ServiceError).details).toMatch(/expired/);
    expect(await s.running.storage.getRound('carol', '0-1', 2)).toBeUndefined();
    const fresh = (await register(fed, 'carol')).token;
    expect((await push(fed, fresh, 'carol', 2)).round).toBe(2);
    // The other clients' tokens were issued an hour "ago" too: refresh them for the next tests.
    alice = (await register(fed, 'alice')).token;
    bob = (await register(fed, 'bob')).token;
  });

  it('a revoked token is UNAUTHENTICATED; a revoked client cannot re-enrol', async () => {
    const dave = (await register(fed, 'dave')).token;
    await push(fed, dave, 'dave', 1);
    s.auth.revokeToken(dave);
    expect(await codeOf(push(fed, dave, 'dave', 2))).toBe(grpc.status.UNAUTHENTICATED);
    const again = (await register(fed, 'dave')).token;
    await push(fed, again, 'dave', 2);
    s.auth.revokeClient('dave');
    expect(await codeOf(push(fed, again, 'dave', 3))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await codeOf(register(fed, 'dave'))).toBe(grpc.status.PERMISSION_DENIED);
    expect(await s.running.storage.getRound('dave', '0-1', 3)).toBeUndefined();
  });

  it('operator calls need the operator token', async () => {
    expect(await codeOf(rpc((cb) => op.listClients({}, bearer(''), cb)))).toBe(grpc.status.UNAUTHENTICATED);
    expect(await codeOf(rpc((cb) => op.listClients({}, bearer(alice), cb)))).toBe(
      grpc.status.PERMISSION_DENIED,
    );
    const listed = await rpc<{ clients: { clientId: string }[] }>((cb) =>
      op.listClients({}, bearer(OPERATOR), cb),
    );
    expect(listed.clients.map((c) => c.clientId)).toContain('alice');
    // The operator token is not a client token.
    expect(await codeOf(push(fed, OPERATOR, 'alice', 5))).toBe(grpc.status.PERMISSION_DENIED);
  });

  it('a Session hello in another client’s name is refused', async () => {
    const session = fed.session(bearer(bob));
    const code = await new Promise<grpc.status>((resolve) => {
      session.on('error', (e: grpc.ServiceError) => resolve(e.code));
      session.on('data', () => undefined);
      session.write({ hello: { clientId: 'alice' } });
      // Accepted sessions stay open: give up after a while so a regression fails fast.
      setTimeout(() => {
        session.cancel();
        resolve(grpc.status.OK);
      }, 5_000);
    });
    expect(code).toBe(grpc.status.PERMISSION_DENIED);
    expect(s.running.sessions.connectedCount()).toBe(0);
  });

  it('only the addressed client can answer its probe request, with its own token', async () => {
    // alice opens a session and is sent a probe request.
    const session = fed.session(bearer(alice));
    const probes: string[] = [];
    session.on('data', (m: { kind: string; probeRequest?: { requestId: string } }) => {
      if (m.kind === 'probeRequest') probes.push(m.probeRequest!.requestId);
    });
    session.on('error', () => undefined);
    session.write({ hello: { clientId: 'alice' } });
    await waitFor(() => s.running.sessions.connectedCount() === 1, 10_000, 20);
    const n = 4;
    const answer = s.running.sessions.requestProbe('alice', {
      taskId: '0-1',
      layers: ['conv1'],
      probe: { source: 'noise', size: n, seed: 1, pooling: 'gap' },
      deadlineMs: Date.now() + 20_000,
    });
    answer.catch(() => undefined);
    await waitFor(() => probes.length === 1, 10_000, 20);
    const requestId = probes[0]!;
    const chunk = (clientId: string) => ({
      requestId,
      clientId,
      taskId: '0-1',
      round: 1,
      layer: 'conv1',
      n,
      featureDim: 8,
      offset: 0,
      data: Buffer.from(new Float32Array(n * n).fill(1).buffer),
    });
    const upload = (token: string, clientId: string) =>
      rpc<{ layers: string[] }>((cb) => {
        const call = fed.pushProbeSummary(bearer(token), cb);
        call.write(chunk(clientId));
        call.end();
      });
    // bob, with his own token, in alice's name → PERMISSION_DENIED.
    expect(await codeOf(upload(bob, 'alice'))).toBe(grpc.status.PERMISSION_DENIED);
    // bob, in his own name, quoting alice's request → refused (it was not sent to him).
    expect(await codeOf(upload(bob, 'bob'))).toBe(grpc.status.INVALID_ARGUMENT);
    expect(await s.running.storage.getProbeSummaries(requestId)).toHaveLength(0);
    // alice answers: accepted and delivered.
    expect((await upload(alice, 'alice')).layers).toEqual(['conv1']);
    const got = await answer;
    expect(got.layers.get('conv1')?.gram[0]).toBe(1);
    session.cancel();
  });
});

describe.skipIf(!HAS_OPENSSL)('mutual TLS: the certificate CN must be the client id', () => {
  let certs: CertDir;
  let s: Secured;
  const as = (id: string) =>
    federationClient(
      s.address,
      grpcChannelCredentials(
        loadClientTls({ ca: certs.ca, cert: certs.clientCert(id), key: certs.clientKey(id) }),
      ),
    );

  beforeAll(async () => {
    certs = makeCerts(['alice', 'bob']);
    s = await startSecured(certs, true);
  });
  afterAll(async () => {
    await s?.running.stop({ drain: false });
    if (s) rmSync(s.dataDir, { recursive: true, force: true });
  });

  it('a client enrols by its certificate alone and pushes', async () => {
    const fed = as('alice');
    try {
      const token = (await register(fed, 'alice', '')).token;
      expect((await push(fed, token, 'alice', 1)).round).toBe(1);
    } finally {
      fed.close();
    }
  });

  it('a certificate for another id cannot register or push as alice, even with the secret or her token', async () => {
    const alice = as('alice');
    const bob = as('bob');
    try {
      const aliceToken = (await register(alice, 'alice', '')).token;
      expect(await codeOf(register(bob, 'alice', SECRET))).toBe(grpc.status.PERMISSION_DENIED);
      const before = await s.running.storage.countUploads();
      expect(await codeOf(push(bob, aliceToken, 'alice', 2))).toBe(grpc.status.PERMISSION_DENIED);
      expect(await s.running.storage.countUploads()).toBe(before);
    } finally {
      alice.close();
      bob.close();
    }
  });

  it('a client without a certificate is refused at the handshake', async () => {
    const anon = federationClient(s.address, grpcChannelCredentials(loadClientTls({ ca: certs.ca })));
    try {
      expect(await codeOf(register(anon, 'alice', SECRET))).toBe(grpc.status.UNAVAILABLE);
    } finally {
      anon.close();
    }
  });
});
