import { describe, expect, it } from 'vitest';
import { emd, NetworkSimplex } from '../../src/ot/index.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { emdCases, flat, marginalError } from './fixtures.js';

/** Minimum over all permutations of Σ M[i, σ(i)] / n: the exact OT cost for uniform n = m weights. */
function bruteForceAssignment(M: Float64Array, n: number): number {
  let best = Number.POSITIVE_INFINITY;
  const perm = Array.from({ length: n }, (_, i) => i);
  const visit = (k: number, acc: number) => {
    if (acc >= best) return;
    if (k === n) {
      best = acc;
      return;
    }
    for (let t = k; t < n; t++) {
      [perm[k], perm[t]] = [perm[t]!, perm[k]!];
      visit(k + 1, acc + M[k * n + perm[k]!]!);
      [perm[k], perm[t]] = [perm[t]!, perm[k]!];
    }
  };
  visit(0, 0);
  return best / n;
}

function randomProblem(rng: () => number, n: number, m: number, zeros = false) {
  const weights = (k: number) => {
    const w = Float64Array.from({ length: k }, (_, i) => (zeros && i > 0 && rng() < 0.2 ? 0 : rng() + 0.01));
    const s = w.reduce((x, y) => x + y, 0);
    return w.map((v) => v / s);
  };
  return {
    a: weights(n),
    b: weights(m),
    M: Float64Array.from({ length: n * m }, () => Math.floor(rng() * 5) + rng() * 1e-3),
  };
}

describe('emd (network simplex)', () => {
  for (const { name, data } of emdCases()) {
    it(`matches POT's optimal cost on ${name} within 1e-9 relative`, () => {
      const a = Float64Array.from(data.a);
      const b = Float64Array.from(data.b);
      const { plan, cost } = emd(a, b, flat(data.M));
      expect(Math.abs(cost - data.cost) / data.cost).toBeLessThan(1e-9);
      expect(marginalError(plan, a, b)).toBeLessThan(1e-12);
      expect(Math.min(...plan)).toBeGreaterThanOrEqual(0);
    });
  }

  it('equals brute-force assignment on small uniform problems (degenerate, integer-ish costs)', () => {
    const rng = mulberry32(11);
    for (let trial = 0; trial < 40; trial++) {
      const n = 2 + (trial % 6);
      const M = Float64Array.from({ length: n * n }, () => Math.floor(rng() * 4));
      const w = new Float64Array(n).fill(1 / n);
      const { cost } = emd(w, w, M);
      expect(cost).toBeCloseTo(bruteForceAssignment(M, n), 12);
    }
  });

  it('warm starts (previous basis, north-west corner basis) reach the same optimum as a cold start', () => {
    const rng = mulberry32(5);
    for (let trial = 0; trial < 60; trial++) {
      const n = 1 + Math.floor(rng() * 14);
      const m = 1 + Math.floor(rng() * 14);
      const { a, b, M } = randomProblem(rng, n, m, trial % 2 === 0);
      const simplex = new NetworkSimplex(a, b);
      const rows = Int32Array.from({ length: n }, (_, i) => i).sort(() => rng() - 0.5);
      const cols = Int32Array.from({ length: m }, (_, i) => i).sort(() => rng() - 0.5);
      simplex.setNorthWestBasis(rows, cols);
      const fromCorner = simplex.solve(M);
      const cold = emd(a, b, M);
      expect(fromCorner.cost).toBeCloseTo(cold.cost, 12);
      expect(marginalError(fromCorner.plan, a, b)).toBeLessThan(1e-12);
      const M2 = M.map((c) => c + rng() - 0.5);
      const warm = simplex.solve(M2);
      expect(warm.cost).toBeCloseTo(emd(a, b, M2).cost, 12);
      expect(marginalError(warm.plan, a, b)).toBeLessThan(1e-12);
    }
  });

  it('starts from a permutation basis when the weights allow it, and refuses when they do not', () => {
    const rng = mulberry32(21);
    for (let trial = 0; trial < 40; trial++) {
      const n = 1 + Math.floor(rng() * 12);
      const a = Float64Array.from({ length: n }, () => rng() + 0.05);
      const total = a.reduce((x, y) => x + y, 0);
      a.forEach((v, i) => {
        a[i] = v / total;
      });
      const sigma = Array.from({ length: n }, (_, i) => i).sort(() => rng() - 0.5);
      const b = new Float64Array(n);
      sigma.forEach((j, i) => {
        b[j] = a[i]!;
      });
      const M = Float64Array.from({ length: n * n }, () => Math.floor(rng() * 3));
      const simplex = new NetworkSimplex(a, b);
      expect(simplex.setPermutationBasis(sigma)).toBe(true);
      const r = simplex.solve(M);
      expect(r.cost).toBeCloseTo(emd(a, b, M).cost, 12);
      expect(marginalError(r.plan, a, b)).toBeLessThan(1e-12);
      const M2 = Float64Array.from({ length: n * n }, () => rng());
      expect(simplex.solve(M2).cost).toBeCloseTo(emd(a, b, M2).cost, 12);
    }
    const uneven = new NetworkSimplex(Float64Array.from([0.3, 0.7]), Float64Array.from([0.5, 0.5]));
    expect(uneven.setPermutationBasis([0, 1])).toBe(false);
    expect(() => uneven.setPermutationBasis([0, 0])).toThrow(/not a permutation/);
  });

  it('hangs a permutation basis by shortest paths for the first cost, so an optimal permutation needs no pivot', () => {
    // σ(i) = τ(i) is optimal when each c[i, τ(i)] is its column's minimum; the rows' minima lie
    // elsewhere, so a star basis (each column on its artificial arc) prices arcs below c[i, τ(i)]
    // in row i as improving, while the re-hung tree's reduced costs are shortest-path slacks ≥ 0.
    const rng = mulberry32(17);
    for (const n of [1, 2, 7, 40, 120]) {
      // i ↦ 5i + 3 is a permutation when gcd(5, n) = 1, else a shift.
      const step = n % 5 === 0 ? 1 : 5;
      const tau = Int32Array.from({ length: n }, (_, i) => (i * step + 3) % n);
      const M = Float64Array.from({ length: n * n }, () => 1 + rng());
      for (let i = 0; i < n; i++) M[i * n + tau[i]!] = 0.5 * rng();
      // Cheaper entries off τ in every row, kept above their column's τ entry.
      for (let i = 0; i < n; i++) {
        const j = (tau[i]! + 1) % n;
        if (n > 1) M[i * n + j] = M[tau.indexOf(j) * n + j]! + 0.01 * rng();
      }
      const w = new Float64Array(n).fill(1 / n);
      for (const useKernel of [true, false]) {
        const simplex = new NetworkSimplex(w, w, { useKernel });
        expect(simplex.setPermutationBasis(tau)).toBe(true);
        const { plan, cost } = simplex.solve(M);
        expect(simplex.lastPivots).toBe(0);
        expect(cost).toBeCloseTo(emd(w, w, M).cost, 14);
        for (let i = 0; i < n; i++) expect(plan[i * n + tau[i]!]).toBeCloseTo(1 / n, 15);
        // Later solves warm-start from that tree as before.
        const M2 = M.map((c) => c + rng());
        expect(simplex.solve(M2).cost).toBeCloseTo(emd(w, w, M2).cost, 12);
      }
    }
  });

  it('a released simplex hands its cleared memory to the next one of the same size, and refuses further use', () => {
    const rng = mulberry32(29);
    const n = 37;
    const m = 41;
    for (let trial = 0; trial < 6; trial++) {
      const { a, b, M } = randomProblem(rng, n, m, trial % 2 === 1);
      const first = new NetworkSimplex(a, b);
      first.solve(M);
      first.solve(M.map((c) => c + rng()));
      first.release();
      expect(() => first.solve(M)).toThrow(/after release/);
      // Same size, same job: on the kernel it takes over the memory, whose arcs must all be LOWER
      // with no flow again.
      const second = new NetworkSimplex(a, b);
      const M2 = M.map((c) => c * rng());
      const cold = emd(a, b, M2);
      const warm = second.solve(M2);
      expect(warm.cost).toBeCloseTo(cold.cost, 12);
      expect(marginalError(warm.plan, a, b)).toBeLessThan(1e-12);
      const rows = Int32Array.from({ length: n }, (_, i) => n - 1 - i);
      const cols = Int32Array.from({ length: m }, (_, j) => j);
      second.setNorthWestBasis(rows, cols);
      const M3 = M.map(() => rng());
      const fromCorner = second.solve(M3);
      expect(fromCorner.cost).toBeCloseTo(emd(a, b, M3).cost, 12);
      expect(marginalError(fromCorner.plan, a, b)).toBeLessThan(1e-12);
      second.release();
    }
  });

  it('gives the sorted (monotone) plan for a Monge cost without pivoting from the sorted corner', () => {
    const n = 30;
    const rng = mulberry32(3);
    const u = Float64Array.from({ length: n }, () => rng());
    const v = Float64Array.from({ length: n }, () => rng());
    const M = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) M[i * n + j] = -u[i]! * v[j]!;
    const w = new Float64Array(n).fill(1 / n);
    const order = (x: Float64Array) => Int32Array.from(x.keys()).sort((i, j) => x[i]! - x[j]!);
    const simplex = new NetworkSimplex(w, w);
    simplex.setNorthWestBasis(order(u), order(v));
    const { cost } = simplex.solve(M);
    expect(simplex.lastPivots).toBe(0);
    expect(cost).toBeCloseTo(emd(w, w, M).cost, 14);
  });

  it('the sorted corner plan itself is optimal for a Monge cost with uneven weights (no solve needed)', () => {
    const rng = mulberry32(11);
    for (const [n, m] of [
      [17, 23],
      [25, 25],
    ] as const) {
      const weights = (k: number) => {
        const w = Float64Array.from({ length: k }, () => 0.2 + rng());
        const s = w.reduce((x, y) => x + y, 0);
        return w.map((x) => x / s);
      };
      const a = weights(n);
      const b = weights(m);
      const u = Float64Array.from({ length: n }, () => rng() - 0.5);
      const v = Float64Array.from({ length: m }, () => rng() - 0.5);
      const M = new Float64Array(n * m);
      for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) M[i * m + j] = -u[i]! * v[j]!;
      const order = (x: Float64Array) => Int32Array.from(x.keys()).sort((i, j) => x[i]! - x[j]!);
      const simplex = new NetworkSimplex(a, b);
      simplex.setNorthWestBasis(order(u), order(v));
      const corner = simplex.sparsePlan();
      let cost = 0;
      for (let k = 0; k < corner.values.length; k++)
        cost += corner.values[k]! * M[corner.rows[k]! * m + corner.cols[k]!]!;
      expect(cost).toBeCloseTo(emd(a, b, M).cost, 14);
    }
  });

  it('returns the sparse support of the last plan', () => {
    const a = Float64Array.from([0.5, 0.5]);
    const b = Float64Array.from([0.25, 0.75]);
    const simplex = new NetworkSimplex(a, b);
    simplex.solve(Float64Array.from([0, 1, 1, 0]));
    const s = simplex.sparsePlan();
    const dense = new Float64Array(4);
    s.values.forEach((v, k) => {
      dense[s.rows[k]! * 2 + s.cols[k]!] = v;
    });
    expect(Array.from(dense)).toEqual([0.25, 0.25, 0, 0.5]);
  });

  it('WebAssembly pricing makes the same pivots and plans as the JS loops, cold and warm', () => {
    const rng = mulberry32(21);
    for (const [n, m, zeros] of [
      [40, 40, false],
      [33, 57, true],
      [64, 29, false],
    ] as const) {
      const { a, b, M } = randomProblem(rng, n, m, zeros);
      const wasm = new NetworkSimplex(a, b);
      const js = new NetworkSimplex(a, b, { useKernel: false });
      expect([wasm.onKernel, js.onKernel]).toEqual([true, false]);
      let costs = M;
      for (let solve = 0; solve < 3; solve++) {
        const x = wasm.solveSparse(costs, { warmStart: solve > 0, negate: solve === 2 });
        const y = js.solveSparse(costs, { warmStart: solve > 0, negate: solve === 2 });
        expect(wasm.lastPivots).toBe(js.lastPivots);
        expect(wasm.lastPivots).toBeGreaterThan(0);
        expect(x).toEqual(y);
        costs = costs.map((c) => c + rng());
      }
    }
    // Degenerate: uniform weights and integer costs (many ties), from the corner and permutation
    // bases as the GW solver starts them, on trees deep enough for every branch of the update.
    const n = 90;
    const w = new Float64Array(n).fill(1 / n);
    const order = Int32Array.from({ length: n }, (_, i) => (i * 7) % n);
    for (const basis of ['corner', 'permutation', 'cold'] as const) {
      const wasm = new NetworkSimplex(w, w);
      const js = new NetworkSimplex(w, w, { useKernel: false });
      for (const simplex of [wasm, js]) {
        if (basis === 'corner') simplex.setNorthWestBasis(order, order.slice().reverse());
        if (basis === 'permutation') expect(simplex.setPermutationBasis(order)).toBe(true);
      }
      for (let solve = 0; solve < 3; solve++) {
        const M = Float64Array.from({ length: n * n }, () => Math.floor(rng() * 4));
        const x = wasm.solve(M, basis !== 'cold' || solve > 0);
        const y = js.solve(M, basis !== 'cold' || solve > 0);
        expect(wasm.lastPivots).toBe(js.lastPivots);
        expect(x.plan).toEqual(y.plan);
        expect(x.cost).toBe(y.cost);
      }
    }
    const bad = Float64Array.from([0, 1, Number.POSITIVE_INFINITY, 0]);
    const half = Float64Array.from([0.5, 0.5]);
    expect(() => new NetworkSimplex(half, half).solve(bad)).toThrow(/M\[1, 0\] is Infinity/);
    expect(() => new NetworkSimplex(half, half, { useKernel: false }).solve(bad)).toThrow(
      /M\[1, 0\] is Infinity/,
    );
    // An odd number of arcs: the kernel's last, unpaired entry is checked too.
    const third = new Float64Array(3).fill(1 / 3);
    const oddBad = new Float64Array(9);
    oddBad[8] = Number.NaN;
    expect(() => new NetworkSimplex(third, third).solve(oddBad)).toThrow(/M\[2, 2\] is NaN/);
  });

  it('rejects bad marginals and costs with messages that say what to fix', () => {
    const M = new Float64Array(4);
    expect(() => emd(Float64Array.from([0.5, 0.5]), Float64Array.from([0.5, 0.6]), M)).toThrow(
      /different mass/,
    );
    expect(() => emd(Float64Array.from([1.5, -0.5]), Float64Array.from([0.5, 0.5]), M)).toThrow(/negative/);
    expect(() => emd(Float64Array.from([Number.NaN, 0.5]), Float64Array.from([0.5, 0.5]), M)).toThrow(
      /finite/,
    );
    expect(() =>
      emd(Float64Array.from([0.5, 0.5]), Float64Array.from([0.5, 0.5]), new Float64Array(3)),
    ).toThrow(/need 4/);
    expect(() =>
      emd(
        Float64Array.from([0.5, 0.5]),
        Float64Array.from([0.5, 0.5]),
        Float64Array.from([0, 1, Number.NaN, 0]),
      ),
    ).toThrow(/finite/);
    expect(() => emd(new Float64Array(0), new Float64Array(0), new Float64Array(0))).toThrow(/empty/);
  });
});
