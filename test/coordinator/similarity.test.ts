// The similarity index (running sums, O(layers·m·k²) per upload) against brute force written
// here with plain loops over the raw atoms. The index keeps unit vectors in float32 (half the
// memory at 10,000 models), so agreement is to ~1e-7, checked at 1e-6.
import { describe, expect, it } from 'vitest';
import { subspaceSimilarity } from '../../src/analysis/atoms.js';
import {
  gramUpper,
  layerLayout,
  pairwiseSimilarity,
  SIMILARITY_TOLERANCE,
  unitModelVector,
} from '../../src/analysis/pairwise.js';
import { SimilarityIndex } from '../../src/coordinator/level0/similarity-index.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import { cos } from './helpers.js';

const LAYERS = [
  { name: 'a', m: 4, k: 3 },
  { name: 'b', m: 6, k: 3 },
  { name: 'c', m: 3, k: 5 },
];
const layout = layerLayout(LAYERS);

function atoms(seed: number): Float32Array[] {
  const normal = normalSampler(mulberry32(seed));
  return LAYERS.map((l) => Float32Array.from({ length: l.m * l.k * l.k }, () => normal() * (1 + (seed % 3))));
}

/** Brute-force divergence: 1 − cos(model layer, mean of the other models' unit layer vectors). */
function bruteDivergence(own: Float32Array[], others: Float32Array[][]): number {
  let total = 0;
  LAYERS.forEach((_, l) => {
    const n = own[l]!.length;
    const centroid = new Float64Array(n);
    for (const o of others) {
      const norm = Math.sqrt(o[l]!.reduce((s, v) => s + v * v, 0));
      for (let t = 0; t < n; t++) centroid[t]! += o[l]![t]! / norm / others.length;
    }
    total += 1 - cos(own[l]!, centroid);
  });
  return total / LAYERS.length;
}

function meanCos(a: Float32Array[], b: Float32Array[]): number {
  return LAYERS.reduce((s, _, l) => s + cos(a[l]!, b[l]!), 0) / LAYERS.length;
}

describe('SimilarityIndex', () => {
  it('divergence, drift and federation similarity agree with brute force after many updates', () => {
    const index = new SimilarityIndex(LAYERS);
    const latest = new Map<string, { task: string; atoms: Float32Array[]; prev?: Float32Array[] }>();
    let seed = 1;
    // 3 rounds for 6 clients on 2 tasks; the index sees every round, brute force only the last two.
    for (let round = 1; round <= 3; round++) {
      for (let c = 0; c < 6; c++) {
        const task = c < 4 ? 't1' : 't2';
        const a = atoms(seed++);
        const r = index.update({ clientId: `c${c}`, taskId: task, round, fingerprintMatch: true }, a);
        const key = `c${c}`;
        const before = latest.get(key);
        latest.set(key, { task, atoms: a, ...(before ? { prev: before.atoms } : {}) });
        if (before) expect(r.drift).toBeCloseTo(1 - meanCos(a, before.atoms), 6);
        else expect(r.drift).toBeUndefined();
      }
    }
    for (const d of index.divergences()) {
      const own = latest.get(d.clientId)!;
      const others = [...latest.entries()]
        .filter(([k, v]) => k !== d.clientId && v.task === own.task)
        .map(([, v]) => v.atoms);
      expect(d.peers).toBe(others.length);
      expect(d.divergence).toBeCloseTo(bruteDivergence(own.atoms, others), 6);
      expect(d.drift).toBeCloseTo(1 - meanCos(own.atoms, own.prev!), 6);
      expect(d.measure).toBe('cosine');
    }
    // Federation similarity: mean pairwise cosine over all current models, per layer.
    const all = [...latest.values()].map((v) => v.atoms);
    const fed = index.federationSimilarity();
    LAYERS.forEach((_, l) => {
      let s = 0;
      let pairs = 0;
      for (let i = 0; i < all.length; i++)
        for (let j = 0; j < all.length; j++)
          if (i !== j) {
            s += cos(all[i]![l]!, all[j]![l]!);
            pairs++;
          }
      expect(fed.perLayer[l]).toBeCloseTo(s / pairs, 6);
    });
    expect(fed.models).toBe(6);
  });

  it('keeps the latest round when an older one arrives late, and uses it as the previous round', () => {
    const index = new SimilarityIndex(LAYERS);
    const r1 = atoms(1);
    const r3 = atoms(3);
    const r2 = atoms(2);
    index.update({ clientId: 'x', taskId: 't', round: 1, fingerprintMatch: true }, r1);
    index.update({ clientId: 'x', taskId: 't', round: 3, fingerprintMatch: true }, r3);
    const late = index.update({ clientId: 'x', taskId: 't', round: 2, fingerprintMatch: true }, r2);
    expect(late.applied).toBe('previous');
    expect(index.model('x', 't')!.round).toBe(3);
    expect(index.model('x', 't')!.previousRound).toBe(2);
    expect(index.model('x', 't')!.drift).toBeCloseTo(1 - meanCos(r3, r2), 6);
    expect(index.update({ clientId: 'x', taskId: 't', round: 1, fingerprintMatch: true }, r1).applied).toBe(
      'ignored',
    );
  });

  it('leaves models without shared α out of the cosine centroid and compares them by subspace', () => {
    const index = new SimilarityIndex(LAYERS);
    const a = atoms(10);
    const b = atoms(11);
    const odd = atoms(12);
    index.update({ clientId: 'a', taskId: 't', round: 1, fingerprintMatch: true }, a);
    index.update({ clientId: 'b', taskId: 't', round: 1, fingerprintMatch: true }, b);
    index.update({ clientId: 'z', taskId: 't', round: 1, fingerprintMatch: false }, odd);
    const da = index.divergence('a', 't')!;
    expect(da.peers).toBe(1);
    expect(da.divergence).toBeCloseTo(1 - meanCos(a, b), 6);
    const dz = index.divergence('z', 't')!;
    expect(dz.measure).toBe('subspace');
    expect(dz.peers).toBe(2);
    // Expected: subspace similarity to the centroid (sum of the two shared-α unit vectors).
    let expected = 0;
    LAYERS.forEach((l, i) => {
      const n = l.m * l.k * l.k;
      const centroid = new Float64Array(n);
      for (const m of [a, b]) {
        const norm = Math.sqrt(m[i]!.reduce((s, v) => s + v * v, 0));
        for (let t = 0; t < n; t++) centroid[t]! += m[i]![t]! / norm;
      }
      expected += 1 - subspaceSimilarity(odd[i]!, centroid, l.m, l.k * l.k);
    });
    expect(dz.divergence).toBeCloseTo(expected / LAYERS.length, 6);
    // Re-registering with the template's α moves the model into the centroid.
    index.setFingerprintMatch('z', true);
    expect(index.divergence('a', 't')!.peers).toBe(2);
    expect(index.federationSimilarity().models).toBe(3);
  });
});

describe('pairwiseSimilarity', () => {
  const models = [0, 1, 2, 3, 4].map((i) => ({
    clientId: `c${i}`,
    taskId: 't',
    raw: atoms(40 + i),
    fingerprintMatch: i !== 3,
  }));
  const inputs = models.map((m) => ({ ...m, unit: unitModelVector(m.raw, layout) }));

  it('uses cosine for shared-α pairs and subspace otherwise, per layer and on average', () => {
    for (const perLayer of [true, false]) {
      const r = pairwiseSimilarity(inputs, layout, { measure: 'cosine', perLayer });
      const n = models.length;
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          const cosinePair = models[i]!.fingerprintMatch && models[j]!.fingerprintMatch;
          expect(r.pairMeasure[i * n + j]).toBe(cosinePair ? 0 : 1);
          let mean = 0;
          LAYERS.forEach((l, li) => {
            const v = cosinePair
              ? cos(models[i]!.raw[li]!, models[j]!.raw[li]!)
              : subspaceSimilarity(models[i]!.raw[li]!, models[j]!.raw[li]!, l.m, l.k * l.k);
            mean += v / LAYERS.length;
            if (perLayer) expect(r.layers![li]![i * n + j]).toBeCloseTo(v, 5);
          });
          expect(r.mean[i * n + j]).toBeCloseTo(mean, 5);
        }
      }
      if (!perLayer) expect(r.layers).toBeUndefined();
    }
  });

  it('uses subspace for every pair when asked', () => {
    const r = pairwiseSimilarity(inputs, layout, { measure: 'subspace', perLayer: true });
    expect([...r.pairMeasure].every((v) => v === 1)).toBe(true);
    const l = LAYERS[1]!;
    expect(r.layers![1]![1]).toBeCloseTo(
      subspaceSimilarity(models[0]!.raw[1]!, models[1]!.raw[1]!, l.m, 9),
      5,
    );
  });

  it('the float32 Gram kernel stays within SIMILARITY_TOLERANCE of float64 sums (8 layers, d = 648)', () => {
    const layers = Array.from({ length: 8 }, (_, i) => ({ name: `conv${i}`, m: 9, k: 3 }));
    const big = layerLayout(layers);
    const n = 150;
    const normal = normalSampler(mulberry32(5));
    // Correlated models (a shared component plus noise), as trained clients are: cosines far from 0.
    const base = layers.map((l) => Float32Array.from({ length: l.m * 9 }, () => normal()));
    const units = Array.from({ length: n }, () =>
      unitModelVector(
        base.map((b) => b.map((v) => v + 0.7 * normal())),
        big,
      ),
    );
    const inputs = units.map((unit, i) => ({ clientId: `c${i}`, taskId: 't', unit, fingerprintMatch: true }));
    const mean = pairwiseSimilarity(inputs, big, { measure: 'cosine', perLayer: false }).mean;
    const perLayer = pairwiseSimilarity(inputs, big, { measure: 'cosine', perLayer: true });
    let worstMean = 0;
    let worstLayer = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let total = 0;
        big.forEach((l, li) => {
          let s = 0;
          for (let t = l.offset; t < l.offset + l.size; t++) s += units[i]![t]! * units[j]![t]!;
          total += s / big.length;
          worstLayer = Math.max(
            worstLayer,
            Math.abs(perLayer.layers![li]![i * n + j]! - Math.max(-1, Math.min(1, s))),
          );
        });
        worstMean = Math.max(worstMean, Math.abs(mean[i * n + j]! - Math.max(-1, Math.min(1, total))));
        worstMean = Math.max(
          worstMean,
          Math.abs(perLayer.mean[i * n + j]! - Math.max(-1, Math.min(1, total))),
        );
      }
    }
    expect(worstMean).toBeLessThanOrEqual(SIMILARITY_TOLERANCE);
    expect(worstLayer).toBeLessThanOrEqual(SIMILARITY_TOLERANCE);
    // Not trivially exact: the float32 sums do differ from the float64 ones.
    expect(worstMean).toBeGreaterThan(0);
  });

  it('gramUpper fills the upper triangle of X Xᵀ for sizes that do not fit the 2×4 kernel', () => {
    for (const [n, d] of [
      [1, 3],
      [5, 7],
      [37, 11],
      [70, 2],
    ] as const) {
      const rng = mulberry32(n * 100 + d);
      const x = Float64Array.from({ length: n * d }, () => rng() - 0.5);
      const out = new Float64Array(n * n).fill(Number.NaN);
      gramUpper(x, n, d, out);
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < n; j++) {
          if (j < i) {
            expect(out[i * n + j]).toBeNaN();
            continue;
          }
          let s = 0;
          for (let t = 0; t < d; t++) s += x[i * d + t]! * x[j * d + t]!;
          expect(out[i * n + j]).toBeCloseTo(s, 12);
        }
      }
    }
  });
});
