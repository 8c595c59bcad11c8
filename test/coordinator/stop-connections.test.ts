// A stopped coordinator answers nothing more on the connections its clients still hold open:
// a client that reconnects over the same channel reaches the next instance, not the stopped one
// (whose storage is closed). grpc-js only tracks open connections for forceShutdown() with
// channelz on, which is why the server keeps it on.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { type Harness, rpc, startHarness } from './helpers.js';

describe('stopping the coordinator', () => {
  let h: Harness | undefined;
  afterEach(async () => {
    h?.fed.close();
    h?.op.close();
    h = undefined;
  });

  for (const drain of [false, true]) {
    it(`closes the connections clients hold open (drain: ${drain})`, async () => {
      h = await startHarness();
      // Both calls open the channels' connections; the similarity query needs no storage write.
      await rpc((cb) => h!.fed.Register({ clientId: 'alice', tasks: [{ taskId: 't', classes: [1] }] }, cb));
      await rpc((cb) => h!.op.GetSimilarity({ taskIds: [] }, cb));
      await h.running.stop({ drain, graceMs: 500 });
      // Not answered: refused on a new connection (UNAVAILABLE), or cut off on the old one as it
      // closes (CANCELLED, when the call raced the close); never an answer from the stopped one.
      const notAnswered = [grpc.status.UNAVAILABLE, grpc.status.CANCELLED];
      const err = await rpc((cb) => h!.op.GetSimilarity({ taskIds: [] }, cb)).catch((e: unknown) => e);
      expect(notAnswered).toContain((err as grpc.ServiceError).code);
      const register = await rpc((cb) =>
        h!.fed.Register({ clientId: 'alice', tasks: [{ taskId: 't', classes: [1] }] }, cb),
      ).catch((e: unknown) => e);
      expect(notAnswered).toContain((register as grpc.ServiceError).code);
      expect(String((register as grpc.ServiceError).details)).not.toMatch(/shutting down/);
    });
  }
});
