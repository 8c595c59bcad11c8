// Truncated-SVD atom factorisation: exact at m = k², Eckart–Young optimal error below it.
import { describe, expect, it } from 'vitest';
import { factoriseKernel, kernelFromTfLayout, symmetricEigen } from '../../src/client/factorise.js';
import { uniformFloat32 } from '../helpers/random.js';

describe('symmetricEigen', () => {
  it('diagonalises a symmetric matrix: A v = λ v, orthonormal vectors, values descending', () => {
    const n = 6;
    const b = uniformFloat32(n * n, 3);
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) for (let k = 0; k < n; k++) a[i * n + j] += b[i * n + k]! * b[j * n + k]!;
    const { values, vectors } = symmetricEigen(a, n);
    for (let c = 0; c < n; c++) {
      if (c > 0) expect(values[c]!).toBeLessThanOrEqual(values[c - 1]!);
      for (let i = 0; i < n; i++) {
        let av = 0;
        for (let k = 0; k < n; k++) av += a[i * n + k]! * vectors[k * n + c]!;
        expect(av).toBeCloseTo(values[c]! * vectors[i * n + c]!, 10);
      }
      for (let d = 0; d < n; d++) {
        let dot = 0;
        for (let k = 0; k < n; k++) dot += vectors[k * n + c]! * vectors[k * n + d]!;
        expect(dot).toBeCloseTo(c === d ? 1 : 0, 10);
      }
    }
  });
});

describe('factoriseKernel', () => {
  const [cOut, cIn, k] = [7, 5, 3];
  const kernel = uniformFloat32(cOut * cIn * k * k, 11);

  it('is exact (relative error ≤ 1e-6) with m = k²', () => {
    const f = factoriseKernel(kernel, cOut, cIn, k, 9);
    expect(f.relativeError).toBeLessThanOrEqual(1e-6);
    expect(f.alpha.length).toBe(cOut * cIn * 9);
    expect(f.atoms.length).toBe(9 * k * k);
  });

  it('reaches the Eckart–Young error √(Σ_{j>m} σ_j²) / ‖W‖ for m < k²', () => {
    for (const m of [1, 4, 6]) {
      const f = factoriseKernel(kernel, cOut, cIn, k, m);
      const sq = Array.from(f.singularValues, (s) => s * s);
      const total = sq.reduce((a, b) => a + b, 0);
      const tail = sq.slice(m).reduce((a, b) => a + b, 0);
      expect(f.relativeError).toBeGreaterThan(0.01);
      expect(f.relativeError).toBeCloseTo(Math.sqrt(tail / total), 5);
    }
  });

  it('returns orthonormal atoms (unit norm, the seed-generated template scale)', () => {
    const { atoms } = factoriseKernel(kernel, cOut, cIn, k, 6);
    for (let a = 0; a < 6; a++)
      for (let b = 0; b < 6; b++) {
        let dot = 0;
        for (let t = 0; t < 9; t++) dot += atoms[a * 9 + t]! * atoms[b * 9 + t]!;
        expect(dot).toBeCloseTo(a === b ? 1 : 0, 5);
      }
  });

  it('rejects m > k² and non-finite kernels with clear errors', () => {
    expect(() => factoriseKernel(kernel, cOut, cIn, k, 10)).toThrow(/m must be an integer in \[1, k² = 9\]/);
    const bad = kernel.slice();
    bad[4] = Number.NaN;
    expect(() => factoriseKernel(bad, cOut, cIn, k, 4)).toThrow(/non-finite/);
  });

  it('reorders a tfjs [k][k][cIn][cOut] kernel to [cOut][cIn][k][k]', () => {
    const tfKernel = Float32Array.from({ length: 2 * 2 * 3 * 4 }, (_, i) => i);
    const out = kernelFromTfLayout(tfKernel, 2, 3, 4);
    // out[o=1][i=2][y=1][x=0] = tf[y=1][x=0][i=2][o=1]
    expect(out[((1 * 3 + 2) * 2 + 1) * 2 + 0]).toBe(tfKernel[((1 * 2 + 0) * 3 + 2) * 4 + 1]);
  });
});
