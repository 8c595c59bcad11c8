// The SDK client's retry policy and the parts the built-in client relies on, against a real
// coordinator on loopback: a template generated from a seed comes with the initial atoms the
// built-in model starts from; rounds a restarted coordinator lost are re-sent; a refusal is not
// retried; an unreachable coordinator is retried with jittered exponential waits until the
// give-up budget ends in UnreachableError; probe requests on a built-in probe set are answered
// one at a time with the Gram matrices of what the probe function returned.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AtomConv2D } from '../../src/client/atomConv.js';
import type { RunningCoordinator } from '../../src/coordinator/coordinator.js';
import {
  AtomlensClient,
  type FederationEvent,
  gramMatrix,
  initBackend,
  RejectedError,
  UnreachableError,
} from '../../src/index.js';
import { createLogger } from '../../src/shared/log.js';
import { initialAtomSeed } from '../../src/shared/template.js';
import { freePort } from '../helpers/free-port.js';
import { startCoordinatorOn } from '../helpers/loopback.js';

const quiet = createLogger('sdk-resilience', 'silent');

async function registrations(c: RunningCoordinator): Promise<number> {
  const metric = await c.metrics.grpcRequests.get();
  return metric.values
    .filter((v) => v.labels.method === 'Federation/Register')
    .reduce((sum, v) => sum + v.value, 0);
}

/** Atoms for every template layer, all entries `v`. */
function atomsOf(client: AtomlensClient, v: number): Map<string, Float32Array> {
  return new Map(client.template.layers.map((l) => [l.name, new Float32Array(l.m * l.k * l.k).fill(v)]));
}

describe('AtomlensClient: retries, resends, probes', () => {
  const dirs: string[] = [];
  const running: RunningCoordinator[] = [];
  const clients: AtomlensClient[] = [];
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'atomlens-sdk-resilience-'));
    dirs.push(d);
    return d;
  };
  beforeAll(async () => {
    await initBackend('wasm');
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    for (const r of running) await r.stop({ drain: false }).catch(() => undefined);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a template generated from a seed comes with the initial atoms a seeded AtomConv2D starts from', async () => {
    const coordinator = await startCoordinatorOn(dir(), 0);
    running.push(coordinator);
    const client = await AtomlensClient.connect({
      address: `127.0.0.1:${coordinator.grpcPort}`,
      clientId: 'seeded',
      tasks: [{ id: '0-1', classes: [0, 1] }],
      logger: quiet,
    });
    clients.push(client);
    const wire = coordinator.template;
    expect(wire.initialAtoms).toBeUndefined();
    expect(client.template.network?.layers.map((l) => l.name)).toEqual(wire.layers.map((l) => l.name));
    wire.layers.forEach((spec, i) => {
      const conv = new AtomConv2D({
        filters: spec.cOut,
        kernelSize: spec.k,
        atoms: spec.m,
        seed: initialAtomSeed(wire, i),
        alpha: wire.alpha[i],
      });
      conv.apply(tf.zeros([1, 8, 8, spec.cIn]));
      expect(Array.from(client.template.layers[i]!.initialAtoms)).toEqual(Array.from(conv.atomValues()));
      expect(Array.from(client.template.layers[i]!.alpha)).toEqual(Array.from(wire.alpha[i]!));
      conv.dispose();
    });
  });

  it('re-sends the rounds a restarted coordinator no longer holds', async () => {
    const port = await freePort();
    let coordinator = await startCoordinatorOn(dir(), port);
    running.push(coordinator);
    const events: FederationEvent[] = [];
    const client = await AtomlensClient.connect({
      address: `127.0.0.1:${port}`,
      clientId: 'resender',
      tasks: [{ id: 'task', classes: [0, 1] }],
      backoff: { initialMs: 50, maxMs: 300, giveUpAfterMs: 30_000 },
      onEvent: (e) => events.push(e),
      logger: quiet,
    });
    clients.push(client);
    await client.push('task', 1, atomsOf(client, 0.1));
    await client.push('task', 2, atomsOf(client, 0.2));
    // A new coordinator on an empty data directory: it has never seen rounds 1 and 2.
    await coordinator.stop({ drain: false });
    coordinator = await startCoordinatorOn(dir(), port);
    running.push(coordinator);
    expect(await client.push('task', 3, atomsOf(client, 0.3))).toMatchObject({ round: 3, duplicate: false });
    const stored = await coordinator.storage.listRounds('resender', 'task', false);
    expect(stored.map((r) => r.round)).toEqual([1, 2, 3]);
    const pushed = events.filter((e) => e.type === 'pushed');
    expect(pushed.filter((e) => e.resent).map((e) => e.round)).toEqual(expect.arrayContaining([1, 2]));
    expect(events.some((e) => e.type === 'connected' && e.reconnect)).toBe(true);
    expect(client.lastRound('task')).toBe(3);
  }, 60_000);

  it('a refused registration is not retried', async () => {
    const coordinator = await startCoordinatorOn(dir(), 0);
    running.push(coordinator);
    const before = await registrations(coordinator);
    const err = await AtomlensClient.connect({
      address: `127.0.0.1:${coordinator.grpcPort}`,
      clientId: 'bad-classes',
      tasks: [{ id: 'task', classes: [1, 1] }],
      backoff: { initialMs: 50, maxMs: 100 },
      logger: quiet,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RejectedError);
    expect((err as RejectedError).message).toMatch(/refused registration: INVALID_ARGUMENT/);
    expect((await registrations(coordinator)) - before).toBe(1);
  });

  it('retries an unreachable coordinator with jittered exponential waits, then gives up', async () => {
    const port = await freePort();
    const retries: Extract<FederationEvent, { type: 'retry' }>[] = [];
    const started = Date.now();
    const err = await AtomlensClient.connect({
      address: `127.0.0.1:${port}`,
      clientId: 'nobody',
      tasks: [{ id: 'task', classes: [0, 1] }],
      // random() = 0: every wait is the lower end d/2 of its range [d/2, d].
      backoff: { initialMs: 200, maxMs: 800, multiplier: 2, giveUpAfterMs: 2_500, random: () => 0 },
      onEvent: (e) => {
        if (e.type === 'retry') retries.push(e);
      },
      logger: quiet,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnreachableError);
    expect((err as Error).message).toMatch(/unreachable for \d+ s .*UNAVAILABLE/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_400);
    expect(Date.now() - started).toBeLessThan(10_000);
    // d = 200, 400, 800, 800, … → waits of 100, 200, 400, 400, … (the last cut to the budget).
    expect(retries.slice(0, 4).map((r) => [r.what, r.attempt, r.delayMs])).toEqual([
      ['register', 1, 100],
      ['register', 2, 200],
      ['register', 3, 400],
      ['register', 4, 400],
    ]);
  }, 30_000);

  it('answers probe requests on a built-in probe set one at a time, and declines what it does not hold', async () => {
    const coordinator = await startCoordinatorOn(dir(), 0);
    running.push(coordinator);
    let active = 0;
    let mostActive = 0;
    const returned = new Map<number, Record<string, Float32Array>>();
    const client = await AtomlensClient.connect({
      address: `127.0.0.1:${coordinator.grpcPort}`,
      clientId: 'prober',
      tasks: [{ id: 'task', classes: [0, 1] }],
      logger: quiet,
      probe: async (call) => {
        active++;
        mostActive = Math.max(mostActive, active);
        await new Promise((r) => setTimeout(r, 150));
        active--;
        expect(call.shape).toEqual([6, 28, 28, 1]);
        expect(call.inputs.length).toBe(6 * 28 * 28);
        const fill = call.atoms.get(call.layers[0]!)![0]!;
        // Row i of X: the first 5 pixels of input i, scaled by the round's first atom value.
        const out = Object.fromEntries(
          call.layers.map((layer) => [
            layer,
            Float32Array.from(
              { length: 6 * 5 },
              (_, j) => call.inputs[Math.floor(j / 5) * 784 + (j % 5)]! * fill,
            ),
          ]),
        );
        returned.set(call.round, out);
        return out;
      },
    });
    clients.push(client);
    await client.push('task', 1, atomsOf(client, 1));
    await client.push('task', 2, atomsOf(client, 2));
    for (let i = 0; i < 100 && !coordinator.sessions.isConnected('prober'); i++)
      await new Promise((r) => setTimeout(r, 50));
    const probe = { source: 'noise' as const, size: 6, seed: 9, pooling: 'gap' as const };
    const ask = (round?: number) =>
      coordinator.sessions.requestProbe('prober', {
        taskId: 'task',
        layers: ['conv1', 'conv2'],
        probe,
        deadlineMs: Date.now() + 20_000,
        ...(round !== undefined ? { round } : {}),
      });
    const [latest, first] = await Promise.all([ask(), ask(1)]);
    expect(mostActive).toBe(1);
    for (const [answer, round] of [
      [latest, 2],
      [first, 1],
    ] as const) {
      for (const layer of ['conv1', 'conv2']) {
        const got = answer.layers.get(layer)!;
        expect(got.round).toBe(round);
        expect(got.n).toBe(6);
        expect(got.featureDim).toBe(5);
        expect(Array.from(got.gram)).toEqual(Array.from(gramMatrix(returned.get(round)![layer]!, 6)));
      }
    }
    await expect(ask(7)).rejects.toMatchObject({
      outcome: 'failed',
      message: expect.stringMatching(/round 7 of task task is not held here \(rounds 1, 2\)/),
    });
  }, 60_000);

  it('an aborted signal ends a push that is waiting for the coordinator', async () => {
    const port = await freePort();
    const coordinator = await startCoordinatorOn(dir(), port);
    const abort = new AbortController();
    const client = await AtomlensClient.connect({
      address: `127.0.0.1:${port}`,
      clientId: 'aborter',
      tasks: [{ id: 'task', classes: [0, 1] }],
      backoff: { initialMs: 100, maxMs: 200, giveUpAfterMs: 60_000 },
      signal: abort.signal,
      logger: quiet,
    });
    clients.push(client);
    await coordinator.stop({ drain: false });
    const pushing = client.push('task', 1, atomsOf(client, 0.5)).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 500));
    const aborted = Date.now();
    abort.abort();
    const err = await pushing;
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).name).toBe('AbortError');
    expect(Date.now() - aborted).toBeLessThan(2_000);
  }, 30_000);
});
