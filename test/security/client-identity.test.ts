// A client id belongs to the client that first enrolled it with the enrolment secret: a second
// party that knows the secret cannot register under that id (and so gets no token for it and
// cannot take over its session), until the operator releases the id by removing the client.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/coordinator/auth/authenticator.js';
import { grpcAuthHooks } from '../../src/coordinator/auth/hooks.js';
import { tokenDigest } from '../../src/coordinator/auth/tokens.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import { buildTemplate } from '../../src/shared/template.js';
import {
  expectStatus,
  type Harness,
  pushRequest,
  randomAtoms,
  rpc,
  startHarness,
  waitFor,
} from '../coordinator/helpers.js';

const SECRET = 'identity-test-enrolment-secret';
const TASKS = [{ taskId: 't', classes: [1] }];
const template = buildTemplate();

function authenticator(): Authenticator {
  return new Authenticator(
    {
      enabled: true,
      enrollmentSecret: SECRET,
      mtlsEnrollment: false,
      tokenTtlSeconds: 3600,
      operatorTokenDigests: [tokenDigest('operator-token-123456789')],
      http: { metrics: 'open', health: 'open' },
    },
    { key: Buffer.alloc(32, 7) },
  );
}

describe('a client id is bound to the credential of its first enrolment', () => {
  let h: Harness;
  const operator = new grpc.Metadata();
  operator.set('authorization', 'Bearer operator-token-123456789');
  const aliceCredential = randomBytes(32);
  const malloryCredential = randomBytes(32);

  const register = (clientId: string, clientCredential: Buffer | undefined) =>
    rpc<RegisterResponse__Output>((cb) =>
      h.fed.Register(
        {
          clientId,
          tasks: TASKS,
          enrollmentSecret: SECRET,
          ...(clientCredential ? { clientCredential } : {}),
        },
        cb,
      ),
    );

  beforeAll(async () => {
    h = await startHarness({
      config: { sessions: { heartbeatIntervalMs: 100, timeoutMs: 5_000 } },
      extra: grpcAuthHooks(authenticator()),
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('refuses a second party with the enrolment secret, and the first session stays', async () => {
    const alice = await register('alice', aliceCredential);
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${alice.token}`);
    const session = h.fed.Session(md);
    let aliceEnded: grpc.ServiceError | undefined;
    session.on('error', (err: grpc.ServiceError) => {
      aliceEnded = err;
    });
    session.on('data', () => undefined);
    session.write({ hello: { clientId: 'alice' } });
    await waitFor(() => h.running.sessions.isConnected('alice'), 5_000, 'the session');
    const beat = setInterval(() => session.write({ heartbeat: { sentAtMs: Date.now() } }), 100);
    try {
      // Mallory knows the enrolment secret but not alice's credential: no token, so no Session
      // hello as alice (which would supersede hers).
      await expectStatus(
        register('alice', malloryCredential),
        grpc.status.PERMISSION_DENIED,
        /already enrolled.*--state-dir.*atomlens status --remove-client alice/s,
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(aliceEnded).toBeUndefined();
      expect(h.running.sessions.isConnected('alice')).toBe(true);
      // Alice herself re-registers (a token refresh) with her credential.
      expect((await register('alice', aliceCredential)).token).not.toBe('');
    } finally {
      clearInterval(beat);
      session.end();
      session.cancel();
    }
  });

  it('needs a credential alongside the enrolment secret', async () => {
    await expectStatus(register('carol', undefined), grpc.status.UNAUTHENTICATED, /client_credential/);
    // Nothing was stored for the refused registration.
    expect(h.running.federation.client('carol')).toBeUndefined();
  });

  it('refuses a credential that is too short or too long', async () => {
    await expectStatus(register('dave', randomBytes(8)), grpc.status.INVALID_ARGUMENT, /client_credential/);
    await expectStatus(
      register('dave', randomBytes(1025)),
      grpc.status.INVALID_ARGUMENT,
      /client_credential/,
    );
  });

  it('keeps the binding across a coordinator restart', async () => {
    await register('erin', aliceCredential);
    await h.running.stop({ drain: false });
    await h.restart();
    await expectStatus(register('erin', malloryCredential), grpc.status.PERMISSION_DENIED);
    expect((await register('erin', aliceCredential)).token).not.toBe('');
  });

  it('is released when the operator removes the client, whose old tokens end', async () => {
    const before = await register('frank', aliceCredential);
    await expectStatus(register('frank', malloryCredential), grpc.status.PERMISSION_DENIED);
    await rpc((cb) => h.op.RemoveClient({ clientId: 'frank' }, operator, cb));
    // The id is free again: whoever enrols next binds it.
    const after = await register('frank', malloryCredential);
    await expectStatus(register('frank', aliceCredential), grpc.status.PERMISSION_DENIED);
    // The previous holder's token does not act for the new holder of the id.
    const push = (token: string) => {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${token}`);
      return rpc((cb) =>
        h.fed.PushAtoms(pushRequest(template, 'frank', 't', 1, randomAtoms(template, 1)), md, cb),
      );
    };
    await expectStatus(push(before.token), grpc.status.UNAUTHENTICATED, /revoked/);
    await push(after.token);
  });
});
