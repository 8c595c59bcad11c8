// Gromov–Wasserstein discrepancy with the square loss between two metric-measure spaces
// (C1, p) and (C2, q):  E(T) = Σ_ijkl (C1_ik − C2_jl)² T_ij T_kl  over couplings T of p and q
// (POT's ot/gromov/_gw.py gromov_wasserstein, and its entropic variant). The pieces:
// problem.ts (set-up), loss.ts (tensor products and objective), starts.ts, cg.ts (conditional
// gradient with its closed-form line search), entropic.ts.

import { conditionalGradient, type GwRun } from './cg.js';
import { entropicGw } from './entropic.js';
import { identityObjective, productObjective } from './loss.js';
import { isLowRankCost, lowRankToDense, prepareLowRankProblem } from './lowrank.js';
import { type GwCost, type GwProblem, prepareDenseProblem } from './problem.js';
import { type GwStart, givenStart, identityStart, productStart } from './starts.js';
import { detached, withWorkspace } from './workspace.js';

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
  init: StartKind;
  iterations: number;
  converged: boolean;
  /**
   * Wall-clock seconds of the call: input checks, every start and its iterations (for
   * solveBestOnTwoThreads, also its worker's start-up).
   */
  seconds: number;
  /** n×m coupling, when returnPlan was set. */
  plan?: Float64Array;
}

type StartKind = 'identity' | 'product' | 'given';

interface SolverSettings {
  solver: GwSolver;
  maxIter: number;
  tol: number;
  epsilon: number;
}

function solverSettings(options: GwOptions): SolverSettings {
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
  return { solver, maxIter, tol, epsilon };
}

/** The starts to run, in order: 'best' tries identity (when feasible) and then product. */
function chooseStarts(
  P: GwProblem,
  init: GwInit | Float64Array,
  withPlan: boolean,
): { kind: StartKind; make: () => GwStart }[] {
  if (init === 'identity' && !P.identityFeasible) {
    throw new Error(
      `the identity start needs spaces of equal size with equal weights (got ${P.n} and ${P.m} points${P.n === P.m ? ' with different weights' : ''}); use init 'product' or 'best'`,
    );
  }
  if (init instanceof Float64Array) return [{ kind: 'given', make: () => givenStart(P, init) }];
  if (init === 'identity') return [{ kind: 'identity', make: () => identityStart(P, withPlan) }];
  if (init === 'product') return [{ kind: 'product', make: () => productStart(P, withPlan) }];
  if (init === 'best') {
    const starts: { kind: StartKind; make: () => GwStart }[] = [];
    if (P.identityFeasible) starts.push({ kind: 'identity', make: () => identityStart(P, withPlan) });
    starts.push({ kind: 'product', make: () => productStart(P, withPlan) });
    return starts;
  }
  throw new Error(`unknown init '${String(init)}': use best, identity, product or a plan`);
}

function runFrom(P: GwProblem, start: GwStart, s: SolverSettings): GwRun {
  return s.solver === 'cg'
    ? conditionalGradient(P, start, s.maxIter, s.tol)
    : entropicGw(P, start.T, s.epsilon, s.maxIter, s.tol);
}

/** Runs the chosen starts and keeps the lowest E. */
function solveProblem(P: GwProblem, options: GwOptions, started = performance.now()): GwResult {
  const settings = solverSettings(options);
  // CG tracks E without the plan; the entropic solver iterates on it.
  const withPlan = options.returnPlan === true || settings.solver === 'entropic';
  const starts = chooseStarts(P, options.init ?? 'best', withPlan);
  let best: (GwRun & { kind: StartKind }) | undefined;
  for (const start of starts) {
    // Each start's arrays are freed when it ends; only its plan is kept, when it is returned (a
    // copy is n·m fresh pages, which a cold process pays for in page faults).
    const run = withWorkspace(() => {
      const r = runFrom(P, start.make(), settings);
      return { ...r, plan: options.returnPlan ? detached(r.plan) : new Float64Array(0) };
    });
    if (!best || run.E < best.E) best = { ...run, kind: start.kind };
    // E ≥ 0, so a start that reached 0 (up to rounding) cannot be beaten.
    if (best.E <= 1e-15 * P.c0) break;
  }
  const result = best!;
  // E is a sum of squares; a tiny negative value is rounding in c0 − 2<G, T>.
  const gw = Math.max(0, result.E);
  return {
    gw,
    distance: 0.5 * Math.sqrt(gw),
    identityValue: P.identityFeasible ? identityObjective(P) : null,
    productValue: productObjective(P),
    init: result.kind,
    iterations: result.iterations,
    converged: result.converged,
    seconds: (performance.now() - started) / 1000,
    ...(options.returnPlan ? { plan: result.plan } : {}),
  };
}

/**
 * The problem in the form that computes fastest: factored when both costs are factored with rank
 * below half their size (then a product costs O(n·m·r) < O(n²m)); dense otherwise.
 */
function prepareProblem(C1: GwCost, C2: GwCost, options: GwOptions): GwProblem {
  if (isLowRankCost(C1) && isLowRankCost(C2) && 2 * C1.rank < C1.n && 2 * C2.rank < C2.n) {
    return prepareLowRankProblem(C1, C2, options);
  }
  const dense = (C: GwCost) => (isLowRankCost(C) ? lowRankToDense(C) : C);
  return prepareDenseProblem(dense(C1), dense(C2), options);
}

/**
 * Gromov–Wasserstein between (C1, p) and (C2, q), square loss. C1 is n×n, C2 m×m (row-major,
 * symmetric), or either in factored form (see squaredEuclideanCost). See GwOptions for the solver
 * and start; the result carries E, ½√E and the values at the identity and product couplings.
 */
export function gromovWasserstein(C1: GwCost, C2: GwCost, options: GwOptions = {}): GwResult {
  const started = performance.now();
  return withWorkspace(() => solveProblem(prepareProblem(C1, C2, options), options, started));
}
