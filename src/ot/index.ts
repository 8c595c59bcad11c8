// Optimal transport as a library: exact OT (network simplex), Sinkhorn, conditional-gradient and
// entropic Gromov–Wasserstein, and a worker-thread pool for solving many GW problems at once.
export { type EmdResult, emd, NetworkSimplex, type SparsePlan, validateMarginals } from './emd.js';
export {
  type GwInit,
  type GwOptions,
  type GwResult,
  type GwSolver,
  gromovWasserstein,
} from './gromov/gw.js';
export { gwObjective } from './gromov/loss.js';
export { lowRankToDense, squaredEuclideanCost } from './gromov/lowrank.js';
export { type GwCost, type LowRankCost, normaliseByMeanOffDiagonal } from './gromov/problem.js';
export { prepareKernels } from './gromov/workspace.js';
export { setKernelThreads } from './linalg.js';
export { GwPool, type GwPoolOptions, solveBestOnTwoThreads } from './pool.js';
export { type SinkhornOptions, type SinkhornResult, sinkhorn } from './sinkhorn.js';
