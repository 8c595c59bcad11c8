// Pairwise atom similarity of many models: atom cosine where models share α,
// subspace similarity otherwise, as blocked Gram products of per-layer unit vectors. Pure code,
// used by the level-0 index and by reports.

import { symmetricGramF32 } from '../ot/linalg.js';
import type { ConvLayerSpec } from '../shared/template.js';
import { basisSimilarity, clampUnit, orthonormalRows } from './atoms.js';

/** Where each layer's atoms sit inside a model's concatenated vector. */
export interface LayerLayout {
  name: string;
  m: number;
  /** k·k: the dimension each atom lives in. */
  kk: number;
  offset: number;
  size: number;
}

export function layerLayout(layers: readonly Pick<ConvLayerSpec, 'name' | 'm' | 'k'>[]): LayerLayout[] {
  let offset = 0;
  return layers.map((l) => {
    const size = l.m * l.k * l.k;
    const entry = { name: l.name, m: l.m, kk: l.k * l.k, offset, size };
    offset += size;
    return entry;
  });
}

export function layoutSize(layout: readonly LayerLayout[]): number {
  const last = layout[layout.length - 1];
  return last ? last.offset + last.size : 0;
}

/**
 * Concatenates per-layer atoms into one vector with each layer scaled to unit norm (all-zero
 * layers stay zero). Every measure here is invariant to a layer's scale, so this is all the index
 * keeps.
 */
export function unitModelVector(
  layers: readonly ArrayLike<number>[],
  layout: readonly LayerLayout[],
): Float32Array {
  if (layers.length !== layout.length) {
    throw new Error(`model has ${layers.length} layers but the template has ${layout.length}`);
  }
  const out = new Float32Array(layoutSize(layout));
  layout.forEach((l, i) => {
    const values = layers[i]!;
    if (values.length !== l.size) {
      throw new Error(`layer ${l.name} has ${values.length} atom values, expected ${l.size}`);
    }
    let s = 0;
    for (let t = 0; t < l.size; t++) s += values[t]! * values[t]!;
    if (s === 0) return;
    const inv = 1 / Math.sqrt(s);
    for (let t = 0; t < l.size; t++) out[l.offset + t] = values[t]! * inv;
  });
  return out;
}

export interface ModelKey {
  clientId: string;
  taskId: string;
}

export type PairMeasure = 'cosine' | 'subspace';

export interface SimilarityMatrix {
  models: ModelKey[];
  /**
   * Mean over layers, row-major models × models (diagonal 1), symmetric. Float32: the values are
   * float32 sums within SIMILARITY_TOLERANCE of exact anyway, and n² float32 halve the memory.
   */
  mean: Float32Array;
  /** Per layer in template order, row-major; only when requested. */
  layers: Float32Array[] | undefined;
  /** Row-major: 0 = cosine, 1 = subspace. */
  pairMeasure: Uint8Array;
}

export interface MatrixInput extends ModelKey {
  /** Unit vector per layer, concatenated (see unitModelVector). */
  unit: Float32Array;
  fingerprintMatch: boolean;
}

/**
 * Pairwise similarity of N models: per layer, atom cosine for pairs that both share α and
 * subspace similarity (mean cos² of principal angles) otherwise — or subspace for every pair when
 * asked. The mean over layers is always returned; per-layer matrices (N²·layers float32) only when
 * `perLayer` is set. Cosines are entries of the Gram matrix of the stored unit vectors: without
 * per-layer output the mean is one Gram matrix of the concatenated vectors divided by the number of
 * layers (Σ_l <u_l, v_l> = <u, v>), so the whole matrix is a single blocked product.
 */
export function pairwiseSimilarity(
  models: readonly MatrixInput[],
  layout: readonly LayerLayout[],
  options: { measure: PairMeasure; perLayer: boolean },
): SimilarityMatrix {
  const n = models.length;
  const layerCount = layout.length;
  const pairMeasure = new Uint8Array(n * n);
  const cosineOk = models.map((m) => options.measure === 'cosine' && m.fingerprintMatch);
  const subspaceRows: number[] = [];
  // A row of a model that can use cosine is 0 where the other model can too; any other row is all 1.
  const cosineRow = Uint8Array.from(cosineOk, (ok) => (ok ? 0 : 1));
  for (let i = 0; i < n; i++) if (!cosineOk[i]) subspaceRows.push(i);
  // All-cosine (the usual case) is the all-zero matrix the array starts as.
  if (subspaceRows.length > 0) {
    for (let i = 0; i < n; i++) {
      if (cosineOk[i]) pairMeasure.set(cosineRow, i * n);
      else pairMeasure.fill(1, i * n, (i + 1) * n);
    }
  }
  const mean = new Float32Array(n * n);
  const layers = options.perLayer ? layout.map(() => new Float32Array(n * n)) : undefined;
  if (layerCount === 0 || n === 0) {
    return { models: models.map(keyOf), mean, layers, pairMeasure };
  }
  const inv = 1 / layerCount;
  if (!layers) {
    const size = layoutSize(layout);
    const block = new Float32Array(n * size);
    for (let i = 0; i < n; i++) block.set(models[i]!.unit, i * size);
    cosineGram(block, n, size, inv, mean);
    // Pairs that cannot use cosine get their layer-wise subspace values instead.
    if (subspaceRows.length > 0) {
      for (const l of layout) {
        const bases = models.map((m) =>
          orthonormalRows(m.unit.subarray(l.offset, l.offset + l.size), l.m, l.kk),
        );
        const first = l === layout[0];
        forSubspacePairs(subspaceRows, n, pairMeasure, (i, j) => {
          const v = basisSimilarity(bases[i]!, bases[j]!, l.kk) * inv;
          const sum = first ? v : mean[i * n + j]! + v;
          mean[i * n + j] = sum;
          mean[j * n + i] = sum;
        });
      }
    }
  } else {
    layout.forEach((l, li) => {
      const block = new Float32Array(n * l.size);
      for (let i = 0; i < n; i++)
        block.set(models[i]!.unit.subarray(l.offset, l.offset + l.size), i * l.size);
      const out = layers[li]!;
      cosineGram(block, n, l.size, 1, out);
      if (subspaceRows.length > 0) {
        const bases = models.map((m) =>
          orthonormalRows(m.unit.subarray(l.offset, l.offset + l.size), l.m, l.kk),
        );
        forSubspacePairs(subspaceRows, n, pairMeasure, (i, j) => {
          const v = clampUnit(basisSimilarity(bases[i]!, bases[j]!, l.kk));
          out[i * n + j] = v;
          out[j * n + i] = v;
        });
      }
      if (li === 0) for (let e = 0; e < n * n; e++) mean[e] = out[e]! * inv;
      else for (let e = 0; e < n * n; e++) mean[e]! += out[e]! * inv;
    });
  }
  return { models: models.map(keyOf), mean, layers, pairMeasure };
}

function keyOf(m: ModelKey): ModelKey {
  return { clientId: m.clientId, taskId: m.taskId };
}

/** Calls fn(i, j) for every i ≤ j pair that uses the subspace measure, each pair once. */
function forSubspacePairs(
  rows: readonly number[],
  n: number,
  pairMeasure: Uint8Array,
  fn: (i: number, j: number) => void,
): void {
  const isRow = new Uint8Array(n);
  for (const r of rows) isRow[r] = 1;
  for (const r of rows) {
    for (let c = 0; c < n; c++) {
      if (pairMeasure[r * n + c] !== 1) continue;
      // Visit a pair once: from its subspace row when the other side is a cosine row, else i ≤ j.
      if (isRow[c] && c < r) continue;
      fn(Math.min(r, c), Math.max(r, c));
    }
  }
}

/**
 * Absolute error allowed in a similarity computed by the float32 Gram kernel and stored as float32,
 * against the same sums in float64 (test/coordinator/similarity.test.ts checks it): each entry sums
 * d ≤ 2,000 products of float32 unit-vector components, whose rounding errors are ≈ √d·2⁻²⁴·(Σ_t
 * |u_t v_t| ≤ 1 per layer) ≈ 3·10⁻⁶, and storing a value in [−1, 1] as float32 adds ≤ 2⁻²⁵ ≈
 * 3·10⁻⁸ (per layer, when averaging per-layer matrices): far below the differences between models
 * that the measures report.
 * @internal exported for its tests
 */
export const SIMILARITY_TOLERANCE = 1e-5;

/**
 * out = clamp(scale · X Xᵀ) (n × n, both triangles) for X (n × d), with the float32 WebAssembly
 * Gram kernel (both cores when large; see SIMILARITY_TOLERANCE), which fuses the scaling,
 * clamping and mirroring into the product, or, where WebAssembly SIMD is unavailable, the
 * float64 JS kernel below.
 */
function cosineGram(x: Float32Array, n: number, d: number, scale: number, out: Float32Array): void {
  if (symmetricGramF32(x, n, d, out, scale, 1)) return;
  const sums = new Float64Array(n * n);
  gramUpper(Float64Array.from(x), n, d, sums);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      const v = clampUnit(sums[i * n + j]! * scale);
      out[i * n + j] = v;
      out[j * n + i] = v;
    }
  }
}

/** j-tile height: 32 rows of a few hundred float64 stay in L1/L2 while every i streams past. */
const GRAM_TILE = 32;

/**
 * Upper triangle (j ≥ i) of X Xᵀ for X (n × d, row-major) into out (n × n, row-major); the
 * lower triangle is left untouched. Cache-blocked over j with a 2 × 4 register kernel: each pass
 * over t loads 6 values for 8 multiply-adds instead of 2 for 1.
 * @internal exported for its tests
 */
export function gramUpper(x: Float64Array, n: number, d: number, out: Float64Array): void {
  for (let jb = 0; jb < n; jb += GRAM_TILE) {
    const jEnd = Math.min(n, jb + GRAM_TILE);
    let i = 0;
    for (; i + 1 < jEnd; i += 2) {
      const r0 = i * d;
      const r1 = r0 + d;
      const jStart = Math.max(jb, i);
      let j = jStart;
      for (; j + 3 < jEnd; j += 4) {
        const c0 = j * d;
        const c1 = c0 + d;
        const c2 = c1 + d;
        const c3 = c2 + d;
        let s00 = 0;
        let s01 = 0;
        let s02 = 0;
        let s03 = 0;
        let s10 = 0;
        let s11 = 0;
        let s12 = 0;
        let s13 = 0;
        for (let t = 0; t < d; t++) {
          const a0 = x[r0 + t]!;
          const a1 = x[r1 + t]!;
          const b0 = x[c0 + t]!;
          const b1 = x[c1 + t]!;
          const b2 = x[c2 + t]!;
          const b3 = x[c3 + t]!;
          s00 += a0 * b0;
          s01 += a0 * b1;
          s02 += a0 * b2;
          s03 += a0 * b3;
          s10 += a1 * b0;
          s11 += a1 * b1;
          s12 += a1 * b2;
          s13 += a1 * b3;
        }
        const o0 = i * n + j;
        const o1 = o0 + n;
        out[o0] = s00;
        out[o0 + 1] = s01;
        out[o0 + 2] = s02;
        out[o0 + 3] = s03;
        // Row i+1 only owns entries with j ≥ i+1; the (i+1, i) entry is below the diagonal.
        if (j > i) out[o1] = s10;
        out[o1 + 1] = s11;
        out[o1 + 2] = s12;
        out[o1 + 3] = s13;
      }
      for (; j < jEnd; j++) {
        const c = j * d;
        let s0 = 0;
        let s1 = 0;
        for (let t = 0; t < d; t++) {
          const b = x[c + t]!;
          s0 += x[r0 + t]! * b;
          s1 += x[r1 + t]! * b;
        }
        out[i * n + j] = s0;
        if (j > i) out[(i + 1) * n + j] = s1;
      }
    }
    for (; i < jEnd; i++) {
      const r = i * d;
      for (let j = Math.max(jb, i); j < jEnd; j++) {
        const c = j * d;
        let s = 0;
        for (let t = 0; t < d; t++) s += x[r + t]! * x[c + t]!;
        out[i * n + j] = s;
      }
    }
  }
}
