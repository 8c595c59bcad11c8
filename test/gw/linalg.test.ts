import { describe, expect, it } from 'vitest';
import { colSums, jsMatmul, matmul, matvec, maxAsymmetry, rowSums, transpose } from '../../src/ot/linalg.js';
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
    it(`${n}×${k} · ${k}×${m} equals the definition, and the SIMD and JS kernels agree bit for bit`, () => {
      const A = Float64Array.from({ length: n * k }, () => rng() * 2 - 1);
      const B = Float64Array.from({ length: k * m }, () => rng() * 2 - 1);
      const C = matmul(A, B, n, k, m);
      const ref = naive(A, B, n, k, m);
      for (let e = 0; e < C.length; e++) expect(C[e]).toBe(ref[e]);
      expect(Array.from(jsMatmul(A, B, n, k, m))).toEqual(Array.from(C));
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
  it('transpose, matvec, row/column sums and asymmetry', () => {
    const A = Float64Array.from([1, 2, 3, 4, 5, 6]); // 2×3
    expect(Array.from(transpose(A, 2, 3))).toEqual([1, 4, 2, 5, 3, 6]);
    expect(Array.from(matvec(A, [1, 0, -1], 2, 3))).toEqual([-2, -2]);
    expect(Array.from(rowSums(A, 2, 3))).toEqual([6, 15]);
    expect(Array.from(colSums(A, 2, 3))).toEqual([5, 7, 9]);
    expect(maxAsymmetry([1, 2, 2.5, 1], 2)).toBe(0.5);
  });
});
