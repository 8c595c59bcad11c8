// From probe summaries to the inputs of GW and CKA. A client sends K = X Xᵀ (n×n) for a layer's
// activations X (n probe inputs × d features), or a factor of it (its centred activations, n × d)
// when d is small; everything here is a pure function on row-major typed arrays.
import { squaredEuclideanCost } from '../ot/gromov/lowrank.js';
import { type GwCost, normaliseByMeanOffDiagonal } from '../ot/gromov/problem.js';
import { matmul, transpose } from '../ot/linalg.js';

type Numeric = Float32Array | Float64Array;

function checkSquare(name: string, K: ArrayLike<number>, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: n must be a positive integer, got ${n}`);
  if (K.length !== n * n)
    throw new Error(`${name}: expected an ${n}×${n} matrix (${n * n} values), got ${K.length}`);
}

/** Squared Euclidean distances from a Gram matrix: D_ij = K_ii + K_jj − 2K_ij, clamped at 0 (rounding). */
export function gramToSquaredDistances(K: Numeric, n: number): Float64Array {
  checkSquare('gramToSquaredDistances', K, n);
  const D = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const kii = K[i * n + i]!;
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const d = kii + K[j * n + j]! - 2 * K[i * n + j]!;
      D[i * n + j] = Math.max(d, 0);
    }
  }
  // Symmetrise: a float32 Gram may differ in its last bit across the diagonal.
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = 0.5 * (D[i * n + j]! + D[j * n + i]!);
      D[i * n + j] = v;
      D[j * n + i] = v;
    }
  }
  return D;
}

/** Euclidean distances from a Gram matrix. */
export function gramToDistances(K: Numeric, n: number): Float64Array {
  const D = gramToSquaredDistances(K, n);
  for (let i = 0; i < D.length; i++) D[i] = Math.sqrt(D[i]!);
  return D;
}

/**
 * The cost GW compares a probe layer by: Euclidean distances between the probe inputs'
 * representations, or their squares. Squared distances have rank ≤ d + 2, so GW on them can run
 * in factored form (ot/gromov/lowrank.ts); docs/EVIDENCE.md ("Which cost") compares the two on
 * planted structure.
 */
export const PROBE_COSTS = ['euclidean', 'sqeuclidean'] as const;
export type ProbeCost = (typeof PROBE_COSTS)[number];
/**
 * Euclidean: on planted structure it recovers more blocks and labels than squared distances at
 * every noise level, and on the deep CNN it does not fragment the layers (docs/EVIDENCE.md §6).
 */
export const DEFAULT_PROBE_COST: ProbeCost = 'euclidean';

/** Distances (or squared distances) from a Gram matrix, as `cost` says. */
export function gramToCost(K: Numeric, n: number, cost: ProbeCost): Float64Array {
  if (cost === 'sqeuclidean') return gramToSquaredDistances(K, n);
  if (cost === 'euclidean') return gramToDistances(K, n);
  throw new Error(`unknown cost '${String(cost)}': use ${PROBE_COSTS.join(' or ')}`);
}

/** X Xᵀ for X n×d (row-major). */
export function gramFromActivations(X: Numeric, n: number, d: number): Float64Array {
  if (X.length !== n * d)
    throw new Error(`gramFromActivations: expected ${n}×${d} = ${n * d} values, got ${X.length}`);
  return matmul(X, transpose(X, n, d), n, d, n);
}

/** H K H with H = I − 11ᵀ/n (double centring), into `out` (a new array by default). */
function centre(K: ArrayLike<number>, n: number, out: Float64Array = new Float64Array(n * n)): Float64Array {
  const rowMean = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < n; j++) s += K[i * n + j]!;
    rowMean[i] = s / n;
    total += s;
  }
  const grand = total / (n * n);
  // For a non-symmetric K the column means differ; compute them separately.
  const colMean = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) colMean[j]! += K[i * n + j]! / n;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = K[i * n + j]! - rowMean[i]! - colMean[j]! + grand;
  }
  return out;
}

/** tr(Ã B̃) = Σ_ij Ã_ij B̃_ji for two centred n×n Grams, summed row by row. */
function traceOfProduct(A: ArrayLike<number>, B: ArrayLike<number>, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) s += A[i * n + j]! * B[j * n + i]!;
  }
  return s;
}

/**
 * The centred Gram K̃ = HKH (into `out` when given) and HSIC(K, K) ∝ tr(K̃ K̃): what linear CKA
 * needs of one representation, so that comparing it with many others centres it once.
 */
export function centredGram(
  K: ArrayLike<number>,
  n: number,
  out?: Float64Array,
): { centred: Float64Array; selfHsic: number } {
  checkSquare('centredGram', K, n);
  const centred = centre(K, n, out);
  return { centred, selfHsic: traceOfProduct(centred, centred, n) };
}

/**
 * Linear CKA of two representations given as centred Grams with their self-HSIC (centredGram):
 * tr(K̃ L̃) / √(tr(K̃ K̃) tr(L̃ L̃)). Throws when either representation is constant across inputs.
 */
export function linearCkaOfCentred(
  K: { centred: ArrayLike<number>; selfHsic: number },
  L: { centred: ArrayLike<number>; selfHsic: number },
  n: number,
): number {
  if (!(K.selfHsic > 0) || !(L.selfHsic > 0)) {
    throw new Error('linear CKA is undefined: a representation is constant across the probe inputs');
  }
  return traceOfProduct(K.centred, L.centred, n) / Math.sqrt(K.selfHsic * L.selfHsic);
}

/**
 * Linear CKA from two Gram matrices (Kornblith, Norouzi, Lee & Hinton 2019, eq. 3 with linear
 * kernels): HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)) with HSIC(K, L) ∝ tr(K̃ L̃), K̃ = HKH.
 * Throws when either representation is constant across inputs (zero centred Gram).
 */
export function linearCkaFromGram(K: ArrayLike<number>, L: ArrayLike<number>, n: number): number {
  checkSquare('linearCkaFromGram: K', K, n);
  checkSquare('linearCkaFromGram: L', L, n);
  return linearCkaOfCentred(centredGram(K, n), centredGram(L, n), n);
}

/**
 * Linear CKA from activations X (n×dx) and Y (n×dy), via their Gram matrices.
 * @internal exported for its tests
 */
export function linearCka(X: Numeric, Y: Numeric, n: number, dx: number, dy: number): number {
  return linearCkaFromGram(gramFromActivations(X, n, dx), gramFromActivations(Y, n, dy), n);
}

/**
 * The metric-measure space of one probe layer: Euclidean (or, with `cost` 'sqeuclidean', squared
 * Euclidean) distances from the Gram matrix K (n × n) or between the rows of its factor,
 * normalised by their mean off-diagonal entry. `constant` when every probe
 * input maps to the same point; the all-zero distance matrix is kept then (a valid metric space
 * whose GW to any other is still defined).
 */
export function probeMetricSpace(
  K: ProbeLayerData,
  n: number,
  cost: ProbeCost = DEFAULT_PROBE_COST,
): { C: Float64Array; constant: boolean } {
  const C = isGramFactor(K) ? factorToCost(K, cost) : gramToCost(K, n, cost);
  try {
    return { C: normaliseByMeanOffDiagonal(C, n), constant: false };
  } catch {
    return { C, constant: true };
  }
}

/**
 * A probe layer summarised by a factor instead of its Gram matrix: F (n × rank, row-major) such
 * that F Fᵀ and the layer's Gram K = X Xᵀ have the same centred Gram H K H (H = I − 11ᵀ/n), hence
 * the same distances between probe inputs and the same CKA. A layer's centred activations X − 1x̄ᵀ
 * are such a factor with rank = d.
 */
export interface GramFactor {
  n: number;
  rank: number;
  values: Float32Array | Float64Array;
}

/** One probe layer as a client sent it: its Gram matrix (n × n) or a factor of it. */
export type ProbeLayerData = Numeric | GramFactor;

export function isGramFactor(s: ProbeLayerData): s is GramFactor {
  return !(s instanceof Float32Array) && !(s instanceof Float64Array);
}

/**
 * Whether a client should send a factor of rank r instead of the n × n Gram: when the squared
 * distances' rank r + 2 is below n / 2, GW runs in factored form (O(n²r) per iteration instead of
 * O(n³), ot/gromov/lowrank.ts), and the factor is then also under half the Gram's bytes.
 */
export function factorPaysOff(rank: number, n: number): boolean {
  return 2 * (rank + 2) < n;
}

/** X with every column's mean subtracted (n × d, row-major), in float64. */
export function centredActivations(X: Numeric, n: number, d: number): Float64Array {
  if (X.length !== n * d)
    throw new Error(`centredActivations: expected ${n}×${d} = ${n * d} values, got ${X.length}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) mean[c]! += X[i * d + c]!;
  for (let c = 0; c < d; c++) mean[c]! /= n;
  const out = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) out[i * d + c] = X[i * d + c]! - mean[c]!;
  return out;
}

function checkFactor(name: string, F: GramFactor): void {
  const { n, rank, values } = F;
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(rank) || rank < 1)
    throw new Error(`${name}: n and rank must be positive integers, got ${n} and ${rank}`);
  if (values.length !== n * rank)
    throw new Error(`${name}: expected ${n}×${rank} = ${n * rank} values, got ${values.length}`);
}

/** The Gram matrix F Fᵀ (n × n) of a factor, in float64. */
export function gramOfFactor(F: GramFactor): Float64Array {
  checkFactor('gramOfFactor', F);
  return gramFromActivations(F.values, F.n, F.rank);
}

/**
 * Squared Euclidean distances between the rows of a factor (n × n), as gramToSquaredDistances.
 * @internal exported for its tests
 */
export function factorToSquaredDistances(F: GramFactor): Float64Array {
  checkFactor('factorToSquaredDistances', F);
  const { n, rank: r } = F;
  // Centring first keeps |f_i|² of the order of the distances (no cancellation).
  const X = centredActivations(F.values, n, r);
  const D = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let c = 0; c < r; c++) {
        const t = X[i * r + c]! - X[j * r + c]!;
        s += t * t;
      }
      D[i * n + j] = s;
      D[j * n + i] = s;
    }
  }
  return D;
}

/**
 * Distances (or squared distances) between the rows of a factor, as `cost` says.
 * @internal exported for its tests
 */
export function factorToCost(F: GramFactor, cost: ProbeCost): Float64Array {
  const D = factorToSquaredDistances(F);
  if (cost === 'sqeuclidean') return D;
  if (cost !== 'euclidean')
    throw new Error(`unknown cost '${String(cost)}': use ${PROBE_COSTS.join(' or ')}`);
  for (let i = 0; i < D.length; i++) D[i] = Math.sqrt(D[i]!);
  return D;
}

/**
 * The cost GW is solved on for one probe layer: the factored squared-distance matrix (rank r + 2,
 * normalised like probeMetricSpace) when the client sent a factor, the cost is squared Euclidean
 * and the factor pays off (factorPaysOff); else the dense metric space (`dense` when the caller
 * has it). Both give the same GW up to rounding.
 */
export function probeGwCost(
  data: ProbeLayerData,
  n: number,
  cost: ProbeCost = DEFAULT_PROBE_COST,
  dense?: Float64Array,
): GwCost {
  if (isGramFactor(data) && cost === 'sqeuclidean' && factorPaysOff(data.rank, n)) {
    try {
      return squaredEuclideanCost(data.values, n, data.rank, { normalise: true });
    } catch {
      // A constant layer (all distances zero): the dense all-zero space below.
    }
  }
  return dense ?? probeMetricSpace(data, n, cost).C;
}
