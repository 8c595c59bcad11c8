// Atom-based measures between models. Pure functions over typed arrays:
// a layer's atoms D (m × k × k) travel as one flat Float32Array of m·k·k values in C order,
// so atom j is the slice [j·k², (j+1)·k²).

/** Dot product of two equally long vectors, accumulated in float64. */
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`dot: lengths differ (${a.length} vs ${b.length})`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** Euclidean norm. */
function norm(a: ArrayLike<number>): number {
  return Math.sqrt(dot(a, a));
}

/**
 * Atom cosine s = <vec D_A, vec D_B> / (|vec D_A| |vec D_B|), atoms matched by index (valid
 * because the models share α). Defined as 0 when either side is all zeros: a layer with no
 * atoms has no direction to agree with.
 */
export function atomCosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new Error(`atomCosine: atom sets differ in size (${a.length} vs ${b.length} values)`);
  }
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  if (aa === 0 || bb === 0) return 0;
  return clampUnit(ab / Math.sqrt(aa * bb));
}

/** Model similarity: atom cosine per layer and its mean over layers. */
export function modelCosine(
  layersA: readonly ArrayLike<number>[],
  layersB: readonly ArrayLike<number>[],
): { mean: number; perLayer: Float64Array } {
  if (layersA.length !== layersB.length) {
    throw new Error(`modelCosine: models have ${layersA.length} and ${layersB.length} layers`);
  }
  const perLayer = new Float64Array(layersA.length);
  let sum = 0;
  for (let l = 0; l < layersA.length; l++) {
    perLayer[l] = atomCosine(layersA[l]!, layersB[l]!);
    sum += perLayer[l]!;
  }
  return { mean: layersA.length === 0 ? 0 : sum / layersA.length, perLayer };
}

/** Relative tolerance below which a Gram–Schmidt residual counts as linearly dependent. */
const RANK_TOLERANCE = 1e-10;

/**
 * Orthonormal basis (rows, row-major r × dim) of the span of the m row vectors in `rows`
 * (m × dim), by modified Gram–Schmidt with one re-orthogonalisation pass ("twice is enough",
 * Giraud et al. 2005). Rows whose residual falls below RANK_TOLERANCE times the largest row norm
 * are dropped, so r is the numerical rank.
 */
export function orthonormalRows(
  rows: ArrayLike<number>,
  m: number,
  dim: number,
): { basis: Float64Array; rank: number } {
  if (rows.length !== m * dim) {
    throw new Error(`orthonormalRows: expected ${m}×${dim} = ${m * dim} values, got ${rows.length}`);
  }
  let scale = 0;
  for (let j = 0; j < m; j++) {
    let s = 0;
    for (let t = 0; t < dim; t++) s += rows[j * dim + t]! ** 2;
    scale = Math.max(scale, Math.sqrt(s));
  }
  const basis = new Float64Array(Math.min(m, dim) * dim);
  let rank = 0;
  if (scale === 0) return { basis, rank };
  const v = new Float64Array(dim);
  for (let j = 0; j < m && rank < dim; j++) {
    for (let t = 0; t < dim; t++) v[t] = rows[j * dim + t]!;
    for (let pass = 0; pass < 2; pass++) {
      for (let q = 0; q < rank; q++) {
        let c = 0;
        for (let t = 0; t < dim; t++) c += basis[q * dim + t]! * v[t]!;
        for (let t = 0; t < dim; t++) v[t]! -= c * basis[q * dim + t]!;
      }
    }
    let n = 0;
    for (let t = 0; t < dim; t++) n += v[t]! * v[t]!;
    n = Math.sqrt(n);
    if (n <= RANK_TOLERANCE * scale) continue;
    for (let t = 0; t < dim; t++) basis[rank * dim + t] = v[t]! / n;
    rank++;
  }
  return { basis, rank };
}

/**
 * Similarity of two orthonormal bases: mean cos² of the principal angles between their spans.
 * The cosines of the principal angles are the singular values of Q_A Q_Bᵀ (Björck & Golub
 * 1973), so Σ cos²θ_i = ‖Q_A Q_Bᵀ‖_F² and no SVD is needed for the mean; there are
 * min(r_A, r_B) angles. 0 when either span is empty.
 */
export function basisSimilarity(
  a: { basis: Float64Array; rank: number },
  b: { basis: Float64Array; rank: number },
  dim: number,
): number {
  const r = Math.min(a.rank, b.rank);
  if (r === 0) return 0;
  let fro = 0;
  for (let i = 0; i < a.rank; i++) {
    for (let j = 0; j < b.rank; j++) {
      let c = 0;
      for (let t = 0; t < dim; t++) c += a.basis[i * dim + t]! * b.basis[j * dim + t]!;
      fro += c * c;
    }
  }
  return Math.min(1, Math.max(0, fro / r));
}

/**
 * Subspace similarity (basis-free): the principal angles between the spans of
 * the m flattened atoms of each side in R^(k·k); returns the mean cos² of the angles, in [0, 1].
 * Invariant to any invertible recombination of the atoms, so it does not need shared α.
 * `a` and `b` hold m × kk values each (kk = k·k).
 */
export function subspaceSimilarity(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  kk: number,
): number {
  return basisSimilarity(orthonormalRows(a, m, kk), orthonormalRows(b, m, kk), kk);
}

/**
 * Copy of `v` scaled to unit Euclidean norm (float64); all zeros stays all zeros.
 * @internal exported for its tests
 */
export function unitVector(v: ArrayLike<number>): Float64Array {
  const out = new Float64Array(v.length);
  const n = norm(v);
  if (n === 0) return out;
  for (let i = 0; i < v.length; i++) out[i] = v[i]! / n;
  return out;
}

/**
 * Cosine between a unit vector u that is part of a running sum S of unit vectors and the
 * centroid of the *other* members, S − u (leave-one-out, so a model is never compared with
 * itself). 0 when there are no other members or they cancel out.
 * @internal exported for its tests
 */
export function cosineToOthers(unit: Float64Array, sum: Float64Array): number {
  let uo = 0;
  let oo = 0;
  let uu = 0;
  for (let i = 0; i < unit.length; i++) {
    const o = sum[i]! - unit[i]!;
    uo += unit[i]! * o;
    oo += o * o;
    uu += unit[i]! * unit[i]!;
  }
  // Cancellation in S − u leaves rounding noise of order 1e-16·|S|; treat it as "no peers".
  if (uu === 0 || oo <= 1e-24 * Math.max(1, dotSelf(sum))) return 0;
  return clampUnit(uo / Math.sqrt(uu * oo));
}

/**
 * Mean pairwise cosine among N unit vectors from their sum S alone:
 * Σ_{i≠j} <u_i, u_j> = |S|² − Σ|u_i|² = |S|² − N, over N(N − 1) ordered pairs.
 * `nonZero` is the number of members that are genuinely unit length (all-zero layers add 0).
 */
export function meanPairwiseCosineFromSum(sum: Float64Array, nonZero: number, count: number): number {
  if (count < 2) return Number.NaN;
  return (dotSelf(sum) - nonZero) / (count * (count - 1));
}

function dotSelf(v: Float64Array): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return s;
}

/** Clamps rounding excursions of a cosine back into [-1, 1]. */
export function clampUnit(x: number): number {
  return Math.min(1, Math.max(-1, x));
}
