// Entropic optimal transport by Sinkhorn–Knopp scaling (Cuturi 2013), stabilised by absorbing
// large scalings into dual potentials (Schmitzer 2019, "Stabilized sparse scaling algorithms for
// entropy regularized transport problems", Alg. 2) so that small ε neither overflows nor underflows.
// In exact arithmetic the iterates are those of POT's `sinkhorn_knopp` (start u = 1/n, same
// update order, stop when the column-marginal error in ℓ2 falls below the threshold, checked every
// 10 iterations), which lets entropic GW agree with POT even when Sinkhorn stops early.

export interface SinkhornOptions {
  maxIter?: number;
  /** Stop when ‖Pᵀ1 − b‖₂ < tol. */
  tol?: number;
}

export interface SinkhornResult {
  plan: Float64Array;
  iterations: number;
  converged: boolean;
}

/** Scalings beyond this are folded into the potentials (Schmitzer's τ). */
const ABSORB_ABOVE = 1e30;

/** log Σ_i exp(x_i), stable. */
function logSumExp(values: Float64Array, count: number): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) if (values[i]! > max) max = values[i]!;
  if (max === Number.NEGATIVE_INFINITY) return max;
  let s = 0;
  for (let i = 0; i < count; i++) s += Math.exp(values[i]! - max);
  return max + Math.log(s);
}

/**
 * argmin_P <P, M> − ε H(P) over couplings of (a, b), M n×m row-major. Returns P = diag(u) K diag(v)
 * with K = exp(−M/ε), computed as exp((f_i + g_j − M_ij)/ε) · ũ_i ṽ_j.
 */
export function sinkhorn(
  a: Float64Array,
  b: Float64Array,
  M: Float64Array,
  epsilon: number,
  options: SinkhornOptions = {},
): SinkhornResult {
  const n = a.length;
  const m = b.length;
  if (M.length !== n * m) throw new Error(`sinkhorn: cost has ${M.length} entries, expected ${n}×${m}`);
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) {
    throw new Error(`epsilon must be a positive finite number, got ${epsilon}`);
  }
  const maxIter = options.maxIter ?? 1000;
  const tol = options.tol ?? 1e-9;
  const f = new Float64Array(n);
  const g = new Float64Array(m);
  // POT starts from u = 1/n and first updates v; do that half-step in the log domain, then carry
  // both potentials into the kernel so the scalings start at 1.
  f.fill(epsilon * Math.log(1 / n));
  const column = new Float64Array(n);
  for (let j = 0; j < m; j++) {
    for (let i = 0; i < n; i++) column[i] = (f[i]! - M[i * m + j]!) / epsilon;
    const lse = logSumExp(column, n);
    g[j] = b[j]! > 0 ? epsilon * (Math.log(b[j]!) - lse) : Number.NEGATIVE_INFINITY;
  }
  const K = new Float64Array(n * m);
  const rebuildKernel = () => {
    for (let i = 0; i < n; i++) {
      const o = i * m;
      const fi = f[i]!;
      for (let j = 0; j < m; j++) K[o + j] = Math.exp((fi + g[j]! - M[o + j]!) / epsilon);
    }
  };
  rebuildKernel();
  const u = new Float64Array(n).fill(1);
  const v = new Float64Array(m).fill(1);
  const Ktu = new Float64Array(m);
  const absorb = () => {
    for (let i = 0; i < n; i++) {
      f[i]! += epsilon * Math.log(u[i]!);
      u[i] = 1;
    }
    for (let j = 0; j < m; j++) {
      g[j]! += epsilon * Math.log(v[j]!);
      v[j] = 1;
    }
    rebuildKernel();
  };
  const kernelTimesV = (i: number) => {
    let s = 0;
    const o = i * m;
    for (let j = 0; j < m; j++) s += K[o + j]! * v[j]!;
    return s;
  };
  const kernelTransposeTimesU = () => {
    Ktu.fill(0);
    for (let i = 0; i < n; i++) {
      const ui = u[i]!;
      if (ui === 0) continue;
      const o = i * m;
      for (let j = 0; j < m; j++) Ktu[j]! += K[o + j]! * ui;
    }
  };
  let converged = false;
  let iterations = 0;
  // The first v-update already happened in the log domain (it is POT's iteration 0's v step).
  for (let it = 0; it < maxIter; it++) {
    iterations = it + 1;
    if (it > 0) {
      kernelTransposeTimesU();
      for (let j = 0; j < m; j++) v[j] = Ktu[j]! > 0 ? b[j]! / Ktu[j]! : 0;
    }
    for (let i = 0; i < n; i++) {
      const s = kernelTimesV(i);
      u[i] = s > 0 ? a[i]! / s : 0;
    }
    let extreme = false;
    for (let i = 0; i < n && !extreme; i++)
      if (u[i]! > ABSORB_ABOVE || (u[i]! > 0 && u[i]! < 1 / ABSORB_ABOVE)) extreme = true;
    for (let j = 0; j < m && !extreme; j++)
      if (v[j]! > ABSORB_ABOVE || (v[j]! > 0 && v[j]! < 1 / ABSORB_ABOVE)) extreme = true;
    if (extreme) absorb();
    if (it % 10 === 0) {
      kernelTransposeTimesU();
      let err = 0;
      for (let j = 0; j < m; j++) {
        const d = v[j]! * Ktu[j]! - b[j]!;
        err += d * d;
      }
      if (Math.sqrt(err) < tol) {
        converged = true;
        break;
      }
    }
  }
  const plan = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const o = i * m;
    for (let j = 0; j < m; j++) plan[o + j] = u[i]! * K[o + j]! * v[j]!;
  }
  return { plan, iterations, converged };
}
