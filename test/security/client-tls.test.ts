// The real client (runClient, TensorFlow.js) against a coordinator with mutual TLS and tokens:
// it enrols by its certificate, uploads every round, renews its token by registering again when
// the token expires mid-run, and is refused for good once the operator revokes it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClientProgressEvent, RejectedError, runClient } from '../../src/client/client.js';
import { prepareSecurity, type Security } from '../../src/coordinator/auth/security.js';
import { tokenDigest } from '../../src/coordinator/auth/tokens.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { createLogger } from '../../src/shared/log.js';
import { grpcChannelCredentials, loadClientTls } from '../../src/shared/tls.js';
import { type CertDir, HAS_OPENSSL, makeCerts } from './helpers.js';

const TTL_SECONDS = 60;

describe.skipIf(!HAS_OPENSSL)('real client over mutual TLS with tokens', () => {
  let certs: CertDir;
  let dataDir: string;
  let security: Security;
  let running: RunningCoordinator;
  const clock = { offsetMs: 0 };
  const quiet = createLogger('client-tls', 'silent');

  beforeAll(async () => {
    certs = makeCerts(['alice']);
    dataDir = mkdtempSync(join(tmpdir(), 'atomlens-client-tls-'));
    security = prepareSecurity({
      dataDir,
      tls: { cert: certs.serverCert, key: certs.serverKey, clientCa: certs.ca, requireClientCert: true },
      auth: {
        enabled: true,
        mtlsEnrollment: true,
        tokenTtlSeconds: TTL_SECONDS,
        operatorTokenDigests: [tokenDigest('client-tls-operator-token')],
        http: { metrics: 'open', health: 'open' },
      },
      now: () => Date.now() + clock.offsetMs,
    });
    running = await startCoordinator({
      dataDir,
      grpcPort: 0,
      httpPort: 0,
      logger: quiet,
      ...security.options,
    });
  });
  afterAll(async () => {
    await running?.stop({ drain: false });
    rmSync(dataDir, { recursive: true, force: true });
  });

  const credentials = () =>
    grpcChannelCredentials(
      loadClientTls({ ca: certs.ca, cert: certs.clientCert('alice'), key: certs.clientKey('alice') }),
    );

  it('enrols by certificate, uploads every round, and renews an expired token by registering again', async () => {
    const events: ClientProgressEvent[] = [];
    const summary = await runClient({
      address: `localhost:${running.grpcPort}`,
      clientId: 'alice',
      tasks: '0-1',
      rounds: 3,
      maxBatchesPerRound: 2,
      batchSize: 16,
      seed: 3,
      backend: 'wasm',
      credentials,
      giveUpAfterMs: 20_000,
      backoff: { initialMs: 50, maxMs: 200 },
      logger: quiet,
      onProgress: (e) => {
        events.push(e);
        // After the first acknowledged round, jump the coordinator's clock past the token's life.
        if (e.type === 'uploaded' && e.round === 1) clock.offsetMs += (TTL_SECONDS + 1) * 1000;
      },
    });
    expect(summary.tasks[0]!.rounds).toEqual([1, 2, 3]);
    expect(summary.reconnects).toBeGreaterThanOrEqual(1);
    expect((await running.storage.listRounds('alice', '0-1', false)).map((r) => r.round)).toEqual([1, 2, 3]);
    expect(events.filter((e) => e.type === 'connected').length).toBeGreaterThanOrEqual(2);
  });

  it('once revoked, the client is refused (no retry loop)', async () => {
    security.authenticator!.revokeClient('alice');
    const started = Date.now();
    await expect(
      runClient({
        address: `localhost:${running.grpcPort}`,
        clientId: 'alice',
        tasks: '0-1',
        rounds: 1,
        maxBatchesPerRound: 1,
        backend: 'keep',
        credentials,
        giveUpAfterMs: 20_000,
        logger: quiet,
      }),
    ).rejects.toBeInstanceOf(RejectedError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
