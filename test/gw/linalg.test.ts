import { describe, expect, it } from 'vitest';
import { kernelTeam, kernelVariant } from '../../src/ot/kernels/team.js';
import {
  gramUpperF32,
  jsMatmul,
  kernelThreads,
  matmul,
  matmulF32,
  setKernelThreads,
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

  for (const [n, d, chunkBytes] of [
    [1, 1, undefined],
    [7, 3, undefined],
    [37, 81, undefined],
    [130, 200, 4096],
    [301, 17, 10_000],
  ] as const) {
    it(`n = ${n}, d = ${d}${chunkBytes ? ` in chunks of ${chunkBytes} bytes` : ''}: the upper triangle of X Xᵀ to float32 accuracy`, () => {
      const rng = mulberry32(n * 7 + d);
      const x = Float32Array.from({ length: n * d }, () => rng() * 2 - 1);
      const seen = new Uint8Array(n * n);
      let chunks = 0;
      const ok = gramUpperF32(
        x,
        n,
        d,
        (rowStart, rowEnd, c, stride) => {
          chunks++;
          for (let i = rowStart; i < rowEnd; i++) {
            for (let j = i; j < n; j++) {
              const ref = reference(x, d, i, j);
              // float32 sums of d products of magnitude ≤ 1: error ≤ d·2⁻²⁴·Σ|x_it x_jt|.
              expect(Math.abs(c[(i - rowStart) * stride + j]! - ref)).toBeLessThanOrEqual(d * 2 ** -24 * d);
              seen[i * n + j]++;
            }
          }
        },
        chunkBytes,
      );
      expect(ok).toBe(true);
      for (let i = 0; i < n; i++) for (let j = i; j < n; j++) expect(seen[i * n + j]).toBe(1);
      if (chunkBytes) expect(chunks).toBeGreaterThan(1);
    });
  }
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
      gramUpperF32(x, 400, 300, (r0, r1, c, stride) => {
        for (let i = r0; i < r1; i++)
          gramRef.set(c.subarray((i - r0) * stride + i, (i - r0) * stride + 400), i * 400 + i);
      });
      const team = kernelTeam()!;
      const deadline = Date.now() + 20_000;
      while (team.helperJoins < 3 && Date.now() < deadline) {
        expect(Array.from(matmul(A, B, n, k, m))).toEqual(Array.from(ref));
        // In two chunks: this thread reads the first while the helper computes the second.
        let rows = 0;
        gramUpperF32(
          x,
          400,
          300,
          (r0, r1, c, stride) => {
            for (let i = r0; i < r1; i++) {
              const row = c.subarray((i - r0) * stride + i, (i - r0) * stride + 400);
              // Each entry is one thread's sum in a fixed order, so threads do not change it.
              expect(Array.from(row)).toEqual(Array.from(gramRef.subarray(i * 400 + i, i * 400 + 400)));
              rows++;
            }
          },
          400_000,
        );
        expect(rows).toBe(400);
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(team.helperCount).toBe(1);
      expect(team.helperJoins).toBeGreaterThanOrEqual(3);
    } finally {
      setKernelThreads(threads);
    }
  }, 30_000);
});
