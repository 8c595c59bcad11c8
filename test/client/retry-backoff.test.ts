// A client whose uploads keep failing backs off between attempts even while Register keeps
// succeeding (no Register → Session → PushAtoms loop without delay), and stops at once on a
// status that is not transient: only UNAVAILABLE, DEADLINE_EXCEEDED and RESOURCE_EXHAUSTED are
// retried.
import { afterEach, describe, expect, it } from 'vitest';
import { runClient } from '../../src/client/client.js';
import { createLogger } from '../../src/shared/log.js';
import { type Harness, startHarness } from '../coordinator/helpers.js';

const quiet = createLogger('test', 'silent');

async function registrations(h: Harness): Promise<number> {
  const metric = await h.running.metrics.grpcRequests.get();
  return metric.values
    .filter((v) => v.labels.method === 'Federation/Register')
    .reduce((sum, v) => sum + v.value, 0);
}

async function uploads(h: Harness): Promise<number> {
  const metric = await h.running.metrics.grpcRequests.get();
  return metric.values
    .filter((v) => v.labels.method === 'Federation/PushAtoms')
    .reduce((sum, v) => sum + v.value, 0);
}

const clientOptions = (h: Harness) => ({
  address: `127.0.0.1:${h.running.grpcPort}`,
  clientId: 'alice',
  tasks: '0-1',
  rounds: 1,
  maxBatchesPerRound: 1,
  batchSize: 8,
  backend: 'wasm' as const,
  giveUpAfterMs: 60_000,
  backoff: { initialMs: 200, maxMs: 1_000 },
  logger: quiet,
});

describe('client retries', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it('backs off while PushAtoms keeps failing with UNAVAILABLE and Register keeps succeeding', async () => {
    h = await startHarness();
    const storage = h.running.storage;
    let failing = 0;
    storage.putAtoms = async () => {
      failing++;
      throw new Error('disk full');
    };
    const abort = new AbortController();
    const run = runClient({ ...clientOptions(h), signal: abort.signal }).catch((e: unknown) => e);
    // Watch 3 s of failures from the first one on.
    const until = Date.now() + 60_000;
    while (failing === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(failing).toBeGreaterThan(0);
    const [registeredAt, uploadedAt] = [await registrations(h), await uploads(h)];
    await new Promise((r) => setTimeout(r, 3_000));
    abort.abort();
    await run;
    const attempts = (await uploads(h)) - uploadedAt;
    const registered = (await registrations(h)) - registeredAt;
    // Delays from 200 ms doubling to 1 s: about 5 attempts in 3 s; without backoff, hundreds.
    expect(attempts).toBeGreaterThanOrEqual(2);
    expect(attempts).toBeLessThanOrEqual(10);
    expect(registered).toBeLessThanOrEqual(10);
  }, 90_000);

  it('stops at once when PushAtoms fails with a status that is not transient', async () => {
    h = await startHarness();
    h.running.federation.pushAtoms = async () => {
      throw new Error('a bug in the coordinator'); // answered as INTERNAL
    };
    const err = await runClient(clientOptions(h)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String((err as Error).message)).toMatch(/rejected/);
    expect(await uploads(h)).toBe(1);
    expect(await registrations(h)).toBe(1);
  }, 90_000);
});
