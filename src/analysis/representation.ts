// From probe summaries to the inputs of GW and CKA. A client sends K = X Xᵀ (n×n) for a layer's
// activations X (n probe inputs × d features); everything here is a pure function on row-major
// typed arrays.
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

/** H K H with H = I − 11ᵀ/n (double centring), as a new array. */
function centre(K: ArrayLike<number>, n: number): Float64Array {
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
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = K[i * n + j]! - rowMean[i]! - colMean[j]! + grand;
  }
  return out;
}

/**
 * Linear CKA from two Gram matrices (Kornblith, Norouzi, Lee & Hinton 2019, eq. 3 with linear
 * kernels): HSIC(K, L) / √(HSIC(K, K) HSIC(L, L)) with HSIC(K, L) ∝ tr(K̃ L̃), K̃ = HKH.
 * Throws when either representation is constant across inputs (zero centred Gram).
 */
export function linearCkaFromGram(K: ArrayLike<number>, L: ArrayLike<number>, n: number): number {
  checkSquare('linearCkaFromGram: K', K, n);
  checkSquare('linearCkaFromGram: L', L, n);
  const Kc = centre(K, n);
  const Lc = centre(L, n);
  let kl = 0;
  let kk = 0;
  let ll = 0;
  // tr(K̃ L̃) = Σ_ij K̃_ij L̃_ji; the centred Grams are symmetric.
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const k = Kc[i * n + j]!;
      const l = Lc[j * n + i]!;
      kl += k * l;
      kk += k * Kc[j * n + i]!;
      ll += Lc[i * n + j]! * l;
    }
  }
  if (!(kk > 0) || !(ll > 0)) {
    throw new Error('linear CKA is undefined: a representation is constant across the probe inputs');
  }
  return kl / Math.sqrt(kk * ll);
}

/**
 * Linear CKA from activations X (n×dx) and Y (n×dy), via their Gram matrices.
 * @internal exported for its tests
 */
export function linearCka(X: Numeric, Y: Numeric, n: number, dx: number, dy: number): number {
  return linearCkaFromGram(gramFromActivations(X, n, dx), gramFromActivations(Y, n, dy), n);
}
