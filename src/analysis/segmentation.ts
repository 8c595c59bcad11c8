// Sub-network discovery: split a network's layers, kept in
// order, into contiguous blocks of functionally similar layers, from the L×L matrix of GW
// distances between its layers.
//
// For a fixed number of blocks k the split is optimal: dynamic programming over prefixes
// (Bellman 1961, "On the approximation of curves by line segments"; the same recursion as
// Fisher's 1958 "exact optimisation" for grouping ordered data) minimising the total
// within-block scatter
//     W(B) = Σ_{i<j ∈ B} D_ij / |B|,
// the k-means objective written with dissimilarities (for squared Euclidean distances it is
// exactly Σ_{i∈B} |x_i − mean_B|²). Dividing by |B| keeps large blocks from being split merely
// because they have more pairs.
//
// The number of blocks k is chosen by a stated criterion:
//   * 'silhouette' (default): the k in 2..maxK whose optimal split has the largest mean
//     silhouette (Rousseeuw 1987): per layer s = (b − a) / max(a, b), a = mean distance to the
//     other layers of its block, b = the smallest mean distance to another block. A layer alone
//     in its block has no a; Rousseeuw sets s = 0 there, which merges a genuinely distinct layer
//     into a neighbour. Here a singleton's a is the split's typical within-block distance (the
//     mean over all pairs of layers sharing a block of two or more), so a layer that is as far
//     from every block as blocks are from each other scores like any well-placed layer, and one
//     close to a neighbour scores ≈ 0 or below. With no block of two layers (every layer alone),
//     a singleton's a is `sameFunctionScale` when the caller knows one — e.g. the typical distance
//     between different models' versions of one layer — and s = 0 otherwise.
//     When no split reaches `minSilhouette` (default 0.25, the
//     level below which Kaufman & Rousseeuw call a structure "not substantial") the layers form
//     one block. Ties go to the smaller k.
//   * 'elbow': the k whose point on the normalised curve cost(k)/cost(1) lies farthest below
//     the chord from k = 1 to k = maxK (the "kneedle" rule, Satopää et al. 2011).
//   * 'fixed': the caller's k.
// Cost and silhouette for every k are returned so a report can show why k was chosen.

export type SegmentationCriterion = 'silhouette' | 'elbow' | 'fixed';

export interface SegmentationOptions {
  criterion?: SegmentationCriterion;
  /** Number of blocks for criterion 'fixed'. */
  k?: number;
  /** Largest number of blocks considered (default L). */
  maxK?: number;
  /** 'silhouette': below this best mean silhouette the layers stay one block (default 0.25). */
  minSilhouette?: number;
  /** Typical distance between two versions of one function (see the file comment); optional. */
  sameFunctionScale?: number;
}

export interface LayerBlock {
  /** First layer index (0-based, inclusive). */
  start: number;
  /** Last layer index (0-based, inclusive). */
  end: number;
  /** Mean distance between the block's layers; null for a single layer. */
  cohesion: number | null;
  /** Mean distance from the block's layers to the previous block's; null for the first block. */
  separationLeft: number | null;
  /** Mean distance from the block's layers to the next block's; null for the last block. */
  separationRight: number | null;
}

export interface Segmentation {
  blocks: LayerBlock[];
  k: number;
  criterion: SegmentationCriterion;
  /** Why this k, in words (for reports). */
  reason: string;
  /** Optimal total within-block scatter for k = 1..maxK (index k − 1). */
  costByK: number[];
  /** Mean silhouette of the optimal split for k = 1..maxK; null for k = 1 (undefined). */
  silhouetteByK: (number | null)[];
}

const DEFAULT_MIN_SILHOUETTE = 0.25;

/** Checks shape and values, and returns the symmetrised matrix (D + Dᵀ)/2 with a zero diagonal. */
function symmetricDistances(D: ArrayLike<number>, L: number): Float64Array {
  if (!Number.isInteger(L) || L < 1) throw new Error(`segmentLayers: L must be a positive integer, got ${L}`);
  if (D.length !== L * L) {
    throw new Error(`segmentLayers: distance matrix has ${D.length} values, expected L×L = ${L * L}`);
  }
  const S = new Float64Array(L * L);
  for (let i = 0; i < L; i++) {
    for (let j = 0; j < L; j++) {
      const v = D[i * L + j]!;
      if (!Number.isFinite(v) || v < 0) {
        throw new Error(
          `segmentLayers: D[${i}][${j}] = ${v}; distances must be finite and non-negative (was a GW solve skipped?)`,
        );
      }
      if (i !== j) S[i * L + j] = (v + D[j * L + i]!) / 2;
    }
  }
  return S;
}

/** W(i..j) for every 0 ≤ i ≤ j < L, row-major in an L×L array (entries with i > j unused). */
function blockScatter(S: Float64Array, L: number): Float64Array {
  const W = new Float64Array(L * L);
  for (let i = 0; i < L; i++) {
    let pairSum = 0;
    for (let j = i; j < L; j++) {
      for (let t = i; t < j; t++) pairSum += S[t * L + j]!;
      W[i * L + j] = pairSum / (j - i + 1);
    }
  }
  return W;
}

/** Optimal split into exactly k blocks for every k ≤ maxK: cost and the block start indices. */
function optimalSplits(W: Float64Array, L: number, maxK: number): { cost: number[]; starts: number[][] } {
  // best[k][j] = minimal cost of splitting layers 0..j-1 into k blocks; arg[k][j] = start of the last.
  const best: Float64Array[] = [];
  const arg: Int32Array[] = [];
  for (let k = 0; k <= maxK; k++) {
    best.push(new Float64Array(L + 1).fill(Number.POSITIVE_INFINITY));
    arg.push(new Int32Array(L + 1).fill(-1));
  }
  best[0]![0] = 0;
  for (let k = 1; k <= maxK; k++) {
    for (let j = k; j <= L; j++) {
      let bestValue = Number.POSITIVE_INFINITY;
      let bestStart = -1;
      for (let s = k - 1; s < j; s++) {
        const v = best[k - 1]![s]! + W[s * L + (j - 1)]!;
        if (v < bestValue) {
          bestValue = v;
          bestStart = s;
        }
      }
      best[k]![j] = bestValue;
      arg[k]![j] = bestStart;
    }
  }
  const cost: number[] = [];
  const starts: number[][] = [];
  for (let k = 1; k <= maxK; k++) {
    cost.push(best[k]![L]!);
    const s: number[] = [];
    let j = L;
    for (let kk = k; kk >= 1; kk--) {
      const start = arg[kk]![j]!;
      s.unshift(start);
      j = start;
    }
    starts.push(s);
  }
  return { cost, starts };
}

function blockIndexOfLayer(starts: number[], L: number): Int32Array {
  const of = new Int32Array(L);
  starts.forEach((start, b) => {
    const end = b + 1 < starts.length ? starts[b + 1]! : L;
    for (let i = start; i < end; i++) of[i] = b;
  });
  return of;
}

function meanBetween(S: Float64Array, L: number, a0: number, a1: number, b0: number, b1: number): number {
  let sum = 0;
  let count = 0;
  for (let i = a0; i <= a1; i++) {
    for (let j = b0; j <= b1; j++) {
      if (i === j) continue;
      sum += S[i * L + j]!;
      count++;
    }
  }
  return count === 0 ? Number.NaN : sum / count;
}

/**
 * Mean silhouette (Rousseeuw 1987) of a contiguous split; a singleton layer's a is the split's
 * typical within-block distance (file comment), or s = 0 when no block has two layers.
 * @internal exported for its tests
 */
export function meanSilhouette(
  S: Float64Array,
  L: number,
  starts: number[],
  sameFunctionScale?: number,
): number {
  const k = starts.length;
  if (k < 2) return Number.NaN;
  const of = blockIndexOfLayer(starts, L);
  const bounds = starts.map((s, b) => [s, b + 1 < k ? starts[b + 1]! - 1 : L - 1] as const);
  let withinSum = 0;
  let withinCount = 0;
  for (const [s0, s1] of bounds) {
    for (let i = s0; i <= s1; i++) {
      for (let j = i + 1; j <= s1; j++) {
        withinSum += S[i * L + j]!;
        withinCount++;
      }
    }
  }
  const typicalWithin =
    withinCount > 0
      ? withinSum / withinCount
      : sameFunctionScale !== undefined && Number.isFinite(sameFunctionScale)
        ? sameFunctionScale
        : Number.NaN;
  let total = 0;
  for (let i = 0; i < L; i++) {
    const own = of[i]!;
    const [s0, s1] = bounds[own]!;
    if (s1 === s0 && Number.isNaN(typicalWithin)) continue; // only singletons, no scale: s = 0
    const a = s1 === s0 ? typicalWithin : meanBetween(S, L, i, i, s0, s1);
    let b = Number.POSITIVE_INFINITY;
    for (let other = 0; other < k; other++) {
      if (other === own) continue;
      const [o0, o1] = bounds[other]!;
      b = Math.min(b, meanBetween(S, L, i, i, o0, o1));
    }
    const m = Math.max(a, b);
    total += m === 0 ? 0 : (b - a) / m;
  }
  return total / L;
}

function describeBlocks(S: Float64Array, L: number, starts: number[]): LayerBlock[] {
  const k = starts.length;
  const ranges = starts.map((s, b) => ({ start: s, end: b + 1 < k ? starts[b + 1]! - 1 : L - 1 }));
  return ranges.map((r, b) => {
    const left = b > 0 ? ranges[b - 1]! : undefined;
    const right = b + 1 < k ? ranges[b + 1]! : undefined;
    return {
      start: r.start,
      end: r.end,
      cohesion: r.end > r.start ? meanBetween(S, L, r.start, r.end, r.start, r.end) : null,
      separationLeft: left ? meanBetween(S, L, r.start, r.end, left.start, left.end) : null,
      separationRight: right ? meanBetween(S, L, r.start, r.end, right.start, right.end) : null,
    };
  });
}

/** Index of the point farthest below the chord of a decreasing curve (kneedle). */
function elbowIndex(cost: number[]): number {
  const n = cost.length;
  if (n <= 2 || cost[0]! === 0) return 0;
  const y = cost.map((c) => c / cost[0]!);
  const x = cost.map((_, i) => (n === 1 ? 0 : i / (n - 1)));
  const y0 = y[0]!;
  const y1 = y[n - 1]!;
  let best = 0;
  let bestGap = 0;
  for (let i = 1; i < n - 1; i++) {
    const chord = y0 + (y1 - y0) * x[i]!;
    const gap = chord - y[i]!;
    if (gap > bestGap + 1e-12) {
      bestGap = gap;
      best = i;
    }
  }
  return best;
}

/**
 * Splits L layers into contiguous blocks from their L×L distance matrix D (row-major; made
 * symmetric, diagonal ignored). See the file comment for the objective and the criteria.
 */
export function segmentLayers(
  D: ArrayLike<number>,
  L: number,
  options: SegmentationOptions = {},
): Segmentation {
  const S = symmetricDistances(D, L);
  const criterion = options.criterion ?? 'silhouette';
  const maxK = Math.min(L, options.maxK ?? L);
  if (!Number.isInteger(maxK) || maxK < 1) throw new Error(`segmentLayers: maxK must be ≥ 1, got ${maxK}`);
  const minSilhouette = options.minSilhouette ?? DEFAULT_MIN_SILHOUETTE;
  const W = blockScatter(S, L);
  const { cost, starts } = optimalSplits(W, L, maxK);
  const silhouetteByK = starts.map((s) =>
    s.length < 2 ? null : meanSilhouette(S, L, s, options.sameFunctionScale),
  );

  let chosen = 1;
  let reason: string;
  if (criterion === 'fixed') {
    const k = options.k;
    if (k === undefined || !Number.isInteger(k) || k < 1 || k > maxK) {
      throw new Error(`segmentLayers: criterion 'fixed' needs an integer k in 1..${maxK}, got ${k}`);
    }
    chosen = k;
    reason = `k = ${k} fixed by the caller`;
  } else if (cost[0]! === 0) {
    reason = 'all layers are at distance 0 from one another: one block';
  } else if (criterion === 'elbow') {
    chosen = elbowIndex(cost) + 1;
    reason = `elbow of the within-block cost curve at k = ${chosen} (cost ${cost[chosen - 1]!.toPrecision(3)} vs ${cost[0]!.toPrecision(3)} for one block)`;
  } else {
    let bestK = 0;
    let bestS = Number.NEGATIVE_INFINITY;
    for (let k = 2; k <= maxK; k++) {
      const s = silhouetteByK[k - 1]!;
      if (s !== null && s > bestS + 1e-12) {
        bestS = s;
        bestK = k;
      }
    }
    if (bestK === 0 || bestS < minSilhouette) {
      chosen = 1;
      reason =
        bestK === 0
          ? 'too few layers to compare splits: one block'
          : `best split (k = ${bestK}) has mean silhouette ${bestS.toFixed(3)} < ${minSilhouette}: no substantial structure, one block`;
    } else {
      chosen = bestK;
      reason = `largest mean silhouette ${bestS.toFixed(3)} at k = ${bestK} (threshold ${minSilhouette})`;
    }
  }
  return {
    blocks: describeBlocks(S, L, starts[chosen - 1]!),
    k: chosen,
    criterion,
    reason,
    costByK: cost,
    silhouetteByK,
  };
}

/** Element-wise mean of several L×L matrices (the consensus input for a set of models). */
export function meanMatrix(matrices: ArrayLike<number>[], size: number): Float64Array {
  if (matrices.length === 0) throw new Error('meanMatrix: no matrices');
  const out = new Float64Array(size);
  for (const m of matrices) {
    if (m.length !== size) throw new Error(`meanMatrix: matrix has ${m.length} values, expected ${size}`);
    for (let i = 0; i < size; i++) out[i] += m[i]!;
  }
  for (let i = 0; i < size; i++) out[i] /= matrices.length;
  return out;
}
