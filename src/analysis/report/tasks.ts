// The heavy pure computations of a report, as functions a worker thread can run (GwPool.run,
// which imports this module in the worker) or the calling thread can (inThreadReportTasks): typed
// arrays in and out; the large per-model matrices live in SharedArrayBuffers that every thread
// reads and writes in place, so no task copies them.
import { type BootstrapHits, type BootstrapInput, bootstrapHits } from '../probeBootstrap.js';
import {
  centredGram,
  gramOfFactor,
  isGramFactor,
  linearCkaOfCentred,
  type ProbeCost,
  type ProbeLayerData,
  probeMetricSpace,
} from '../representation.js';
import { correlationCi, pearson, spearman } from '../stats.js';
import type { CorrelationSummary } from './types.js';

const toJsonNumber = (v: number): number | null => (Number.isFinite(v) ? v : null);

/**
 * One model's probe layers: from each float32 Gram K (n×n) or factor F (K = F Fᵀ up to centring),
 * its metric space under `cost` (into `spaces[l]`; from a factor, distances between its rows) and
 * its centred Gram (into `centred[l]`) with tr(K̃ K̃) — all that GW, CKA and the bootstrap need of
 * it. `constant[l]` when every probe input maps to the same point.
 */
export function probeLayerRepresentations(
  grams: ProbeLayerData[],
  n: number,
  cost: ProbeCost,
  spaces: Float64Array[],
  centred: Float64Array[],
): { constant: boolean[]; selfHsic: Float64Array } {
  const constant: boolean[] = [];
  const selfHsic = new Float64Array(grams.length);
  grams.forEach((g, l) => {
    const K = isGramFactor(g) ? gramOfFactor(g) : Float64Array.from(g);
    const space = probeMetricSpace(isGramFactor(g) ? g : K, n, cost);
    spaces[l]!.set(space.C);
    constant.push(space.constant);
    selfHsic[l] = centredGram(K, n, centred[l]).selfHsic;
  });
  return { constant, selfHsic };
}

/**
 * Linear CKA of model pairs (pairs[2k], pairs[2k+1]) at one layer, from the models' centred Grams
 * and self-HSIC at that layer; NaN where a representation is constant (CKA undefined).
 */
export function linearCkaOfPairs(
  centred: Float64Array[],
  selfHsic: Float64Array,
  n: number,
  pairs: Uint32Array,
): Float64Array {
  const out = new Float64Array(pairs.length / 2);
  for (let k = 0; k < out.length; k++) {
    const a = pairs[2 * k]!;
    const b = pairs[2 * k + 1]!;
    try {
      out[k] = linearCkaOfCentred(
        { centred: centred[a]!, selfHsic: selfHsic[a]! },
        { centred: centred[b]!, selfHsic: selfHsic[b]! },
        n,
      );
    } catch {
      out[k] = Number.NaN;
    }
  }
  return out;
}

/** Bootstrap resamples `from`..`to`−1 of the block confidences (probeBootstrap.ts). */
export function bootstrapResamples(input: BootstrapInput, from: number, to: number): BootstrapHits {
  return bootstrapHits(input, from, to);
}

/** Pearson and Spearman of paired points with 1000-resample percentile intervals (n ≥ 4). */
export function correlationSummary(x: number[], y: number[], seed: number): CorrelationSummary {
  const n = x.length;
  const p = pearson(x, y);
  const s = n >= 2 ? spearman(x, y) : Number.NaN;
  const ci = (method: 'pearson' | 'spearman', estimate: number): [number, number] | null => {
    if (n < 4 || !Number.isFinite(estimate)) return null;
    const r = correlationCi(x, y, method, { seed, resamples: 1000 });
    return Number.isFinite(r.low) && Number.isFinite(r.high) ? [r.low, r.high] : null;
  };
  return {
    n,
    pearson: toJsonNumber(p),
    spearman: toJsonNumber(s),
    pearsonCi: ci('pearson', p),
    spearmanCi: ci('spearman', s),
  };
}
