import { describe, expect, it } from 'vitest';
import { meanSilhouette, segmentLayers } from '../../src/analysis/segmentation.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { layerDistanceMatrix, layerStack, probeInputs } from './synthetic.js';

const ranges = (blocks: { start: number; end: number }[]) => blocks.map((b) => [b.start, b.end]);

/** Total within-block scatter Σ_B Σ_{i<j∈B} D_ij / |B| of a split given by block starts. */
function scatter(D: Float64Array, L: number, starts: number[]): number {
  let total = 0;
  starts.forEach((s, b) => {
    const e = b + 1 < starts.length ? starts[b + 1]! : L;
    let sum = 0;
    for (let i = s; i < e; i++) for (let j = i + 1; j < e; j++) sum += D[i * L + j]!;
    total += sum / (e - s);
  });
  return total;
}

function randomSymmetric(L: number, seed: number): Float64Array {
  const rng = mulberry32(seed);
  const D = new Float64Array(L * L);
  for (let i = 0; i < L; i++) {
    for (let j = i + 1; j < L; j++) {
      const v = rng();
      D[i * L + j] = v;
      D[j * L + i] = v;
    }
  }
  return D;
}

describe('segmentLayers on a synthetic stack with known blocks', () => {
  const n = 48;
  const dim = 8;
  const inputs = probeInputs(n, dim, 1);
  // Layers 1–3 perturb one map, 4–6 another, 7–8 a third.
  const stack = layerStack(
    ['linear', 'linear', 'linear', 'folded', 'folded', 'folded', 'classes', 'classes'],
    inputs,
    n,
    dim,
    { mapSeed: 5, noiseSeed: 2, noise: 0.15 },
  );
  const D = layerDistanceMatrix(stack);

  it('recovers the three blocks with the silhouette criterion', () => {
    const seg = segmentLayers(D, 8);
    expect(seg.k).toBe(3);
    expect(ranges(seg.blocks)).toEqual([
      [0, 2],
      [3, 5],
      [6, 7],
    ]);
    expect(seg.reason).toMatch(/silhouette/);
    // Blocks are tight and well separated from their neighbours.
    for (const b of seg.blocks) {
      expect(b.cohesion).not.toBeNull();
      const sep = [b.separationLeft, b.separationRight].filter((v): v is number => v !== null);
      for (const s of sep) expect(s).toBeGreaterThan(2 * b.cohesion!);
    }
    expect(seg.blocks[0]!.separationLeft).toBeNull();
    expect(seg.blocks[2]!.separationRight).toBeNull();
  });

  it('recovers them with the elbow criterion too', () => {
    const seg = segmentLayers(D, 8, { criterion: 'elbow' });
    expect(ranges(seg.blocks)).toEqual([
      [0, 2],
      [3, 5],
      [6, 7],
    ]);
  });

  it('keeps a stack of one function as one block', () => {
    const same = layerStack(['folded', 'folded', 'folded', 'folded', 'folded', 'folded'], inputs, n, dim, {
      mapSeed: 5,
      noiseSeed: 3,
      noise: 0.15,
    });
    const seg = segmentLayers(layerDistanceMatrix(same), 6);
    expect(seg.k).toBe(1);
    expect(ranges(seg.blocks)).toEqual([[0, 5]]);
    expect(seg.reason).toMatch(/no substantial structure/);
  });
});

describe('segmentLayers optimality and bookkeeping', () => {
  it('finds the minimum-scatter split for every k (checked against all 2^(L-1) splits)', () => {
    const L = 7;
    for (const seed of [1, 2, 3]) {
      const D = randomSymmetric(L, seed);
      const seg = segmentLayers(D, L, { criterion: 'fixed', k: 2 });
      const best = new Array<number>(L).fill(Number.POSITIVE_INFINITY);
      for (let mask = 0; mask < 1 << (L - 1); mask++) {
        const starts = [0];
        for (let i = 1; i < L; i++) if (mask & (1 << (i - 1))) starts.push(i);
        const k = starts.length;
        best[k - 1] = Math.min(best[k - 1]!, scatter(D, L, starts));
      }
      for (const [i, c] of seg.costByK.entries()) expect(c).toBeCloseTo(best[i]!, 12);
      expect(seg.costByK[L - 1]).toBe(0);
    }
  });

  it('reports cohesion and separation as mean distances (hand example)', () => {
    // Layers {0,1} | {2,3,4}; distances chosen by hand.
    const L = 5;
    const D = new Float64Array(L * L);
    const set = (i: number, j: number, v: number) => {
      D[i * L + j] = v;
      D[j * L + i] = v;
    };
    set(0, 1, 0.1);
    set(2, 3, 0.2);
    set(2, 4, 0.3);
    set(3, 4, 0.1);
    for (const i of [0, 1]) for (const j of [2, 3, 4]) set(i, j, 1 + i + j / 10);
    const seg = segmentLayers(D, L, { criterion: 'fixed', k: 2 });
    expect(ranges(seg.blocks)).toEqual([
      [0, 1],
      [2, 4],
    ]);
    expect(seg.blocks[0]!.cohesion).toBeCloseTo(0.1, 14);
    expect(seg.blocks[1]!.cohesion).toBeCloseTo(0.2, 14);
    // Mean of 1.2, 1.3, 1.4, 2.2, 2.3, 2.4.
    expect(seg.blocks[0]!.separationRight).toBeCloseTo(1.8, 14);
    expect(seg.blocks[1]!.separationLeft).toBeCloseTo(1.8, 14);
    // Silhouette of layer 0: a = 0.1, b = 1.3 → 1 − 0.1/1.3, and so on; the mean is below 1.
    const s = meanSilhouette(D, L, [0, 2]);
    expect(s).toBeGreaterThan(0.8);
    expect(s).toBeLessThan(1);
    expect(seg.silhouetteByK[0]).toBeNull();
  });

  it('treats all-zero distances as one block and singletons as cohesion null', () => {
    expect(segmentLayers(new Float64Array(16), 4).k).toBe(1);
    const one = segmentLayers(new Float64Array(1), 1);
    expect(one.blocks).toEqual([
      { start: 0, end: 0, cohesion: null, separationLeft: null, separationRight: null },
    ]);
  });

  it('rejects malformed input with a message', () => {
    expect(() => segmentLayers(new Float64Array(5), 2)).toThrow(/L×L = 4/);
    const bad = new Float64Array(4);
    bad[1] = Number.NaN;
    expect(() => segmentLayers(bad, 2)).toThrow(/finite and non-negative/);
    expect(() => segmentLayers(new Float64Array(9), 3, { criterion: 'fixed', k: 4 })).toThrow(/1\.\.3/);
  });
});
