import { describe, expect, it } from 'vitest';
import { kernelTeam, kernelVariant } from '../../src/ot/kernels/team.js';
import {
  jsMatmul,
  kernelThreads,
  matmul,
  matmulF32,
  setKernelThreads,
  symmetricGramF32,
  transpose,
} from '../../src/ot/linalg.js';
import { mulberry32 } from '../../src/shared/rng.js';

function naive(A: Float64Array, B: Float64Array, n: number, k: number, m: number): Float64Array {
  const C = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += A[i * k + p]! * B[p * m + j]!;
      C[i * m + j] = s;
    }
  return C;
}

describe('matmul', () => {
  const rng = mulberry32(12);
  // Sizes that exercise the tile edges (n, m not multiples of 4) and both kernels (small → JS).
  const shapes = [
    [1, 1, 1],
    [3, 5, 2],
    [33, 40, 35],
    [64, 64, 64],
    [37, 1, 50],
    [40, 100, 1],
    [5, 3000, 7],
    [129, 77, 131],
    // Several depth slices (kc = 512), row slabs (32 tiles) and column groups (16 panels) at once.
    [140, 1100, 150],
  ] as const;

  for (const [n, k, m] of shapes) {
    it(`${n}×${k} · ${k}×${m} equals the definition (bit for bit without fused multiply-add)`, () => {
      const A = Float64Array.from({ length: n * k }, () => rng() * 2 - 1);
      const B = Float64Array.from({ length: k * m }, () => rng() * 2 - 1);
      const C = matmul(A, B, n, k, m);
      const ref = naive(A, B, n, k, m);
      // The JS kernel and linalg.wat round each product; linalg-fma.wat may fuse it into the sum.
      expect(Array.from(jsMatmul(A, B, n, k, m))).toEqual(Array.from(ref));
      const fused = kernelVariant() === 'fma';
      for (let e = 0; e < C.length; e++) {
        if (fused) expect(Math.abs(C[e]! - ref[e]!)).toBeLessThanOrEqual(k * 2 ** -53 * k);
        else expect(C[e]).toBe(ref[e]);
      }
    });
  }

  it('writes into a given output, accepts float32 input and checks sizes', () => {
    const A = Float32Array.from({ length: 40 * 40 }, () => rng());
    const out = new Float64Array(40 * 40).fill(Number.NaN);
    const C = matmul(A, A, 40, 40, 40, out);
    expect(C).toBe(out);
    expect(C[7]).toBeCloseTo(naive(Float64Array.from(A), Float64Array.from(A), 40, 40, 40)[7]!, 12);
    expect(() => matmul(new Float64Array(5), new Float64Array(6), 2, 3, 2)).toThrow(
      /A has 5 values, expected 6/,
    );
    expect(Array.from(matmul(new Float64Array(0), new Float64Array(0), 2, 0, 2))).toEqual([0, 0, 0, 0]);
  });
});

describe('small helpers', () => {
  it('transpose', () => {
    const A = Float64Array.from([1, 2, 3, 4, 5, 6]); // 2×3
    expect(Array.from(transpose(A, 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
  });
});

describe('matmulF32', () => {
  for (const [n, k, m] of [
    [1, 1, 1],
    [5, 3, 9],
    [33, 70, 17],
    [130, 129, 260],
    [133, 1030, 140],
  ] as const) {
    it(`${n}×${k} · ${k}×${m} to float32 accuracy`, () => {
      const rng = mulberry32(n + k + m);
      const A = Float32Array.from({ length: n * k }, () => rng() * 2 - 1);
      const B = Float32Array.from({ length: k * m }, () => rng() * 2 - 1);
      const C = matmulF32(A, B, n, k, m);
      const ref = naive(Float64Array.from(A), Float64Array.from(B), n, k, m);
      // |error| ≤ k·2⁻²⁴·Σ_p |A_ip B_pj| ≤ k²·2⁻²⁴ for entries of magnitude ≤ 1.
      for (let e = 0; e < C.length; e++)
        expect(Math.abs(C[e]! - ref[e]!)).toBeLessThanOrEqual(k * k * 2 ** -24);
    });
  }
});

describe('float32 Gram kernel', () => {
  function reference(x: Float32Array, d: number, i: number, j: number): number {
    let s = 0;
    for (let t = 0; t < d; t++) s += x[i * d + t]! * x[j * d + t]!;
    return s;
  }

  // n around whole panels of 8 and row tiles of 4 (edges), d small and above one L2 slab's rows.
  for (const [n, d] of [
    [1, 1],
    [7, 3],
    [8, 5],
    [37, 81],
    [130, 200],
    [301, 17],
    [67, 3000],
    // Several row slabs and several groups of 32 column panels.
    [520, 700],
  ] as const) {
    it(`n = ${n}, d = ${d}: both triangles of X Xᵀ to float32 accuracy, symmetric bit for bit`, () => {
      const rng = mulberry32(n * 7 + d);
      const x = Float32Array.from({ length: n * d }, () => rng() * 2 - 1);
      const out = new Float32Array(n * n).fill(Number.NaN);
      expect(symmetricGramF32(x, n, d, out)).toBe(true);
      let worst = 0;
      let asymmetric = 0;
      for (let i = 0; i < n; i++) {
        for (let j = i; j < n; j++) {
          worst = Math.max(worst, Math.abs(out[i * n + j]! - reference(x, d, i, j)));
          if (out[j * n + i] !== out[i * n + j]) asymmetric++;
        }
      }
      // float32 sums of d products of magnitude ≤ 1: error ≤ d·2⁻²⁴·Σ|x_it x_jt| (NaN fails too).
      expect(worst).toBeLessThanOrEqual(d * 2 ** -24 * d);
      expect(asymmetric).toBe(0);
    });
  }

  it('scales and clamps in the same pass', () => {
    const n = 45;
    const d = 30;
    const rng = mulberry32(3);
    const x = Float32Array.from({ length: n * d }, () => rng() * 2 - 1);
    const plain = new Float32Array(n * n);
    symmetricGramF32(x, n, d, plain);
    const out = new Float32Array(n * n);
    symmetricGramF32(x, n, d, out, 0.25, 0.5);
    let clamped = 0;
    for (let e = 0; e < n * n; e++) {
      const v = Math.fround(plain[e]! * Math.fround(0.25));
      expect(out[e]).toBe(Math.max(-0.5, Math.min(0.5, v)));
      if (Math.abs(v) > 0.5) clamped++;
    }
    // The clamp is exercised (the diagonal alone is ≈ d/3 · 0.25 > 0.5).
    expect(clamped).toBeGreaterThan(n);
  });

  it('checks sizes and handles d = 0', () => {
    expect(() => symmetricGramF32(new Float32Array(5), 2, 3, new Float32Array(4))).toThrow(
      /X has 5 values, expected 6/,
    );
    const out = new Float32Array(9).fill(Number.NaN);
    expect(symmetricGramF32(new Float32Array(0), 3, 0, out)).toBe(true);
    expect(Array.from(out)).toEqual(new Array(9).fill(0));
  });
});

describe('kernels on two threads', () => {
  it('a helper thread joins large products and the results are unchanged (bit for bit)', async () => {
    const threads = kernelThreads();
    setKernelThreads(2);
    try {
      const rng = mulberry32(99);
      const n = 200;
      const k = 190;
      const m = 210;
      const A = Float64Array.from({ length: n * k }, () => rng() * 2 - 1);
      const B = Float64Array.from({ length: k * m }, () => rng() * 2 - 1);
      // One thread's result: with helpers, each entry is still one tile's sum in the same order.
      const ref = matmul(A, B, n, k, m);
      const x = Float32Array.from({ length: 400 * 300 }, () => rng() * 2 - 1);
      const gramRef = new Float32Array(400 * 400);
      symmetricGramF32(x, 400, 300, gramRef);
      const team = kernelTeam()!;
      const deadline = Date.now() + 20_000;
      const gram = new Float32Array(400 * 400);
      while (team.helperJoins < 3 && Date.now() < deadline) {
        expect(Array.from(matmul(A, B, n, k, m))).toEqual(Array.from(ref));
        // Each entry is one thread's sum in a fixed order, so threads do not change it.
        gram.fill(Number.NaN);
        symmetricGramF32(x, 400, 300, gram);
        expect(gram).toEqual(gramRef);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(team.helperCount).toBe(1);
      expect(team.helperJoins).toBeGreaterThanOrEqual(3);
    } finally {
      setKernelThreads(threads);
    }
  }, 30_000);
});
