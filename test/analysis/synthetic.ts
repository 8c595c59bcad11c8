// Synthetic layer representations with known structure, for the analysis tests. Computed here
// directly from activations (independently of the project's Gram-based code paths) so tests
// compare two routes to the same numbers.
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import { buildTemplate, DEFAULT_TEMPLATE_CONFIG, type ModelTemplate } from '../../src/shared/template.js';

/** n probe inputs in R^dim, row-major. */
export function probeInputs(n: number, dim: number, seed: number): Float64Array {
  const normal = normalSampler(mulberry32(seed));
  return Float64Array.from({ length: n * dim }, () => normal());
}

export interface Activations {
  X: Float64Array;
  n: number;
  d: number;
}

/**
 * Functionally different "layer maps" of the same inputs (each gives a distinct geometry):
 *  - linear: a random projection (keeps the input geometry),
 *  - folded: a projection of |x| (folds the space along every axis),
 *  - classes: a one-hot of the argmax over coordinates `from..from+3` (a late, class-like layer).
 */
export type LayerMap = 'linear' | 'folded' | 'classes' | 'classes2';

function applyMap(map: LayerMap, inputs: Float64Array, n: number, dim: number, seed: number): Activations {
  const normal = normalSampler(mulberry32(seed));
  const d = 16;
  const P = Float64Array.from({ length: dim * d }, () => normal() / Math.sqrt(dim));
  const X = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    if (map === 'classes' || map === 'classes2') {
      const from = map === 'classes' ? 0 : 4;
      let best = from;
      for (let t = from; t < from + 4; t++) if (inputs[i * dim + t]! > inputs[i * dim + best]!) best = t;
      X[i * d + (best - from)] = 3;
      continue;
    }
    for (let c = 0; c < d; c++) {
      let s = 0;
      for (let t = 0; t < dim; t++) {
        const x = inputs[i * dim + t]!;
        s += (map === 'folded' ? Math.abs(x) : x) * P[t * d + c]!;
      }
      X[i * d + c] = s;
    }
  }
  return { X, n, d };
}

/** A copy with i.i.d. Gaussian noise of `relative` times the activations' RMS added. */
function perturb(a: Activations, relative: number, seed: number): Activations {
  const normal = normalSampler(mulberry32(seed));
  let ss = 0;
  for (const v of a.X) ss += v * v;
  const sigma = relative * Math.sqrt(ss / a.X.length);
  return { ...a, X: a.X.map((v) => v + sigma * normal()) };
}

/**
 * A stack of layers: each entry names the map its layer perturbs. Layers naming the same map
 * share it (one map per name, seeded by `mapSeed`), so they are near-identical functions.
 */
export function layerStack(
  maps: LayerMap[],
  inputs: Float64Array,
  n: number,
  dim: number,
  options: { mapSeed: number; noiseSeed: number; noise?: number },
): Activations[] {
  const base = new Map<LayerMap, Activations>();
  return maps.map((map, l) => {
    let b = base.get(map);
    if (!b) {
      b = applyMap(map, inputs, n, dim, options.mapSeed + map.length * 101);
      base.set(map, b);
    }
    return perturb(b, options.noise ?? 0.1, options.noiseSeed * 1000 + l);
  });
}

/** Gram matrix K = X Xᵀ as float32 (what a client uploads). */
export function gram(a: Activations): Float32Array {
  const { X, n, d } = a;
  const K = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += X[i * d + c]! * X[j * d + c]!;
      K[i * n + j] = s;
      K[j * n + i] = s;
    }
  }
  return K;
}

/** Euclidean distances between the rows of X, divided by their mean off-diagonal value. */
export function normalisedDistances(a: Activations): Float64Array {
  const { X, n, d } = a;
  const C = new Float64Array(n * n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += (X[i * d + c]! - X[j * d + c]!) ** 2;
      const v = Math.sqrt(s);
      C[i * n + j] = v;
      C[j * n + i] = v;
      sum += 2 * v;
    }
  }
  const mean = sum / (n * (n - 1));
  return C.map((v) => v / mean);
}

/**
 * GW distance ½·√E at the identity coupling T = I/n (the probe inputs correspond, so this is a
 * feasible coupling and an upper bound on the optimum): E = (1/n²) Σ_ik (C1_ik − C2_ik)².
 */
export function identityGwDistance(C1: Float64Array, C2: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n * n; i++) s += (C1[i]! - C2[i]!) ** 2;
  return 0.5 * Math.sqrt(s / (n * n));
}

/** L×L identity-coupling GW distances between a stack's layers. */
export function layerDistanceMatrix(stack: Activations[]): Float64Array {
  const L = stack.length;
  const Cs = stack.map(normalisedDistances);
  const n = stack[0]!.n;
  const D = new Float64Array(L * L);
  for (let i = 0; i < L; i++) {
    for (let j = i + 1; j < L; j++) {
      const v = identityGwDistance(Cs[i]!, Cs[j]!, n);
      D[i * L + j] = v;
      D[j * L + i] = v;
    }
  }
  return D;
}

/**
 * A template of plain 3×3 atom layers, every one probed, with a noise probe set of n inputs: what
 * synthetic federations need (their probe answers are planted, not computed by a network).
 */
export function noiseProbeTemplate(options: {
  federationId: string;
  layers: string[];
  channels: number;
  m: number;
  n: number;
  probeSeed: number;
}): ModelTemplate {
  const { layers: names, channels, m, n } = options;
  return buildTemplate({
    ...DEFAULT_TEMPLATE_CONFIG,
    federationId: options.federationId,
    layers: names.map((name, i) => ({
      name,
      cIn: i === 0 ? 1 : channels,
      cOut: channels,
      k: 3,
      m,
      stride: 1,
      padding: 'same',
      activation: 'relu',
      poolAfter: 0,
    })),
    probe: { source: 'noise', size: n, seed: options.probeSeed, pooling: 'gap' },
    probeLayers: names,
  });
}
