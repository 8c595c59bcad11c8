// Local training: rounds of mini-batch Adam (Kingma & Ba 2015) on softmax cross-entropy over
// the task's classes, and accuracy on the common evaluation pool. Deterministic for a given
// seed and backend: shuffles come from mulberry32, initial weights from seeded initialisers.
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { mulberry32, permutation } from '../shared/rng.js';
import { AdamState, adamStep } from './adam.js';
import { IMAGE_SIZE, type TaskData } from './data.js';
import type { ContinualModel } from './model.js';
import {
  assignWeights,
  GradientHelpers,
  gatherImages,
  gatherTargets,
  type ShardResult,
  shardBounds,
  shardGradients,
} from './train-shards.js';

export interface TrainOptions {
  /** Passes over the local training data per round; fractions allowed (default 1). */
  epochs?: number;
  /** Cap on mini-batches per round (default: no cap). */
  maxBatches?: number;
  batchSize?: number;
  learningRate?: number;
  /** Learning rate of round r is learningRate · decay^(rounds trained before); default 1. */
  learningRateDecay?: number;
  seed?: number;
  /**
   * Lifetime of the Adam state (first/second moments and bias correction): 'task' (default) keeps
   * one optimiser for every round of the task, as one uninterrupted run of local training;
   * 'round' starts a new optimiser every round, as FedAvg-style clients that rebuild theirs
   * from each new global model do. They differ most once the loss is near zero: with 'round' the
   * first steps of every round are ≈ learningRate · sign(gradient) however small the gradient
   * (Adam's bias correction, Kingma & Ba 2015 §3), so parameters keep moving by about the
   * learning rate per step; with 'task' the second moment remembers the early large gradients
   * and the steps shrink with the gradient.
   */
  optimizerScope?: 'task' | 'round';
  /**
   * Threads computing each mini-batch's gradient, data parallel (train-shards.ts): a positive
   * integer, capped at the machine's available parallelism, or 'auto' (default): see
   * autoTrainThreads.
   */
  threads?: number | 'auto';
  /** Stops training at the next batch boundary. */
  signal?: AbortSignal;
  /** Called after every batch (loss of that batch). */
  onBatch?: (info: { batch: number; batches: number; loss: number }) => void;
}

export interface RoundResult {
  round: number;
  /** Mean training loss over the round's batches. */
  loss: number;
  /** Training accuracy over the round's batches (as seen during training). */
  trainAccuracy: number;
  /** Accuracy on the task's evaluation pool after the round. */
  accuracy: number;
  /** Training examples processed. */
  samples: number;
  batches: number;
  seconds: number;
  /** True when the signal stopped the round early (its atoms should not be uploaded). */
  aborted: boolean;
}

const DEFAULTS = {
  epochs: 1,
  batchSize: 64,
  learningRate: 1e-2,
  learningRateDecay: 1,
  seed: 1,
  optimizerScope: 'task' as 'task' | 'round',
};

/** Copies the selected images into a [batch, 28, 28, 1] tensor. */
function imageBatch(images: Float32Array, indices: ArrayLike<number>, from: number, to: number): tf.Tensor4D {
  return tf.tensor4d(gatherImages(images, indices, from, to), [to - from, IMAGE_SIZE, IMAGE_SIZE, 1]);
}

/** Smallest shard worth a thread of its own (examples per thread per batch). */
const MIN_SHARD = 16;
/**
 * Fewest batches per round for which 'auto' starts helper threads. Starting one (its own
 * TensorFlow.js and WASM backend) takes ≈ 0.3 s from dist/, what a second thread saves over
 * ≈ 40 batches of the demo CNN at batch 64; a trainer keeps its helpers for all rounds of its
 * task, so rounds of 20 batches (the built-in data's one epoch of a task is 24) pay within two.
 */
const AUTO_MIN_BATCHES = 20;

/**
 * Gradient threads when none are asked for: on the WASM backend (single-threaded in Node), one per
 * available core up to 2, when every thread gets at least MIN_SHARD examples of a batch and a
 * round has at least AUTO_MIN_BATCHES batches; 1 on the other backends (tfjs-node threads its
 * kernels itself; the CPU backend is too slow for a second thread to matter).
 * @internal exported for its tests
 */
export function autoTrainThreads(
  backend: string,
  batchSize: number,
  batchesPerRound: number,
  cores = availableParallelism(),
): number {
  if (backend !== 'wasm' || batchesPerRound < AUTO_MIN_BATCHES) return 1;
  return Math.max(1, Math.min(cores, 2, Math.floor(batchSize / MIN_SHARD)));
}

/**
 * Gradient threads for the `threads` option: 'auto' or absent → autoTrainThreads; a number is
 * capped at the available parallelism and the batch size. More than one thread needs the WASM
 * or CPU backend (each helper thread starts its own).
 * @internal exported for its tests
 */
export function resolveTrainThreads(
  threads: number | 'auto' | undefined,
  backend: string,
  batchSize: number,
  batchesPerRound: number,
  cores = availableParallelism(),
): number {
  if (threads === undefined || threads === 'auto') {
    return autoTrainThreads(backend, batchSize, batchesPerRound, cores);
  }
  const capped = Math.max(1, Math.min(threads, cores, batchSize));
  if (capped > 1 && backend !== 'wasm' && backend !== 'cpu') {
    throw new Error(
      `training on ${threads} threads needs the wasm or cpu backend ('${backend}' threads its own kernels); use --train-threads 1`,
    );
  }
  return capped;
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Trains one task of a ContinualModel; keeps its optimizer state across rounds unless told not to. */
export class TaskTrainer {
  readonly taskId: string;
  /** Adam's moments (adam.ts); replaced at every round with optimizerScope 'round'. */
  private adam: AdamState | undefined;
  private readonly options: Required<
    Pick<
      TrainOptions,
      'epochs' | 'batchSize' | 'learningRate' | 'learningRateDecay' | 'seed' | 'optimizerScope'
    >
  > &
    TrainOptions;
  private roundsTrained = 0;
  /** Learning rate of the round being trained. */
  private learningRate = 0;
  private resolvedThreads: number | undefined;
  private helpers: Promise<GradientHelpers> | undefined;
  private disposed = false;

  constructor(
    private readonly model: ContinualModel,
    private readonly data: TaskData,
    options: TrainOptions = {},
  ) {
    this.taskId = data.task.id;
    if (!model.hasTask(this.taskId)) model.addTask(data.task);
    this.options = { ...DEFAULTS, ...options };
    const { batchSize, epochs, learningRate } = this.options;
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error('batchSize must be a positive integer');
    if (!(epochs > 0)) throw new Error('epochs must be positive');
    if (!(learningRate > 0)) throw new Error('learningRate must be positive');
    if (this.options.optimizerScope !== 'task' && this.options.optimizerScope !== 'round') {
      throw new Error(`optimizerScope must be 'task' or 'round', got '${this.options.optimizerScope}'`);
    }
    const { threads } = this.options;
    if (threads !== undefined && threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1)) {
      throw new Error(`threads must be a positive integer or 'auto', got ${threads}`);
    }
  }

  /** Runs one local round (round numbers only vary the shuffle). */
  async trainRound(
    round: number,
    overrides: Pick<TrainOptions, 'signal' | 'onBatch'> = {},
  ): Promise<RoundResult> {
    const { epochs, batchSize, seed, maxBatches } = this.options;
    const signal = overrides.signal ?? this.options.signal;
    const onBatch = overrides.onBatch ?? this.options.onBatch;
    const n = this.data.train.count;
    const variables = this.model.trainableVariables(this.taskId);
    const totalSamples = Math.max(1, Math.round(epochs * n));
    const batches = Math.min(Math.ceil(totalSamples / batchSize), maxBatches ?? Number.POSITIVE_INFINITY);
    const sizes = variables.map((v) => v.size);
    if (!this.adam?.fits(sizes) || (this.options.optimizerScope === 'round' && this.adam.steps > 0)) {
      this.adam = new AdamState(sizes);
    }
    this.learningRate = this.options.learningRate * this.options.learningRateDecay ** this.roundsTrained;
    const started = performance.now();
    let lossSum = 0;
    let correct = 0;
    let samples = 0;
    let done = 0;
    let order: Uint32Array = new Uint32Array(0);
    let epoch = -1;
    let position = n;
    for (let b = 0; b < batches; b++) {
      if (signal?.aborted) break;
      if (position >= n) {
        epoch++;
        order = permutation(n, mulberry32((seed * 2_654_435_761 + round * 40_503 + epoch * 9_973) >>> 0));
        position = 0;
      }
      const to = Math.min(n, position + batchSize, position + (totalSamples - samples));
      const helpers = await this.gradientHelpers(batches);
      const { lossValue, batchCorrect } = await this.step(helpers, variables, order, position, to);
      lossSum += lossValue * (to - position);
      correct += batchCorrect;
      samples += to - position;
      position = to;
      done++;
      onBatch?.({ batch: done, batches, loss: lossValue });
      // Let timers and sockets (heartbeats, probe requests, signals) run between batches.
      await nextTick();
    }
    const aborted = done < batches;
    const seconds = (performance.now() - started) / 1000;
    if (!aborted) this.roundsTrained++;
    const accuracy = aborted ? Number.NaN : this.evaluate();
    return {
      round,
      loss: samples > 0 ? lossSum / samples : Number.NaN,
      trainAccuracy: samples > 0 ? correct / samples : Number.NaN,
      accuracy,
      samples,
      batches: done,
      seconds,
      aborted,
    };
  }

  /**
   * One Adam step on examples order[from..to). With helpers the batch is cut into shards: this
   * thread computes the first shard's gradient while the helpers compute the others, each shard's
   * loss being its sum over the whole batch size, so the summed gradient is the batch's.
   */
  private async step(
    helpers: GradientHelpers | undefined,
    variables: tf.Variable[],
    order: Uint32Array,
    from: number,
    to: number,
  ): Promise<{ lossValue: number; batchCorrect: number }> {
    const count = to - from;
    const { images } = this.data.train;
    const trainTargets = this.data.trainTargets;
    const shards = shardBounds(count, (helpers?.size ?? 0) + 1)
      .map(([a, b]) => [from + a, from + b] as const)
      .filter(([a, b]) => b > a);
    // Copies: the CPU backend's dataSync returns the tensor's own storage.
    const weights = variables.map((v) => (v.dataSync() as Float32Array).slice());
    const pending = Promise.all(
      helpers?.compute(
        shards.slice(1).map(([a, b]) => ({
          images: gatherImages(images, order, a, b),
          targets: gatherTargets(trainTargets, order, a, b),
          batchSize: count,
          weights,
        })),
      ) ?? [],
    );
    // Reported once below, after this thread's own shard (which may throw first).
    pending.catch(() => {});
    const [a, b] = shards[0]!;
    const own = shardGradients(
      this.model,
      this.taskId,
      variables,
      gatherImages(images, order, a, b),
      gatherTargets(trainTargets, order, a, b),
      count,
    );
    const results: ShardResult[] = [own, ...(await pending)];
    const sums = results.length === 1 ? own.grads : own.grads.map((g) => Float32Array.from(g));
    for (const r of results.slice(1)) {
      r.grads.forEach((g, i) => {
        const sum = sums[i]!;
        if (g.length !== sum.length)
          throw new Error('a training thread returned a gradient of the wrong size');
        for (let j = 0; j < g.length; j++) sum[j]! += g[j]!;
      });
    }
    adamStep(this.adam!, weights, sums, { learningRate: this.learningRate });
    assignWeights(variables, weights);
    let lossSum = 0;
    let batchCorrect = 0;
    for (const r of results) {
      lossSum += r.lossSum;
      batchCorrect += r.correct;
    }
    return { lossValue: lossSum / count, batchCorrect };
  }

  /**
   * Threads this trainer computes gradients with: resolved from the option by the first round
   * (undefined before it), then fixed.
   */
  get threads(): number | undefined {
    return this.resolvedThreads;
  }

  /** The helper threads, started on first use; undefined when training on one thread. */
  private async gradientHelpers(batchesPerRound: number): Promise<GradientHelpers | undefined> {
    this.resolvedThreads ??= resolveTrainThreads(
      this.options.threads,
      tf.getBackend(),
      this.options.batchSize,
      batchesPerRound,
    );
    if (this.resolvedThreads <= 1) return undefined;
    if (this.disposed) throw new Error('this trainer was disposed');
    this.helpers ??= GradientHelpers.start(this.resolvedThreads - 1, {
      template: this.model.template,
      seed: this.model.seed,
      task: { id: this.taskId, classes: this.data.task.classes },
      backend: tf.getBackend(),
    });
    return await this.helpers;
  }

  /** Accuracy on the task's evaluation pool. */
  evaluate(batchSize = 256): number {
    return evaluateTask(this.model, this.data, batchSize);
  }

  /** Drops the optimiser state and stops the helper threads (their shutdown completes in the background). */
  dispose(): void {
    this.disposed = true;
    this.adam = undefined;
    const helpers = this.helpers;
    this.helpers = undefined;
    helpers?.then(
      (h) => h.close(),
      () => {},
    );
  }
}

/** Fraction of the task's evaluation images the model classifies correctly. */
export function evaluateTask(model: ContinualModel, data: TaskData, batchSize = 256): number {
  const n = data.eval.count;
  const identity = Uint32Array.from({ length: n }, (_, i) => i);
  let correct = 0;
  for (let start = 0; start < n; start += batchSize) {
    const to = Math.min(n, start + batchSize);
    correct += tf.tidy(() => {
      const x = imageBatch(data.eval.images, identity, start, to);
      const y = tf.tensor1d(gatherTargets(data.evalTargets, identity, start, to), 'int32');
      const predicted = tf.argMax(model.logits(data.task.id, x), 1);
      return tf.sum(tf.equal(predicted, y)).dataSync()[0]!;
    });
  }
  return n > 0 ? correct / n : Number.NaN;
}
