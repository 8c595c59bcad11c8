// Local training: rounds of mini-batch Adam (Kingma & Ba 2015) on softmax cross-entropy over
// the task's classes, and accuracy on the common evaluation pool. Deterministic for a given
// seed and backend: shuffles come from mulberry32, initial weights from seeded initialisers.
import * as tf from '@tensorflow/tfjs';
import { mulberry32, permutation } from '../shared/rng.js';
import { IMAGE_SIZE, PIXELS, type TaskData } from './data.js';
import type { ContinualModel } from './model.js';

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
  const buffer = new Float32Array((to - from) * PIXELS);
  for (let i = from; i < to; i++) {
    const src = indices[i]! * PIXELS;
    buffer.set(images.subarray(src, src + PIXELS), (i - from) * PIXELS);
  }
  return tf.tensor4d(buffer, [to - from, IMAGE_SIZE, IMAGE_SIZE, 1]);
}

function targetBatch(targets: Int32Array, indices: ArrayLike<number>, from: number, to: number): Int32Array {
  const out = new Int32Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = targets[indices[i]!]!;
  return out;
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Trains one task of a ContinualModel; keeps its optimizer state across rounds unless told not to. */
export class TaskTrainer {
  readonly taskId: string;
  private optimizer: tf.AdamOptimizer;
  private readonly options: Required<
    Pick<
      TrainOptions,
      'epochs' | 'batchSize' | 'learningRate' | 'learningRateDecay' | 'seed' | 'optimizerScope'
    >
  > &
    TrainOptions;
  private roundsTrained = 0;
  /** Steps the current optimiser has taken. */
  private optimizerSteps = 0;

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
    this.optimizer = tf.train.adam(learningRate);
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
    const classes = this.data.task.classes.length;
    const variables = this.model.trainableVariables(this.taskId);
    const totalSamples = Math.max(1, Math.round(epochs * n));
    const batches = Math.min(Math.ceil(totalSamples / batchSize), maxBatches ?? Number.POSITIVE_INFINITY);
    if (this.options.optimizerScope === 'round' && this.optimizerSteps > 0) {
      this.optimizer.dispose();
      this.optimizer = tf.train.adam(this.options.learningRate);
      this.optimizerSteps = 0;
    }
    // tfjs optimizers have no schedule API; Adam reads this field at every step.
    (this.optimizer as unknown as { learningRate: number }).learningRate =
      this.options.learningRate * this.options.learningRateDecay ** this.roundsTrained;
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
      const x = imageBatch(this.data.train.images, order, position, to);
      const targets = targetBatch(this.data.trainTargets, order, position, to);
      const y = tf.tensor1d(targets, 'int32');
      let batchCorrect = 0;
      const loss = this.optimizer.minimize(
        () => {
          const logits = this.model.logits(this.taskId, x);
          batchCorrect = tf.tidy(() => tf.sum(tf.equal(tf.argMax(logits, 1), y)).dataSync()[0]!);
          return tf.losses.softmaxCrossEntropy(tf.oneHot(y, classes), logits) as tf.Scalar;
        },
        true,
        variables,
      );
      this.optimizerSteps++;
      const lossValue = loss!.dataSync()[0]!;
      loss!.dispose();
      x.dispose();
      y.dispose();
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

  /** Accuracy on the task's evaluation pool. */
  evaluate(batchSize = 256): number {
    return evaluateTask(this.model, this.data, batchSize);
  }

  dispose(): void {
    this.optimizer.dispose();
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
      const y = tf.tensor1d(targetBatch(data.evalTargets, identity, start, to), 'int32');
      const predicted = tf.argMax(model.logits(data.task.id, x), 1);
      return tf.sum(tf.equal(predicted, y)).dataSync()[0]!;
    });
  }
  return n > 0 ? correct / n : Number.NaN;
}
