// Filter-atom factorisation of a convolution kernel (pure; typed arrays in and out).
//
// A kernel W (c_out × c_in × k × k) is read as the matrix M with one row per filter (o, i) and k²
// columns. W[o,i] ≈ Σ_j α[o,i,j] D[j] with m atoms D[j] (k × k) is a rank-m factorisation
// M ≈ A·D; the best one in Frobenius norm is the truncated SVD (Eckart & Young 1936):
// D = the top m right singular vectors of M (rows, orthonormal), A = M·Dᵀ. With m = k² the
// factorisation is exact. The right singular vectors are the eigenvectors of the k² × k² Gram
// matrix MᵀM, found here by cyclic Jacobi rotations (Golub & Van Loan, Matrix Computations,
// §8.5) in float64 — hand-written because k² ≤ 49 and the ecosystem's linear-algebra packages
// either lack a symmetric eigensolver or pull in far more than these few lines.
// Orthonormal atoms have unit norm, i.e. entry variance 1/k² — the scale the seed-generated
// template uses, so a decomposed template trains with the same learning rates.

/** One kernel's factorisation W ≈ α·D. */
export interface KernelFactorisation {
  /** [cOut][cIn][m], C order. */
  alpha: Float32Array;
  /** [m][k][k], C order; orthonormal as vectors of k² values. */
  atoms: Float32Array;
  /** Singular values of M, largest first (all k² of them). */
  singularValues: Float64Array;
  /** ‖W − α·D‖_F / ‖W‖_F with α and D as stored (float32); 0 for an all-zero kernel. */
  relativeError: number;
}

/**
 * Eigen-decomposition of a symmetric n × n matrix (row-major); eigenvalues descending, vectors as columns.
 * @internal exported for its tests
 */
export function symmetricEigen(a: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const A = Float64Array.from(a);
  const V = new Float64Array(n * n);
  for (let i = 0; i < n; i++) V[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < n; p++) {
      diag += A[p * n + p]! ** 2;
      for (let q = p + 1; q < n; q++) off += A[p * n + q]! ** 2;
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = A[p * n + q]!;
        if (apq === 0) continue;
        // Rotation that zeroes A[p][q] (Golub & Van Loan Alg. 8.5.1, the stable tangent).
        const theta = (A[q * n + q]! - A[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = A[k * n + p]!;
          const akq = A[k * n + q]!;
          A[k * n + p] = c * akp - s * akq;
          A[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = A[p * n + k]!;
          const aqk = A[q * n + k]!;
          A[p * n + k] = c * apk - s * aqk;
          A[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = V[k * n + p]!;
          const vkq = V[k * n + q]!;
          V[k * n + p] = c * vkp - s * vkq;
          V[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => A[j * n + j]! - A[i * n + i]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((src, dst) => {
    values[dst] = A[src * n + src]!;
    // Sign convention: the entry of largest magnitude is positive, so results are reproducible.
    let big = 0;
    for (let k = 0; k < n; k++) if (Math.abs(V[k * n + src]!) > Math.abs(big)) big = V[k * n + src]!;
    const sign = big < 0 ? -1 : 1;
    for (let k = 0; k < n; k++) vectors[k * n + dst] = sign * V[k * n + src]!;
  });
  return { values, vectors };
}

/**
 * Rank-m atom factorisation of a kernel given as [cOut][cIn][k][k] (C order). Throws when m
 * exceeds k² and on non-finite values.
 */
export function factoriseKernel(
  kernel: Float32Array | Float64Array,
  cOut: number,
  cIn: number,
  k: number,
  m: number,
): KernelFactorisation {
  const q = k * k;
  const rows = cOut * cIn;
  if (kernel.length !== rows * q) {
    throw new Error(`kernel has ${kernel.length} values, expected cOut·cIn·k·k = ${rows * q}`);
  }
  if (!Number.isInteger(m) || m < 1 || m > q)
    throw new Error(`m must be an integer in [1, k² = ${q}], got ${m}`);
  for (let i = 0; i < kernel.length; i++) {
    if (!Number.isFinite(kernel[i]!)) throw new Error('kernel has non-finite values (NaN or Infinity)');
  }
  const gram = new Float64Array(q * q);
  for (let r = 0; r < rows; r++) {
    const base = r * q;
    for (let a = 0; a < q; a++) {
      const va = kernel[base + a]!;
      if (va === 0) continue;
      for (let b = a; b < q; b++) gram[a * q + b] += va * kernel[base + b]!;
    }
  }
  for (let a = 0; a < q; a++) for (let b = 0; b < a; b++) gram[a * q + b] = gram[b * q + a]!;
  const { values, vectors } = symmetricEigen(gram, q);
  const atoms = new Float32Array(m * q);
  for (let j = 0; j < m; j++) for (let t = 0; t < q; t++) atoms[j * q + t] = vectors[t * q + j]!;
  // A = M·Dᵀ against the float32 atoms, so the stored pair is the best α for the stored D.
  const alpha = new Float32Array(rows * m);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let t = 0; t < q; t++) s += kernel[r * q + t]! * atoms[j * q + t]!;
      alpha[r * m + j] = s;
    }
  }
  return {
    alpha,
    atoms,
    singularValues: values.map((v) => Math.sqrt(Math.max(0, v))),
    relativeError: reconstructionError(kernel, alpha, atoms, rows, m, q),
  };
}

/** ‖M − A·D‖_F / ‖M‖_F (0 when M = 0), accumulated in float64. */
function reconstructionError(
  kernel: ArrayLike<number>,
  alpha: ArrayLike<number>,
  atoms: ArrayLike<number>,
  rows: number,
  m: number,
  q: number,
): number {
  let err = 0;
  let norm = 0;
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < q; t++) {
      let s = 0;
      for (let j = 0; j < m; j++) s += alpha[r * m + j]! * atoms[j * q + t]!;
      const w = kernel[r * q + t]!;
      err += (w - s) ** 2;
      norm += w * w;
    }
  }
  return norm === 0 ? Math.sqrt(err) : Math.sqrt(err / norm);
}

/** tfjs Conv2D kernel [k][k][cIn][cOut] → [cOut][cIn][k][k]. */
export function kernelFromTfLayout(
  kernel: ArrayLike<number>,
  k: number,
  cIn: number,
  cOut: number,
): Float32Array {
  const out = new Float32Array(cOut * cIn * k * k);
  for (let y = 0; y < k; y++)
    for (let x = 0; x < k; x++)
      for (let i = 0; i < cIn; i++)
        for (let o = 0; o < cOut; o++)
          out[((o * cIn + i) * k + y) * k + x] = kernel[((y * k + x) * cIn + i) * cOut + o]!;
  return out;
}
