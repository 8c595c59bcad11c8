import { describe, expect, it } from 'vitest';
import {
  centredActivations,
  factorPaysOff,
  factorToCost,
  factorToSquaredDistances,
  type GramFactor,
  gramFromActivations,
  gramOfFactor,
  gramToCost,
  gramToDistances,
  gramToSquaredDistances,
  linearCka,
  linearCkaFromGram,
} from '../../src/analysis/representation.js';
import { normaliseByMeanOffDiagonal } from '../../src/ot/index.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { ckaCases, flat } from './fixtures.js';

describe('linear CKA against numpy (reference cases)', () => {
  for (const { name, data } of ckaCases()) {
    it(`${name}: within 1e-9`, () => {
      const n = data.X.length;
      const dx = data.X[0]!.length;
      const dy = data.Y[0]!.length;
      const X = flat(data.X);
      const Y = flat(data.Y);
      expect(Math.abs(linearCka(X, Y, n, dx, dy) - data.linear_cka)).toBeLessThan(1e-9);
      const K = gramFromActivations(X, n, dx);
      const L = gramFromActivations(Y, n, dy);
      expect(Math.abs(linearCkaFromGram(K, L, n) - data.linear_cka)).toBeLessThan(1e-9);
      // Float32 Grams, as clients send them, still agree closely.
      expect(
        Math.abs(linearCkaFromGram(Float32Array.from(K), Float32Array.from(L), n) - data.linear_cka),
      ).toBeLessThan(1e-5);
    });
  }

  it('is 1 for a representation and its rotated, rescaled copy, and symmetric', () => {
    const rng = mulberry32(9);
    const n = 12;
    const X = Float64Array.from({ length: n * 2 }, () => rng() - 0.5);
    // Rotate by 30° and scale by 3: CKA is invariant to both.
    const c = Math.cos(Math.PI / 6);
    const s = Math.sin(Math.PI / 6);
    const Y = new Float64Array(n * 2);
    for (let i = 0; i < n; i++) {
      Y[i * 2] = 3 * (c * X[i * 2]! - s * X[i * 2 + 1]!);
      Y[i * 2 + 1] = 3 * (s * X[i * 2]! + c * X[i * 2 + 1]!);
    }
    expect(linearCka(X, Y, n, 2, 2)).toBeCloseTo(1, 12);
    const Z = Float64Array.from({ length: n * 3 }, () => rng());
    expect(linearCka(X, Z, n, 2, 3)).toBeCloseTo(linearCka(Z, X, n, 3, 2), 14);
  });

  it('says when CKA is undefined', () => {
    const constant = new Float64Array(4 * 2).fill(1);
    const X = Float64Array.from([1, 2, 3, 4, 5, 6, 7, 9]);
    expect(() => linearCka(constant, X, 4, 2, 2)).toThrow(/constant/);
    expect(() => linearCkaFromGram(new Float64Array(9), new Float64Array(4), 3)).toThrow(/3×3/);
  });
});

describe('Gram to distances', () => {
  const rng = mulberry32(4);
  const n = 7;
  const d = 3;
  const X = Float64Array.from({ length: n * d }, () => rng() * 4 - 2);
  const K = gramFromActivations(X, n, d);

  it('gives the Euclidean distances between the rows of X', () => {
    const D = gramToDistances(K, n);
    const D2 = gramToSquaredDistances(K, n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let k = 0; k < d; k++) s += (X[i * d + k]! - X[j * d + k]!) ** 2;
        expect(D2[i * n + j]).toBeCloseTo(s, 12);
        expect(D[i * n + j]).toBeCloseTo(Math.sqrt(s), 12);
        expect(D[i * n + j]).toBe(D[j * n + i]);
      }
      expect(D[i * n + i]).toBe(0);
    }
  });

  it('gives either cost by name, and names the choices for an unknown one', () => {
    expect(gramToCost(K, n, 'euclidean')).toEqual(gramToDistances(K, n));
    expect(gramToCost(K, n, 'sqeuclidean')).toEqual(gramToSquaredDistances(K, n));
    expect(() => gramToCost(K, n, 'cosine' as never)).toThrow(/euclidean or sqeuclidean/);
  });

  it('clamps rounding below zero (coincident points in float32)', () => {
    const K32 = Float32Array.from([1e8 + 1, 1e8 + 1, 1e8 + 1, 1e8 + 1]);
    const D = gramToSquaredDistances(K32, 2);
    expect(Math.min(...D)).toBeGreaterThanOrEqual(0);
  });

  it('normalises by the mean off-diagonal entry, and refuses a zero matrix', () => {
    const N = normaliseByMeanOffDiagonal(gramToDistances(K, n), n);
    let s = 0;
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) s += N[i * n + j]!;
    expect(s / (n * (n - 1))).toBeCloseTo(1, 14);
    expect(() => normaliseByMeanOffDiagonal(new Float64Array(9), 3)).toThrow(/all points coincide/);
    expect(() => normaliseByMeanOffDiagonal(new Float64Array(8), 3)).toThrow(/3×3/);
  });
});

describe('probe layers as factors', () => {
  const rng = mulberry32(9);
  const n = 11;
  const d = 3;
  // Rows far from the origin: a factor that is not centred must still give the same answers.
  const X = Float64Array.from({ length: n * d }, () => 50 + rng() * 4);
  const Y = Float64Array.from({ length: n * 2 }, () => rng() * 2 - 1);
  const F: GramFactor = { n, rank: d, values: X };
  const G: GramFactor = { n, rank: 2, values: Y };
  const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number) => {
    let worst = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    expect(worst).toBeLessThanOrEqual(tol * scale);
  };

  it('distances between the rows of F are those of the Gram F Fᵀ', () => {
    close(factorToSquaredDistances(F), gramToSquaredDistances(gramOfFactor(F), n), 1e-12);
    close(factorToCost(F, 'euclidean'), gramToDistances(gramOfFactor(F), n), 1e-12);
    close(factorToCost(F, 'sqeuclidean'), gramToSquaredDistances(gramOfFactor(F), n), 1e-12);
  });

  it('a centred factor keeps CKA and distances: what the proto promises a client that centres', () => {
    const centred: GramFactor = { n, rank: d, values: centredActivations(X, n, d) };
    const K = gramOfFactor(F);
    const Kc = gramOfFactor(centred);
    const L = gramOfFactor(G);
    expect(linearCkaFromGram(Kc, L, n)).toBeCloseTo(linearCkaFromGram(K, L, n), 10);
    close(factorToSquaredDistances(centred), gramToSquaredDistances(K, n), 1e-12);
    close(gramToSquaredDistances(Kc, n), gramToSquaredDistances(K, n), 1e-9);
  });

  it('a factor pays off when its squared distances have rank below n / 2', () => {
    expect(factorPaysOff(6, 17)).toBe(true); // rank 8 < 8.5
    expect(factorPaysOff(6, 16)).toBe(false); // rank 8 = 16 / 2
    expect(factorPaysOff(64, 1024)).toBe(true);
    expect(factorPaysOff(512, 1024)).toBe(false);
  });

  it('centres columns and checks shapes', () => {
    const C = centredActivations(X, n, d);
    for (let c = 0; c < d; c++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += C[i * d + c]!;
      expect(Math.abs(s)).toBeLessThan(1e-11);
    }
    expect(() => centredActivations(X, n, d + 1)).toThrow(/expected 11×4/);
    expect(() => gramOfFactor({ n, rank: 2, values: X })).toThrow(/expected 11×2 = 22 values, got 33/);
  });
});
