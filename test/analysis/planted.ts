// Planted structure: synthetic probe answers for federations whose layers form known blocks, each
// block shared by every model, specific to each task, or computed differently by named clients.
// Every block variant is a point cloud of its own shape — n probe inputs spread over c clusters of
// unequal sizes around random centres (c and sizes differ per variant, so blocks differ for GW) —
// and a layer's answer is its block variant plus i.i.d. Gaussian noise (relative to the cloud's
// RMS). A *permuted* variant keeps the base shape but assigns the probe inputs to its points by a
// random permutation: the same geometry computed on different inputs, which breaks correspondence
// (GW sees nothing, the identity coupling does). Used by the label tests and `npm run bench -- labels`.
import { centredActivations, type GramFactor } from '../../src/analysis/representation.js';
import { mulberry32, normalSampler, permutation, type Rng } from '../../src/shared/rng.js';

export type PlantedKind = 'shared' | 'task' | 'client';

export interface PlantedBlock {
  size: number;
  kind: PlantedKind;
  /** 'client' blocks: the clients (ids) whose models compute the block their own way. */
  departing?: string[];
  /** Variants differ by a permutation of the probe inputs instead of by shape. */
  permute?: boolean;
}

export interface PlantedModel {
  clientId: string;
  taskId: string;
}

export interface PlantedFederation {
  models: PlantedModel[];
  blocks: PlantedBlock[];
}

export interface PlantedOptions {
  /** Probe inputs. */
  n: number;
  /** Feature dimension of every answer. */
  dim: number;
  /** Noise per (model, layer), relative to the block's RMS. */
  noise: number;
  seed: number;
  /** Seed of the noise alone (default derived from `seed`): new noise on the same planted shapes. */
  noiseSeed?: number;
}

/** What the analysis should find: boundaries (last layer of each block but the last) and labels. */
export interface PlantedTruth {
  boundaries: number[];
  labels: { label: 'shared' | 'task-specific' | 'client-specific'; departing: string[] }[];
}

function cloud(n: number, dim: number, rng: Rng, clusters: number): Float64Array {
  const normal = normalSampler(rng);
  // Unequal cluster sizes: weights 1..clusters shuffled, every cluster non-empty.
  const weights = Array.from({ length: clusters }, (_, i) => i + 1);
  const order = permutation(clusters, rng);
  const total = weights.reduce((a, b) => a + b, 0);
  const assign: number[] = [];
  for (let c = 0; c < clusters; c++) {
    const count = Math.max(1, Math.round((weights[order[c]!]! / total) * n));
    for (let i = 0; i < count && assign.length < n; i++) assign.push(c);
  }
  while (assign.length < n) assign.push(assign.length % clusters);
  const centres = Array.from({ length: clusters }, () =>
    Float64Array.from({ length: dim }, () => 3 * normal()),
  );
  const spread = 0.3 + rng();
  const X = new Float64Array(n * dim);
  for (let i = 0; i < n; i++) {
    const c = centres[assign[i]!]!;
    for (let d = 0; d < dim; d++) X[i * dim + d] = c[d]! + spread * normal();
  }
  return X;
}

function permuteRows(X: Float64Array, n: number, dim: number, rng: Rng): Float64Array {
  const p = permutation(n, rng);
  const out = new Float64Array(X.length);
  for (let i = 0; i < n; i++) out.set(X.subarray(p[i]! * dim, p[i]! * dim + dim), i * dim);
  return out;
}

/** Which variant of block b model m computes: 'base', 'task:<id>' or 'client:<id>'. */
function variantOf(block: PlantedBlock, m: PlantedModel): string {
  if (block.kind === 'task') return `task:${m.taskId}`;
  if (block.kind === 'client' && block.departing?.includes(m.clientId)) return `client:${m.clientId}`;
  return 'base';
}

/** Per model, per layer: the n × dim answers (row-major). */
export function plantedActivations(fed: PlantedFederation, o: PlantedOptions): Float64Array[][] {
  const rng = mulberry32(o.seed >>> 0);
  const normal = normalSampler(mulberry32(((o.noiseSeed ?? o.seed) * 7 + 3) >>> 0));
  // Distinct cluster counts for every block and variant, so no two shapes coincide.
  let nextClusters = 2;
  const variants = fed.blocks.map((block) => {
    const byVariant = new Map<string, Float64Array>();
    const names = [...new Set(fed.models.map((m) => variantOf(block, m)))];
    let base: Float64Array | null = null;
    for (const name of ['base', ...names.filter((v) => v !== 'base')]) {
      if (name !== 'base' && block.permute && base) {
        byVariant.set(name, permuteRows(base, o.n, o.dim, rng));
        continue;
      }
      const X = cloud(o.n, o.dim, rng, nextClusters);
      nextClusters = nextClusters >= Math.min(12, o.n / 2) ? 2 : nextClusters + 1;
      if (name === 'base') base = X;
      byVariant.set(name, X);
    }
    return byVariant;
  });
  return fed.models.map((m) => {
    const layers: Float64Array[] = [];
    fed.blocks.forEach((block, b) => {
      const X = variants[b]!.get(variantOf(block, m))!;
      let ss = 0;
      for (const v of X) ss += v * v;
      const sigma = o.noise * Math.sqrt(ss / X.length);
      for (let l = 0; l < block.size; l++) layers.push(X.map((v) => v + sigma * normal()));
    });
    return layers;
  });
}

/** X's centred activations as a float32 factor, what a client uploads instead of K when d is small. */
export function factorOf(X: Float64Array, n: number, dim: number): GramFactor {
  return { n, rank: dim, values: Float32Array.from(centredActivations(X, n, dim)) };
}

/** K = X Xᵀ as float32, what a client uploads. */
export function gramOf(X: Float64Array, n: number, dim: number): Float32Array {
  const K = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += X[i * dim + d]! * X[j * dim + d]!;
      K[i * n + j] = K[j * n + i] = s;
    }
  }
  return K;
}

export function plantedTruth(fed: PlantedFederation): PlantedTruth {
  const boundaries: number[] = [];
  let end = -1;
  for (const b of fed.blocks.slice(0, -1)) {
    end += b.size;
    boundaries.push(end);
  }
  return {
    boundaries,
    labels: fed.blocks.map((b) => ({
      label: b.kind === 'shared' ? 'shared' : b.kind === 'task' ? 'task-specific' : 'client-specific',
      departing: b.kind === 'client' ? [...(b.departing ?? [])].sort() : [],
    })),
  };
}

/** The structure families of the suite. */
/** Every family of planted structure, in the order the suites and benchmarks report them. */
export const STRUCTURE_TYPES = [
  'three-in-five',
  'equal-blocks',
  'unequal-blocks',
  'singletons',
  'permuted-tasks',
  'many-models',
] as const;

export type StructureType = (typeof STRUCTURE_TYPES)[number];

/**
 * A random federation of the given family (seeded): 5–9 layers, 3–12 models on 1–4 tasks, blocks
 * whose kinds are drawn so that every label is decidable (a departing client keeps a task-mate
 * that does not depart; task blocks need two tasks).
 */
export function randomFederation(type: StructureType, seed: number): PlantedFederation {
  const rng = mulberry32((seed * 2_654_435_761 + type.length * 97) >>> 0);
  const int = (lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
  const M = type === 'many-models' ? int(8, 12) : int(3, 6);
  // Permuted task blocks need two tasks; elsewhere one task (client and shared blocks only) is allowed.
  const T = Math.max(type === 'permuted-tasks' ? 2 : 1, Math.min(4, int(1, Math.floor(M / 2))));
  const models: PlantedModel[] = Array.from({ length: M }, (_, i) => ({
    clientId: `c${i}`,
    taskId: `t${i % T}`,
  }));
  let sizes: number[];
  if (type === 'three-in-five')
    sizes = [
      [1, 2, 2],
      [2, 1, 2],
      [2, 2, 1],
      [1, 3, 1],
      [3, 1, 1],
      [1, 1, 3],
    ][int(0, 5)]!;
  else if (type === 'equal-blocks')
    sizes = [
      [3, 3],
      [2, 2, 2],
      [3, 3, 3],
      [4, 4],
      [2, 2, 2, 2],
    ][int(0, 4)]!;
  else if (type === 'singletons')
    sizes = [
      [1, 1, 1, 1, 1],
      [1, 2, 1, 1],
      [1, 1, 3, 1],
      [2, 1, 1, 1, 2],
    ][int(0, 3)]!;
  else {
    const L = int(5, 9);
    sizes = [];
    let left = L;
    while (left > 0) {
      const s = Math.min(left, int(1, 4));
      sizes.push(s);
      left -= s;
    }
  }
  // Clients that may depart: those with a task-mate.
  const perTask = new Map<string, number>();
  for (const m of models) perTask.set(m.taskId, (perTask.get(m.taskId) ?? 0) + 1);
  const canDepart = models.filter((m) => perTask.get(m.taskId)! >= 2);
  const kinds: PlantedKind[] =
    type === 'permuted-tasks' && T < 2
      ? ['shared', 'client']
      : T >= 2
        ? ['shared', 'task', 'client']
        : ['shared', 'client'];
  const blocks = sizes.map((size, i): PlantedBlock => {
    let kind = kinds[int(0, kinds.length - 1)]!;
    if (type === 'permuted-tasks' && T >= 2 && i === sizes.length - 1) kind = 'task';
    if (kind === 'client' && canDepart.length === 0) kind = 'shared';
    if (kind === 'client') {
      // One departing client (two when there are many models), each keeping a task-mate.
      const count = M >= 8 ? int(1, 2) : 1;
      const chosen: string[] = [];
      const left = new Map(perTask);
      for (const m of [...canDepart].sort(() => rng() - 0.5)) {
        if (chosen.length >= count) break;
        if (left.get(m.taskId)! < 2) continue;
        chosen.push(m.clientId);
        left.set(m.taskId, left.get(m.taskId)! - 1);
      }
      return { size, kind, departing: chosen };
    }
    return { size, kind, ...(type === 'permuted-tasks' && kind === 'task' ? { permute: true } : {}) };
  });
  return { models, blocks };
}
