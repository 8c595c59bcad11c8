// Starting couplings for the GW solvers (POT's G0): the identity coupling diag(p) — the probe
// inputs correspond, so it is feasible and often near the optimum — the product coupling p qᵀ
// (POT's default), or a plan the caller gives. Each comes with its G = C1 T C2 and, for CG, a first
// basis for the network simplex.

import type { SparsePlan } from '../emd.js';
import { matmul } from '../linalg.js';
import { tensorProduct } from './loss.js';
import { coreProduct, lowRankCore, vertexCore } from './lowrank.js';
import type { GwProblem } from './problem.js';
import { loopsFor, residentArray, withWorkspace } from './workspace.js';

export interface GwStart {
  /** The start coupling (n×m), or empty when no plan is kept (CG only). */
  T: Float64Array;
  G: Float64Array;
  /** When the start is itself a vertex (identity): its sparse form; G is then its G. */
  vertex?: SparsePlan;
  /** Factored costs: the core B1ᵀ T B2 (r1×r2), so that G = A1 core A2ᵀ. */
  core?: Float64Array;
  /** <G, T> when the start knows it without a pass over n·m entries. */
  gT?: number;
  /**
   * Row and column orders whose north-west-corner plan is a good first basis for the simplex:
   * the identity itself, or — from the product coupling, where the first linear cost −(C1p)(C2q)ᵀ
   * is Monge in ascending order — the optimal first step, so no cold start is paid.
   */
  basis?: { rows: Int32Array; cols: Int32Array };
  /**
   * The basis's plan is already optimal for the first linear step (the product start's Monge
   * cost), so the first step takes it without running the simplex.
   */
  firstStepSolved?: boolean;
}

/**
 * The indices of `values` in ascending order of value, equal values (−0 = +0) in index order.
 * Sorts the values with the engine's numeric sort and places each index at its value's next free
 * slot, rather than sorting indices with a comparator: n log n comparator calls run in the
 * interpreter in a cold process (≈ 0.7 ms at n = 256).
 * @internal exported for its test
 */
export function ascendingOrder(values: Float64Array): Int32Array {
  const n = values.length;
  const order = new Int32Array(n);
  if (!values.every(Number.isFinite)) {
    return Int32Array.from(values.keys()).sort((x, y) => values[x]! - values[y]! || x - y);
  }
  const sorted = values.slice().sort();
  // The first slot of each value (a Map's keys compare −0 and +0 as equal, as the order does).
  const slot = new Map<number, number>();
  for (let k = n - 1; k >= 0; k--) slot.set(sorted[k]!, k);
  for (let i = 0; i < n; i++) {
    const k = slot.get(values[i]!)!;
    order[k] = i;
    slot.set(values[i]!, k + 1);
  }
  return order;
}

/**
 * The start coupling T, or an empty array when the caller needs no plan: CG tracks E without it
 * (E = c0 − 2<G, T> from the line search), and an n×m array is n·m fresh pages a cold process
 * pays for in page faults.
 */
function startPlan(length: number, withPlan: boolean): Float64Array {
  return withPlan ? residentArray(length) : new Float64Array(0);
}

export function identityStart(P: GwProblem, withPlan = true): GwStart {
  const { n, p } = P;
  const T = startPlan(n * n, withPlan);
  if (withPlan) for (let i = 0; i < n; i++) T[i * n + i] = p[i]!;
  const keep = Array.from(p, (w, i) => (w > 0 ? i : -1)).filter((i) => i >= 0);
  const vertex: SparsePlan = {
    rows: Int32Array.from(keep),
    cols: Int32Array.from(keep),
    values: Float64Array.from(keep, (i) => p[i]!),
  };
  let G: Float64Array;
  let core: Float64Array | undefined;
  if (P.kind === 'lowRank') {
    core = vertexCore(P, vertex);
    G = coreProduct(P, core);
  } else {
    // C1 diag(p) C2: scale C1's columns, one product.
    const { C1, C2 } = P;
    G = residentArray(n * n);
    const product = G;
    // The scaled copy is freed at once, so the solve's next array reuses its (faulted-in) pages.
    withWorkspace(() => {
      const scaled = residentArray(n * n);
      const ws = loopsFor(C1, p, scaled);
      if (ws) ws.loops.scale_columns(C1.byteOffset, p.byteOffset, scaled.byteOffset, n, n);
      else for (let i = 0; i < n; i++) for (let k = 0; k < n; k++) scaled[i * n + k] = C1[i * n + k]! * p[k]!;
      matmul(scaled, C2, n, n, n, product);
    });
  }
  const order = Int32Array.from({ length: n }, (_, i) => i);
  // <G, diag(p)> = Σ_i p_i G_ii.
  let gT = 0;
  for (let i = 0; i < n; i++) gT += p[i]! * G[i * n + i]!;
  return { T, G, vertex, basis: { rows: order, cols: order }, gT, ...(core ? { core } : {}) };
}

export function productStart(P: GwProblem, withPlan = true): GwStart {
  const { n, m, p, q } = P;
  const T = startPlan(n * m, withPlan);
  if (withPlan) {
    if (p.every((w) => w === p[0]) && q.every((w) => w === q[0])) T.fill(p[0]! * q[0]!);
    else for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) T[i * m + j] = p[i]! * q[j]!;
  }
  // C1 p qᵀ C2 = (C1 p)(C2 q)ᵀ: rank one, O(n² + m²) (O((n + m)·r) factored, where the core is
  // (B1ᵀp)(B2ᵀq)ᵀ and C p = A (Bᵀp)).
  let u: Float64Array;
  let v: Float64Array;
  let core: Float64Array | undefined;
  if (P.kind === 'lowRank') {
    const { F1, F2 } = P;
    const bp = matmul(F1.Bt, p, F1.r, n, 1);
    const bq = matmul(F2.Bt, q, F2.r, m, 1);
    u = matmul(F1.A, bp, n, F1.r, 1);
    v = matmul(F2.A, bq, m, F2.r, 1);
    core = matmul(bp, bq, F1.r, 1, F2.r);
  } else [u, v] = [P.C1p, P.C2q];
  const G = residentArray(n * m);
  const ws = loopsFor(u, v, G);
  if (ws) ws.loops.outer(u.byteOffset, v.byteOffset, G.byteOffset, n, m);
  else for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) G[i * m + j] = u[i]! * v[j]!;
  // <u vᵀ, p qᵀ> = (pᵀu)(qᵀv).
  let pu = 0;
  let qv = 0;
  for (let i = 0; i < n; i++) pu += p[i]! * u[i]!;
  for (let j = 0; j < m; j++) qv += q[j]! * v[j]!;
  return {
    T,
    G,
    gT: pu * qv,
    basis: { rows: ascendingOrder(u), cols: ascendingOrder(v) },
    firstStepSolved: true,
    ...(core ? { core } : {}),
  };
}

export function givenStart(P: GwProblem, T0: Float64Array): GwStart {
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
  if (P.kind === 'lowRank') {
    const core = lowRankCore(P, T);
    return { T, G: coreProduct(P, core), core };
  }
  return { T, G: tensorProduct(P, T) };
}
