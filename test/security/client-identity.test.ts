// A client id belongs to the client that first enrolled it with the enrolment secret: a second
// party that knows the secret cannot register under that id (and so gets no token for it and
// cannot take over its session), until the operator releases the id by removing the client.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcAuthHooks } from '../../src/coordinator/auth/hooks.js';
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
import { runAtomlens } from '../helpers/cli.js';
import { tokenAuthenticator } from './helpers.js';

const SECRET = 'identity-test-enrolment-secret';
const TASKS = [{ taskId: 't', classes: [1] }];
const template = buildTemplate();

const authenticator = () => tokenAuthenticator(SECRET, 'operator-token-123456789');

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

/** `atomlens client` with the enrolment secret in its environment, as the docs show. */
const atomlensClient = (args: string[]) =>
  runAtomlens(['client', ...args], {
    ...process.env,
    ATOMLENS_ENROLLMENT_SECRET: SECRET,
    ATOMLENS_LOG: 'error',
  });

describe('atomlens client --state-dir', () => {
  let h: Harness;
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-client-state-'));
  beforeAll(async () => {
    h = await startHarness({ extra: grpcAuthHooks(authenticator()) });
  });
  afterAll(async () => {
    await h?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs again as the same client with its state directory; another directory is refused', async () => {
    const run = (stateDir: string) =>
      atomlensClient([
        '--coordinator',
        `127.0.0.1:${h.running.grpcPort}`,
        '--id',
        'site-a',
        '--tasks',
        '0-1',
        '--rounds',
        '0',
        '--state-dir',
        stateDir,
      ]);
    const first = await run(join(dir, 'a'));
    expect(first.code, first.stderr).toBe(0);
    expect(existsSync(join(dir, 'a', 'client-credential'))).toBe(true);
    const again = await run(join(dir, 'a'));
    expect(again.code, again.stderr).toBe(0);
    const other = await run(join(dir, 'b'));
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(
      /PERMISSION_DENIED: client id 'site-a' is already enrolled.*--state-dir.*atomlens status --remove-client site-a/,
    );
  });
});
