// The dense GW solve keeps its matrices in the kernel team's WebAssembly memory and runs its
// O(n²) loops in loops.wat; where that is missing the same loops run in JS on heap arrays. The two
// must give the same numbers, bit for bit, and the same errors.
import { afterEach, describe, expect, it } from 'vitest';
import { type GwOptions, gromovWasserstein } from '../../src/ot/gromov/gw.js';
import { ascendingOrder } from '../../src/ot/gromov/starts.js';
import { setWorkspaceEnabled, withWorkspace } from '../../src/ot/gromov/workspace.js';
import { kernelTeam } from '../../src/ot/kernels/team.js';
import { matmul } from '../../src/ot/linalg.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { flat, gwCases, randomDistances } from './fixtures.js';

function bothWays(C1: Float64Array, C2: Float64Array, options: GwOptions) {
  setWorkspaceEnabled(true);
  const team = kernelTeam()!;
  const mark = team.mark();
  const wasm = gromovWasserstein(C1, C2, { ...options, returnPlan: true });
  // Everything the solve allocated in the team's memory is freed, and the plan is not in it.
  expect(team.mark()).toBe(mark);
  expect(team.owns(wasm.plan!)).toBe(false);
  setWorkspaceEnabled(false);
  const js = gromovWasserstein(C1, C2, { ...options, returnPlan: true });
  setWorkspaceEnabled(true);
  return { wasm, js };
}

function expectSame(a: ReturnType<typeof gromovWasserstein>, b: ReturnType<typeof gromovWasserstein>) {
  const { seconds: _a, ...left } = a;
  const { seconds: _b, ...right } = b;
  expect(left).toEqual(right);
}

/** A fixture case's matrices and weights as typed arrays, and the starts it admits. */
function caseInputs(data: ReturnType<typeof gwCases>[number]['data']) {
  const p = Float64Array.from(data.p);
  const q = Float64Array.from(data.q);
  const inits = p.length === q.length ? (['best', 'identity', 'product'] as const) : (['best'] as const);
  return { C1: flat(data.C1), C2: flat(data.C2), p, q, inits };
}

/** A symmetric matrix with a few ulps of asymmetry, which the set-up averages away. */
function roughlySymmetric(C: Float64Array, n: number, rng: () => number): Float64Array {
  const out = Float64Array.from(C);
  for (let i = 0; i < n; i++)
    for (let j = i + 1; j < n; j++) if (rng() < 0.3) out[i * n + j] = C[i * n + j]! * (1 + 1e-12);
  return out;
}

describe('GW workspace (WebAssembly loops) against the JS loops', () => {
  afterEach(() => setWorkspaceEnabled(true));

  it('has a kernel team here (else this suite compares JS with JS)', () => {
    expect(kernelTeam()).not.toBeNull();
    expect(kernelTeam()!.loops).not.toBeNull();
  });

  for (const { name, data } of gwCases()) {
    it(`${name}: every start gives bit-identical results`, () => {
      const { C1, C2, p, q, inits } = caseInputs(data);
      for (const init of inits) {
        const { wasm, js } = bothWays(C1, C2, { p, q, init });
        expectSame(wasm, js);
      }
      const { wasm, js } = bothWays(C1, C2, { p, q, solver: 'entropic', epsilon: 0.05, maxIter: 50 });
      expectSame(wasm, js);
    });
  }

  it('without returnPlan (no start plan is formed) every start gives the same result', () => {
    for (const { data } of gwCases()) {
      const { C1, C2, p, q, inits } = caseInputs(data);
      for (const init of inits) {
        const { plan, ...withPlan } = gromovWasserstein(C1, C2, { p, q, init, returnPlan: true });
        const without = gromovWasserstein(C1, C2, { p, q, init });
        expect(plan!.length).toBe(p.length * q.length);
        expect(without.plan).toBeUndefined();
        expectSame(without, withPlan);
      }
    }
  });

  it('odd sizes, non-uniform weights, rank-k updates and a symmetrised input: bit-identical', () => {
    const rng = mulberry32(77);
    for (const [n, m] of [
      [37, 37],
      [41, 30],
      [97, 97],
    ] as const) {
      const C1 = roughlySymmetric(randomDistances(n, 3, rng), n, rng);
      const C2 = randomDistances(m, 4, rng);
      const weights = (k: number) => {
        const w = Float64Array.from({ length: k }, () => 0.5 + rng());
        const total = w.reduce((s, x) => s + x, 0);
        return w.map((x) => x / total);
      };
      const p = weights(n);
      const q = n === m ? p : weights(m);
      const { wasm, js } = bothWays(C1, C2, { p, q });
      expectSame(wasm, js);
      expect(wasm.iterations).toBeGreaterThan(2);
    }
  });

  it('the same errors, naming the same entries', () => {
    const rng = mulberry32(5);
    const A = randomDistances(20, 3, rng);
    const B = randomDistances(20, 2, rng);
    const messageOf = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    };
    const bad: Float64Array[] = [];
    for (const e of [20 * 7 + 3, 20 * 4 + 4, 20 * 2 + 9]) {
      const C = Float64Array.from(A);
      C[e] = e === 20 * 4 + 4 ? Number.NaN : Number.NEGATIVE_INFINITY;
      bad.push(C);
    }
    const skew = Float64Array.from(A);
    skew[20 * 3 + 11] = skew[20 * 3 + 11]! + 1e-3;
    skew[20 * 12 + 5] = skew[20 * 12 + 5]! + 2e-3;
    bad.push(skew);
    for (const C of bad) {
      setWorkspaceEnabled(true);
      const wasm = messageOf(() => gromovWasserstein(C, B));
      setWorkspaceEnabled(false);
      const js = messageOf(() => gromovWasserstein(C, B));
      expect(wasm).toBe(js);
      expect(wasm).toMatch(/finite|symmetric/);
    }
    setWorkspaceEnabled(true);
    expect(messageOf(() => gromovWasserstein(skew, B))).toContain('C[12, 5]');
  });

  it('reuses its memory across many solves: no growth after the first of each size', () => {
    // A long-running coordinator solves thousands of problems on one team: each solve's arrays
    // are freed when it returns, so the memory stays at what the largest solve needed.
    const team = kernelTeam()!;
    const rng = mulberry32(9);
    const spaces = [24, 40, 33].map((n) => randomDistances(n, 3, rng));
    const solveAll = (round: number) => {
      for (const A of spaces)
        for (const B of spaces) gromovWasserstein(A, B, { returnPlan: round % 2 === 0 });
    };
    solveAll(0);
    const mark = team.mark();
    const bytes = team.memory.buffer.byteLength;
    for (let round = 1; round <= 30; round++) solveAll(round);
    expect(team.mark()).toBe(mark);
    expect(team.memory.buffer.byteLength).toBe(bytes);
  });

  it('frees the workspace when a solve throws', () => {
    const team = kernelTeam()!;
    const mark = team.mark();
    const rng = mulberry32(6);
    const A = randomDistances(12, 3, rng);
    const skew = Float64Array.from(A);
    skew[1] = skew[1]! + 1;
    expect(() => gromovWasserstein(A, skew)).toThrow(/not symmetric/);
    expect(team.mark()).toBe(mark);
  });

  it('matrix products read operands and write results in the workspace in place, with the same result', () => {
    const rng = mulberry32(8);
    const team = kernelTeam()!;
    // 44 × 48: C is written straight into a resident `out`; 45 × 51: through the scratch space.
    for (const [n, k, m] of [
      [45, 38, 51],
      [44, 38, 48],
    ] as const) {
      const A = Float64Array.from({ length: n * k }, () => rng() - 0.5);
      const B = Float64Array.from({ length: k * m }, () => rng() - 0.5);
      const onHeap = Array.from(matmul(A, B, n, k, m));
      withWorkspace(() => {
        const a = team.allocate(n * k)!;
        const b = team.allocate(k * m)!;
        a.set(A);
        b.set(B);
        expect(team.owns(a) && team.owns(b)).toBe(true);
        expect(team.owns(A)).toBe(false);
        expect(Array.from(matmul(a, b, n, k, m))).toEqual(onHeap);
        expect(Array.from(matmul(a, B, n, k, m))).toEqual(onHeap);
        const out = team.allocate(n * m)!.fill(Number.NaN);
        expect(Array.from(matmul(a, b, n, k, m, out))).toEqual(onHeap);
      });
    }
  });

  it('hands out zeroed arrays, also where freed arrays and scratch space were written', () => {
    const team = kernelTeam()!;
    withWorkspace(() => {
      team.allocate(1000)!.fill(7);
      new Float64Array(team.reserve(8000), team.scratchBase, 1000).fill(9);
    });
    withWorkspace(() => {
      const a = team.allocate(3000)!;
      expect(a.every((x) => x === 0)).toBe(true);
    });
  });
});

describe('ascendingOrder (the product start basis orders)', () => {
  it('equals the comparator sort: by value, equal values (−0 = +0) in index order', () => {
    const rng = mulberry32(11);
    const cases: Float64Array[] = [
      new Float64Array(0),
      Float64Array.from([3]),
      Float64Array.from([0, -0, 0, -0, 1, -1, -0]),
      Float64Array.from([2, 1, 2, 1, 2, Number.POSITIVE_INFINITY, 1, Number.NEGATIVE_INFINITY]),
      Float64Array.from({ length: 300 }, () => Math.floor(rng() * 7) - 3),
      Float64Array.from({ length: 257 }, () => rng() - 0.5),
      Float64Array.from({ length: 64 }, () => (rng() < 0.5 ? 1e308 : -1e308) * rng()),
    ];
    for (const values of cases) {
      const expected = Int32Array.from(values.keys()).sort((x, y) => values[x]! - values[y]! || x - y);
      expect(Array.from(ascendingOrder(values))).toEqual(Array.from(expected));
    }
  });
});
