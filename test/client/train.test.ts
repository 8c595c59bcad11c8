// TaskTrainer's optimiser scope: one Adam for all rounds of a task ('task', what clients do) or a
// new one every round ('round'). The two differ in how far the atoms move once gradients are
// small, which decides how much the atoms of converged clients still change between rounds.
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/client/backend.js';
import { loadTaskData, type TaskData, taskFromId } from '../../src/client/data.js';
import { ContinualModel } from '../../src/client/model.js';
import { TaskTrainer, type TrainOptions } from '../../src/client/train.js';
import { createLogger } from '../../src/shared/log.js';
import { buildTemplate } from '../../src/shared/template.js';

const LR = 0.01;
const OPTIONS: TrainOptions = { batchSize: 16, maxBatches: 4, learningRate: LR, seed: 3 };

function flat(parts: Float32Array[]): Float64Array {
  return Float64Array.from(parts.flatMap((p) => [...p]));
}

describe('TaskTrainer optimizer scope', () => {
  let data: TaskData;
  beforeAll(async () => {
    await initBackend('wasm', createLogger('test', 'silent'));
    data = loadTaskData(taskFromId('0-1'), { kind: 'iid', index: 1, of: 40, seed: 1 });
  });

  it("'round' is exactly a new optimiser every round; 'task' keeps the Adam state", async () => {
    const template = buildTemplate();
    const rounds = 3;
    const byScope = async (scope: 'task' | 'round') => {
      const model = new ContinualModel(template, { seed: 2 });
      const trainer = new TaskTrainer(model, data, { ...OPTIONS, optimizerScope: scope });
      for (let r = 1; r <= rounds; r++) await trainer.trainRound(r);
      trainer.dispose();
      const atoms = flat(model.getAtoms(data.task.id));
      model.dispose();
      return atoms;
    };
    const rebuilt = async () => {
      const model = new ContinualModel(template, { seed: 2 });
      for (let r = 1; r <= rounds; r++) {
        const trainer = new TaskTrainer(model, data, OPTIONS);
        await trainer.trainRound(r);
        trainer.dispose();
      }
      const atoms = flat(model.getAtoms(data.task.id));
      model.dispose();
      return atoms;
    };
    const [task, round, manual] = [await byScope('task'), await byScope('round'), await rebuilt()];
    expect([...round]).toEqual([...manual]);
    const maxDiff = Math.max(...task.map((v, i) => Math.abs(v - round[i]!)));
    expect(maxDiff).toBeGreaterThan(1e-4);
  });

  it("with 'round' the first step of every round moves each atom entry by about the learning rate", async () => {
    // Adam's bias correction makes step 1 equal to lr·g/(|g| + ε) ≈ lr·sign(g) (Kingma & Ba 2015,
    // §3): a fresh optimiser takes full-size steps however small the gradient has become, while a
    // kept one scales them by the gradient relative to its remembered second moment.
    const template = buildTemplate();
    const firstStepOfRound2 = async (scope: 'task' | 'round') => {
      const model = new ContinualModel(template, { seed: 2 });
      const trainer = new TaskTrainer(model, data, { ...OPTIONS, maxBatches: 20, optimizerScope: scope });
      await trainer.trainRound(1);
      const before = flat(model.getAtoms(data.task.id));
      const stop = new AbortController();
      await trainer.trainRound(2, { signal: stop.signal, onBatch: () => stop.abort() });
      const after = flat(model.getAtoms(data.task.id));
      trainer.dispose();
      model.dispose();
      return after.map((v, i) => Math.abs(v - before[i]!)).sort();
    };
    const fresh = await firstStepOfRound2('round');
    const kept = await firstStepOfRound2('task');
    const median = (v: Float64Array) => v[Math.floor(v.length / 2)]!;
    // float32 atoms: |Δ| = lr up to rounding of values of order 0.3 (≈ 3e-8) and ε = 1e-7.
    expect(median(fresh)).toBeGreaterThan(0.95 * LR);
    expect(fresh[fresh.length - 1]!).toBeLessThan(1.01 * LR);
    expect(median(kept)).toBeLessThan(0.5 * LR);
  });
});
