// The demo CNN: per-task parameters (atom swapping), probe Gram matrices, parameter access.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { AtomConv2D } from '../../src/client/atomConv.js';
import { initBackend } from '../../src/client/backend.js';
import { probeImages } from '../../src/client/data.js';
import { ContinualModel } from '../../src/client/model.js';
import { createLogger } from '../../src/shared/log.js';
import { buildTemplate } from '../../src/shared/template.js';

const template = buildTemplate();

describe('ContinualModel', () => {
  beforeAll(async () => {
    await initBackend('wasm', createLogger('test', 'silent'));
  });

  it('gives every task its own atoms, biases and head, with the template α frozen in all', () => {
    const model = new ContinualModel(template, { seed: 4, newTaskInit: 'fresh' });
    model.addTask({ id: '0-1', classes: [0, 1] });
    model.addTask({ id: '2-3-4', classes: [2, 3, 4] });
    const a = model.trainableVariables('0-1');
    const b = model.trainableVariables('2-3-4');
    expect(a.length).toBe(template.layers.length * 2 + 2);
    expect(new Set([...a, ...b].map((v) => v.id)).size).toBe(a.length + b.length);
    expect(model.alphaMatchesTemplate('0-1')).toBe(true);
    expect(model.alphaMatchesTemplate('2-3-4')).toBe(true);
    const atoms = model.getAtoms('0-1');
    expect(atoms.map((x) => x.length)).toEqual(template.layers.map((l) => l.m * l.k * l.k));
    // Every task and every client starts from the federation's atoms (initialAtomSeed), so atom
    // cosine compares models from a common origin: equal starting values, separate variables.
    expect(model.getAtoms('2-3-4')).toEqual(atoms);
    const otherClient = new ContinualModel(template, { seed: 99, newTaskInit: 'fresh' });
    otherClient.addTask({ id: '0-1', classes: [0, 1] });
    expect(otherClient.getAtoms('0-1')).toEqual(atoms);
    otherClient.dispose();
    const logits = tf.tidy(() => model.logits('2-3-4', tf.zeros([2, 28, 28, 1]) as tf.Tensor4D).shape);
    expect(logits).toEqual([2, 3]);
    expect(() => model.addTask({ id: '0-1', classes: [0, 1] })).toThrow(/already exists/);
    expect(() => model.getAtoms('5-6')).toThrow(/no model/);
    model.dispose();
  });

  it("'copy' starts a new task from the previous task's atoms and biases", () => {
    const model = new ContinualModel(template, { seed: 4, newTaskInit: 'copy' });
    model.addTask({ id: '0-1', classes: [0, 1] });
    model.setConvParameters(
      '0-1',
      model.getAtoms('0-1').map((x) => x.map((v) => v * 2)),
      model.getBiases('0-1').map((x) => x.map((_, i) => i / 10)),
    );
    model.addTask({ id: '2-3', classes: [2, 3] });
    expect(model.getAtoms('2-3')).toEqual(model.getAtoms('0-1'));
    expect(model.getBiases('2-3')).toEqual(model.getBiases('0-1'));
    model.dispose();
  });

  it('layerGrams returns K = X Xᵀ of the pooled (or flattened) block outputs', () => {
    const model = new ContinualModel(template, { seed: 8 });
    model.addTask({ id: '0-1', classes: [0, 1] });
    const n = 12;
    const inputs = tf.tensor4d(probeImages({ source: 'mnist', size: n, seed: 3 }), [n, 28, 28, 1]);
    // Block outputs by hand: conv (composed weight) + bias → relu → max-pool, layer by layer.
    const convs = model
      .classifier('0-1')
      .layers.filter((l) => l.getClassName() === 'AtomConv2D') as AtomConv2D[];
    const blocks: Float32Array[] = [];
    const shapes: number[][] = [];
    tf.tidy(() => {
      let x: tf.Tensor4D = inputs;
      template.layers.forEach((spec, i) => {
        const conv = convs[i]!;
        let y = tf.add(
          tf.conv2d(x, conv.composedWeight(), spec.stride, spec.padding),
          tf.tensor1d(conv.biasValues()),
        );
        y = tf.relu(y);
        if (spec.poolAfter > 1) y = tf.maxPool(y as tf.Tensor4D, spec.poolAfter, spec.poolAfter, 'valid');
        x = y as tf.Tensor4D;
        blocks.push(x.dataSync() as Float32Array);
        shapes.push(x.shape);
      });
    });
    const gramByHand = (features: number[][]) =>
      features.flatMap((u) => features.map((v) => u.reduce((s, ui, k) => s + ui * v[k]!, 0)));
    for (const pooling of ['gap', 'flatten'] as const) {
      const layers = ['conv2', 'conv5'];
      const grams = model.layerGrams('0-1', inputs, layers, pooling, 5);
      expect(grams.map((g) => g.layer)).toEqual(layers);
      grams.forEach((g) => {
        const index = template.layers.findIndex((l) => l.name === g.layer);
        const [, h, w, c] = shapes[index]!;
        const out = blocks[index]!;
        const features = Array.from({ length: n }, (_, s) => {
          if (pooling === 'flatten')
            return Array.from(out.subarray(s * h! * w! * c!, (s + 1) * h! * w! * c!));
          const mean = new Array<number>(c!).fill(0);
          for (let p = 0; p < h! * w!; p++)
            for (let ch = 0; ch < c!; ch++) mean[ch]! += out[(s * h! * w! + p) * c! + ch]! / (h! * w!);
          return mean;
        });
        expect(g.n).toBe(n);
        expect(g.featureDim).toBe(pooling === 'gap' ? c : h! * w! * c!);
        const expected = gramByHand(features);
        const scale = Math.max(...expected.map(Math.abs));
        expect(scale).toBeGreaterThan(0);
        g.gram.forEach((v, i) => {
          expect(Math.abs(v - expected[i]!)).toBeLessThan(1e-4 * scale);
        });
      });
    }
    expect(() => model.layerGrams('0-1', inputs, ['conv9'], 'gap')).toThrow(/unknown layer 'conv9'/);
    inputs.dispose();
    model.dispose();
  });
});
