import { describe, expect, it } from 'vitest';
import { GwPool, gromovWasserstein, solveBestOnTwoThreads } from '../../src/ot/index.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { flat, gwCases, randomDistances } from './fixtures.js';

describe('GwPool (worker threads)', () => {
  it('returns what the in-thread solver returns, for every start and solver', async () => {
    const pool = new GwPool({ workers: 2, inThreadMaxSize: 0 });
    try {
      for (const { data } of gwCases().slice(0, 3)) {
        const C1 = flat(data.C1);
        const C2 = flat(data.C2);
        const p = Float64Array.from(data.p);
        const q = Float64Array.from(data.q);
        for (const options of [
          { p, q },
          { p, q, init: 'product' as const, returnPlan: true },
          { p, q, solver: 'entropic' as const, epsilon: 0.05, init: 'product' as const },
        ]) {
          const local = gromovWasserstein(C1, C2, options);
          const remote = await pool.solve(C1, C2, options);
          expect(remote.gw).toBe(local.gw);
          expect(remote.init).toBe(local.init);
          expect(remote.identityValue).toBe(local.identityValue);
          expect(remote.productValue).toBe(local.productValue);
          if (local.plan) expect(Array.from(remote.plan!)).toEqual(Array.from(local.plan));
        }
        // The caller's arrays are not detached by the transfer.
        expect(C1.length).toBe(data.C1.length ** 2);
        expect(p.length).toBe(data.p.length);
      }
    } finally {
      await pool.close();
    }
  });

  it('completes many concurrent solves through a small bounded queue', async () => {
    const pool = new GwPool({ workers: 2, maxQueue: 3, inThreadMaxSize: 0 });
    const rng = mulberry32(77);
    const problems = Array.from({ length: 24 }, (_, k) => ({
      A: randomDistances(24 + (k % 5), 3, rng),
      B: randomDistances(20, 4, rng),
    }));
    try {
      const pendingSeen: number[] = [];
      const all = problems.map((pr) => {
        const promise = pool.solve(pr.A, pr.B);
        pendingSeen.push(pool.pending);
        return promise;
      });
      const results = await Promise.all(all);
      expect(results).toHaveLength(24);
      // The queue never held more than maxQueue waiting problems (+ at most 2 running, best may split).
      expect(Math.max(...pendingSeen)).toBeLessThanOrEqual(3 + 2);
      for (const [k, r] of results.entries()) {
        expect(r.gw).toBe(gromovWasserstein(problems[k]!.A, problems[k]!.B).gw);
      }
      expect(pool.pending).toBe(0);
    } finally {
      await pool.close();
    }
  });

  it('solves off the main thread: the event loop runs while a large problem is being solved', async () => {
    const pool = new GwPool({ workers: 1 });
    try {
      const rng = mulberry32(8);
      const A = randomDistances(300, 3, rng);
      const B = randomDistances(300, 6, rng);
      let done = false;
      const solving = pool.solve(A, B, { init: 'product' }).then((r) => {
        done = true;
        return r;
      });
      // Were the solver on this thread, it would have finished before this timer could fire.
      await new Promise((resolve) => setTimeout(resolve, 0));
      expect(done).toBe(false);
      expect(pool.pending).toBe(1);
      expect((await solving).gw).toBeGreaterThan(0);
    } finally {
      await pool.close();
    }
  });

  it('passes solver errors back as rejections and keeps working', async () => {
    const pool = new GwPool({ workers: 1, inThreadMaxSize: 0 });
    try {
      const A = randomDistances(6, 2, mulberry32(1));
      await expect(pool.solve(A, new Float64Array(5))).rejects.toThrow(/not n×n/);
      const same = await pool.solve(A, A, { init: 'identity' });
      expect(same.gw).toBeLessThan(1e-14);
    } finally {
      await pool.close();
    }
  });

  it('solves small problems in the calling thread without starting a worker', async () => {
    const pool = new GwPool({ workers: 2 });
    try {
      const rng = mulberry32(5);
      const A = randomDistances(40, 3, rng);
      const B = randomDistances(30, 4, rng);
      const r = await pool.solve(A, B);
      expect(r.gw).toBe(gromovWasserstein(A, B).gw);
      await expect(pool.solve(A, new Float64Array(5))).rejects.toThrow(/not n×n/);
      expect(pool.started).toBe(0);
      // Above the threshold the work goes to workers, started on demand.
      const big = randomDistances(60, 3, rng);
      await pool.solve(big, big, { init: 'product' });
      expect(pool.started).toBe(1);
    } finally {
      await pool.close();
    }
  });

  it('solveBestOnTwoThreads: identity here, product on a worker, the same result as best in one thread', async () => {
    const rng = mulberry32(6);
    for (const [A, B] of [
      [randomDistances(50, 3, rng), randomDistances(50, 5, rng)],
      [
        flat(gwCases().find((c) => c.name === 'permuted_copy_n10')!.data.C1),
        flat(gwCases().find((c) => c.name === 'permuted_copy_n10')!.data.C2),
      ],
    ] as const) {
      const two = await solveBestOnTwoThreads(A, B, { returnPlan: true });
      const one = gromovWasserstein(A, B, { returnPlan: true });
      expect(two.gw).toBe(one.gw);
      expect(two.init).toBe(one.init);
      expect(Array.from(two.plan!)).toEqual(Array.from(one.plan!));
    }
  });

  it('close() ends the workers, rejects unfinished work and refuses new work', async () => {
    const pool = new GwPool({ workers: 1, maxQueue: 8 });
    const A = randomDistances(120, 3, mulberry32(2));
    const B = randomDistances(120, 5, mulberry32(3));
    await pool.solve(A, B, { init: 'product' });
    const unfinished = [pool.solve(A, B, { init: 'product' }), pool.solve(A, B, { init: 'product' })];
    const settled = Promise.allSettled(unfinished);
    await pool.close();
    const outcomes = await settled;
    expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    expect(String((outcomes[1] as PromiseRejectedResult).reason)).toMatch(/closed/);
    await expect(pool.solve(A, B)).rejects.toThrow(/closed/);
    expect(pool.pending).toBe(0);
  });
});
