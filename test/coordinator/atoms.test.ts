// src/analysis/atoms.ts against independent references: plain loops for cosines, scipy's
// subspace_angles (test/fixtures/subspace-angles.json) for the principal-angle measure, and
// geometric facts (rotations within a span, orthogonal spans, a known angle).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  atomCosine,
  cosineToOthers,
  meanPairwiseCosineFromSum,
  modelCosine,
  orthonormalRows,
  subspaceSimilarity,
  unitVector,
} from '../../src/analysis/atoms.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/subspace-angles.json', import.meta.url), 'utf8'),
) as {
  cases: { name: string; m: number; kk: number; a: number[]; b: number[]; meanCos2: number }[];
};

function randomVector(n: number, seed: number): Float32Array {
  const normal = normalSampler(mulberry32(seed));
  return Float32Array.from({ length: n }, () => normal());
}

describe('atomCosine / modelCosine', () => {
  it('equals <a,b>/(|a||b|) computed with plain loops', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const a = randomVector(54, seed);
      const b = randomVector(54, seed + 100);
      let ab = 0;
      let aa = 0;
      let bb = 0;
      for (let i = 0; i < 54; i++) {
        ab += a[i]! * b[i]!;
        aa += a[i]! ** 2;
        bb += b[i]! ** 2;
      }
      expect(atomCosine(a, b)).toBeCloseTo(ab / Math.sqrt(aa * bb), 12);
    }
  });

  it('is 1 for a positive multiple, -1 for a negative one, 0 when a side is zero', () => {
    const a = randomVector(9, 3);
    expect(
      atomCosine(
        a,
        a.map((v) => v * 2.5),
      ),
    ).toBeCloseTo(1, 12);
    expect(
      atomCosine(
        a,
        a.map((v) => -v),
      ),
    ).toBeCloseTo(-1, 12);
    expect(atomCosine(a, new Float32Array(9))).toBe(0);
  });

  it('rejects atom sets of different sizes', () => {
    expect(() => atomCosine(new Float32Array(9), new Float32Array(8))).toThrow(/differ in size/);
  });

  it('averages per-layer cosines into the model similarity', () => {
    const a = [randomVector(54, 1), randomVector(81, 2)];
    const b = [randomVector(54, 3), a[1]!.map((v) => v * 3)];
    const r = modelCosine(a, b);
    expect(r.perLayer[1]).toBeCloseTo(1, 12);
    expect(r.mean).toBeCloseTo((atomCosine(a[0]!, b[0]!) + 1) / 2, 12);
    expect(() => modelCosine(a, [b[0]!])).toThrow(/layers/);
  });
});

describe('subspaceSimilarity (principal angles)', () => {
  it.each(fixture.cases)('matches scipy subspace_angles: $name', (c) => {
    expect(subspaceSimilarity(c.a, c.b, c.m, c.kk)).toBeCloseTo(c.meanCos2, 9);
  });

  it('is 1 for any invertible recombination of the same atoms (basis-free)', () => {
    const m = 5;
    const kk = 9;
    const a = randomVector(m * kk, 11);
    const g = randomVector(m * m, 12); // a random m×m matrix is invertible almost surely
    const b = new Float64Array(m * kk);
    for (let i = 0; i < m; i++)
      for (let j = 0; j < m; j++)
        for (let t = 0; t < kk; t++) b[i * kk + t]! += g[i * m + j]! * a[j * kk + t]!;
    expect(subspaceSimilarity(a, b, m, kk)).toBeCloseTo(1, 9);
  });

  it('is 0 for orthogonal spans and cos²θ for two lines at angle θ', () => {
    const e = (i: number) => Float64Array.from({ length: 9 }, (_, t) => (t === i ? 1 : 0));
    const a = new Float64Array([...e(0), ...e(1)]);
    const b = new Float64Array([...e(2), ...e(3)]);
    expect(subspaceSimilarity(a, b, 2, 9)).toBeCloseTo(0, 12);
    const theta = 0.7;
    const line = Float64Array.from({ length: 9 }, (_, t) =>
      t === 0 ? Math.cos(theta) : t === 1 ? Math.sin(theta) : 0,
    );
    expect(subspaceSimilarity(e(0), line, 1, 9)).toBeCloseTo(Math.cos(theta) ** 2, 12);
  });

  it('finds the numerical rank and returns an orthonormal basis', () => {
    const a = randomVector(3 * 9, 5);
    const rows = new Float64Array(4 * 9);
    rows.set(a);
    for (let t = 0; t < 9; t++) rows[27 + t] = a[t]! - 2 * a[9 + t]!; // dependent 4th row
    const { basis, rank } = orthonormalRows(rows, 4, 9);
    expect(rank).toBe(3);
    for (let i = 0; i < rank; i++) {
      for (let j = 0; j < rank; j++) {
        let d = 0;
        for (let t = 0; t < 9; t++) d += basis[i * 9 + t]! * basis[j * 9 + t]!;
        expect(d).toBeCloseTo(i === j ? 1 : 0, 12);
      }
    }
    expect(orthonormalRows(new Float64Array(18), 2, 9).rank).toBe(0);
    expect(subspaceSimilarity(new Float64Array(18), rows.subarray(0, 18), 2, 9)).toBe(0);
  });
});

describe('centroid helpers', () => {
  it('cosineToOthers equals the cosine to the mean of the other unit vectors', () => {
    const units = [1, 2, 3, 4].map((s) => unitVector(randomVector(27, s)));
    const sum = new Float64Array(27);
    for (const u of units) for (let t = 0; t < 27; t++) sum[t]! += u[t]!;
    for (let i = 0; i < units.length; i++) {
      const others = new Float64Array(27);
      units.forEach((u, j) => {
        if (j !== i) for (let t = 0; t < 27; t++) others[t]! += u[t]! / 3;
      });
      expect(cosineToOthers(units[i]!, sum)).toBeCloseTo(atomCosine(units[i]!, others), 12);
    }
    expect(cosineToOthers(units[0]!, units[0]!)).toBe(0); // alone: no peers
  });

  it('meanPairwiseCosineFromSum equals the brute-force mean over pairs', () => {
    const units = [1, 2, 3, 4, 5].map((s) => unitVector(randomVector(9, s * 7)));
    const sum = new Float64Array(9);
    for (const u of units) for (let t = 0; t < 9; t++) sum[t]! += u[t]!;
    let total = 0;
    let pairs = 0;
    for (let i = 0; i < 5; i++)
      for (let j = 0; j < 5; j++)
        if (i !== j) {
          total += atomCosine(units[i]!, units[j]!);
          pairs++;
        }
    expect(meanPairwiseCosineFromSum(sum, 5, 5)).toBeCloseTo(total / pairs, 12);
    expect(meanPairwiseCosineFromSum(sum, 1, 1)).toBeNaN();
  });
});
