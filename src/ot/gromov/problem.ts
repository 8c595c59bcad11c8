// Problem set-up for Gromov–Wasserstein with the square loss (the part POT keeps in
// ot/gromov/_utils.py next to init_matrix): checked cost matrices, marginals, the constant
//   c0 = pᵀ(C1∘C1)p + qᵀ(C2∘C2)q,
// with which E(T) = c0 − 2<C1 T C2ᵀ, T> for every coupling T of p and q (Peyré, Cuturi &
// Solomon 2016, Prop. 1: constC = (C1∘C1)p 1ᵀ + 1 qᵀ(C2∘C2)ᵀ, and <constC, T> = c0), and the
// normalisation of a cost matrix by its mean off-diagonal entry.

import { validateMarginals } from '../emd.js';
import { loopsFor, resident, residentArray } from './workspace.js';

/** A cost matrix in factored form C = A Bᵀ (n×n, symmetric), A and B n×rank, row-major. */
export interface LowRankCost {
  n: number;
  rank: number;
  A: Float64Array;
  B: Float64Array;
}

/** A cost matrix: dense (n×n, row-major, symmetric) or factored (C = A Bᵀ). */
export type GwCost = Float64Array | LowRankCost;

/** C = A Bᵀ with the transposes kept for the products (At, Bt rank×n). */
export interface Factors {
  n: number;
  r: number;
  A: Float64Array;
  B: Float64Array;
  At: Float64Array;
  Bt: Float64Array;
}

interface ProblemBase {
  n: number;
  m: number;
  p: Float64Array;
  q: Float64Array;
  /** pᵀ(C1∘C1)p + qᵀ(C2∘C2)q: E(T) = c0 − 2<C1 T C2, T> for any coupling of p, q. */
  c0: number;
  /** n = m and p = q, so diag(p) is a coupling. */
  identityFeasible: boolean;
}

/** A GW problem between (C1, p) and (C2, q) with dense, symmetric cost matrices. */
export interface DenseGwProblem extends ProblemBase {
  kind: 'dense';
  C1: Float64Array;
  C2: Float64Array;
  /** C1 p and C2 q (the product start's rank-one G, and the value at p qᵀ). */
  C1p: Float64Array;
  C2q: Float64Array;
  /** E at diag(p) when identityFeasible (computed in the same pass), else null. */
  identityValue: number | null;
}

/** The same with both costs factored (C = A Bᵀ of low rank): every product costs O(n·m·r). */
export interface LowRankGwProblem extends ProblemBase {
  kind: 'lowRank';
  F1: Factors;
  F2: Factors;
  /** pᵀ(C1∘C1)p and qᵀ(C2∘C2)q, the terms of c0 (kept for the identity's value). */
  squaredForms: { p1: number; q2: number };
}

export type GwProblem = DenseGwProblem | LowRankGwProblem;

function sideOf(name: string, C: Float64Array): number {
  const n = Math.round(Math.sqrt(C.length));
  if (n * n !== C.length || n === 0) {
    throw new Error(`${name} has ${C.length} values, which is not n×n for any n ≥ 1: pass a square matrix`);
  }
  return n;
}

/** What checkedSpace needs from one pass over the pairs i ≤ j. */
interface SpaceScan {
  /** Σ (x − x) + (y − y): 0 exactly for finite entries, NaN otherwise. */
  finite: number;
  /** max |C_ij|. */
  scale: number;
  /** max |C_ij − C_ji| and the first (i, j) in row-major order reaching it. */
  asym: number;
  where: [number, number];
}

function scanSpace(C: Float64Array, n: number): SpaceScan {
  const out = residentArray(5);
  const ws = loopsFor(C, out);
  if (ws) {
    ws.loops.check_space(C.byteOffset, n, out.byteOffset);
    return { finite: out[0]!, scale: out[1]!, asym: out[2]!, where: [out[3]!, out[4]!] };
  }
  let scale = 0;
  let asym = 0;
  let finite = 0;
  let where: [number, number] = [0, 0];
  for (let i = 0; i < n; i++) {
    const row = i * n;
    for (let j = i; j < n; j++) {
      const x = C[row + j]!;
      const y = C[j * n + i]!;
      finite += x - x + (y - y);
      const big = Math.max(Math.abs(x), Math.abs(y));
      if (big > scale) scale = big;
      const d = Math.abs(x - y);
      if (d > asym) {
        asym = d;
        where = [i, j];
      }
    }
  }
  return { finite, scale, asym, where };
}

/** Checks a cost matrix: finite, symmetric. Tiny asymmetry (rounding) is averaged away. */
function checkedSpace(name: string, C: Float64Array, n: number): Float64Array {
  // One pass over the pairs i ≤ j (loops.wat check_space, or the same loop in JS).
  const { finite, scale, asym, where } = scanSpace(C, n);
  if (finite !== 0) {
    for (let e = 0; e < C.length; e++) {
      const v = C[e]!;
      if (!Number.isFinite(v)) {
        throw new Error(`${name}[${Math.floor(e / n)}, ${e % n}] is ${v}: distances must be finite numbers`);
      }
    }
  }
  if (asym === 0) return C;
  if (asym > 1e-9 * scale) {
    throw new Error(
      `${name} is not symmetric (|C[${where[0]}, ${where[1]}] − C[${where[1]}, ${where[0]}]| = ${asym}): ` +
        'GW here compares distance or dissimilarity matrices, which are symmetric',
    );
  }
  const out = residentArray(C.length);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = 0.5 * (C[i * n + j]! + C[j * n + i]!);
  }
  return out;
}

function uniform(n: number): Float64Array {
  return new Float64Array(n).fill(1 / n);
}

/** C w and wᵀ (C∘C) w in one pass (Σ_i w_i Σ_k C_ik² w_k, summed in that order). */
function rowProducts(C: Float64Array, w: Float64Array, n: number): { Cw: Float64Array; squared: number } {
  const Cw = residentArray(n);
  const ws = loopsFor(C, w, Cw);
  if (ws) return { Cw, squared: ws.loops.row_products(C.byteOffset, w.byteOffset, n, Cw.byteOffset) };
  let squared = 0;
  for (let i = 0; i < n; i++) {
    let row = 0;
    let rowSquared = 0;
    const o = i * n;
    for (let k = 0; k < n; k++) {
      const c = C[o + k]!;
      row += c * w[k]!;
      rowSquared += c * c * w[k]!;
    }
    Cw[i] = row;
    squared += w[i]! * rowSquared;
  }
  return { Cw, squared };
}

/**
 * For n = m and p = q, one pass over both matrices: rowProducts of each and E at diag(p),
 * Σ_i p_i Σ_k (C1_ik − C2_ik)² p_k, each summed in that order.
 */
function pairedRowProducts(
  C1: Float64Array,
  C2: Float64Array,
  w: Float64Array,
  n: number,
): {
  first: { Cw: Float64Array; squared: number };
  second: { Cw: Float64Array; squared: number };
  identity: number;
} {
  const C1w = residentArray(n);
  const C2w = residentArray(n);
  const sums = residentArray(3);
  const ws = loopsFor(C1, C2, w, C1w, C2w, sums);
  if (ws) {
    const at = (x: Float64Array) => x.byteOffset;
    ws.loops.paired_row_products(at(C1), at(C2), at(w), n, at(C1w), at(C2w), at(sums));
    return {
      first: { Cw: C1w, squared: sums[0]! },
      second: { Cw: C2w, squared: sums[1]! },
      identity: sums[2]!,
    };
  }
  let squared1 = 0;
  let squared2 = 0;
  let identity = 0;
  for (let i = 0; i < n; i++) {
    let row1 = 0;
    let row2 = 0;
    let rowSquared1 = 0;
    let rowSquared2 = 0;
    let rowIdentity = 0;
    const o = i * n;
    for (let k = 0; k < n; k++) {
      const x = C1[o + k]!;
      const y = C2[o + k]!;
      const wk = w[k]!;
      row1 += x * wk;
      row2 += y * wk;
      rowSquared1 += x * x * wk;
      rowSquared2 += y * y * wk;
      const d = x - y;
      rowIdentity += d * d * wk;
    }
    C1w[i] = row1;
    C2w[i] = row2;
    squared1 += w[i]! * rowSquared1;
    squared2 += w[i]! * rowSquared2;
    identity += w[i]! * rowIdentity;
  }
  return { first: { Cw: C1w, squared: squared1 }, second: { Cw: C2w, squared: squared2 }, identity };
}

/** True when p and q are the same weights (so diag(p) couples them). */
export function equalWeights(p: Float64Array, q: Float64Array): boolean {
  if (p.length !== q.length) return false;
  for (let i = 0; i < p.length; i++) {
    if (Math.abs(p[i]! - q[i]!) > 1e-12 * Math.max(1, Math.abs(p[i]!))) return false;
  }
  return true;
}

/** Checked marginals (uniform by default) for spaces of n and m points. */
export function marginals(
  n: number,
  m: number,
  p?: Float64Array,
  q?: Float64Array,
): [Float64Array, Float64Array] {
  const pp = p ?? uniform(n);
  const qq = q ?? uniform(m);
  if (pp.length !== n) throw new Error(`p has ${pp.length} weights but C1 is ${n}×${n}`);
  if (qq.length !== m) throw new Error(`q has ${qq.length} weights but C2 is ${m}×${m}`);
  validateMarginals(pp, qq);
  return [pp, qq];
}

export function prepareDenseProblem(
  C1: Float64Array,
  C2: Float64Array,
  weights: { p?: Float64Array; q?: Float64Array },
): DenseGwProblem {
  if (!(C1 instanceof Float64Array) || !(C2 instanceof Float64Array)) {
    throw new Error('C1 and C2 must be Float64Arrays (n×n and m×m, row-major)');
  }
  const n = sideOf('C1', C1);
  const m = sideOf('C2', C2);
  // In a GW workspace the matrices and weights are copied (once) to where its loops and products
  // read them (workspace.ts).
  const [p, q] = marginals(n, m, weights.p, weights.q).map(resident) as [Float64Array, Float64Array];
  const c1 = checkedSpace('C1', resident(C1), n);
  const c2 = checkedSpace('C2', resident(C2), m);
  const identityFeasible = n === m && equalWeights(p, q);
  // Paired only when p and q are the same numbers, so that c0 is summed exactly as apart.
  const paired = identityFeasible && p.every((w, i) => w === q[i]) ? pairedRowProducts(c1, c2, p, n) : null;
  const r1 = paired?.first ?? rowProducts(c1, p, n);
  const r2 = paired?.second ?? rowProducts(c2, q, m);
  return {
    kind: 'dense',
    C1: c1,
    C2: c2,
    C1p: r1.Cw,
    C2q: r2.Cw,
    identityValue: paired?.identity ?? null,
    n,
    m,
    p,
    q,
    c0: r1.squared + r2.squared,
    identityFeasible,
  };
}

/**
 * C divided by the mean of its off-diagonal entries, so that GW compares shapes rather than the
 * activation scale. Throws when that mean is zero (all points coincide).
 */
export function normaliseByMeanOffDiagonal(C: Float64Array, n: number): Float64Array {
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`normaliseByMeanOffDiagonal: n must be a positive integer, got ${n}`);
  if (C.length !== n * n)
    throw new Error(
      `normaliseByMeanOffDiagonal: expected an ${n}×${n} matrix (${n * n} values), got ${C.length}`,
    );
  if (n < 2)
    throw new Error('normaliseByMeanOffDiagonal: need at least 2 points to have off-diagonal entries');
  let sum = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) sum += C[i * n + j]!;
  const mean = checkedMean(sum / (n * (n - 1)));
  const out = new Float64Array(n * n);
  for (let e = 0; e < n * n; e++) out[e] = C[e]! / mean;
  return out;
}

export function checkedMean(mean: number): number {
  if (!(mean !== 0 && Number.isFinite(mean))) {
    throw new Error(
      `cannot normalise: the mean off-diagonal distance is ${mean} (all points coincide, or the input is not finite); check the layer's activations`,
    );
  }
  return mean;
}
