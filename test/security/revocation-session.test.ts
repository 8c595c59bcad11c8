// Revoking a client ends its open session: the Session stream is re-authorised at every
// heartbeat, so a revoked token ends it at the next one, and the client is no longer connected.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grpcAuthHooks } from '../../src/coordinator/auth/hooks.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import { type Harness, rpc, startHarness, waitFor } from '../coordinator/helpers.js';
import { testCredential, tokenAuthenticator } from './helpers.js';

const SECRET = 'revocation-test-secret-123456';

describe('revocation of a connected client', () => {
  let h: Harness;
  const auth = tokenAuthenticator(SECRET, 'operator-token-123456789');
  beforeAll(async () => {
    h = await startHarness({
      config: { sessions: { heartbeatIntervalMs: 100, timeoutMs: 5_000 } },
      extra: grpcAuthHooks(auth),
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('ends the open session at its next heartbeat with UNAUTHENTICATED', async () => {
    const registered = await rpc<RegisterResponse__Output>((cb) =>
      h.fed.Register(
        {
          clientId: 'mallory',
          tasks: [{ taskId: 't', classes: [1] }],
          enrollmentSecret: SECRET,
          clientCredential: testCredential('mallory'),
        },
        cb,
      ),
    );
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${registered.token}`);
    const session = h.fed.Session(md);
    const ended = new Promise<grpc.ServiceError>((resolve) => session.on('error', resolve));
    session.on('data', () => undefined);
    session.write({ hello: { clientId: 'mallory' } });
    await waitFor(() => h.running.sessions.isConnected('mallory'), 5_000, 'the session');
    const beat = setInterval(() => session.write({ heartbeat: { sentAtMs: Date.now() } }), 100);
    try {
      // Heartbeats pass while the token is valid.
      await new Promise((r) => setTimeout(r, 300));
      expect(h.running.sessions.isConnected('mallory')).toBe(true);
      auth.revokeClient('mallory');
      const err = await ended;
      expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
      expect(err.details).toMatch(/revoked/);
      await waitFor(() => !h.running.sessions.isConnected('mallory'), 5_000, 'the session to close');
    } finally {
      clearInterval(beat);
    }
  });
});
