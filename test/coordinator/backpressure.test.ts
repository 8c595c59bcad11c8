// Backpressure on the write path: with more uploads waiting to commit than storage.maxQueuedWrites
// allows, further uploads are answered RESOURCE_EXHAUSTED with a retry hint, counted in the
// metrics, and nothing of them is stored; every acknowledged upload is. The commits themselves run
// on the storage writer thread: the event loop keeps answering while a batch commits.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GetModelHistoryResponse__Output } from '../../src/generated/atomlens/v1/GetModelHistoryResponse.js';
import { type Harness, pushRequest, randomAtoms, rpc, startHarness } from './helpers.js';

const UPLOADS = 60;

describe('a full storage write queue', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ config: { storage: { maxQueuedWrites: 4 } } });
    await rpc((cb) => h.fed.register({ clientId: 'c', tasks: [{ taskId: 't', classes: [0, 1] }] }, cb));
  });
  afterAll(() => h.close());

  it('refuses uploads beyond storage.maxQueuedWrites with RESOURCE_EXHAUSTED and a retry hint, storing none of them', async () => {
    const template = h.running.template;
    const outcomes = await Promise.all(
      Array.from(
        { length: UPLOADS },
        (_, i) =>
          new Promise<{ round: number; error?: grpc.ServiceError }>((resolve) => {
            h.fed.pushAtoms(pushRequest(template, 'c', 't', i + 1, randomAtoms(template, i)), (error) =>
              resolve(error ? { round: i + 1, error } : { round: i + 1 }),
            );
          }),
      ),
    );
    const acked = outcomes.filter((o) => !o.error).map((o) => o.round);
    const refused = outcomes.filter((o) => o.error);
    expect(acked.length).toBeGreaterThanOrEqual(4);
    expect(refused.length).toBeGreaterThan(0);
    for (const { error } of refused) {
      expect(error!.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(error!.details).toMatch(/storage\.maxQueuedWrites is 4.*retry in \d+ ms/);
      expect(Number(error!.metadata.get('grpc-retry-pushback-ms')[0])).toBeGreaterThan(0);
    }

    const history = await rpc<GetModelHistoryResponse__Output>((cb) =>
      h.op.getModelHistory({ model: { clientId: 'c', taskId: 't' } }, cb),
    );
    expect(history.rounds.map((r) => Number(r.round)).sort((a, b) => a - b)).toEqual(
      acked.sort((a, b) => a - b),
    );

    const metrics = await (await fetch(`http://127.0.0.1:${h.running.httpPort}/metrics`)).text();
    const value = (series: string) =>
      Number(
        metrics
          .split('\n')
          .find((l) => l.startsWith(`${series} `))
          ?.split(' ')[1],
      );
    expect(value('atomlens_storage_writes_refused_total')).toBe(refused.length);
    expect(value('atomlens_atom_uploads_total{outcome="busy"}')).toBe(refused.length);
    expect(value('atomlens_storage_queued_writes')).toBe(0);

    // Once the queue has drained, a refused round goes through.
    const retry = refused[0]!.round;
    await rpc((cb) =>
      h.fed.pushAtoms(pushRequest(template, 'c', 't', retry, randomAtoms(template, retry - 1)), cb),
    );
  });
});
