// A client started without --ca against a coordinator that speaks TLS is told so at once (the
// flag to pass), instead of retrying for its whole reconnect budget.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RejectedError, runClient } from '../../src/client/client.js';
import { prepareSecurity } from '../../src/coordinator/auth/security.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { createLogger } from '../../src/shared/log.js';
import { HAS_OPENSSL, makeCerts } from './helpers.js';

const quiet = createLogger('tls-hint', 'silent');

describe.skipIf(!HAS_OPENSSL)('plaintext client, TLS coordinator', () => {
  let dataDir: string;
  let running: RunningCoordinator;
  beforeAll(async () => {
    const certs = makeCerts([]);
    dataDir = mkdtempSync(join(tmpdir(), 'atomlens-tls-hint-'));
    const security = prepareSecurity({ dataDir, tls: { cert: certs.serverCert, key: certs.serverKey } });
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

  it('fails within seconds naming --ca, not after the 60 s reconnect budget', async () => {
    const started = Date.now();
    const err = await runClient({
      address: `localhost:${running.grpcPort}`,
      clientId: 'alice',
      tasks: '0-1',
      rounds: 1,
      maxBatchesPerRound: 1,
      backend: 'wasm',
      giveUpAfterMs: 60_000,
      logger: quiet,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RejectedError);
    expect((err as Error).message).toMatch(/speaks TLS.*--ca FILE/);
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 90_000);
});
