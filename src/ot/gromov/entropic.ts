// Entropic GW (Peyré, Cuturi & Solomon 2016; as POT's entropic_gromov_wasserstein): projected
// mirror descent T ← Sinkhorn_ε(p, q, ∇E(T)), stopping when ‖T − T_prev‖_F ≤ tol (checked every 10
// iterations, as POT does).

import { sinkhorn } from '../sinkhorn.js';
import type { GwRun } from './cg.js';
import { constCTerms, objectiveOf, tensorProduct } from './loss.js';
import type { GwProblem } from './problem.js';

export function entropicGw(
  P: GwProblem,
  T0: Float64Array,
  epsilon: number,
  maxIter: number,
  tol: number,
): GwRun {
  const { n, m, p, q } = P;
  const size = n * m;
  let T = T0;
  const gradient = new Float64Array(size);
  let iterations = 0;
  let converged = false;
  // ∇E = 2(constC − 2G); constC's row/column constants are absorbed by Sinkhorn's scalings, but
  // POT feeds the full gradient, and its Sinkhorn starts from fixed scalings, so keep it for parity.
  const [rowConst, colConst] = constCTerms(P);
  while (iterations < maxIter) {
    const G = tensorProduct(P, T);
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
  return { E: objectiveOf(P, T), plan: T, iterations, converged };
}
