// Correlations between two similarity measures over model pairs, with two kinds of bootstrap
// confidence interval:
//  * over pairs — the usual percentile bootstrap resampling pairs as if they were independent;
//  * over models — a cluster bootstrap that resamples MODELS and keeps every pair among the
//    resampled ones (Davison & Hinkley 1997, §3.8). Pairs sharing a model are not independent,
//    so this interval is the honest one; it is usually wider.
import {
  type BootstrapOptions,
  bootstrapCi,
  type ConfidenceInterval,
  correlationCi,
  pearson,
  spearman,
} from '../analysis/stats.js';

export interface PairedSample {
  /** Number of models. */
  models: number;
  /** Pair p compares models pairA[p] and pairB[p] (distinct). */
  pairA: Int32Array;
  pairB: Int32Array;
  x: Float64Array;
  y: Float64Array;
}

export interface CorrelationResult {
  pairs: number;
  pearson: number;
  spearman: number;
  pearsonPairCi: ConfidenceInterval;
  spearmanPairCi: ConfidenceInterval;
  pearsonModelCi: ConfidenceInterval;
  spearmanModelCi: ConfidenceInterval;
}

/** Drops pairs where x or y is not finite (e.g. CKA undefined for a dead layer). */
function finitePairs(s: PairedSample): PairedSample {
  const keep: number[] = [];
  for (let p = 0; p < s.x.length; p++) if (Number.isFinite(s.x[p]!) && Number.isFinite(s.y[p]!)) keep.push(p);
  return {
    models: s.models,
    pairA: Int32Array.from(keep, (p) => s.pairA[p]!),
    pairB: Int32Array.from(keep, (p) => s.pairB[p]!),
    x: Float64Array.from(keep, (p) => s.x[p]!),
    y: Float64Array.from(keep, (p) => s.y[p]!),
  };
}

/** Pearson and Spearman without intervals (non-finite pairs dropped; NaN below three pairs). */
export function pointCorrelation(sample: PairedSample): { pairs: number; pearson: number; spearman: number } {
  const s = finitePairs(sample);
  if (s.x.length < 3) return { pairs: s.x.length, pearson: Number.NaN, spearman: Number.NaN };
  return { pairs: s.x.length, pearson: pearson(s.x, s.y), spearman: spearman(s.x, s.y) };
}

/**
 * Cluster (model-level) bootstrap CI of a correlation; see the file comment.
 * @internal exported for its tests
 */
export function modelBootstrapCi(
  s: PairedSample,
  method: 'pearson' | 'spearman',
  options: BootstrapOptions = {},
): ConfidenceInterval {
  const M = s.models;
  const pairOf = new Int32Array(M * M).fill(-1);
  for (let p = 0; p < s.x.length; p++) {
    pairOf[s.pairA[p]! * M + s.pairB[p]!] = p;
    pairOf[s.pairB[p]! * M + s.pairA[p]!] = p;
  }
  const corr = method === 'pearson' ? pearson : spearman;
  const xs: number[] = [];
  const ys: number[] = [];
  return bootstrapCi(
    M,
    (models) => {
      xs.length = 0;
      ys.length = 0;
      // Every pair of resampled positions whose models differ and were compared; a model drawn
      // twice contributes its pairs twice, as in the one-level cluster bootstrap.
      for (let i = 0; i < models.length; i++) {
        for (let j = i + 1; j < models.length; j++) {
          const p = pairOf[models[i]! * M + models[j]!]!;
          if (p < 0) continue;
          xs.push(s.x[p]!);
          ys.push(s.y[p]!);
        }
      }
      return xs.length < 3 ? Number.NaN : corr(xs, ys);
    },
    options,
  );
}

/** Pearson and Spearman with pair- and model-level bootstrap intervals (non-finite pairs dropped). */
export function correlate(
  sample: PairedSample,
  options: { pairResamples: number; modelResamples: number; seed: number },
): CorrelationResult {
  const s = finitePairs(sample);
  if (s.x.length < 3) {
    const none: ConfidenceInterval = {
      estimate: Number.NaN,
      low: Number.NaN,
      high: Number.NaN,
      level: 0.95,
      resamples: 0,
    };
    return {
      pairs: s.x.length,
      pearson: Number.NaN,
      spearman: Number.NaN,
      pearsonPairCi: none,
      spearmanPairCi: none,
      pearsonModelCi: none,
      spearmanModelCi: none,
    };
  }
  const pairOpts = { resamples: options.pairResamples, seed: options.seed };
  const modelOpts = { resamples: options.modelResamples, seed: options.seed + 1 };
  return {
    pairs: s.x.length,
    pearson: pearson(s.x, s.y),
    spearman: s.x.length > 0 ? spearman(s.x, s.y) : Number.NaN,
    pearsonPairCi: correlationCi(s.x, s.y, 'pearson', pairOpts),
    spearmanPairCi: correlationCi(s.x, s.y, 'spearman', pairOpts),
    pearsonModelCi: modelBootstrapCi(s, 'pearson', modelOpts),
    spearmanModelCi: modelBootstrapCi(s, 'spearman', modelOpts),
  };
}

/**
 * Keeps the pairs whose two models are both in group g (groups[model] = g) for some g, and
 * centres x and y within each group: the pooled within-group sample. Its correlation is the
 * within-group correlation (the "pooled within-class" correlation of analysis of covariance),
 * which a difference between the groups' means cannot move. Correlating the raw pooled pairs
 * instead mixes that difference in and can even reverse the sign (Simpson 1951): models that
 * start from different atoms sit at different levels of atom cosine and CKA.
 */
export function withinGroupSample(sample: PairedSample, groups: ArrayLike<number>): PairedSample {
  const s = finitePairs(sample);
  const keep: number[] = [];
  const sums = new Map<number, { x: number; y: number; n: number }>();
  for (let p = 0; p < s.x.length; p++) {
    const g = groups[s.pairA[p]!]!;
    if (g !== groups[s.pairB[p]!]!) continue;
    keep.push(p);
    const acc = sums.get(g) ?? { x: 0, y: 0, n: 0 };
    acc.x += s.x[p]!;
    acc.y += s.y[p]!;
    acc.n++;
    sums.set(g, acc);
  }
  const centred = (values: Float64Array, which: 'x' | 'y') =>
    Float64Array.from(keep, (p) => {
      const acc = sums.get(groups[s.pairA[p]!]!)!;
      return values[p]! - acc[which] / acc.n;
    });
  return {
    models: s.models,
    pairA: Int32Array.from(keep, (p) => s.pairA[p]!),
    pairB: Int32Array.from(keep, (p) => s.pairB[p]!),
    x: centred(s.x, 'x'),
    y: centred(s.y, 'y'),
  };
}
