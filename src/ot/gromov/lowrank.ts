// GW on factored costs. A layer's squared Euclidean distance matrix over n probe inputs with d
// features has rank ≤ d + 2:
//   C_ik = |x_i|² + |x_k|² − 2 x_i·x_k,  so  C = A Bᵀ,  A = [a, 1, X],  B = [1, a, −2X],  a_i = |x_i|²
// (the factorisation low-rank GW methods build on; Scetbon, Peyré & Cuturi 2022, "Linear-time
// Gromov-Wasserstein distances using low rank couplings and costs", §3). With C1 = A1 B1ᵀ and
// C2 = A2 B2ᵀ every quantity of the square-loss GW is exact in factored form:
//   G = C1 T C2ᵀ = A1 (B1ᵀ T B2) A2ᵀ                       O(n·m·r) instead of O(n²m + nm²)
//   wᵀ(C∘C)w = <Aᵀ W A, Bᵀ W B>_F,  ((C∘C)w)_i = A_i (Bᵀ W B) A_iᵀ        O(n·r²)
//   <C1 S C2ᵀ, S> for a sparse S with nnz entries                          O(nnz·r1·r2)
// so the conditional gradient's iteration costs O(n·m·r) and the exact OT step dominates. Nothing
// is approximated: the objective is the dense one up to rounding.

import type { SparsePlan } from '../emd.js';
import { matmul, transpose } from '../linalg.js';
import {
  checkedMean,
  equalWeights,
  type Factors,
  type LowRankCost,
  type LowRankGwProblem,
  marginals,
} from './problem.js';
import { residentArray } from './workspace.js';

/**
 * The squared Euclidean distance matrix of the rows of X (n×d, row-major) in factored form
 * (rank d + 2), optionally divided by its mean off-diagonal entry — a scalar, so the
 * factorisation is kept. X is centred first: distances do not change, and |x_i|² stays of the
 * order of the distances, which keeps a_i + a_k − 2 x_i·x_k free of cancellation.
 */
export function squaredEuclideanCost(
  X: ArrayLike<number>,
  n: number,
  d: number,
  options: { normalise?: boolean } = {},
): LowRankCost {
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(d) || d < 1) {
    throw new Error(`squaredEuclideanCost: n and d must be positive integers, got ${n} and ${d}`);
  }
  if (X.length !== n * d)
    throw new Error(`squaredEuclideanCost: expected ${n}×${d} = ${n * d} values, got ${X.length}`);
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let c = 0; c < d; c++) mean[c]! += X[i * d + c]!;
  for (let c = 0; c < d; c++) mean[c]! /= n;
  const r = d + 2;
  const A = new Float64Array(n * r);
  const B = new Float64Array(n * r);
  for (let i = 0; i < n; i++) {
    let norm = 0;
    for (let c = 0; c < d; c++) {
      const x = X[i * d + c]! - mean[c]!;
      if (!Number.isFinite(x))
        throw new Error(`X[${i}, ${c}] is ${X[i * d + c]}: activations must be finite`);
      norm += x * x;
      A[i * r + 2 + c] = x;
      B[i * r + 2 + c] = -2 * x;
    }
    A[i * r] = norm;
    A[i * r + 1] = 1;
    B[i * r] = 1;
    B[i * r + 1] = norm;
  }
  const cost = { n, rank: r, A, B };
  return options.normalise ? scaleLowRank(cost, 1 / lowRankMeanOffDiagonal(cost)) : cost;
}

/** Mean off-diagonal entry of C = A Bᵀ: (1ᵀC1 − tr C) / (n(n − 1)), O(n·r). */
function lowRankMeanOffDiagonal(F: LowRankCost): number {
  const { n, rank: r, A, B } = F;
  if (n < 2) throw new Error('need at least 2 points to have off-diagonal entries');
  const sumA = new Float64Array(r);
  const sumB = new Float64Array(r);
  let trace = 0;
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < r; a++) {
      sumA[a]! += A[i * r + a]!;
      sumB[a]! += B[i * r + a]!;
      trace += A[i * r + a]! * B[i * r + a]!;
    }
  }
  let total = 0;
  for (let a = 0; a < r; a++) total += sumA[a]! * sumB[a]!;
  return checkedMean((total - trace) / (n * (n - 1)));
}

/** s·C in factored form (A scaled). */
function scaleLowRank(F: LowRankCost, s: number): LowRankCost {
  return { ...F, A: F.A.map((v) => v * s), B: Float64Array.from(F.B) };
}

/** The dense n×n matrix A Bᵀ. */
export function lowRankToDense(F: LowRankCost): Float64Array {
  return matmul(F.A, transpose(F.B, F.n, F.rank), F.n, F.rank, F.n);
}

export function isLowRankCost(C: unknown): C is LowRankCost {
  return typeof C === 'object' && C !== null && !(C instanceof Float64Array) && 'A' in C && 'B' in C;
}

/** Checks sizes, finiteness and symmetry (A Bᵀ v = B Aᵀ v on a fixed probe vector). */
function factorsOf(name: string, F: LowRankCost): Factors {
  const { n, rank: r, A, B } = F;
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(r) || r < 1) {
    throw new Error(`${name}: n and rank must be positive integers, got ${n} and ${r}`);
  }
  if (
    !(A instanceof Float64Array) ||
    !(B instanceof Float64Array) ||
    A.length !== n * r ||
    B.length !== n * r
  ) {
    throw new Error(`${name}: A and B must be Float64Arrays of ${n}×${r} values`);
  }
  const At = checkedTranspose(name, 'A', A, n, r);
  const Bt = checkedTranspose(name, 'B', B, n, r);
  const v = Float64Array.from({ length: n }, (_, i) => Math.sin(i + 1));
  const Cv = matmul(A, matmul(Bt, v, r, n, 1), n, r, 1);
  const Ctv = matmul(B, matmul(At, v, r, n, 1), n, r, 1);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < n; i++) {
    diff = Math.max(diff, Math.abs(Cv[i]! - Ctv[i]!));
    scale = Math.max(scale, Math.abs(Cv[i]!), Math.abs(Ctv[i]!));
  }
  if (diff > 1e-9 * scale) {
    throw new Error(
      `${name} = A Bᵀ is not symmetric: GW here compares distance or dissimilarity matrices, which are symmetric`,
    );
  }
  return { n, r, A, B, At, Bt };
}

/**
 * Mᵀ (r×n) of M (n×r), checking in the same pass that every entry is finite (x − x is 0 exactly
 * for finite x and NaN otherwise): one pass over the factor instead of two, which counts where a
 * process first meets this size and runs the loop unoptimised.
 */
function checkedTranspose(name: string, side: string, M: Float64Array, n: number, r: number): Float64Array {
  const out = new Float64Array(n * r);
  let bad = 0;
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < r; a++) {
      const x = M[i * r + a]!;
      bad += x - x;
      out[a * n + i] = x;
    }
  }
  if (bad !== 0) {
    const e = M.findIndex((x) => !Number.isFinite(x));
    throw new Error(`${name}.${side}[${Math.floor(e / r)}, ${e % r}] is ${M[e]}: factors must be finite`);
  }
  return out;
}

/** Xᵀ diag(w) Y for X n×rx, Y n×ry (row-major), given Xᵀ (rx×n): an rx×ry matrix. */
function weightedGram(
  Xt: Float64Array,
  Y: Float64Array,
  w: Float64Array,
  n: number,
  rx: number,
  ry: number,
): Float64Array {
  // Equal weights (the usual case): w₀·XᵀY, the weight applied to the rx×ry result rather than to
  // all rx·n entries of Xᵀ.
  const w0 = w[0]!;
  if (w.every((x) => x === w0)) return matmul(Xt, Y, rx, n, ry).map((x) => x * w0);
  const scaled = new Float64Array(rx * n);
  for (let a = 0; a < rx; a++) for (let i = 0; i < n; i++) scaled[a * n + i] = Xt[a * n + i]! * w[i]!;
  return matmul(scaled, Y, rx, n, ry);
}

function frobenius(X: Float64Array, Y: Float64Array): number {
  let s = 0;
  for (let e = 0; e < X.length; e++) s += X[e]! * Y[e]!;
  return s;
}

/** wᵀ (C∘C) w = <Aᵀ W A, Bᵀ W B>. */
function squaredForm(F: Factors, w: Float64Array): number {
  return frobenius(weightedGram(F.At, F.A, w, F.n, F.r, F.r), weightedGram(F.Bt, F.B, w, F.n, F.r, F.r));
}

/** (C∘C) w: row i is A_i (Bᵀ W B) A_iᵀ. */
export function lowRankSquaredRowSums(F: Factors, w: Float64Array): Float64Array {
  const { n, r, A } = F;
  const M = weightedGram(F.Bt, F.B, w, n, r, r);
  const AM = matmul(A, M, n, r, r);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let a = 0; a < r; a++) s += AM[i * r + a]! * A[i * r + a]!;
    out[i] = s;
  }
  return out;
}

export function prepareLowRankProblem(
  C1: LowRankCost,
  C2: LowRankCost,
  weights: { p?: Float64Array; q?: Float64Array },
): LowRankGwProblem {
  const F1 = factorsOf('C1', C1);
  const F2 = factorsOf('C2', C2);
  const [p, q] = marginals(F1.n, F2.n, weights.p, weights.q);
  const squaredForms = { p1: squaredForm(F1, p), q2: squaredForm(F2, q) };
  return {
    kind: 'lowRank',
    F1,
    F2,
    n: F1.n,
    m: F2.n,
    p,
    q,
    c0: squaredForms.p1 + squaredForms.q2,
    squaredForms,
    identityFeasible: F1.n === F2.n && equalWeights(p, q),
  };
}

/**
 * G = A1 K A2ᵀ from the r1×r2 core K = B1ᵀ T B2, written into `out` when given, else into a new
 * array in the solve's workspace (workspace.ts), where the product kernel writes it in place.
 */
export function coreProduct(
  P: Pick<LowRankGwProblem, 'F1' | 'F2'>,
  K: Float64Array,
  out: Float64Array = residentArray(P.F1.n * P.F2.n),
): Float64Array {
  const { F1, F2 } = P;
  return matmul(matmul(F1.A, K, F1.n, F1.r, F2.r), F2.At, F1.n, F2.r, F2.n, out);
}

/** The core B1ᵀ T B2 (r1×r2) of a dense T (n×m). O(n·m·r). */
export function lowRankCore(
  P: Pick<LowRankGwProblem, 'F1' | 'F2' | 'n' | 'm'>,
  T: Float64Array,
): Float64Array {
  const { F1, F2, n, m } = P;
  return matmul(matmul(F1.Bt, T, F1.r, n, m), F2.B, F1.r, m, F2.r);
}

/** C1 T C2ᵀ for dense T: the core B1ᵀ T B2, then coreProduct. O(n·m·r). */
export function lowRankTensorProduct(
  P: Pick<LowRankGwProblem, 'F1' | 'F2' | 'n' | 'm'>,
  T: Float64Array,
): Float64Array {
  return coreProduct(P, lowRankCore(P, T));
}

/**
 * True when S has exactly one entry in each row, in row order — a permutation-like vertex, as
 * every vertex is with n = m and equal weights — so that its rows of a factor are the factor.
 */
function oneEntryPerRow(S: SparsePlan, n: number): boolean {
  if (S.rows.length !== n) return false;
  for (let e = 0; e < n; e++) if (S.rows[e] !== e) return false;
  return true;
}

/**
 * Rows cols[e] of M (n×r) stacked in S's order, copied natively one row at a time (where a process
 * first meets a size, an element loop would run unoptimised), with S's weights: a common weight is
 * returned for the caller to apply to its (small) result, unequal ones are applied here.
 */
function weightedRows(M: Float64Array, r: number, S: SparsePlan): { rows: Float64Array; weight: number } {
  const k = S.values.length;
  const rows = new Float64Array(k * r);
  for (let e = 0; e < k; e++) rows.set(M.subarray(S.cols[e]! * r, S.cols[e]! * r + r), e * r);
  const w0 = S.values[0]!;
  if (S.values.every((w) => w === w0)) return { rows, weight: w0 };
  for (let e = 0; e < k; e++) for (let b = 0; b < r; b++) rows[e * r + b]! *= S.values[e]!;
  return { rows, weight: 1 };
}

/** The core B1ᵀ S B2 = Σ_a s_a B1[i_a]ᵀ B2[j_a] of a sparse S, as one (r1×nnz)(nnz×r2) product. */
export function vertexCore(P: LowRankGwProblem, S: SparsePlan): Float64Array {
  const { F1, F2 } = P;
  const k = S.values.length;
  if (oneEntryPerRow(S, F1.n)) {
    // B1ᵀ (S B2): the left operand is B1ᵀ as kept; B2's rows are gathered by native copies, and
    // equal weights scale the r1×r2 result instead of every gathered entry.
    const gathered = weightedRows(F2.B, F2.r, S);
    const core = matmul(F1.Bt, gathered.rows, F1.r, k, F2.r);
    return gathered.weight === 1 ? core : core.map((x) => x * gathered.weight);
  }
  const right = new Float64Array(k * F2.r);
  const left = new Float64Array(F1.r * k);
  for (let e = 0; e < k; e++) {
    const s = S.values[e]!;
    const i = S.rows[e]! * F1.r;
    const j = S.cols[e]! * F2.r;
    for (let a = 0; a < F1.r; a++) left[a * k + e] = s * F1.B[i + a]!;
    for (let b = 0; b < F2.r; b++) right[e * F2.r + b] = F2.B[j + b]!;
  }
  return matmul(left, right, F1.r, k, F2.r);
}

/** <C1 S C2ᵀ, S> = Σ_a s_a (A1[i_a] K) · A2[j_a] with K S's core. */
export function coreSelfProduct(P: LowRankGwProblem, S: SparsePlan, K: Float64Array): number {
  const { F1, F2 } = P;
  const k = S.values.length;
  let rows = F1.A;
  if (!oneEntryPerRow(S, F1.n)) {
    rows = new Float64Array(k * F1.r);
    for (let e = 0; e < k; e++) rows.set(F1.A.subarray(S.rows[e]! * F1.r, (S.rows[e]! + 1) * F1.r), e * F1.r);
  }
  const AK = matmul(rows, K, k, F1.r, F2.r);
  if (rows === F1.A) {
    // Σ_e s_e AK[e]·A2[j_e] as one dot product on the matrix kernel (1 × k·r2 by k·r2 × 1).
    const gathered = weightedRows(F2.A, F2.r, S);
    return gathered.weight * matmul(AK, gathered.rows, 1, AK.length, 1)[0]!;
  }
  let total = 0;
  for (let e = 0; e < k; e++) {
    const j = S.cols[e]! * F2.r;
    let s = 0;
    for (let b = 0; b < F2.r; b++) s += AK[e * F2.r + b]! * F2.A[j + b]!;
    total += S.values[e]! * s;
  }
  return total;
}

/** pᵀ(C1∘C1)p + pᵀ(C2∘C2)p − 2pᵀ(C1∘C2)p: E at diag(p), O(n·r²). */
export function lowRankIdentityObjective(P: LowRankGwProblem): number {
  const { F1, F2, p, q, n, squaredForms } = P;
  const cross = frobenius(
    weightedGram(F1.At, F2.A, p, n, F1.r, F2.r),
    weightedGram(F1.Bt, F2.B, p, n, F1.r, F2.r),
  );
  // The set-up's terms of c0 are these when q is p entry for entry.
  const p2 = q.every((w, i) => w === p[i]) ? squaredForms.q2 : squaredForm(F2, p);
  return squaredForms.p1 + p2 - 2 * cross;
}

/** E(T) with T's own marginals, for any non-negative T (n×m), on checked factored costs. */
export function lowRankGwObjective(C1: LowRankCost, C2: LowRankCost, T: Float64Array): number {
  const F1 = factorsOf('C1', C1);
  const F2 = factorsOf('C2', C2);
  if (T.length !== F1.n * F2.n)
    throw new Error(`gwObjective: expected T ${F1.n}×${F2.n}, got ${T.length} values`);
  return lowRankObjective({ F1, F2, n: F1.n, m: F2.n }, T);
}

/** E(T) with T's own marginals, for any non-negative T (n×m). */
export function lowRankObjective(
  P: Pick<LowRankGwProblem, 'F1' | 'F2' | 'n' | 'm'>,
  T: Float64Array,
): number {
  const { n, m } = P;
  const pT = new Float64Array(n);
  const qT = new Float64Array(m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      pT[i]! += T[i * m + j]!;
      qT[j]! += T[i * m + j]!;
    }
  const G = lowRankTensorProduct(P, T);
  return squaredForm(P.F1, pT) + squaredForm(P.F2, qT) - 2 * frobenius(G, T);
}

/** Σ_i w_i (C w)_i = (Aᵀw)·(Bᵀw). */
export function lowRankLinearForm(F: Factors, w: Float64Array): number {
  const a = matmul(F.At, w, F.r, F.n, 1);
  const b = matmul(F.Bt, w, F.r, F.n, 1);
  return frobenius(a, b);
}
