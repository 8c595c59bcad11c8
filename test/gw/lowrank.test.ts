import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GwPool,
  gromovWasserstein,
  gwObjective,
  type LowRankCost,
  lowRankToDense,
  normaliseByMeanOffDiagonal,
  squaredEuclideanCost,
} from '../../src/ot/index.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import { flat } from './fixtures.js';

interface LowRankCase {
  X1: number[][];
  X2: number[][];
  C1: number[][];
  C2: number[][];
  cg_product_init: { gw: number; T: number[][] };
  cg_identity_init?: { gw: number; T: number[][] };
  product_coupling_value: number;
  identity_coupling_value?: number;
}

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'gw-lowrank');
const cases = ['sqeuclidean_40x40', 'sqeuclidean_40x28'].map((name) => ({
  name,
  data: JSON.parse(readFileSync(join(DIR, `${name}.json`), 'utf8')) as LowRankCase,
}));

/** Squared Euclidean distances of X's rows by the definition Σ_c (x_ic − x_kc)², normalised. */
function denseSquaredDistances(X: Float64Array, n: number, d: number): Float64Array {
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++)
    for (let k = 0; k < n; k++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += (X[i * d + c]! - X[k * d + c]!) ** 2;
      C[i * n + k] = s;
    }
  return normaliseByMeanOffDiagonal(C, n);
}

const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);

describe('low-rank GW on squared Euclidean costs against POT 0.8.2', () => {
  for (const { name, data } of cases) {
    const n = data.X1.length;
    const m = data.X2.length;
    const F1 = squaredEuclideanCost(flat(data.X1), n, data.X1[0]!.length, { normalise: true });
    const F2 = squaredEuclideanCost(flat(data.X2), m, data.X2[0]!.length, { normalise: true });

    it(`${name}: the factors (rank d + 2, normalised by the mean off-diagonal entry) are POT's matrices`, () => {
      expect(F1.rank).toBe(data.X1[0]!.length + 2);
      const D1 = lowRankToDense(F1);
      const ref = flat(data.C1);
      for (let e = 0; e < n * n; e++) expect(Math.abs(D1[e]! - ref[e]!)).toBeLessThan(1e-12);
      const D2 = lowRankToDense(F2);
      const ref2 = flat(data.C2);
      for (let e = 0; e < m * m; e++) expect(Math.abs(D2[e]! - ref2[e]!)).toBeLessThan(1e-12);
    });

    it(`${name}: the factored objective at POT's plans equals POT's value to 1e-10`, () => {
      const plans = [data.cg_product_init, ...(data.cg_identity_init ? [data.cg_identity_init] : [])];
      for (const { gw, T } of plans) {
        expect(relative(gwObjective(F1, F2, flat(T), n, m), gw)).toBeLessThan(1e-10);
      }
    });

    it(`${name}: CG on factors is no worse than POT from each start, and equals the dense path`, () => {
      const dense = [flat(data.C1), flat(data.C2)] as const;
      const product = gromovWasserstein(F1, F2, { init: 'product', returnPlan: true });
      expect(product.gw).toBeLessThanOrEqual(data.cg_product_init.gw * (1 + 1e-6));
      expect(relative(product.productValue, data.product_coupling_value)).toBeLessThan(1e-10);
      expect(relative(product.gw, gromovWasserstein(...dense, { init: 'product' }).gw)).toBeLessThan(1e-10);
      // The reported E is the dense objective of the returned plan.
      expect(relative(gwObjective(...dense, product.plan!, n, m), product.gw)).toBeLessThan(1e-10);
      if (data.cg_identity_init) {
        const identity = gromovWasserstein(F1, F2, { init: 'identity', returnPlan: true });
        expect(identity.gw).toBeLessThanOrEqual(data.cg_identity_init.gw * (1 + 1e-6));
        expect(relative(gwObjective(...dense, identity.plan!, n, m), identity.gw)).toBeLessThan(1e-10);
        expect(relative(identity.identityValue!, data.identity_coupling_value!)).toBeLessThan(1e-10);
        expect(relative(identity.gw, gromovWasserstein(...dense, { init: 'identity' }).gw)).toBeLessThan(
          1e-10,
        );
      }
    });
  }
});

describe('low-rank GW against the dense computation', () => {
  const normal = normalSampler(mulberry32(41));
  const n = 120;
  const X = Float64Array.from({ length: n * 6 }, normal);
  // Far from the origin and on another scale: centring and normalisation must take care of both.
  const Y = Float64Array.from({ length: n * 10 }, () => 50 + 7 * normal());
  const F1 = squaredEuclideanCost(X, n, 6, { normalise: true });
  const F2 = squaredEuclideanCost(Y, n, 10, { normalise: true });
  const D1 = denseSquaredDistances(X, n, 6);
  const D2 = denseSquaredDistances(Y, n, 10);

  for (const init of ['best', 'identity', 'product'] as const) {
    it(`CG from ${init}: same objective, iterations and start as the dense path`, () => {
      const lowRank = gromovWasserstein(F1, F2, { init, returnPlan: true });
      const dense = gromovWasserstein(D1, D2, { init, returnPlan: true });
      expect(relative(lowRank.gw, dense.gw)).toBeLessThan(1e-10);
      // Each run ends on a plan whose objective is the reported one (every step here is a full one,
      // α = 1, which replaces the plan by the vertex).
      expect(lowRank.iterations).toBeGreaterThan(2);
      expect(relative(gwObjective(D1, D2, lowRank.plan!, n, n), lowRank.gw)).toBeLessThan(1e-10);
      expect(relative(gwObjective(D1, D2, dense.plan!, n, n), dense.gw)).toBeLessThan(1e-10);
      expect(lowRank.iterations).toBe(dense.iterations);
      expect(lowRank.init).toBe(dense.init);
      expect(relative(lowRank.identityValue!, dense.identityValue!)).toBeLessThan(1e-10);
      expect(relative(lowRank.productValue, dense.productValue)).toBeLessThan(1e-10);
    });
  }

  it('entropic: same objective as the dense path', () => {
    const options = { solver: 'entropic', epsilon: 0.05, init: 'product', maxIter: 10 } as const;
    const lowRank = gromovWasserstein(F1, F2, options);
    expect(relative(lowRank.gw, gromovWasserstein(D1, D2, options).gw)).toBeLessThan(1e-10);
  });

  it('a cost of rank ≥ n/2 is solved densely, with the same result', () => {
    const small = squaredEuclideanCost(X.subarray(0, 10 * 6), 10, 6, { normalise: true });
    const other = squaredEuclideanCost(Y.subarray(0, 10 * 10), 10, 10, { normalise: true });
    expect(small.rank * 2).toBeGreaterThanOrEqual(10);
    expect(gromovWasserstein(small, small).gw).toBeLessThan(1e-14);
    expect(gromovWasserstein(small, other).gw).toBe(
      gromovWasserstein(lowRankToDense(small), lowRankToDense(other)).gw,
    );
  });

  it('rejects asymmetric or malformed factors with a message', () => {
    const skew: LowRankCost = { ...F1, B: F1.B.map((v, e) => (e % F1.rank === 3 ? v + 1 : v)) };
    expect(() => gromovWasserstein(skew, F2)).toThrow(/not symmetric/);
    expect(() => gromovWasserstein({ ...F1, A: F1.A.subarray(1) }, F2)).toThrow(/A and B must be/);
    const nan = Float64Array.from(F1.A);
    nan[7] = Number.NaN;
    expect(() => gromovWasserstein({ ...F1, A: nan }, F2)).toThrow(/finite/);
    expect(() => squaredEuclideanCost(new Float64Array(12), 4, 3, { normalise: true })).toThrow(
      /all points coincide/,
    );
  });

  describe('in the worker pool', () => {
    const pool = new GwPool({ workers: 2 });
    afterAll(() => pool.close());
    it('returns what the in-thread solver returns', async () => {
      const r = await pool.solve(F1, F2, { returnPlan: true });
      const local = gromovWasserstein(F1, F2, { returnPlan: true });
      expect(r.gw).toBe(local.gw);
      expect(r.plan).toEqual(local.plan);
    });
  });
});
