// Loads the POT / numpy reference cases copied from the shared reference set into test/fixtures.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export const flat = (rows: number[][]): Float64Array => Float64Array.from(rows.flat());

function load<T>(kind: 'gw' | 'emd' | 'cka'): { name: string; data: T }[] {
  const dir = join(FIXTURES, kind);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((f) => ({
      name: f.replace(/\.json$/, ''),
      data: JSON.parse(readFileSync(join(dir, f), 'utf8')) as T,
    }));
}

export interface GwCase {
  C1: number[][];
  C2: number[][];
  p: number[];
  q: number[];
  cg_product_init: { gw: number; T: number[][] };
  cg_identity_init?: { gw: number; T: number[][] };
  product_coupling_value: number;
  identity_coupling_value?: number;
  entropic: Record<string, { gw: number; T: number[][] }>;
}

export interface EmdCase {
  a: number[];
  b: number[];
  M: number[][];
  cost: number;
  G: number[][];
}

export interface CkaCase {
  X: number[][];
  Y: number[][];
  linear_cka: number;
}

export const gwCases = () => load<GwCase>('gw');
export const emdCases = () => load<EmdCase>('emd');
export const ckaCases = () => load<CkaCase>('cka');

/** Largest deviation of a plan's row/column sums from a and b. */
export function marginalError(plan: Float64Array, a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  const m = b.length;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < m; j++) s += plan[i * m + j]!;
    worst = Math.max(worst, Math.abs(s - a[i]!));
  }
  for (let j = 0; j < m; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += plan[i * m + j]!;
    worst = Math.max(worst, Math.abs(s - b[j]!));
  }
  return worst;
}

/** A random symmetric distance matrix of n points in R^d (Euclidean), seeded. */
export function randomDistances(n: number, d: number, rng: () => number): Float64Array {
  const X = Float64Array.from({ length: n * d }, () => rng() * 2 - 1);
  const D = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += (X[i * d + k]! - X[j * d + k]!) ** 2;
      D[i * n + j] = Math.sqrt(s);
    }
  }
  return D;
}

/** P C Pᵀ: the same space with its points relabelled by perm (new point i = old point perm[i]). */
export function permuteSpace(C: Float64Array, perm: number[]): Float64Array {
  const n = perm.length;
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) out[i * n + j] = C[perm[i]! * n + perm[j]!]!;
  return out;
}
