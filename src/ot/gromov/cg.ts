// Conditional gradient (Frank–Wolfe) for GW with the square loss — POT's ot/optim.py `cg` with the
// GW line search of ot/gromov (Vayer, Chapel, Flamary, Tavenard & Courty 2019, "Optimal transport
// for structured data with application on graphs", Alg. 2). The linear step is exact OT on the
// gradient — equivalently on −G, since row/column constants do not change the optimal plan — and
// E(T + αΔ) is a quadratic in α minimised in closed form on [0, 1].
// What makes it fast:
//  * the linear step returns a vertex Tc with at most n + m − 1 non-zeros, so the line search
//    needs only <G, Tc> (O(nnz)) and <C1 Tc C2, Tc> (O(nnz²)), no matrix product;
//  * G_c = C1 Tc C2 is only formed when the iteration continues, and from the previous vertex's
//    G by a rank-k update when few entries of the vertex changed (often a handful late on);
//  * the network simplex restarts from the previous optimal basis, and the first linear step starts
//    from a basis at the start itself (identity), or at the known optimum of the first step (from
//    p qᵀ the gradient is rank one, so the sorted matching is optimal and is taken without a solve),
//    so no cold start is paid;
//  * the remaining dense products run on a WebAssembly SIMD kernel (linalg.ts), and the O(n·m)
//    loops (the blend of G, the vertex products' gathers) in WebAssembly on arrays that stay in
//    its memory for the whole solve (workspace.ts).

import { NetworkSimplex, type SparsePlan } from '../emd.js';
import { vertexProduct, vertexTerms } from './loss.js';
import { coreProduct } from './lowrank.js';
import type { GwProblem } from './problem.js';
import type { GwStart } from './starts.js';
import { loopsFor, residentArray } from './workspace.js';

export interface GwRun {
  E: number;
  plan: Float64Array;
  iterations: number;
  converged: boolean;
}

/** Minimiser on [0, 1] of a α² + b α (POT's solve_1d_linesearch_quad). */
function quadraticStep(a: number, b: number): number {
  if (a > 0) return Math.min(1, Math.max(0, -b / (2 * a)));
  return a + b < 0 ? 1 : 0;
}

/**
 * The exact line search for GW (POT's solve_gromov_linesearch), from the vertex's sparse form and
 * tcTc = <C1 Tc C2, Tc>:
 * E(T + αΔ) = E − 4α<G, Δ> − 2α²<C1 Δ C2, Δ>, Δ = Tc − T, using <C1 T C2, Tc> = <G, Tc>.
 * Returns the step and the coefficients a α² + b α of the change in E.
 */
function gwLineSearch(
  P: GwProblem,
  G: Float64Array,
  gT: number,
  Tc: SparsePlan,
  tcTc: number,
): { alpha: number; quad: number; lin: number; gTc: number } {
  const { m } = P;
  let gTc = 0;
  for (let a = 0; a < Tc.values.length; a++) gTc += G[Tc.rows[a]! * m + Tc.cols[a]!]! * Tc.values[a]!;
  const quad = -2 * (tcTc - 2 * gTc + gT);
  const lin = -4 * (gTc - gT);
  return { alpha: quadraticStep(quad, lin), quad, lin, gTc };
}

function simplexFrom(P: GwProblem, start: GwStart): NetworkSimplex {
  const { n, m, p, q } = P;
  const simplex = new NetworkSimplex(p, q);
  if (start.basis) {
    // With equal weights the corner plan pairs the k-th row with the k-th column: a permutation,
    // which has a shallow basis; otherwise the staircase.
    const { rows, cols } = start.basis;
    const sigma = new Int32Array(n);
    if (n === m) for (let k = 0; k < n; k++) sigma[rows[k]!] = cols[k]!;
    if (!(n === m && simplex.setPermutationBasis(sigma))) simplex.setNorthWestBasis(rows, cols);
  }
  return simplex;
}

function innerProduct(G: Float64Array, T: Float64Array): number {
  let s = 0;
  for (let e = 0; e < G.length; e++) s += G[e]! * T[e]!;
  return s;
}

/**
 * The iterate T as scale·stored, so the step T ← (1 − α)T + α·Tc costs O(nnz(Tc)) — the scale
 * absorbs the (1 − α) — instead of a pass over all n·m entries; T is read only at the end.
 */
class ScaledPlan {
  private scale = 1;
  /**
   * The support of the stored array while it is exactly one vertex (zero elsewhere), so that a
   * full step (α = 1; on squared Euclidean costs E is concave along the couplings, so every step
   * is one) clears only those entries instead of all n·m.
   */
  private vertex: SparsePlan | undefined;
  constructor(
    private readonly stored: Float64Array,
    vertex?: SparsePlan,
  ) {
    this.vertex = vertex;
  }

  step(alpha: number, Tc: SparsePlan, m: number): void {
    // An empty array: the caller keeps no plan.
    if (alpha <= 0 || this.stored.length === 0) return;
    const { stored, vertex } = this;
    if (alpha >= 1) {
      if (vertex)
        for (let a = 0; a < vertex.values.length; a++) stored[vertex.rows[a]! * m + vertex.cols[a]!] = 0;
      else stored.fill(0);
      this.scale = 1;
      this.vertex = Tc;
    } else {
      this.scale *= 1 - alpha;
      this.vertex = undefined;
      // Keep the stored entries far from overflow (many steps with α near 1).
      if (this.scale < 1e-100) this.settle();
    }
    const w = alpha / this.scale;
    for (let a = 0; a < Tc.values.length; a++) stored[Tc.rows[a]! * m + Tc.cols[a]!]! += w * Tc.values[a]!;
  }

  /** Applies the scale: the stored array is T again. */
  settle(): Float64Array {
    const { stored, scale } = this;
    const ws = scale !== 1 ? loopsFor(stored) : null;
    if (ws) ws.loops.scale(stored.byteOffset, stored.length, scale);
    else if (scale !== 1) for (let e = 0; e < stored.length; e++) stored[e]! *= scale;
    this.scale = 1;
    return stored;
  }
}

export function conditionalGradient(P: GwProblem, start: GwStart, maxIter: number, tol: number): GwRun {
  const { m, c0 } = P;
  const { G } = start;
  const size = G.length;
  const T = new ScaledPlan(start.T, start.vertex);
  // Factored costs: G = A1 K A2ᵀ is linear in the core K = B1ᵀ T B2, so the step blends the r1×r2
  // cores and forms G once, in place, rather than forming the vertex's G and blending n·m entries.
  const core = P.kind === 'lowRank' ? start.core : undefined;
  const simplex = simplexFrom(P, start);
  // Dense costs update the vertex product from the previous one; factored costs never need it.
  let previous: { vertex: SparsePlan; G: Float64Array } | undefined;
  if (start.vertex && P.kind === 'dense') {
    previous = { vertex: start.vertex, G: residentArray(size) };
    previous.G.set(G);
  }
  // Where a full vertex product goes (the rank-k updates work in place on the previous one), so
  // that a solve allocates at most three n×m arrays: G, the previous vertex's product and this.
  let spare: Float64Array | undefined;
  let gT = start.gT ?? innerProduct(G, start.T);
  let E = c0 - 2 * gT;
  let iterations = 0;
  let converged = false;
  while (iterations < maxIter) {
    iterations++;
    // From the product start the first step's optimum is the basis's own plan (a Monge cost in the
    // sorted orders, so the north-west corner rule is optimal; Burkard, Klinz & Rudolf 1996):
    // the simplex would only make degenerate pivots to prove it.
    const Tc =
      iterations === 1 && start.firstStepSolved
        ? simplex.sparsePlan()
        : simplex.solveSparse(G, { negate: true });
    const terms = vertexTerms(P, Tc);
    const { alpha, quad, lin, gTc } = gwLineSearch(P, G, gT, Tc, terms.selfProduct);
    const Enew = E + quad * alpha * alpha + lin * alpha;
    const absDelta = Math.abs(Enew - E);
    const stop = absDelta < tol || absDelta / Math.abs(Enew) < tol;
    T.step(alpha, Tc, m);
    E = Enew;
    if (stop) {
      converged = true;
      break;
    }
    if (iterations >= maxIter) break;
    if (P.kind === 'lowRank' && core && terms.core) {
      for (let r = 0; r < core.length; r++) core[r] = (1 - alpha) * core[r]! + alpha * terms.core[r]!;
      coreProduct(P, core, G);
    } else {
      if (P.kind === 'dense') spare ??= residentArray(size);
      const Gc = vertexProduct(P, Tc, terms, previous, spare);
      if (P.kind === 'dense') {
        if (Gc === spare) spare = previous?.G;
        previous = { vertex: Tc, G: Gc };
      }
      const ws = loopsFor(G, Gc);
      if (ws) ws.loops.blend(G.byteOffset, Gc.byteOffset, size, 1 - alpha, alpha);
      else for (let e = 0; e < size; e++) G[e] = (1 - alpha) * G[e]! + alpha * Gc[e]!;
    }
    // <G', T'> for G' = (1 − α)G + αGc, T' = (1 − α)T + αTc, with <Gc, T> = <G, Tc> (symmetric
    // costs) and <Gc, Tc> = tcTc: no pass over the n·m entries.
    gT = (1 - alpha) * (1 - alpha) * gT + 2 * alpha * (1 - alpha) * gTc + alpha * alpha * terms.selfProduct;
    E = c0 - 2 * gT;
  }
  // The next start's simplex takes over its memory.
  simplex.release();
  return { E, plan: T.settle(), iterations, converged };
}
