// The square loss and its tensor products (what POT keeps in ot/gromov/_utils.py as tensor_product,
// gwloss and gwggrad). With the factorisation of Peyré, Cuturi & Solomon 2016 (Prop. 1),
//   L(a, b) = (a − b)² = f1(a) + f2(b) − h1(a) h2(b),  f1 = a², f2 = b², h1 = a, h2 = 2b,
// the tensor L(C1, C2) ⊗ T is constC − 2 C1 T C2ᵀ, so for a coupling T of p and q
//   E(T) = c0 − 2<G, T>,  G = C1 T C2ᵀ,  ∇E(T) = 2(constC − 2G).
// The n⁴ tensor is never formed: G needs two matrix products for a dense T, one product of
// smaller matrices for a sparse T (a vertex of the transport polytope, or the difference of two).

import type { SparsePlan } from '../emd.js';
import { matmul } from '../linalg.js';
import {
  coreProduct,
  coreSelfProduct,
  isLowRankCost,
  lowRankGwObjective,
  lowRankIdentityObjective,
  lowRankLinearForm,
  lowRankObjective,
  lowRankSquaredRowSums,
  lowRankTensorProduct,
  lowRankToDense,
  vertexCore,
} from './lowrank.js';
import type { DenseGwProblem, GwCost, GwProblem } from './problem.js';
import { loopsFor, residentArray, staged, withWorkspace } from './workspace.js';

/** C1 T C2ᵀ for a dense T (n×m). */
export function tensorProduct(P: GwProblem, T: Float64Array): Float64Array {
  return P.kind === 'dense' ? denseTensorProduct(P, T) : lowRankTensorProduct(P, T);
}

/** C1 T C2 for dense T (C2 symmetric, so C2ᵀ = C2). Two products: O(n²m + nm²). */
function denseTensorProduct(P: DenseGwProblem, T: Float64Array): Float64Array {
  const { n, m } = P;
  return matmul(matmul(P.C1, T, n, n, m), P.C2, n, m, m);
}

/**
 * C1 S C2 for a sparse S (entries sorted row-major), as one product of an n×k matrix (the columns
 * of C1 for the k distinct rows of S) with a k×m matrix (row i: Σ_j S_ij C2[j, :]). Added to
 * `into` when given, else written into `out` (or a new array). For a vertex k = n; for the
 * difference of two vertices k is the number of rows that moved, often a handful.
 */
function sparseTensorProduct(
  P: DenseGwProblem,
  S: SparsePlan,
  into?: Float64Array,
  out?: Float64Array,
): Float64Array {
  const { n, m, C1, C2 } = P;
  const { rows, values } = S;
  const distinct: number[] = [];
  for (let a = 0; a < values.length; a++) if (a === 0 || rows[a] !== rows[a - 1]) distinct.push(rows[a]!);
  const k = distinct.length;
  // The gathered operands and a product to add are temporaries: freed when this returns.
  return withWorkspace(() => {
    // Every row present (a vertex of a full-support p): the gathered columns are C1 itself.
    const A = k === n ? C1 : residentArray(n * k);
    const W = residentArray(k * m);
    const ws = loopsFor(C1, C2, A, W);
    if (ws) {
      const [rowsAt, colsAt, valuesAt, distinctAt] = staged(ws.team, rows, S.cols, values, new Int32Array(k));
      ws.loops.sparse_rows(
        C2.byteOffset,
        rowsAt!,
        colsAt!,
        valuesAt!,
        values.length,
        m,
        W.byteOffset,
        distinctAt!,
      );
      if (k !== n) ws.loops.gather_columns(C1.byteOffset, n, distinctAt!, k, A.byteOffset);
    } else {
      let a = 0;
      for (let r = 0; r < k; r++) {
        const i = distinct[r]!;
        if (k !== n) for (let x = 0; x < n; x++) A[x * k + r] = C1[x * n + i]!;
        for (; a < values.length && rows[a] === i; a++) {
          const t = values[a]!;
          const o = S.cols[a]! * m;
          for (let l = 0; l < m; l++) W[r * m + l]! += t * C2[o + l]!;
        }
      }
    }
    if (!into) return matmul(A, W, n, k, m, out);
    const product = matmul(A, W, n, k, m, residentArray(n * m));
    const sum = loopsFor(into, product);
    if (sum) sum.loops.add_to(into.byteOffset, product.byteOffset, n * m);
    else for (let e = 0; e < n * m; e++) into[e]! += product[e]!;
    return into;
  });
}

/** <C1 S C2, S> = Σ_ab s_a s_b C1[i_a, i_b] C2[j_a, j_b] for sparse S: O(nnz²). */
function sparseSelfProduct(P: DenseGwProblem, S: SparsePlan): number {
  const { n, m, C1, C2 } = P;
  const { rows, cols, values } = S;
  const k = values.length;
  const ws = loopsFor(C1, C2);
  if (ws) {
    const [rowsAt, colsAt, valuesAt] = staged(ws.team, rows, cols, values);
    return ws.loops.sparse_self_product(C1.byteOffset, C2.byteOffset, rowsAt!, colsAt!, valuesAt!, k, n, m);
  }
  let total = 0;
  for (let a = 0; a < k; a++) {
    const r1 = rows[a]! * n;
    const r2 = cols[a]! * m;
    let s = 0;
    for (let b = 0; b < k; b++) s += values[b]! * C1[r1 + rows[b]!]! * C2[r2 + cols[b]!]!;
    total += values[a]! * s;
  }
  return total;
}

/** Rows of S that hold an entry (S sorted row-major). */
function distinctRows(S: SparsePlan): number {
  let count = 0;
  for (let a = 0; a < S.rows.length; a++) if (a === 0 || S.rows[a] !== S.rows[a - 1]) count++;
  return count;
}

/** Tc − S as a sparse list over the union of the supports (both sorted row-major). */
function sparseDifference(Tc: SparsePlan, S: SparsePlan, m: number): SparsePlan {
  const rows: number[] = [];
  const cols: number[] = [];
  const values: number[] = [];
  let a = 0;
  let b = 0;
  const key = (P: SparsePlan, k: number) => P.rows[k]! * m + P.cols[k]!;
  while (a < Tc.values.length || b < S.values.length) {
    const ka = a < Tc.values.length ? key(Tc, a) : Number.POSITIVE_INFINITY;
    const kb = b < S.values.length ? key(S, b) : Number.POSITIVE_INFINITY;
    let d: number;
    let k: number;
    if (ka === kb) {
      d = Tc.values[a++]! - S.values[b++]!;
      k = ka;
    } else if (ka < kb) {
      d = Tc.values[a++]!;
      k = ka;
    } else {
      d = -S.values[b++]!;
      k = kb;
    }
    if (d !== 0) {
      rows.push(Math.floor(k / m));
      cols.push(k % m);
      values.push(d);
    }
  }
  return { rows: Int32Array.from(rows), cols: Int32Array.from(cols), values: Float64Array.from(values) };
}

/** (C1∘C1) p and (C2∘C2) q: the row and column constants of constC. */
export function constCTerms(P: GwProblem): [Float64Array, Float64Array] {
  if (P.kind === 'lowRank') return [lowRankSquaredRowSums(P.F1, P.p), lowRankSquaredRowSums(P.F2, P.q)];
  return [squaredRowSums(P.C1, P.p, P.n), squaredRowSums(P.C2, P.q, P.m)];
}

/** (C∘C) w. */
function squaredRowSums(C: Float64Array, w: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) out[i]! += C[i * n + k]! ** 2 * w[k]!;
  return out;
}

/** E at diag(p): Σ_ik (C1_ik − C2_ik)² p_i p_k, O(n²) (dense). */
export function identityObjective(P: GwProblem): number {
  if (P.kind === 'lowRank') return lowRankIdentityObjective(P);
  if (P.identityValue !== null) return P.identityValue;
  const { n, C1, C2, p } = P;
  let s = 0;
  for (let i = 0; i < n; i++) {
    let row = 0;
    for (let k = 0; k < n; k++) {
      const d = C1[i * n + k]! - C2[i * n + k]!;
      row += d * d * p[k]!;
    }
    s += p[i]! * row;
  }
  return s;
}

/** E at p qᵀ: c0 − 2 (pᵀC1p)(qᵀC2q). */
export function productObjective(P: GwProblem): number {
  if (P.kind === 'lowRank') return P.c0 - 2 * lowRankLinearForm(P.F1, P.p) * lowRankLinearForm(P.F2, P.q);
  return P.c0 - 2 * dot(P.p, P.C1p) * dot(P.q, P.C2q);
}

function dot(x: Float64Array, y: Float64Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * y[i]!;
  return s;
}

/**
 * E(T) = Σ_ijkl (C1_ik − C2_jl)² T_ij T_kl for any non-negative T (n×m), with the marginals of T
 * itself: <constC(T), T> − 2<C1 T C2ᵀ, T>. Two matrix products.
 */
export function gwObjective(C1: GwCost, C2: GwCost, T: Float64Array, n: number, m: number): number {
  if (isLowRankCost(C1) && isLowRankCost(C2)) {
    if (C1.n !== n || C2.n !== m) throw new Error(`gwObjective: expected C1 ${n}×${n}, C2 ${m}×${m}`);
    return lowRankGwObjective(C1, C2, T);
  }
  return denseGwObjective(
    isLowRankCost(C1) ? lowRankToDense(C1) : C1,
    isLowRankCost(C2) ? lowRankToDense(C2) : C2,
    T,
    n,
    m,
  );
}

function denseGwObjective(C1: Float64Array, C2: Float64Array, T: Float64Array, n: number, m: number): number {
  if (C1.length !== n * n || C2.length !== m * m || T.length !== n * m) {
    throw new Error(`gwObjective: expected C1 ${n}×${n}, C2 ${m}×${m}, T ${n}×${m}`);
  }
  const p = new Float64Array(n);
  const q = new Float64Array(m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      p[i]! += T[i * m + j]!;
      q[j]! += T[i * m + j]!;
    }
  const C2t = new Float64Array(m * m);
  for (let j = 0; j < m; j++) for (let l = 0; l < m; l++) C2t[l * m + j] = C2[j * m + l]!;
  const G = matmul(matmul(C1, T, n, n, m), C2t, n, m, m);
  let cross = 0;
  for (let e = 0; e < n * m; e++) cross += G[e]! * T[e]!;
  // <constC, T> = pᵀ(C1∘C1)p + qᵀ(C2∘C2)q with T's own marginals.
  let s1 = 0;
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) s1 += C1[i * n + k]! ** 2 * p[i]! * p[k]!;
  let s2 = 0;
  for (let j = 0; j < m; j++) for (let l = 0; l < m; l++) s2 += C2[j * m + l]! ** 2 * q[j]! * q[l]!;
  return s1 + s2 - 2 * cross;
}

/** E(T) with T's own marginals, on the problem's costs. */
export function objectiveOf(P: GwProblem, T: Float64Array): number {
  return P.kind === 'dense' ? denseGwObjective(P.C1, P.C2, T, P.n, P.m) : lowRankObjective(P, T);
}

/** What the line search and the next gradient need from a vertex Tc of the transport polytope. */
export interface VertexTerms {
  /** <C1 Tc C2ᵀ, Tc>. */
  selfProduct: number;
  /** B1ᵀ Tc B2 (factored costs only). */
  core?: Float64Array;
}

export function vertexTerms(P: GwProblem, S: SparsePlan): VertexTerms {
  if (P.kind === 'dense') return { selfProduct: sparseSelfProduct(P, S) };
  const core = vertexCore(P, S);
  return { selfProduct: coreSelfProduct(P, S, core), core };
}

/**
 * C1 Tc C2ᵀ for a vertex. Dense costs: from the previous vertex's product by a rank-k update when
 * fewer rows moved than Tc has (the previous product is updated in place), else written into
 * `spare` (when given). Factored: from the core.
 */
export function vertexProduct(
  P: GwProblem,
  Tc: SparsePlan,
  terms: VertexTerms,
  previous: { vertex: SparsePlan; G: Float64Array } | undefined,
  spare?: Float64Array,
): Float64Array {
  if (P.kind === 'lowRank') return coreProduct(P, terms.core!);
  const diff = previous ? sparseDifference(Tc, previous.vertex, P.m) : undefined;
  if (previous && diff && distinctRows(diff) < distinctRows(Tc)) {
    return diff.values.length > 0 ? sparseTensorProduct(P, diff, previous.G) : previous.G;
  }
  return sparseTensorProduct(P, Tc, undefined, spare);
}
