// Data-parallel training (TaskTrainer's `threads`): the batch's gradient computed in shards on
// helper threads equals single-thread training up to float rounding; thread counts are bounded;
// helper failures and shutdown surface as errors naming what happened.
import { availableParallelism } from 'node:os';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../../src/client/backend.js';
import { loadTaskData, type TaskData, taskFromId } from '../../src/client/data.js';
import { ContinualModel } from '../../src/client/model.js';
import { autoTrainThreads, resolveTrainThreads, TaskTrainer } from '../../src/client/train.js';
import { GradientHelpers, shardBounds } from '../../src/client/train-shards.js';
import { createLogger } from '../../src/shared/log.js';
import { buildTemplate } from '../../src/shared/template.js';

describe('shardBounds', () => {
  it('cuts a batch into contiguous shards whose sizes differ by at most one', () => {
    expect(shardBounds(64, 2)).toEqual([
      [0, 32],
      [32, 64],
    ]);
    expect(shardBounds(7, 3)).toEqual([
      [0, 3],
      [3, 5],
      [5, 7],
    ]);
    expect(shardBounds(1, 2)).toEqual([
      [0, 1],
      [1, 1],
    ]);
  });
});

describe('training thread count', () => {
  it("'auto' uses 2 threads on WASM with ≥ 2 cores, batches of ≥ 32 and rounds of ≥ 20 batches", () => {
    expect(autoTrainThreads('wasm', 64, 200, 2)).toBe(2);
    expect(autoTrainThreads('wasm', 64, 200, 8)).toBe(2);
    expect(autoTrainThreads('wasm', 64, 200, 1)).toBe(1);
    expect(autoTrainThreads('wasm', 16, 200, 2)).toBe(1);
    expect(autoTrainThreads('wasm', 64, 19, 2)).toBe(1);
    expect(autoTrainThreads('wasm', 64, 20, 2)).toBe(2);
    expect(autoTrainThreads('tensorflow', 64, 200, 2)).toBe(1);
    expect(autoTrainThreads('cpu', 64, 200, 2)).toBe(1);
  });

  it('caps an explicit count at the cores and the batch size, and refuses threads on tfjs-node', () => {
    expect(resolveTrainThreads(4, 'wasm', 64, 10, 2)).toBe(2);
    expect(resolveTrainThreads(3, 'wasm', 2, 10, 8)).toBe(2);
    expect(resolveTrainThreads(1, 'tensorflow', 64, 10, 2)).toBe(1);
    expect(() => resolveTrainThreads(2, 'tensorflow', 64, 10, 2)).toThrow(/--train-threads 1/);
  });
});

function weightsOf(model: ContinualModel, taskId: string): Float32Array[] {
  return model.trainableVariables(taskId).map((v) => v.dataSync() as Float32Array);
}

describe('TaskTrainer on 2 threads', () => {
  let data: TaskData;
  beforeAll(async () => {
    await initBackend('wasm', createLogger('test', 'silent'));
    // 372 training examples: 12 batches of 64 over 3 epochs, the last batch of each epoch short.
    data = loadTaskData(taskFromId('0-1'), { kind: 'iid', index: 1, of: 4, seed: 1 });
  });

  it('rejects a thread count that is not a positive integer', () => {
    const model = new ContinualModel(buildTemplate(), { seed: 2 });
    expect(() => new TaskTrainer(model, data, { threads: 0 })).toThrow(/threads must be a positive integer/);
    expect(() => new TaskTrainer(model, data, { threads: 1.5 })).toThrow(/threads must be/);
    model.dispose();
  });

  it.skipIf(availableParallelism() < 2)(
    'takes the same steps as one thread up to float rounding (same seed, 12 steps of batch 64)',
    async () => {
      const run = async (threads: number) => {
        const model = new ContinualModel(buildTemplate(), { seed: 2 });
        const losses: number[] = [];
        const trainer = new TaskTrainer(model, data, {
          batchSize: 64,
          maxBatches: 12,
          epochs: 3,
          seed: 3,
          threads,
          onBatch: ({ loss }) => losses.push(loss),
        });
        const result = await trainer.trainRound(1);
        const used = trainer.threads;
        trainer.dispose();
        const weights = weightsOf(model, data.task.id);
        model.dispose();
        return { losses, result, used, weights };
      };
      const one = await run(1);
      const two = await run(2);
      expect(one.used).toBe(1);
      expect(two.used).toBe(2);
      expect(two.result.batches).toBe(12);
      expect(two.result.samples).toBe(one.result.samples);
      // Shard sums and a different reduction order change float32 gradients by ~1e-7 relative;
      // Adam carries that into the weights, which after 12 steps differ by ~4e-6 (measured).
      // A lost or double-counted shard would move them by ~lr = 0.01 per step.
      one.losses.forEach((loss, i) => {
        expect(Math.abs(two.losses[i]! - loss)).toBeLessThan(1e-4 * Math.abs(loss) + 1e-7);
      });
      expect(Math.abs(two.result.trainAccuracy - one.result.trainAccuracy)).toBeLessThan(0.01);
      let maxDiff = 0;
      one.weights.forEach((w, i) => {
        w.forEach((v, j) => {
          maxDiff = Math.max(maxDiff, Math.abs(v - two.weights[i]![j]!));
        });
      });
      expect(maxDiff).toBeLessThan(1e-4);
    },
    60_000,
  );

  it.skipIf(availableParallelism() < 2)(
    'an aborted round leaves the helpers running until dispose, which shuts them down',
    async () => {
      const close = vi.spyOn(GradientHelpers.prototype, 'close');
      try {
        const model = new ContinualModel(buildTemplate(), { seed: 2 });
        const stop = new AbortController();
        const trainer = new TaskTrainer(model, data, {
          batchSize: 64,
          maxBatches: 12,
          seed: 3,
          threads: 2,
          signal: stop.signal,
          onBatch: ({ batch }) => {
            if (batch === 2) stop.abort();
          },
        });
        const result = await trainer.trainRound(1);
        expect(result.aborted).toBe(true);
        expect(trainer.threads).toBe(2);
        expect(close).not.toHaveBeenCalled();
        trainer.dispose();
        await vi.waitFor(() => expect(close).toHaveBeenCalledTimes(1));
        await close.mock.results[0]!.value;
        model.dispose();
      } finally {
        close.mockRestore();
      }
    },
    60_000,
  );

  it('reports a helper that cannot use a request, and refuses work once shut down', async () => {
    const template = buildTemplate();
    const helpers = await GradientHelpers.start(1, {
      template,
      seed: 1,
      task: { id: data.task.id, classes: data.task.classes },
      backend: 'wasm',
    });
    const request = {
      images: new Float32Array(2 * 784),
      targets: new Int32Array([0, 1]),
      batchSize: 2,
      weights: [new Float32Array(3)],
    };
    await expect(helpers.compute([request])[0]).rejects.toThrow(
      /training thread 1: expected \d+ weight arrays, got 1/,
    );
    await helpers.close();
    await expect(
      helpers.compute([{ ...request, images: new Float32Array(784), targets: new Int32Array(1) }])[0],
    ).rejects.toThrow(/shut down/);
  }, 30_000);
});
