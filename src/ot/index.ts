// Gromov–Wasserstein engine: exact OT (network simplex), conditional-gradient and entropic GW,
// and a worker-thread pool for solving many problems at once.
export { type EmdResult, emd, NetworkSimplex, type SparsePlan, validateMarginals } from './emd.js';
export {
  type GwInit,
  type GwOptions,
  type GwResult,
  type GwSolver,
  gromovWasserstein,
  gwObjective,
} from './gromov.js';
export { GwPool, type GwPoolOptions } from './pool.js';
export { type SinkhornOptions, type SinkhornResult, sinkhorn } from './sinkhorn.js';
