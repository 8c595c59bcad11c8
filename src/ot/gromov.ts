// Gromov–Wasserstein discrepancy with the square loss between two metric-measure spaces
// (C1, p) and (C2, q):  E(T) = Σ_ijkl (C1_ik − C2_jl)² T_ij T_kl  over couplings T of p and q.
//
// Peyré, Cuturi & Solomon 2016 (Prop. 1) factor the loss as f1(a) + f2(b) − h1(a)h2(b) with
// f1 = a², f2 = b², h1 = a, h2 = 2b, so for a coupling T
//   E(T) = c0 − 2<G, T>,  G = C1 T C2ᵀ,  c0 = pᵀ(C1∘C1)p + qᵀ(C2∘C2)q,
// and ∇E(T) = 2(constC − 2G), where constC only adds row and column constants. The n⁴ tensor is
// never formed: the gradient needs G, i.e. matrix products.
//
// Conditional gradient (Frank–Wolfe; Vayer, Chapel, Flamary, Tavenard & Courty 2019,
// "Optimal transport for structured data with application on graphs", Alg. 2): the linear step is
// exact OT on the gradient — equivalently on −G, since row/column constants do not change the
// optimal plan — and E(T + αΔ) is a quadratic in α minimised in closed form on [0, 1].
// What makes it fast here:
//  * the linear step returns a vertex Tc with at most n + m − 1 non-zeros, so the line search
//    needs only <G, Tc> (O(nnz)) and <C1 Tc C2, Tc> (O(nnz²)), no matrix product;
//  * G_c = C1 Tc C2 is only formed when the iteration continues, and from the previous vertex's
//    G by a rank-k update when few entries of the vertex changed (often a handful late on);
//  * the network simplex restarts from the previous optimal basis, and the first linear step starts
//    from a basis at the start itself (identity), or at the known optimum of the first step (from
//    p qᵀ the gradient is rank one, so the sorted matching is optimal), so no cold start is paid;
//  * the remaining dense products run on a WebAssembly SIMD kernel (linalg.ts).
//
// Entropic GW (Peyré et al. 2016; as POT's entropic_gromov_wasserstein): T ← Sinkhorn_ε(p, q, ∇E(T)),
// stopping when ‖T − T_prev‖_F ≤ tol (checked every 10 iterations).

import { NetworkSimplex, type SparsePlan, validateMarginals } from './emd.js';
import { matmul } from './linalg.js';
import { sinkhorn } from './sinkhorn.js';

export type GwSolver = 'cg' | 'entropic';
export type GwInit = 'best' | 'identity' | 'product';

export interface GwOptions {
  /** Weights of C1's points (default uniform). */
  p?: Float64Array;
  /** Weights of C2's points (default uniform). */
  q?: Float64Array;
  solver?: GwSolver;
  /** Start: 'best' (default) runs identity (when n = m and p = q) and product and keeps the lower E. */
  init?: GwInit | Float64Array;
  /** Entropic regularisation (entropic solver only; default 0.05). */
  epsilon?: number;
  /** Outer iterations (default 1000). */
  maxIter?: number;
  /** CG: stop when |ΔE| < tol or |ΔE|/E < tol (POT: 1e-9). Entropic: stop when ‖ΔT‖_F ≤ tol (1e-9). */
  tol?: number;
  returnPlan?: boolean;
}

export interface GwResult {
  /** Objective E at the returned coupling. */
  gw: number;
  /** ½·√E. */
  distance: number;
  /** E at diag(p) when n = m and p = q, else null. */
  identityValue: number | null;
  /** E at the product coupling p qᵀ. */
  productValue: number;
  /** Start of the run whose result is returned. */
  init: 'identity' | 'product' | 'given';
  iterations: number;
  converged: boolean;
  seconds: number;
  /** n×m coupling, when returnPlan was set. */
  plan?: Float64Array;
}

interface Problem {
  C1: Float64Array;
  C2: Float64Array;
  n: number;
  m: number;
  p: Float64Array;
  q: Float64Array;
  /** pᵀ(C1∘C1)p + qᵀ(C2∘C2)q: E(T) = c0 − 2<C1 T C2, T> for any coupling of p, q. */
  c0: number;
  identityFeasible: boolean;
}

interface RunResult {
  E: number;
  plan: Float64Array;
  iterations: number;
  converged: boolean;
}

function sideOf(name: string, C: Float64Array): number {
  const n = Math.round(Math.sqrt(C.length));
  if (n * n !== C.length || n === 0) {
    throw new Error(`${name} has ${C.length} values, which is not n×n for any n ≥ 1: pass a square matrix`);
  }
  return n;
}

/** Checks a cost matrix: finite, symmetric. Tiny asymmetry (rounding) is averaged away. */
function checkedSpace(name: string, C: Float64Array, n: number): Float64Array {
  let scale = 0;
  for (let i = 0; i < C.length; i++) {
    const v = C[i]!;
    if (!Number.isFinite(v)) {
      throw new Error(`${name}[${Math.floor(i / n)}, ${i % n}] is ${v}: distances must be finite numbers`);
    }
    scale = Math.max(scale, Math.abs(v));
  }
  let asym = 0;
  let where = [0, 0];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const d = Math.abs(C[i * n + j]! - C[j * n + i]!);
      if (d > asym) {
        asym = d;
        where = [i, j];
      }
    }
  }
  if (asym === 0) return C;
  if (asym > 1e-9 * scale) {
    throw new Error(
      `${name} is not symmetric (|C[${where[0]}, ${where[1]}] − C[${where[1]}, ${where[0]}]| = ${asym}): ` +
        'GW here compares distance or dissimilarity matrices, which are symmetric',
    );
  }
  const out = new Float64Array(C.length);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = 0.5 * (C[i * n + j]! + C[j * n + i]!);
  }
  return out;
}

function uniform(n: number): Float64Array {
  return new Float64Array(n).fill(1 / n);
}

function quadraticForm(C: Float64Array, w: Float64Array, n: number, squared: boolean): number {
  let s = 0;
  for (let i = 0; i < n; i++) {
    let row = 0;
    const o = i * n;
    for (let k = 0; k < n; k++) {
      const c = C[o + k]!;
      row += (squared ? c * c : c) * w[k]!;
    }
    s += w[i]! * row;
  }
  return s;
}

function prepare(C1: Float64Array, C2: Float64Array, options: GwOptions): Problem {
  if (!(C1 instanceof Float64Array) || !(C2 instanceof Float64Array)) {
    throw new Error('C1 and C2 must be Float64Arrays (n×n and m×m, row-major)');
  }
  const n = sideOf('C1', C1);
  const m = sideOf('C2', C2);
  const p = options.p ?? uniform(n);
  const q = options.q ?? uniform(m);
  if (p.length !== n) throw new Error(`p has ${p.length} weights but C1 is ${n}×${n}`);
  if (q.length !== m) throw new Error(`q has ${q.length} weights but C2 is ${m}×${m}`);
  validateMarginals(p, q);
  const c1 = checkedSpace('C1', C1, n);
  const c2 = checkedSpace('C2', C2, m);
  let identityFeasible = n === m;
  if (identityFeasible) {
    for (let i = 0; i < n; i++) {
      if (Math.abs(p[i]! - q[i]!) > 1e-12 * Math.max(1, Math.abs(p[i]!))) {
        identityFeasible = false;
        break;
      }
    }
  }
  const c0 = quadraticForm(c1, p, n, true) + quadraticForm(c2, q, m, true);
  return { C1: c1, C2: c2, n, m, p, q, c0, identityFeasible };
}

/** C1 T C2 for dense T (C2 symmetric, so C2ᵀ = C2). Two products: O(n²m + nm²). */
function denseG(P: Problem, T: Float64Array): Float64Array {
  const { n, m } = P;
  return matmul(matmul(P.C1, T, n, n, m), P.C2, n, m, m);
}

/** E at diag(p): Σ_ik (C1_ik − C2_ik)² p_i p_k, O(n²). */
function identityObjective(P: Problem): number {
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
function productObjective(P: Problem): number {
  return P.c0 - 2 * quadraticForm(P.C1, P.p, P.n, false) * quadraticForm(P.C2, P.q, P.m, false);
}

/**
 * E(T) = Σ_ijkl (C1_ik − C2_jl)² T_ij T_kl for any non-negative T (n×m), with the marginals of T
 * itself: <constC(T), T> − 2<C1 T C2ᵀ, T>. Two matrix products.
 */
export function gwObjective(
  C1: Float64Array,
  C2: Float64Array,
  T: Float64Array,
  n: number,
  m: number,
): number {
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

/** Minimiser on [0, 1] of a α² + b α (POT's solve_1d_linesearch_quad). */
function quadraticStep(a: number, b: number): number {
  if (a > 0) return Math.min(1, Math.max(0, -b / (2 * a)));
  return a + b < 0 ? 1 : 0;
}

/**
 * C1 S C2 for a sparse S (entries sorted row-major), as one product of an n×k matrix (the columns
 * of C1 for the k distinct rows of S) with a k×m matrix (row i: Σ_j S_ij C2[j, :]). Added to
 * `into` when given. For a vertex k = n; for the difference of two vertices k is the number of
 * rows that moved, often a handful.
 */
function sparseG(P: Problem, S: SparsePlan, into?: Float64Array): Float64Array {
  const { n, m, C1, C2 } = P;
  const { rows, cols, values } = S;
  const distinct: number[] = [];
  for (let a = 0; a < values.length; a++) if (a === 0 || rows[a] !== rows[a - 1]) distinct.push(rows[a]!);
  const k = distinct.length;
  // Every row present (a vertex of a full-support p): the gathered columns are C1 itself.
  const A = k === n ? C1 : new Float64Array(n * k);
  const W = new Float64Array(k * m);
  let a = 0;
  for (let r = 0; r < k; r++) {
    const i = distinct[r]!;
    if (k !== n) for (let x = 0; x < n; x++) A[x * k + r] = C1[x * n + i]!;
    for (; a < values.length && rows[a] === i; a++) {
      const t = values[a]!;
      const o = cols[a]! * m;
      for (let l = 0; l < m; l++) W[r * m + l]! += t * C2[o + l]!;
    }
  }
  const product = matmul(A, W, n, k, m);
  if (!into) return product;
  for (let e = 0; e < n * m; e++) into[e]! += product[e]!;
  return into;
}

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

/** <C1 S C2, S> = Σ_ab s_a s_b C1[i_a, i_b] C2[j_a, j_b] for sparse S: O(nnz²). */
function sparseSelfProduct(P: Problem, S: SparsePlan): number {
  const { n, m, C1, C2 } = P;
  const { rows, cols, values } = S;
  const k = values.length;
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

interface CgStart {
  T: Float64Array;
  G: Float64Array;
  /** When the start is itself a vertex (identity): its sparse form; G is then its G. */
  vertex?: SparsePlan;
  /**
   * Row and column orders whose north-west-corner plan is a good first basis for the simplex:
   * the identity itself, or — from the product coupling, where the first linear cost −(C1p)(C2q)ᵀ
   * is Monge in ascending order — the optimal first step, so no cold start is paid.
   */
  basis?: { rows: Int32Array; cols: Int32Array };
}

function ascendingOrder(values: Float64Array): Int32Array {
  return Int32Array.from(values.keys()).sort((x, y) => values[x]! - values[y]! || x - y);
}

function identityStart(P: Problem): CgStart {
  const { n, p, C1, C2 } = P;
  const T = new Float64Array(n * n);
  for (let i = 0; i < n; i++) T[i * n + i] = p[i]!;
  // C1 diag(p) C2: scale C1's columns, one product.
  const scaled = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) scaled[i * n + k] = C1[i * n + k]! * p[k]!;
  const G = matmul(scaled, C2, n, n, n);
  const keep = Array.from(p, (w, i) => (w > 0 ? i : -1)).filter((i) => i >= 0);
  const vertex: SparsePlan = {
    rows: Int32Array.from(keep),
    cols: Int32Array.from(keep),
    values: Float64Array.from(keep, (i) => p[i]!),
  };
  const order = Int32Array.from({ length: n }, (_, i) => i);
  return { T, G, vertex, basis: { rows: order, cols: order } };
}

function productStart(P: Problem): CgStart {
  const { n, m, p, q, C1, C2 } = P;
  const T = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) T[i * m + j] = p[i]! * q[j]!;
  // C1 p qᵀ C2 = (C1 p)(C2 q)ᵀ: rank one, O(n² + m²).
  const u = new Float64Array(n);
  const v = new Float64Array(m);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) u[i]! += C1[i * n + k]! * p[k]!;
  for (let j = 0; j < m; j++) for (let l = 0; l < m; l++) v[j]! += C2[j * m + l]! * q[l]!;
  const G = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) G[i * m + j] = u[i]! * v[j]!;
  return { T, G, basis: { rows: ascendingOrder(u), cols: ascendingOrder(v) } };
}

function givenStart(P: Problem, T0: Float64Array): CgStart {
  const { n, m, p, q } = P;
  if (T0.length !== n * m) throw new Error(`the initial plan has ${T0.length} entries, expected ${n}×${m}`);
  const rows = new Float64Array(n);
  const cols = new Float64Array(m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const t = T0[i * m + j]!;
      if (!(t >= 0) || !Number.isFinite(t)) {
        throw new Error(`the initial plan has T[${i}, ${j}] = ${t}: entries must be finite and ≥ 0`);
      }
      rows[i]! += t;
      cols[j]! += t;
    }
  }
  for (let i = 0; i < n; i++) {
    if (Math.abs(rows[i]! - p[i]!) > 1e-8)
      throw new Error(`the initial plan's row ${i} sums to ${rows[i]}, not p[${i}] = ${p[i]}`);
  }
  for (let j = 0; j < m; j++) {
    if (Math.abs(cols[j]! - q[j]!) > 1e-8)
      throw new Error(`the initial plan's column ${j} sums to ${cols[j]}, not q[${j}] = ${q[j]}`);
  }
  const T = Float64Array.from(T0);
  return { T, G: denseG(P, T) };
}

function conditionalGradient(P: Problem, start: CgStart, maxIter: number, tol: number): RunResult {
  const { n, m, p, q, c0 } = P;
  const { T, G } = start;
  const size = n * m;
  const simplex = new NetworkSimplex(p, q);
  if (start.basis) {
    // With equal weights the corner plan pairs the k-th row with the k-th column: a permutation,
    // which has a shallow basis; otherwise the staircase.
    const { rows, cols } = start.basis;
    const sigma = new Int32Array(n);
    if (n === m) for (let k = 0; k < n; k++) sigma[rows[k]!] = cols[k]!;
    if (!(n === m && simplex.setPermutationBasis(sigma))) simplex.setNorthWestBasis(rows, cols);
  }
  let vertex = start.vertex;
  let vertexG: Float64Array | undefined = start.vertex ? Float64Array.from(G) : undefined;
  let gT = 0;
  for (let e = 0; e < size; e++) gT += G[e]! * T[e]!;
  let E = c0 - 2 * gT;
  let iterations = 0;
  let converged = false;
  while (iterations < maxIter) {
    iterations++;
    const Tc = simplex.solveSparse(G, { negate: true });
    // E(T + αΔ) = E − 4α<G, Δ> − 2α²<C1 Δ C2, Δ>, Δ = Tc − T, using <C1 T C2, Tc> = <G, Tc>.
    let gTc = 0;
    for (let a = 0; a < Tc.values.length; a++) gTc += G[Tc.rows[a]! * m + Tc.cols[a]!]! * Tc.values[a]!;
    const tcTc = sparseSelfProduct(P, Tc);
    const quad = -2 * (tcTc - 2 * gTc + gT);
    const lin = -4 * (gTc - gT);
    const alpha = quadraticStep(quad, lin);
    const Enew = E + quad * alpha * alpha + lin * alpha;
    const absDelta = Math.abs(Enew - E);
    const stop = absDelta < tol || absDelta / Math.abs(Enew) < tol;
    if (alpha > 0) {
      for (let e = 0; e < size; e++) T[e]! *= 1 - alpha;
      for (let a = 0; a < Tc.values.length; a++) T[Tc.rows[a]! * m + Tc.cols[a]!]! += alpha * Tc.values[a]!;
    }
    E = Enew;
    if (stop) {
      converged = true;
      break;
    }
    if (iterations >= maxIter) break;
    // G_c = C1 Tc C2: from the previous vertex by a rank-k update when fewer rows moved than Tc has.
    let Gc: Float64Array;
    const diff = vertex && vertexG ? sparseDifference(Tc, vertex, m) : undefined;
    if (diff && vertexG && distinctRows(diff) < distinctRows(Tc)) {
      Gc = diff.values.length > 0 ? sparseG(P, diff, vertexG) : vertexG;
    } else {
      Gc = sparseG(P, Tc);
    }
    vertex = Tc;
    vertexG = Gc;
    for (let e = 0; e < size; e++) G[e] = (1 - alpha) * G[e]! + alpha * Gc[e]!;
    gT = 0;
    for (let e = 0; e < size; e++) gT += G[e]! * T[e]!;
    E = c0 - 2 * gT;
  }
  return { E, plan: T, iterations, converged };
}

function entropic(P: Problem, T0: Float64Array, epsilon: number, maxIter: number, tol: number): RunResult {
  const { n, m, p, q } = P;
  const size = n * m;
  let T = T0;
  const gradient = new Float64Array(size);
  let iterations = 0;
  let converged = false;
  // ∇E = 2(constC − 2G); constC's row/column constants are absorbed by Sinkhorn's scalings, but
  // POT feeds the full gradient, and its Sinkhorn starts from fixed scalings, so keep it for parity.
  const rowConst = new Float64Array(n);
  const colConst = new Float64Array(m);
  for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) rowConst[i]! += P.C1[i * n + k]! ** 2 * p[k]!;
  for (let j = 0; j < m; j++) for (let l = 0; l < m; l++) colConst[j]! += P.C2[j * m + l]! ** 2 * q[l]!;
  while (iterations < maxIter) {
    const G = denseG(P, T);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < m; j++) gradient[i * m + j] = 2 * (rowConst[i]! + colConst[j]! - 2 * G[i * m + j]!);
    }
    const next = sinkhorn(p, q, gradient, epsilon).plan;
    const check = iterations % 10 === 0;
    let change = 0;
    if (check) for (let e = 0; e < size; e++) change += (next[e]! - T[e]!) ** 2;
    T = next;
    iterations++;
    if (check && Math.sqrt(change) <= tol) {
      converged = true;
      break;
    }
  }
  return { E: gwObjective(P.C1, P.C2, T, n, m), plan: T, iterations, converged };
}

/**
 * Gromov–Wasserstein between (C1, p) and (C2, q), square loss. C1 is n×n, C2 m×m (row-major,
 * symmetric). See GwOptions for the solver and start; the result carries E, ½√E and the values at
 * the identity and product couplings.
 */
export function gromovWasserstein(C1: Float64Array, C2: Float64Array, options: GwOptions = {}): GwResult {
  const started = performance.now();
  const P = prepare(C1, C2, options);
  const solver = options.solver ?? 'cg';
  if (solver !== 'cg' && solver !== 'entropic')
    throw new Error(`unknown solver '${String(solver)}': use cg or entropic`);
  const maxIter = options.maxIter ?? 1000;
  if (!Number.isInteger(maxIter) || maxIter < 1)
    throw new Error(`maxIter must be a positive integer, got ${maxIter}`);
  const tol = options.tol ?? 1e-9;
  if (!(tol >= 0)) throw new Error(`tol must be ≥ 0, got ${tol}`);
  const epsilon = options.epsilon ?? 0.05;
  if (solver === 'entropic' && !(epsilon > 0 && Number.isFinite(epsilon))) {
    throw new Error(`epsilon must be a positive number, got ${epsilon}`);
  }
  const init = options.init ?? 'best';
  if (init === 'identity' && !P.identityFeasible) {
    throw new Error(
      `the identity start needs spaces of equal size with equal weights (got ${P.n} and ${P.m} points${P.n === P.m ? ' with different weights' : ''}); use init 'product' or 'best'`,
    );
  }
  const starts: { kind: 'identity' | 'product' | 'given'; make: () => CgStart }[] = [];
  if (init instanceof Float64Array) starts.push({ kind: 'given', make: () => givenStart(P, init) });
  else if (init === 'identity') starts.push({ kind: 'identity', make: () => identityStart(P) });
  else if (init === 'product') starts.push({ kind: 'product', make: () => productStart(P) });
  else if (init === 'best') {
    if (P.identityFeasible) starts.push({ kind: 'identity', make: () => identityStart(P) });
    starts.push({ kind: 'product', make: () => productStart(P) });
  } else throw new Error(`unknown init '${String(init)}': use best, identity, product or a plan`);

  let best: (RunResult & { kind: 'identity' | 'product' | 'given' }) | undefined;
  for (const start of starts) {
    let run: RunResult;
    if (solver === 'cg') {
      run = conditionalGradient(P, start.make(), maxIter, tol);
    } else {
      const T0 =
        start.kind === 'identity'
          ? identityStart(P).T
          : start.kind === 'product'
            ? productStart(P).T
            : givenStart(P, init as Float64Array).T;
      run = entropic(P, T0, epsilon, maxIter, tol);
    }
    if (!best || run.E < best.E) best = { ...run, kind: start.kind };
    // E ≥ 0, so a start that reached 0 (up to rounding) cannot be beaten.
    if (best.E <= 1e-15 * P.c0) break;
  }
  const result = best!;
  // E is a sum of squares; a tiny negative value is rounding in c0 − 2<G, T>.
  const gw = Math.max(0, result.E);
  return {
    gw,
    distance: 0.5 * Math.sqrt(Math.max(0, gw)),
    identityValue: P.identityFeasible ? identityObjective(P) : null,
    productValue: productObjective(P),
    init: result.kind,
    iterations: result.iterations,
    converged: result.converged,
    seconds: (performance.now() - started) / 1000,
    ...(options.returnPlan ? { plan: result.plan } : {}),
  };
}
