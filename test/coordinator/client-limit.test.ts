// limits.maxClients holds when registrations arrive together: the slot is taken before the
// registration's first await, so 20 simultaneous new clients against a limit of 4 admit exactly 4.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, rpc, startHarness } from './helpers.js';

describe('client limit', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({ config: { limits: { maxClients: 4 } } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('admits exactly limits.maxClients of 20 simultaneous new clients; re-registering still works', async () => {
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        rpc((cb) => h.fed.Register({ clientId: `c${i}`, tasks: [{ taskId: 't', classes: [1] }] }, cb)),
      ),
    );
    const admitted = settled.filter((r) => r.status === 'fulfilled');
    const refused = settled.filter(
      (r) =>
        r.status === 'rejected' && (r.reason as grpc.ServiceError).code === grpc.status.RESOURCE_EXHAUSTED,
    );
    expect(admitted).toHaveLength(4);
    expect(refused).toHaveLength(16);
    expect(await h.running.storage.listClients()).toHaveLength(4);
    const first = settled.findIndex((r) => r.status === 'fulfilled');
    await rpc((cb) => h.fed.Register({ clientId: `c${first}`, tasks: [{ taskId: 't', classes: [1] }] }, cb));
  });
});
