// Pieces every evidence experiment shares: the results directory, Markdown tables, standalone
// SVG files, the run's environment record, probe image sets, and training a model with
// checkpoints. I/O lives here and in the experiments' run functions; the maths they call is pure.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { TaskData } from '../client/data.js';
import { DIGITS, gatherImages, IMAGE_SIZE, PIXELS, poolIndices, probeImages } from '../client/data.js';
import type { ContinualModel } from '../client/model.js';
import { type RoundResult, TaskTrainer, type TrainOptions } from '../client/train.js';
import { mulberry32, normalSampler, permutation } from '../shared/rng.js';
import type { TemplateConfig } from '../shared/template.js';

/** Writes an experiment's files into one directory (created on first use). */
export class ResultsWriter {
  readonly files: string[] = [];
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  write(name: string, content: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, content);
    this.files.push(name);
    return path;
  }

  json(name: string, value: unknown): string {
    return this.write(name, `${JSON.stringify(value, jsonReplacer, 2)}\n`);
  }
}

/** JSON for typed arrays (as plain arrays) and non-finite numbers (as null, which JSON can hold). */
function jsonReplacer(_key: string, value: unknown): unknown {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return Array.from(value as unknown as ArrayLike<number>, (v) => (Number.isFinite(v) ? v : null));
  }
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  return value;
}

/** A GitHub-flavoured Markdown table; cells are escaped for '|'. */
export function markdownTable(headers: string[], rows: (string | number)[][]): string {
  const cell = (v: string | number) => String(v).replaceAll('|', '\\|').replaceAll('\n', ' ');
  const lines = [
    `| ${headers.map(cell).join(' | ')} |`,
    `| ${headers.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => {
      if (r.length !== headers.length) {
        throw new Error(`markdownTable: row has ${r.length} cells, expected ${headers.length}`);
      }
      return `| ${r.map(cell).join(' | ')} |`;
    }),
  ];
  return lines.join('\n');
}

/** Fixed-point text for a table cell; '—' for missing or non-finite values. */
export function num(v: number | null | undefined, digits = 3): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return v.toFixed(digits);
}

/** Seconds in 3 significant digits, or scientific notation below a millisecond. */
export function secs(v: number): string {
  if (!Number.isFinite(v)) return '—';
  return v >= 1e-3 ? v.toPrecision(3) : v.toExponential(2);
}

/**
 * The report's inline SVG figures style their text by CSS classes of the HTML page; a figure
 * saved on its own carries that small style sheet itself (and an XML declaration).
 */
export function standaloneSvg(svg: string): string {
  const close = svg.indexOf('>');
  if (!svg.startsWith('<svg') || close < 0) throw new Error('standaloneSvg: not an <svg> element');
  const style =
    '<style>text{font-family:sans-serif;fill:#222}.fig-title{font-size:13px;font-weight:bold}' +
    '.axis-label{font-size:10px}.axis-title{font-size:11px}.cell-value{font-size:9px}</style>';
  return `<?xml version="1.0" encoding="UTF-8"?>\n${svg.slice(0, close + 1)}${style}${svg.slice(close + 1)}\n`;
}

export interface RunEnvironment {
  startedAt: string;
  node: string;
  platform: string;
  cpus: number;
  cpuModel: string;
  /** 1-minute load average when the run started (the machine may be shared). */
  loadAverageAtStart: number;
  gitCommit: string | null;
  backend: string;
}

export function runEnvironment(backend: string): RunEnvironment {
  let gitCommit: string | null = null;
  try {
    gitCommit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    // Not a git checkout (e.g. an unpacked release): the commit is simply unknown.
  }
  return {
    startedAt: new Date().toISOString(),
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
    loadAverageAtStart: loadavg()[0]!,
    gitCommit,
    backend,
  };
}

// ---------------------------------------------------------------------------------------------
// Probe sets

export type ProbeKind = 'in-distribution' | 'held-out-digits' | 'noise';

export interface ProbeSet {
  kind: ProbeKind;
  /** What the images are, in words (for tables). */
  description: string;
  size: number;
  /** [size, 28, 28, 1]; the caller disposes. */
  inputs: tf.Tensor4D;
}

/**
 * n images from the reserved probe pool (never trained or evaluated on) of the given digits,
 * in a seeded order. Throws when the digits' probe pool holds fewer than n images.
 */
function probePoolImages(digits: readonly number[], n: number, seed: number): Float32Array {
  const all: { digit: number; index: number }[] = [];
  for (const digit of digits) {
    if (!Number.isInteger(digit) || digit < 0 || digit >= DIGITS)
      throw new Error(`digit ${digit} is not 0–9`);
    for (const index of poolIndices(digit, 'probe')) all.push({ digit, index });
  }
  if (n > all.length) {
    throw new Error(
      `probe size ${n} exceeds the ${all.length} reserved probe images of digits ${digits.join(',')}; use a smaller probe size`,
    );
  }
  const order = permutation(all.length, mulberry32(seed >>> 0));
  return gatherImages(Array.from({ length: n }, (_, i) => all[order[i]!]!)).images;
}

function tensorOf(images: Float32Array, n: number): tf.Tensor4D {
  if (images.length !== n * PIXELS) throw new Error(`expected ${n} images, got ${images.length / PIXELS}`);
  return tf.tensor4d(images, [n, IMAGE_SIZE, IMAGE_SIZE, 1]);
}

/** The three probe sets of the robustness comparison. */
export function buildProbeSets(
  n: number,
  seed: number,
  trainedDigits: readonly number[],
  heldOutDigits: readonly number[],
): ProbeSet[] {
  return [
    {
      kind: 'in-distribution',
      description: `${n} probe-pool digits of the trained classes {${trainedDigits.join(',')}}`,
      size: n,
      inputs: tensorOf(probePoolImages(trainedDigits, n, seed), n),
    },
    {
      kind: 'held-out-digits',
      description: `${n} probe-pool digits of classes no client trained on {${heldOutDigits.join(',')}}`,
      size: n,
      inputs: tensorOf(probePoolImages(heldOutDigits, n, seed + 1), n),
    },
    {
      kind: 'noise',
      description: `${n} images of uniform noise in [0, 1)`,
      size: n,
      inputs: tensorOf(probeImages({ source: 'noise', size: n, seed: seed + 2 }), n),
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Training with checkpoints

/** A task's convolution parameters at the end of one round (copies, safe to keep). */
export interface Checkpoint {
  round: number;
  atoms: Float32Array[];
  biases: Float32Array[];
  accuracy: number;
}

/** Copies of a task's current atoms and biases. */
function snapshot(model: ContinualModel, taskId: string, round: number, accuracy: number): Checkpoint {
  return {
    round,
    atoms: model.getAtoms(taskId).map((a) => Float32Array.from(a)),
    biases: model.getBiases(taskId).map((b) => Float32Array.from(b)),
    accuracy,
  };
}

/**
 * Trains one task for `rounds` rounds and returns the checkpoints at the requested rounds
 * (round 0 = before training). The trainer is disposed; the model keeps the final parameters.
 */
export async function trainWithCheckpoints(
  model: ContinualModel,
  data: TaskData,
  rounds: number,
  checkpointRounds: readonly number[],
  options: TrainOptions,
  /** Starting atoms for a task the model does not have yet (default: the model's own choice). */
  initialAtoms?: Float32Array[],
): Promise<{ checkpoints: Checkpoint[]; results: RoundResult[] }> {
  if (initialAtoms) {
    if (model.hasTask(data.task.id))
      throw new Error(`task ${data.task.id} exists: cannot set its starting atoms`);
    model.addTask(data.task);
    model.setConvParameters(data.task.id, initialAtoms);
  }
  const trainer = new TaskTrainer(model, data, options);
  const checkpoints: Checkpoint[] = [];
  const results: RoundResult[] = [];
  try {
    if (checkpointRounds.includes(0)) checkpoints.push(snapshot(model, data.task.id, 0, trainer.evaluate()));
    for (let r = 1; r <= rounds; r++) {
      const result = await trainer.trainRound(r);
      results.push(result);
      if (checkpointRounds.includes(r)) checkpoints.push(snapshot(model, data.task.id, r, result.accuracy));
    }
  } finally {
    trainer.dispose();
  }
  return { checkpoints, results };
}

/**
 * Starting atoms other than the federation's: entries N(0, 1/k²) per layer (the atom layer's own
 * initialiser, so W = α·D is He-initialised either way), from a seed. Models started from these
 * and models started from the federation-wide atoms have no common origin.
 */
export function independentInitialAtoms(
  config: Pick<TemplateConfig, 'layers'>,
  seed: number,
): Float32Array[] {
  return config.layers.map((l, i) => {
    const normal = normalSampler(mulberry32((seed * 2_654_435_761 + i * 40_503 + 11) >>> 0));
    return Float32Array.from({ length: l.m * l.k * l.k }, () => normal() / l.k);
  });
}

/** Parses a comma-separated list of positive integers (flag values). */
export function parseIntList(text: string, what: string): number[] {
  const values = text.split(',').map((s) => Number(s.trim()));
  if (values.length === 0 || values.some((v) => !Number.isInteger(v) || v < 0)) {
    throw new Error(`${what} must be a comma-separated list of non-negative integers, got '${text}'`);
  }
  return values;
}
