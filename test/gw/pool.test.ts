import { getEventListeners } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
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

describe('GwPool.run (other pure tasks on the same threads)', () => {
  const tasks = new URL('./pool-tasks.ts', import.meta.url);

  it('calls a module function on a worker: arguments copied, shared memory shared, typed arrays returned', async () => {
    const pool = new GwPool({ workers: 2 });
    try {
      const values = Float64Array.from({ length: 1000 }, (_, i) => i);
      const r = await pool.run<{ total: number; threadId: number }>(tasks, 'sum', [values]);
      expect(r.total).toBe(499_500);
      expect(r.threadId).toBeGreaterThan(0);
      expect(values.length).toBe(1000);
      const twice = await pool.run<Float64Array>(tasks, 'doubled', [values]);
      expect(twice).toBeInstanceOf(Float64Array);
      expect(twice[999]).toBe(1998);
      const shared = new Int32Array(new SharedArrayBuffer(8));
      await pool.run(tasks, 'writeShared', [shared, 1, 42]);
      expect(shared[1]).toBe(42);
      await expect(pool.run(tasks, 'fails', [])).rejects.toThrow('this task fails');
      await expect(pool.run(tasks, 'noSuchExport', [])).rejects.toThrow(/no function noSuchExport/);
      expect(pool.started).toBeLessThanOrEqual(2);
    } finally {
      await pool.close();
    }
  });

  it('an aborted signal stops its tasks: queued ones never start, the running one loses its worker', async () => {
    const pool = new GwPool({ workers: 1 });
    try {
      const started = new Int32Array(new SharedArrayBuffer(4));
      const stop = new AbortController();
      const calls = Array.from({ length: 5 }, () =>
        pool.run(tasks, 'spin', [60_000, started], { signal: stop.signal }),
      );
      const settled = Promise.allSettled(calls);
      await vi.waitFor(() => expect(Atomics.load(started, 0)).toBe(1), { timeout: 30_000 });
      const t0 = performance.now();
      stop.abort(new Error('stopped'));
      const outcomes = await settled;
      expect(performance.now() - t0).toBeLessThan(5_000);
      expect(outcomes.map((o) => o.status)).toEqual(Array(5).fill('rejected'));
      expect(String((outcomes[0] as PromiseRejectedResult).reason)).toMatch(/stopped/);
      expect(pool.pending).toBe(0);
      expect(Atomics.load(started, 0)).toBe(1);
      // The pool carries on with a new worker.
      const r = await pool.run<{ total: number }>(tasks, 'sum', [Float64Array.of(1, 2)]);
      expect(r.total).toBe(3);
      await expect(
        pool.run(tasks, 'sum', [Float64Array.of(1)], { signal: AbortSignal.abort(new Error('already')) }),
      ).rejects.toThrow('already');
    } finally {
      await pool.close();
    }
  });

  it('an aborted signal stops its GW solves, in worker and in thread', async () => {
    const pool = new GwPool({ workers: 1 });
    try {
      const rng = mulberry32(12);
      const big = randomDistances(400, 3, rng);
      const small = randomDistances(20, 3, rng);
      const stop = new AbortController();
      const solves = [
        pool.solve(big, big, { init: 'product' }, { signal: stop.signal }),
        pool.solve(big, big, { init: 'product' }, { signal: stop.signal }),
        ...Array.from({ length: 3000 }, () => pool.solve(small, small, {}, { signal: stop.signal })),
      ];
      const settled = Promise.allSettled(solves);
      await vi.waitFor(() => expect(pool.started).toBe(1));
      stop.abort(new Error('cancelled'));
      const outcomes = await settled;
      expect(outcomes.slice(0, 2).map((o) => o.status)).toEqual(['rejected', 'rejected']);
      expect(String((outcomes[0] as PromiseRejectedResult).reason)).toMatch(/cancelled/);
      // In-thread solves run a slice per event-loop turn; those not run by then are not run.
      const notRun = outcomes.slice(2).filter((o) => o.status === 'rejected');
      expect(notRun.length).toBeGreaterThan(0);
      expect(String((notRun[0] as PromiseRejectedResult).reason)).toMatch(/cancelled/);
      expect(pool.pending).toBe(0);
      await expect(pool.solve(big, small, { init: 'product' })).resolves.toHaveProperty('gw');
    } finally {
      await pool.close();
    }
  });

  it('many tasks and solves on one signal: one abort listener at most, none once they settle, no warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    // maxQueue 4: most calls wait for room, which also watches the signal.
    const pool = new GwPool({ workers: 2, maxQueue: 4, inThreadMaxSize: 0 });
    try {
      const rng = mulberry32(5);
      const space = randomDistances(12, 3, rng);
      const listeners = (s: AbortSignal) => getEventListeners(s, 'abort').length;
      const stop = new AbortController();
      let most = 0;
      const watch = setInterval(() => {
        most = Math.max(most, listeners(stop.signal));
      }, 1);
      const work = [
        ...Array.from({ length: 40 }, (_, i) =>
          pool.run<{ total: number }>(tasks, 'sum', [Float64Array.of(i, 1)], { signal: stop.signal }),
        ),
        ...Array.from({ length: 20 }, () => pool.solve(space, space, {}, { signal: stop.signal })),
      ];
      most = Math.max(most, listeners(stop.signal));
      const done = await Promise.all(work);
      clearInterval(watch);
      expect((done[39] as { total: number }).total).toBe(40);
      expect(most).toBe(1);
      expect(listeners(stop.signal)).toBe(0);

      // Aborted part-way: every task settles (rejected or done) and the listener is gone too.
      const cancel = new AbortController();
      const started = new Int32Array(new SharedArrayBuffer(4));
      const spins = Array.from({ length: 30 }, () =>
        pool.run(tasks, 'spin', [60_000, started], { signal: cancel.signal }),
      );
      const settled = Promise.allSettled(spins);
      await vi.waitFor(() => expect(Atomics.load(started, 0)).toBeGreaterThan(0), { timeout: 30_000 });
      expect(listeners(cancel.signal)).toBe(1);
      cancel.abort(new Error('stopped'));
      expect((await settled).every((o) => o.status === 'rejected')).toBe(true);
      expect(listeners(cancel.signal)).toBe(0);
      expect(pool.pending).toBe(0);
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await pool.close();
    }
  });

  it('thousands of small in-thread solves leave the event loop turning', async () => {
    const pool = new GwPool({ workers: 1 });
    try {
      const rng = mulberry32(13);
      const A = randomDistances(40, 3, rng);
      const B = randomDistances(40, 4, rng);
      const expected = gromovWasserstein(A, B).gw;
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const t0 = performance.now();
      const results = await Promise.all(Array.from({ length: 300 }, () => pool.solve(A, B)));
      const ms = performance.now() - t0;
      clearInterval(timer);
      expect(results.every((r) => r.gw === expected)).toBe(true);
      expect(pool.started).toBe(0);
      // All in one go, the timer would not have fired at all; sliced, it fires between slices.
      expect(ticks, `${ticks} ticks in ${ms.toFixed(0)} ms`).toBeGreaterThan(ms / 200);
    } finally {
      await pool.close();
    }
  });
});
