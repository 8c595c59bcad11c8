// The SDK honours the coordinator's retry hint: a refusal with the grpc-retry-pushback-ms trailer
// (what a full storage write queue answers) makes the next attempt wait at least that long, at
// most 60 s; a malformed hint leaves the client's own backoff in charge.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RpcError } from '../../src/coordinator/calls.js';
import { AtomlensClient, type FederationEvent, initBackend } from '../../src/index.js';
import { createLogger } from '../../src/shared/log.js';
import { type Harness, startHarness } from '../coordinator/helpers.js';

const quiet = createLogger('sdk-pushback', 'silent');

/** Atoms for every template layer. */
function atomsOf(client: AtomlensClient): Map<string, Float32Array> {
  return new Map(client.template.layers.map((l) => [l.name, new Float32Array(l.m * l.k * l.k).fill(0.1)]));
}

describe('AtomlensClient: the server’s retry hint', () => {
  let h: Harness | undefined;
  let client: AtomlensClient | undefined;
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterEach(async () => {
    client?.close();
    client = undefined;
    await h?.close();
    h = undefined;
  });

  /**
   * A client whose first `refusals` pushes are refused with RESOURCE_EXHAUSTED and the hint
   * `pushbackMs` (sent as String(pushbackMs)); its own backoff is 10–20 ms.
   */
  async function refusingCoordinator(pushbackMs: number, refusals: number) {
    h = await startHarness();
    const federation = h.running.federation;
    const realPush = federation.pushAtoms.bind(federation);
    const attemptsAt: number[] = [];
    federation.pushAtoms = async (...args: Parameters<typeof realPush>) => {
      attemptsAt.push(performance.now());
      if (attemptsAt.length <= refusals) {
        throw new RpcError(grpc.status.RESOURCE_EXHAUSTED, 'the write queue is full', pushbackMs);
      }
      return realPush(...args);
    };
    const retries: Extract<FederationEvent, { type: 'retry' }>[] = [];
    client = await AtomlensClient.connect({
      address: `127.0.0.1:${h.running.grpcPort}`,
      clientId: 'pushed-back',
      tasks: [{ id: 'task', classes: [0, 1] }],
      backoff: { initialMs: 10, maxMs: 20, giveUpAfterMs: 600_000 },
      onEvent: (e) => {
        if (e.type === 'retry') retries.push(e);
      },
      logger: quiet,
    });
    return { attemptsAt, retries, client };
  }

  it('waits at least the grpc-retry-pushback-ms the coordinator sent before pushing again', async () => {
    const { attemptsAt, retries, client } = await refusingCoordinator(600, 2);
    const result = await client.push('task', 1, atomsOf(client));
    expect(result.duplicate).toBe(false);
    expect(attemptsAt).toHaveLength(3);
    expect(retries.map((r) => r.delayMs)).toEqual([600, 600]);
    // Without the hint the client's own backoff would wait 10–20 ms.
    expect(attemptsAt[1]! - attemptsAt[0]!).toBeGreaterThanOrEqual(590);
    expect(attemptsAt[2]! - attemptsAt[1]!).toBeGreaterThanOrEqual(590);
  }, 60_000);

  it('caps a hint at 60 s', async () => {
    const { retries, client } = await refusingCoordinator(3_600_000, 1);
    const push = client.push('task', 1, atomsOf(client)).catch((e: unknown) => e);
    const until = Date.now() + 20_000;
    while (retries.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    expect(retries[0]?.delayMs).toBe(60_000);
    client.close();
    expect(await push).toBeInstanceOf(Error);
  }, 60_000);

  it.each([
    ['negative', -5],
    ['not a number', Number.NaN],
    ['fractional', 250.5],
  ])(
    'ignores a malformed hint (%s): the backoff alone applies',
    async (_, hint) => {
      const { attemptsAt, retries, client } = await refusingCoordinator(hint, 2);
      await client.push('task', 1, atomsOf(client));
      expect(attemptsAt).toHaveLength(3);
      expect(retries).toHaveLength(2);
      for (const r of retries) expect(r.delayMs).toBeLessThanOrEqual(20);
    },
    60_000,
  );
});
