// Data-parallel gradients for TaskTrainer: a mini-batch is cut into contiguous shards, one per
// thread; the main thread computes the first shard's gradient and helper worker threads (each
// with its own TensorFlow.js backend and a replica of the task's network) the others. The
// gradient of the batch's mean loss is the sum of the shards' gradients of (shard loss sum) / n,
// so the optimiser step equals single-thread training up to float rounding. The replicas hold
// no weights of their own: every request carries the main model's current trainable weights.
//
// Why threads at all: tfjs-backend-wasm runs XNNPACK single-threaded in Node (see backend.ts),
// so on a 2-core machine one core idles during training.
import type { Worker } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { moduleUrl, startWorker } from '../shared/runtime.js';
import type { ModelTemplate } from '../shared/template.js';
import { IMAGE_SIZE, PIXELS, type Task } from './data.js';
import type { ContinualModel } from './model.js';

/** One shard's work: its images [count, 28, 28, 1] and class positions; weights when they changed. */
export interface ShardRequest {
  images: Float32Array;
  targets: Int32Array;
  /** Size of the whole mini-batch (the loss is the shard's loss sum divided by it). */
  batchSize: number;
  /** The task's trainable weights, in trainableVariables order. */
  weights: Float32Array[];
}

export interface ShardResult {
  /** ∂(shard loss sum / batchSize)/∂w, one array per trainable variable. */
  grads: Float32Array[];
  /** Σ over the shard's examples of the cross-entropy. */
  lossSum: number;
  /** Examples of the shard classified correctly (before the step). */
  correct: number;
}

/** What a helper needs to build its replica of one task's network. */
export interface ReplicaSpec {
  template: ModelTemplate;
  seed: number;
  task: Pick<Task, 'id' | 'classes'>;
  /** TensorFlow.js backend of the main thread; the helper starts the same one. */
  backend: string;
}

type HelperReply = { ready: true } | { result: ShardResult } | { error: string };

/**
 * Gradient of (Σ cross-entropy over the shard) / batchSize with respect to `variables`, read back
 * as arrays, with the shard's loss sum and correct count.
 */
export function shardGradients(
  model: ContinualModel,
  taskId: string,
  variables: tf.Variable[],
  images: Float32Array,
  targets: Int32Array,
  batchSize: number,
): ShardResult {
  const count = targets.length;
  const classes = model.task(taskId).classes.length;
  return tf.tidy(() => {
    const x = tf.tensor4d(images, [count, IMAGE_SIZE, IMAGE_SIZE, 1]);
    const y = tf.tensor1d(targets, 'int32');
    let correct = 0;
    const { value, grads } = tf.variableGrads(() => {
      const logits = model.logits(taskId, x);
      correct = tf.tidy(() => tf.sum(tf.equal(tf.argMax(logits, 1), y)).dataSync()[0]!);
      const sum = tf.losses.softmaxCrossEntropy(
        tf.oneHot(y, classes),
        logits,
        undefined,
        undefined,
        tf.Reduction.SUM,
      );
      return tf.div(sum, batchSize) as tf.Scalar;
    }, variables);
    return {
      grads: variables.map((v) => grads[v.name]!.dataSync() as Float32Array),
      lossSum: value.dataSync()[0]! * batchSize,
      correct,
    };
  });
}

/**
 * Sets each trainable variable to its array (trainableVariables order): how the main thread applies
 * an Adam step and how a helper's replica takes the main model's weights.
 */
export function assignWeights(variables: tf.Variable[], weights: Float32Array[]): void {
  if (weights.length !== variables.length) {
    throw new Error(`expected ${variables.length} weight arrays, got ${weights.length}`);
  }
  tf.tidy(() => {
    variables.forEach((v, i) => {
      v.assign(tf.tensor(weights[i]!, v.shape));
    });
  });
}

/** Copies the selected images (rows from..to of `indices`) into one array, [count, 28, 28, 1]. */
export function gatherImages(
  images: Float32Array,
  indices: ArrayLike<number>,
  from: number,
  to: number,
): Float32Array {
  const buffer = new Float32Array((to - from) * PIXELS);
  for (let i = from; i < to; i++) {
    const src = indices[i]! * PIXELS;
    buffer.set(images.subarray(src, src + PIXELS), (i - from) * PIXELS);
  }
  return buffer;
}

export function gatherTargets(
  targets: Int32Array,
  indices: ArrayLike<number>,
  from: number,
  to: number,
): Int32Array {
  const out = new Int32Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = targets[indices[i]!]!;
  return out;
}

/** Bounds [from, to) of `parts` contiguous shards of `count` items, sizes differing by at most one. */
export function shardBounds(count: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  let from = 0;
  for (let p = 0; p < parts; p++) {
    const size = Math.floor(count / parts) + (p < count % parts ? 1 : 0);
    out.push([from, from + size]);
    from += size;
  }
  return out;
}

const HELPER_ENTRY = moduleUrl('./train-worker.js', import.meta.url);

interface Pending {
  resolve: (r: ShardResult) => void;
  reject: (e: Error) => void;
}

/** Worker threads that each compute one shard's gradient per request, in order. */
export class GradientHelpers {
  private readonly queues: Pending[][];
  private failure: Error | undefined;
  private closed = false;

  private constructor(private readonly workers: Worker[]) {
    this.queues = workers.map(() => []);
  }

  /** Starts `count` helpers, each with a replica of the task's network; resolves once all are ready. */
  static async start(count: number, spec: ReplicaSpec): Promise<GradientHelpers> {
    const workers: Worker[] = [];
    const ready: Promise<void>[] = [];
    for (let i = 0; i < count; i++) {
      const worker = startWorker(HELPER_ENTRY, { workerData: spec });
      workers.push(worker);
      ready.push(
        new Promise<void>((resolve, reject) => {
          const onMessage = (m: HelperReply) => {
            worker.off('error', onError);
            worker.off('exit', onExit);
            if ('ready' in m) resolve();
            else
              reject(
                new Error(
                  `training thread failed to start: ${'error' in m ? m.error : 'no reply'}; use --train-threads 1`,
                ),
              );
          };
          const onError = (err: Error) => {
            worker.off('message', onMessage);
            reject(new Error(`training thread failed to start: ${err.message}; use --train-threads 1`));
          };
          const onExit = (code: number) => {
            worker.off('message', onMessage);
            reject(new Error(`training thread exited (code ${code}) while starting; use --train-threads 1`));
          };
          worker.once('message', onMessage);
          worker.once('error', onError);
          worker.once('exit', onExit);
        }),
      );
    }
    const helpers = new GradientHelpers(workers);
    try {
      await Promise.all(ready);
    } catch (err) {
      await helpers.close();
      throw err;
    }
    helpers.listen();
    return helpers;
  }

  get size(): number {
    return this.workers.length;
  }

  private listen(): void {
    this.workers.forEach((worker, i) => {
      // Idle helpers must not keep the process alive; a request in flight refs its worker.
      worker.unref();
      worker.on('message', (m: HelperReply) => {
        const pending = this.queues[i]!.shift();
        if (this.queues[i]!.length === 0) worker.unref();
        if (!pending) return;
        if ('result' in m) pending.resolve(m.result);
        else
          pending.reject(
            new Error(`training thread ${i + 1}: ${'error' in m ? m.error : 'unexpected reply'}`),
          );
      });
      worker.on('error', (err) =>
        this.fail(new Error(`training thread ${i + 1} failed: ${err.message}; use --train-threads 1`)),
      );
      worker.on('exit', (code) => {
        if (!this.closed) {
          this.fail(
            new Error(`training thread ${i + 1} exited unexpectedly (code ${code}); use --train-threads 1`),
          );
        }
      });
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const queue of this.queues) for (const p of queue.splice(0)) p.reject(err);
  }

  /** Sends request i to helper i (requests.length ≤ size); resolves with their results in order. */
  compute(requests: ShardRequest[]): Promise<ShardResult>[] {
    return requests.map((request, i) => {
      if (this.failure) return Promise.reject(this.failure);
      if (this.closed) return Promise.reject(new Error('training threads were shut down'));
      const worker = this.workers[i]!;
      return new Promise<ShardResult>((resolve, reject) => {
        this.queues[i]!.push({ resolve, reject });
        worker.ref();
        // The images and targets are per-request copies: transfer them. Weights may be shared
        // between helpers, so they are copied.
        worker.postMessage(request, [
          request.images.buffer as ArrayBuffer,
          request.targets.buffer as ArrayBuffer,
        ]);
      });
    });
  }

  /** Stops every helper; pending requests are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fail(new Error('training threads were shut down'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
