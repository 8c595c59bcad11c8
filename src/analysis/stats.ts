// Correlation statistics for comparing the cheap measure (atom cosine) with the expensive one
// (CKA / GW): Pearson's r, Spearman's ρ with averaged ranks for ties, and a seeded percentile
// bootstrap confidence interval (Efron & Tibshirani 1993, ch. 13). Pure functions; the
// analysis report and the experiments both use them.
import { mulberry32 } from '../shared/rng.js';

function checkPaired(x: ArrayLike<number>, y: ArrayLike<number>, what: string): void {
  if (x.length !== y.length) {
    throw new Error(`${what}: x has ${x.length} values but y has ${y.length}; pass paired samples`);
  }
}

/**
 * Pearson's product-moment correlation r = cov(x, y) / (σx σy).
 * Returns NaN when there are fewer than 2 pairs or either sample has zero variance (r is
 * undefined there, and a silent 0 would read as "no correlation").
 * Centred two-pass sums keep it accurate when values share a large offset (e.g. cosines near 1).
 */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPaired(x, y, 'pearson');
  const n = x.length;
  if (n < 2) return Number.NaN;
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) {
    mx += x[i]!;
    my += y[i]!;
  }
  mx /= n;
  my /= n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i]! - mx;
    const dy = y[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return Number.NaN;
  // Rounding can push |r| a hair above 1 for exactly linear data.
  return Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)));
}

/**
 * Ranks 1..n in ascending order; tied values share the mean of the ranks they span.
 * @internal exported for its tests
 */
export function averageRanks(values: ArrayLike<number>): Float64Array {
  const n = values.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const ranks = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i + 1;
    while (j < n && values[order[j]!] === values[order[i]!]) j++;
    // Positions i..j-1 (0-based) hold ranks i+1..j; their mean is (i + 1 + j) / 2.
    const rank = (i + 1 + j) / 2;
    for (let t = i; t < j; t++) ranks[order[t]!] = rank;
    i = j;
  }
  return ranks;
}

/** Spearman's rank correlation: Pearson's r of the average ranks (correct with ties). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPaired(x, y, 'spearman');
  for (let i = 0; i < x.length; i++) {
    if (Number.isNaN(x[i]!) || Number.isNaN(y[i]!)) {
      throw new Error(`spearman: value ${i} is NaN; drop incomplete pairs first`);
    }
  }
  return pearson(averageRanks(x), averageRanks(y));
}

export interface BootstrapOptions {
  /** Number of resamples (default 2000). */
  resamples?: number;
  /** Two-sided coverage, e.g. 0.95 (default). */
  level?: number;
  /** PRNG seed so that a report is reproducible (default 1). */
  seed?: number;
}

export interface ConfidenceInterval {
  /** The statistic on the original sample. */
  estimate: number;
  low: number;
  high: number;
  level: number;
  /** Resamples whose statistic was defined (NaN ones, e.g. zero variance, are dropped). */
  resamples: number;
}

/** The q-quantile of sorted values by linear interpolation between order statistics. */
function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

/**
 * Percentile bootstrap CI of a statistic of n paired observations: resample indices with
 * replacement, recompute, take the (1±level)/2 quantiles. `statistic` receives the chosen
 * indices (the original sample is 0..n-1).
 */
export function bootstrapCi(
  n: number,
  statistic: (indices: Uint32Array) => number,
  options: BootstrapOptions = {},
): ConfidenceInterval {
  const resamples = options.resamples ?? 2000;
  const level = options.level ?? 0.95;
  if (!Number.isInteger(n) || n < 1) throw new Error(`bootstrapCi: need at least 1 observation, got ${n}`);
  if (!Number.isInteger(resamples) || resamples < 1) {
    throw new Error(`bootstrapCi: resamples must be a positive integer, got ${resamples}`);
  }
  if (!(level > 0 && level < 1)) throw new Error(`bootstrapCi: level must be in (0, 1), got ${level}`);
  const identity = new Uint32Array(n);
  for (let i = 0; i < n; i++) identity[i] = i;
  const estimate = statistic(identity);
  const rng = mulberry32(options.seed ?? 1);
  const values: number[] = [];
  const idx = new Uint32Array(n);
  for (let r = 0; r < resamples; r++) {
    for (let i = 0; i < n; i++) idx[i] = Math.floor(rng() * n);
    const v = statistic(idx);
    if (!Number.isNaN(v)) values.push(v);
  }
  values.sort((a, b) => a - b);
  const alpha = (1 - level) / 2;
  return {
    estimate,
    low: quantileSorted(values, alpha),
    high: quantileSorted(values, 1 - alpha),
    level,
    resamples: values.length,
  };
}

/** Bootstrap CI of a correlation (pearson or spearman) of paired samples, resampling pairs. */
export function correlationCi(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  method: 'pearson' | 'spearman',
  options: BootstrapOptions = {},
): ConfidenceInterval {
  checkPaired(x, y, 'correlationCi');
  const corr = method === 'pearson' ? pearson : spearman;
  const xs = new Float64Array(x.length);
  const ys = new Float64Array(y.length);
  return bootstrapCi(
    x.length,
    (indices) => {
      const xi = indices.length === xs.length ? xs : new Float64Array(indices.length);
      const yi = indices.length === ys.length ? ys : new Float64Array(indices.length);
      for (let i = 0; i < indices.length; i++) {
        xi[i] = x[indices[i]!]!;
        yi[i] = y[indices[i]!]!;
      }
      return corr(xi, yi);
    },
    options,
  );
}
