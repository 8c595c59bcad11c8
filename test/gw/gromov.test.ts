import { describe, expect, it } from 'vitest';
import { gromovWasserstein, gwObjective } from '../../src/ot/index.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { flat, gwCases, marginalError, permuteSpace, randomDistances } from './fixtures.js';

/** Σ_ijkl (C1_ik − C2_jl)² T_ij T_kl by its definition, O(n²m²): the check on the fast formulas. */
function bruteForceObjective(
  C1: Float64Array,
  C2: Float64Array,
  T: Float64Array,
  n: number,
  m: number,
): number {
  let s = 0;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++)
      for (let k = 0; k < n; k++)
        for (let l = 0; l < m; l++)
          s += (C1[i * n + k]! - C2[j * m + l]!) ** 2 * T[i * m + j]! * T[k * m + l]!;
  return s;
}

const RELATIVE = 1e-6;

describe('gromovWasserstein against POT 0.8.2 (reference cases)', () => {
  for (const { name, data } of gwCases()) {
    const C1 = flat(data.C1);
    const C2 = flat(data.C2);
    const p = Float64Array.from(data.p);
    const q = Float64Array.from(data.q);

    it(`${name}: CG from the product coupling is no worse than POT's, plan meets the marginals`, () => {
      const r = gromovWasserstein(C1, C2, { p, q, init: 'product', returnPlan: true });
      const ref = data.cg_product_init.gw;
      expect(r.gw).toBeLessThanOrEqual(ref + RELATIVE * Math.max(ref, 1e-12));
      expect(r.init).toBe('product');
      expect(r.converged).toBe(true);
      expect(marginalError(r.plan!, p, q)).toBeLessThan(1e-8);
      expect(Math.min(...r.plan!)).toBeGreaterThanOrEqual(0);
      // The reported E is the objective of the returned plan.
      expect(gwObjective(C1, C2, r.plan!, p.length, q.length)).toBeCloseTo(r.gw, 12);
      expect(r.productValue).toBeCloseTo(data.product_coupling_value, 12);
      expect(r.distance).toBeCloseTo(0.5 * Math.sqrt(r.gw), 15);
    });

    if (data.cg_identity_init) {
      it(`${name}: CG from the identity coupling is no worse than POT's; identity value matches`, () => {
        const r = gromovWasserstein(C1, C2, { p, q, init: 'identity', returnPlan: true });
        const ref = data.cg_identity_init!.gw;
        expect(r.gw).toBeLessThanOrEqual(ref + RELATIVE * ref);
        expect(marginalError(r.plan!, p, q)).toBeLessThan(1e-8);
        expect(gwObjective(C1, C2, r.plan!, p.length, q.length)).toBeCloseTo(r.gw, 12);
        expect(r.identityValue).toBeCloseTo(data.identity_coupling_value!, 12);
      });
    } else {
      it(`${name}: identity start is refused for spaces of different sizes; best falls back to product`, () => {
        expect(() => gromovWasserstein(C1, C2, { p, q, init: 'identity' })).toThrow(/equal size/);
        const r = gromovWasserstein(C1, C2, { p, q });
        expect(r.identityValue).toBeNull();
        expect(r.init).toBe('product');
      });
    }

    it(`${name}: best is no worse than either POT start`, () => {
      const r = gromovWasserstein(C1, C2, { p, q });
      const refs = [data.cg_product_init.gw, data.cg_identity_init?.gw ?? Number.POSITIVE_INFINITY];
      const bound = Math.min(...refs);
      expect(r.gw).toBeLessThanOrEqual(bound + RELATIVE * Math.max(bound, 1e-12));
    });

    for (const [eps, ref] of Object.entries(data.entropic)) {
      it(`${name}: entropic GW (ε = ${eps}) within 1e-3 relative of POT`, () => {
        const r = gromovWasserstein(C1, C2, {
          p,
          q,
          solver: 'entropic',
          epsilon: Number(eps),
          init: 'product',
          returnPlan: true,
        });
        // POT's value for a near-zero optimum (the permuted copy) is itself tiny; compare absolutely there.
        expect(Math.abs(r.gw - ref.gw)).toBeLessThanOrEqual(1e-3 * ref.gw + 1e-12);
        // Like POT, each Sinkhorn projection stops after 1000 iterations, so at small ε the plan
        // meets the marginals only to ~1e-5 (POT's reference plans do the same).
        expect(marginalError(r.plan!, p, q)).toBeLessThan(1e-4);
      });
    }
  }

  it('permuted copy: best finds the hidden permutation (E ≈ 0) although the identity start cannot', () => {
    const data = gwCases().find((c) => c.name === 'permuted_copy_n10')!.data;
    const C1 = flat(data.C1);
    const C2 = flat(data.C2);
    const best = gromovWasserstein(C1, C2);
    expect(best.gw).toBeLessThan(1e-12);
    expect(best.init).toBe('product');
    const identity = gromovWasserstein(C1, C2, { init: 'identity' });
    expect(identity.gw).toBeGreaterThan(0.01);
  });
});

describe('gromovWasserstein properties', () => {
  const rng = mulberry32(2024);
  const A = randomDistances(20, 3, rng);
  const B = randomDistances(20, 5, rng);
  const C = randomDistances(13, 2, rng);

  it('the objective formula equals the O(n⁴) definition, for any non-negative T', () => {
    const T = Float64Array.from({ length: 20 * 13 }, () => rng());
    const brute = bruteForceObjective(A, C, T, 20, 13);
    expect(Math.abs(gwObjective(A, C, T, 20, 13) - brute)).toBeLessThan(1e-12 * brute);
  });

  it('GW of a space with itself is 0, with either solver', () => {
    expect(gromovWasserstein(A, A).gw).toBeLessThan(1e-14);
    expect(gromovWasserstein(A, A, { init: 'identity' }).gw).toBeLessThan(1e-14);
    expect(gromovWasserstein(A, A, { solver: 'entropic', epsilon: 0.01, init: 'identity' }).gw).toBeLessThan(
      1e-3,
    );
  });

  it('is symmetric in its arguments', () => {
    for (const [X, Y] of [
      [A, B],
      [A, C],
    ] as const) {
      for (const init of ['best', 'product'] as const) {
        const xy = gromovWasserstein(X, Y, { init }).gw;
        const yx = gromovWasserstein(Y, X, { init }).gw;
        expect(Math.abs(xy - yx)).toBeLessThanOrEqual(1e-9 * xy);
      }
    }
  });

  it("is invariant to permuting one space's points (product start, which does not depend on labels)", () => {
    const perm = Array.from({ length: 20 }, (_, i) => (i * 7 + 3) % 20);
    const base = gromovWasserstein(A, B, { init: 'product' }).gw;
    const permuted = gromovWasserstein(A, permuteSpace(B, perm), { init: 'product' }).gw;
    expect(Math.abs(permuted - base)).toBeLessThanOrEqual(1e-9 * base);
    // A permuted copy of A is found exactly.
    expect(gromovWasserstein(A, permuteSpace(A, perm)).gw).toBeLessThan(1e-12);
  });

  it('never does worse than its start (CG is a descent method) and respects maxIter', () => {
    const r = gromovWasserstein(A, B, { init: 'identity' });
    expect(r.gw).toBeLessThanOrEqual(r.identityValue! * (1 + 1e-12));
    const p = gromovWasserstein(A, B, { init: 'product' });
    expect(p.gw).toBeLessThanOrEqual(p.productValue);
    const one = gromovWasserstein(A, B, { init: 'product', maxIter: 1 });
    expect(one.iterations).toBe(1);
  });

  it('accepts a given initial plan and keeps its marginals', () => {
    const p = new Float64Array(20).fill(1 / 20);
    const q = new Float64Array(13).fill(1 / 13);
    const T0 = new Float64Array(20 * 13);
    for (let i = 0; i < 20; i++) for (let j = 0; j < 13; j++) T0[i * 13 + j] = p[i]! * q[j]!;
    const given = gromovWasserstein(A, C, { init: T0, returnPlan: true });
    const product = gromovWasserstein(A, C, { init: 'product' });
    expect(given.init).toBe('given');
    expect(given.gw).toBeCloseTo(product.gw, 12);
    expect(marginalError(given.plan!, p, q)).toBeLessThan(1e-8);
  });

  it('rejects bad input with messages that say what is wrong', () => {
    const w = (n: number) => new Float64Array(n).fill(1 / n);
    expect(() => gromovWasserstein(new Float64Array(6), A)).toThrow(/not n×n/);
    const nan = Float64Array.from(A);
    nan[5] = Number.NaN;
    expect(() => gromovWasserstein(nan, B)).toThrow(/finite/);
    // The first non-finite entry in row-major order is named, wherever it sits.
    for (const [e, at] of [
      [20 * 7 + 3, 'C1\\[7, 3\\]'],
      [20 * 4 + 4, 'C1\\[4, 4\\]'],
      [20 * 2 + 9, 'C1\\[2, 9\\]'],
    ] as const) {
      const bad = Float64Array.from(A);
      bad[e] = Number.NEGATIVE_INFINITY;
      if (e === 20 * 2 + 9) bad[20 * 9 + 2] = Number.NaN;
      expect(() => gromovWasserstein(bad, B)).toThrow(new RegExp(`${at} is -Infinity`));
    }
    const skew = Float64Array.from(A);
    skew[1] = skew[1]! + 1;
    expect(() => gromovWasserstein(skew, B)).toThrow(/not symmetric/);
    const negative = w(20);
    negative[0] = -0.05;
    negative[1] = 0.15;
    expect(() => gromovWasserstein(A, B, { p: negative })).toThrow(/negative/);
    expect(() => gromovWasserstein(A, B, { p: w(20), q: w(20).map((x) => 2 * x) })).toThrow(/different mass/);
    expect(() => gromovWasserstein(A, B, { p: w(19) })).toThrow(/p has 19 weights/);
    expect(() => gromovWasserstein(A, C, { init: 'identity' })).toThrow(/equal size/);
    expect(() => gromovWasserstein(A, B, { init: new Float64Array(400).fill(1) })).toThrow(/row 0 sums/);
    expect(() => gromovWasserstein(A, B, { solver: 'entropic', epsilon: 0 })).toThrow(/epsilon/);
  });
});
