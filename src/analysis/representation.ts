// From probe summaries to the inputs of GW and CKA. A client sends K = X Xᵀ (n×n) for a layer's
// activations X (n probe inputs × d features); everything here is a pure function on row-major
// typed arrays.
import { normaliseByMeanOffDiagonal } from '../ot/gromov/problem.js';
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
 * Euclidean) distances from the Gram matrix K (n × n),
 * normalised by their mean off-diagonal entry. `constant` when every probe
 * input maps to the same point; the all-zero distance matrix is kept then (a valid metric space
 * whose GW to any other is still defined).
 */
export function probeMetricSpace(
  K: Float32Array | Float64Array,
  n: number,
  cost: ProbeCost = DEFAULT_PROBE_COST,
): { C: Float64Array; constant: boolean } {
  const C = gramToCost(K, n, cost);
  try {
    return { C: normaliseByMeanOffDiagonal(C, n), constant: false };
  } catch {
    return { C, constant: true };
  }
}
