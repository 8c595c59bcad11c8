// A job of the GW queue carries a batch of solves: when one solve of a batch fails, the others'
// results are kept, the retry solves only what has no result yet, and after the last attempt the
// failing solve's error reaches the coordinator while the rest of the analysis's numbers arrive.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type GramRef, GwQueue, GwWorker } from '../../src/coordinator/level1/gw-queue.js';
import { PostgresStorage } from '../../src/coordinator/storage/postgres.js';
import { GwPool } from '../../src/ot/index.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../helpers/postgres-server.js';

const unavailable = postgresUnavailable();
if (unavailable) console.warn(unavailable);

const N = 12;
const LAYERS = ['l0', 'l1', 'l2'];

/** A Gram matrix X Xᵀ of N points in 3 dimensions, different per seed. */
function gramOf(seed: number): Float32Array {
  const X = Array.from({ length: N * 3 }, (_, i) => Math.sin(seed * 7.3 + i * 1.7));
  const G = new Float32Array(N * N);
  for (let i = 0; i < N; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += X[i * 3 + k]! * X[j * 3 + k]!;
      G[i * N + j] = s;
    }
  return G;
}

describe.skipIf(unavailable !== undefined)('GW queue jobs carrying batches of solves', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(() => server?.destroy());

  it('keeps the solved part of a failing batch, retries only the rest, and reports the failure', async () => {
    const store = await server.createDatabase();
    const storage = await PostgresStorage.open({ connectionString: store });
    // Layers l0 and l1 are stored; l2 is not, so every solve that needs it fails.
    for (const [l, layer] of ['l0', 'l1'].entries()) {
      const g = gramOf(l + 1);
      await storage.putProbeSummary({
        requestId: 'req',
        clientId: 'alice',
        taskId: 't',
        round: 1,
        layer,
        n: N,
        featureDim: 3,
        gram: Buffer.from(g.buffer, g.byteOffset, g.byteLength),
        receivedAtMs: 0,
      });
    }
    await storage.putAnalysis({
      analysisId: 'ana',
      status: 'running',
      trigger: 'operator',
      reason: 'test',
      models: [{ clientId: 'alice', taskId: 't' }],
      createdAtMs: Date.now(),
    });
    // stallMs: a result that never comes fails the test in 20 s rather than hanging it.
    const options = { connectionString: store, retryLimit: 1, pollMs: 50, stallMs: 20_000 };
    const queue = await GwQueue.open({ ...options, solvesPerJob: 3 });
    const pool = new GwPool({ workers: 1 });
    const solveCalls = vi.spyOn(pool, 'solve');
    const worker = await GwWorker.start({ ...options, pool, concurrency: 1 });
    const db = new pg.Client({ connectionString: store });
    await db.connect();
    try {
      const solverCallsAfterWarmUp = solveCalls.mock.calls.length;
      const refOf = (_model: number, layer: number): GramRef => ({
        requestId: 'req',
        clientId: 'alice',
        taskId: 't',
        layer: LAYERS[layer]!,
      });
      const solver = queue.solverFor('ana', N, {}, refOf);
      const C = new Float64Array(0); // the queue names the problem; C1 and C2 stay unused
      const problem = (a: number, b: number) => ({ a: { model: 0, layer: a }, b: { model: 0, layer: b } });
      // One job of three: l0–l1 solves, l0–l2 and l1–l2 fail (no stored l2).
      const results = await Promise.allSettled([
        solver.solve(C, C, problem(0, 1)),
        solver.solve(C, C, problem(0, 2)),
        solver.solve(C, C, problem(1, 2)),
      ]);
      await solver.finish();

      expect(results[0]).toMatchObject({ status: 'fulfilled' });
      const ok = results[0] as PromiseFulfilledResult<{ distance: number }>;
      expect(Number.isFinite(ok.value.distance)).toBe(true);
      for (const r of results.slice(1)) {
        expect(r.status).toBe('rejected');
        expect(String((r as PromiseRejectedResult).reason)).toMatch(
          /no stored probe summary for alice\/t@l2/,
        );
      }
      // One job, taken twice (its state may be failed or, once finish() ran first, cancelled).
      const jobs = await db.query<{ retry_count: number }>(
        "SELECT retry_count FROM pgboss.job WHERE data->>'analysisId' = 'ana'",
      );
      expect(jobs.rows).toEqual([{ retry_count: 1 }]);
      // The l0–l1 solve ran on the first attempt only; the retry did not redo it.
      expect(solveCalls.mock.calls.length - solverCallsAfterWarmUp).toBe(1);
      const rows = await db.query<{ side_b: string; error: string | null }>(
        "SELECT side_b, error FROM analysis_solves WHERE analysis_id = 'ana' ORDER BY side_a, side_b",
      );
      expect(rows.rows.map((r) => [r.side_b, r.error === null])).toEqual([
        ['alice/t@l1', true],
        ['alice/t@l2', false],
        ['alice/t@l2', false],
      ]);
    } finally {
      await db.end();
      await worker.stop();
      await pool.close();
      await queue.close();
      await storage.close();
    }
  });
});
