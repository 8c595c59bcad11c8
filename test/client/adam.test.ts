// adamStep against tfjs's own AdamOptimizer: the same gradients, the same steps.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { AdamState, adamStep } from '../../src/client/adam.js';
import { initBackend } from '../../src/client/backend.js';
import { createLogger } from '../../src/shared/log.js';
import { mulberry32 } from '../../src/shared/rng.js';

describe('adamStep', () => {
  beforeAll(async () => {
    await initBackend('wasm', createLogger('test', 'silent'));
  });

  it('takes the steps tf.train.adam takes (5 steps, gradients spanning 6 orders of magnitude)', () => {
    const rand = mulberry32(7);
    const sizes = [7, 30];
    const start = sizes.map((n) => Float32Array.from({ length: n }, () => rand() * 2 - 1));
    const grads = Array.from({ length: 5 }, () =>
      sizes.map((n) => Float32Array.from({ length: n }, () => (rand() - 0.5) * 10 ** (-6 * rand()))),
    );
    const lr = 0.02;
    const variables = start.map((w, i) => tf.variable(tf.tensor1d(w), true, `adam_test_${i}`));
    const optimizer = tf.train.adam(lr);
    const weights = start.map((w) => w.slice());
    const state = new AdamState(sizes);
    for (const step of grads) {
      tf.tidy(() =>
        optimizer.applyGradients(variables.map((v, i) => ({ name: v.name, tensor: tf.tensor1d(step[i]!) }))),
      );
      adamStep(state, weights, step, { learningRate: lr });
    }
    expect(state.steps).toBe(5);
    variables.forEach((v, i) => {
      const expected = v.dataSync();
      const moved = Math.max(...expected.map((x, j) => Math.abs(x - start[i]![j]!)));
      // Five steps of ≈ lr each (Adam normalises the gradient): a wrong correction would show.
      expect(moved).toBeGreaterThan(lr);
      weights[i]!.forEach((w, j) => {
        expect(Math.abs(w - expected[j]!)).toBeLessThan(1e-6);
      });
    });
    optimizer.dispose();
    for (const v of variables) v.dispose();
  });

  it('refuses arrays that do not match its state', () => {
    const state = new AdamState([3]);
    expect(() =>
      adamStep(state, [new Float32Array(3)], [new Float32Array(2)], { learningRate: 0.1 }),
    ).toThrow(/parameter 0 has 3 entries, its gradient 2/);
    expect(state.steps).toBe(0);
    expect(state.fits([3])).toBe(true);
    expect(state.fits([3, 1])).toBe(false);
  });
});
