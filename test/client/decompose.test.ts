// Decomposing a trained Layers model (residual block + batch norm, loaded from model.json on disk)
// into a template and an atom-factored copy; reading and swapping atoms; clear errors for the
// models that cannot be decomposed.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  atomConv2dFromTemplate,
  atomConvLayers,
  atomVariables,
  readAtoms,
  swapAtoms,
  templateMismatches,
} from '../../src/client/atom-layers.js';
import { AtomConv2D } from '../../src/client/atomConv.js';
import { initBackend } from '../../src/client/backend.js';
import { DecompositionError, decomposeModel } from '../../src/client/decompose.js';
import { fileSaveHandler, loadLayersModelFile, registerFileRouters } from '../../src/client/model-files.js';
import { createLogger } from '../../src/shared/log.js';
import { mulberry32 } from '../../src/shared/rng.js';

const dir = mkdtempSync(join(tmpdir(), 'atomlens-decompose-'));

/** A small ResNet-style CNN: stem conv → BN → ReLU, one residual block (two 3×3 convs + BN), head. */
function residualModel(seed: number): tf.LayersModel {
  const init = (s: number) => tf.initializers.heNormal({ seed: seed + s });
  const input = tf.input({ shape: [12, 12, 2] });
  let x = tf.layers
    .conv2d({ name: 'stem', filters: 6, kernelSize: 3, padding: 'same', kernelInitializer: init(1) })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  let y = tf.layers
    .conv2d({
      name: 'block_a',
      filters: 6,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(2),
    })
    .apply(x) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: 'block_a_bn' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers
    .conv2d({ name: 'block_b', filters: 6, kernelSize: 3, padding: 'same', kernelInitializer: init(3) })
    .apply(y) as tf.SymbolicTensor;
  x = tf.layers.add().apply([x, y]) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers
    .conv2d({
      name: 'down',
      filters: 8,
      kernelSize: 3,
      strides: 2,
      padding: 'valid',
      kernelInitializer: init(4),
    })
    .apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ name: 'head', units: 3, kernelInitializer: init(5) })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/** Moves batch-norm statistics off their defaults so the copy has to carry them over. */
function perturbBatchNorm(model: tf.LayersModel, seed: number): void {
  const rng = mulberry32(seed);
  for (const layer of model.layers) {
    if (layer.getClassName() !== 'BatchNormalization') continue;
    layer.setWeights(
      layer.getWeights().map((w, i) =>
        tf.tensor(
          Float32Array.from({ length: w.size }, () => (i === 3 ? 0.5 + rng() : rng() - 0.5)),
          w.shape,
        ),
      ),
    );
  }
}

function inputs(n: number, seed: number): tf.Tensor4D {
  const rng = mulberry32(seed);
  return tf.tensor4d(
    Float32Array.from({ length: n * 12 * 12 * 2 }, () => rng()),
    [n, 12, 12, 2],
  );
}

function relativeDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.norm(tf.sub(a, b)).dataSync()[0]! / tf.norm(a).dataSync()[0]!);
}

let savedPath = '';

beforeAll(async () => {
  await initBackend('cpu', createLogger('test', 'silent'));
  const model = residualModel(1);
  perturbBatchNorm(model, 2);
  await model.save(fileSaveHandler(join(dir, 'resnet')));
  savedPath = join(dir, 'resnet', 'model.json');
  model.dispose();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('decomposeModel', () => {
  it('with m = k² is exact per layer and the atom model computes what the original does', async () => {
    registerFileRouters();
    const model = await tf.loadLayersModel(pathToFileURL(savedPath).href);
    const { template, layers, atomModel } = await decomposeModel(model, { m: 9, federationId: 'resnet' });
    expect(layers.map((l) => l.name)).toEqual(['stem', 'block_a', 'block_b', 'down']);
    for (const l of layers) expect(l.relativeError).toBeLessThanOrEqual(1e-6);
    expect(template.layers.map((l) => [l.cIn, l.cOut, l.k, l.m])).toEqual([
      [2, 6, 3, 9],
      [6, 6, 3, 9],
      [6, 6, 3, 9],
      [6, 8, 3, 9],
    ]);
    expect(template.alphaFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(atomConvLayers(atomModel).map((l) => l.name)).toEqual(['stem', 'block_a', 'block_b', 'down']);
    const x = inputs(5, 3);
    const expected = model.predict(x) as tf.Tensor;
    const got = atomModel.predict(x) as tf.Tensor;
    expect(relativeDiff(expected, got)).toBeLessThan(1e-5);
    expect(templateMismatches(atomModel, template)).toEqual([]);
    tf.dispose([x, expected, got]);
    model.dispose();
    atomModel.dispose();
  });

  it('with m < k² reports each layer’s (non-zero) reconstruction error', async () => {
    const model = await loadLayersModelFile(savedPath);
    const { layers } = await decomposeModel(model, {
      m: { default: 4, stem: 6 },
      layers: ['stem', 'block_b'],
    });
    expect(layers.map((l) => [l.name, l.m])).toEqual([
      ['stem', 6],
      ['block_b', 4],
    ]);
    for (const l of layers) {
      expect(l.relativeError).toBeGreaterThan(1e-3);
      expect(l.relativeError).toBeLessThan(1);
      const sq = l.singularValues.map((s) => s * s);
      const tail = sq.slice(l.m).reduce((a, b) => a + b, 0) / sq.reduce((a, b) => a + b, 0);
      expect(l.relativeError).toBeCloseTo(Math.sqrt(tail), 4);
    }
    model.dispose();
  });

  it('gives an atom model that saves, loads and trains only its atoms (α frozen)', async () => {
    const model = await loadLayersModelFile(savedPath);
    const { template, atomModel } = await decomposeModel(model, { m: 6 });
    await atomModel.save(fileSaveHandler(join(dir, 'atom-model')));
    const loaded = await loadLayersModelFile(join(dir, 'atom-model', 'model.json'));
    expect(templateMismatches(loaded, template)).toEqual([]);
    const before = readAtoms(loaded);
    expect([...before.keys()]).toEqual(['stem', 'block_a', 'block_b', 'down']);
    expect(Array.from(before.get('stem')!)).toEqual(Array.from(template.layers[0]!.initialAtoms));
    const trainable = loaded.trainableWeights.map((w) => w.originalName);
    expect(trainable.some((n) => n.includes('alpha'))).toBe(false);
    expect(trainable.filter((n) => n.includes('atoms'))).toHaveLength(4);
    loaded.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    const x = inputs(8, 4);
    const y = tf.randomNormal([8, 3], 0, 1, 'float32', 5);
    await loaded.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    const after = readAtoms(loaded);
    expect(Array.from(after.get('block_a')!)).not.toEqual(Array.from(before.get('block_a')!));
    expect(templateMismatches(loaded, template)).toEqual([]);

    // A loop of one's own over atomVariables(): the atoms move, nothing else does.
    const atoms = atomVariables(loaded);
    expect(atoms.map((v) => v.shape)).toEqual(template.layers.map((l) => [l.m, l.k, l.k]));
    const others = loaded.weights.filter((w) => !w.originalName.endsWith('/atoms'));
    const othersBefore = others.map((w) => Array.from(w.read().dataSync()));
    const optimizer = tf.train.sgd(0.1);
    optimizer.minimize(
      () => tf.losses.meanSquaredError(y, loaded.apply(x, { training: false }) as tf.Tensor) as tf.Scalar,
      false,
      atoms,
    );
    const stepped = readAtoms(loaded);
    for (const name of stepped.keys()) {
      expect(Array.from(stepped.get(name)!)).not.toEqual(Array.from(after.get(name)!));
    }
    expect(others.map((w) => Array.from(w.read().dataSync()))).toEqual(othersBefore);
    optimizer.dispose();
    tf.dispose([x, y]);
    model.dispose();
    atomModel.dispose();
    loaded.dispose();
  });
});

describe('atom layers in a model built from a template', () => {
  it('builds a sequential model from template layers, reads and swaps atom sets per task', async () => {
    const source = await loadLayersModelFile(savedPath);
    const { template, atomModel } = await decomposeModel(source, { m: 5, layers: ['stem', 'block_a'] });
    const [stem, blockA] = template.layers;
    const model = tf.sequential({
      layers: [
        tf.layers.inputLayer({ inputShape: [12, 12, 2] }),
        atomConv2dFromTemplate(stem!, { activation: 'relu' }),
        tf.layers.batchNormalization(),
        atomConv2dFromTemplate(blockA!, { name: 'task_a/block_a' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 2 }),
      ],
    });
    expect(templateMismatches(model, template)).toEqual([]);
    const start = readAtoms(model);
    const taskB = new Map([...start].map(([k, v]) => [k, v.map((a) => -a)]));
    const previous = swapAtoms(model, taskB);
    expect(Array.from(previous.get('block_a')!)).toEqual(Array.from(start.get('block_a')!));
    expect(Array.from(readAtoms(model).get('block_a')!)).toEqual(Array.from(taskB.get('block_a')!));
    swapAtoms(model, previous);
    expect(Array.from(readAtoms(model).get('stem')!)).toEqual(Array.from(start.get('stem')!));
    expect(() => swapAtoms(model, { nope: new Float32Array(45) })).toThrow(/no atom layer for 'nope'/);
    const wrong = { ...template, layers: template.layers.map((l) => ({ ...l, m: l.m + 1 })) };
    expect(templateMismatches(model, wrong).join('\n')).toMatch(/m is 5 in the model, 6 in the template/);
    expect(model.getLayer('task_a/block_a')).toBeInstanceOf(AtomConv2D);
    // The template layer name survives save/load even where tfjs rewrites config strings.
    await model.save(fileSaveHandler(join(dir, 'sequential')));
    const loaded = await loadLayersModelFile(join(dir, 'sequential', 'model.json'));
    expect(templateMismatches(loaded, template)).toEqual([]);
    expect([...readAtoms(loaded).keys()]).toEqual(['stem', 'block_a']);
    loaded.dispose();
    source.dispose();
    atomModel.dispose();
    model.dispose();
  });
});

describe('models that cannot be decomposed', () => {
  const build = (layers: tf.layers.Layer[]) =>
    tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [8, 8, 2] }), ...layers] });

  it('a model without Conv2D layers', async () => {
    const m = build([tf.layers.flatten(), tf.layers.dense({ units: 2 })]);
    await expect(decomposeModel(m, { m: 4 })).rejects.toThrow(/no Conv2D layers/);
  });

  it('depthwise and separable convolutions', async () => {
    const m = build([
      tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3 }),
      tf.layers.separableConv2d({ name: 'sep', filters: 4, kernelSize: 3 }),
    ]);
    await expect(decomposeModel(m, { m: 4 })).rejects.toThrow(
      /found only unsupported convolutions: dw \(DepthwiseConv2D\), sep \(SeparableConv2D\)/,
    );
    await expect(decomposeModel(m, { m: 4, layers: ['dw'] })).rejects.toThrow(
      /'dw' is a DepthwiseConv2D: depthwise/,
    );
  });

  it('m > k²', async () => {
    const m = build([tf.layers.conv2d({ name: 'c', filters: 4, kernelSize: 3 })]);
    await expect(decomposeModel(m, { m: 10 })).rejects.toThrow(
      /m = 10 atoms is not possible for a 3×3 kernel/,
    );
  });

  it('non-finite weights', async () => {
    const m = build([tf.layers.conv2d({ name: 'c', filters: 4, kernelSize: 3 })]);
    const [kernel, bias] = m.getLayer('c').getWeights();
    const values = kernel!.dataSync().slice();
    values[7] = Number.POSITIVE_INFINITY;
    m.getLayer('c').setWeights([tf.tensor(values, kernel!.shape), bias!]);
    await expect(decomposeModel(m, { m: 4 })).rejects.toThrow(/layer 'c': kernel has non-finite values/);
  });

  it('dilation, unequal strides, non-square kernels and unfusable activations', async () => {
    const cases: [tf.layers.Layer, RegExp][] = [
      [
        tf.layers.conv2d({ name: 'c', filters: 4, kernelSize: 3, dilationRate: 2 }),
        /dilation 2×2 is not supported/,
      ],
      [tf.layers.conv2d({ name: 'c', filters: 4, kernelSize: 3, strides: [2, 1] }), /strides 2×1 differ/],
      [tf.layers.conv2d({ name: 'c', filters: 4, kernelSize: [3, 1] }), /kernel 3×1 is not square/],
      [
        tf.layers.conv2d({ name: 'c', filters: 4, kernelSize: 3, activation: 'tanh' }),
        /activation 'tanh' cannot be fused.*separate Activation layer/,
      ],
    ];
    for (const [layer, message] of cases) {
      await expect(decomposeModel(build([layer]), { m: 4 })).rejects.toThrow(message);
      await expect(decomposeModel(build([layer]), { m: 4 })).rejects.toBeInstanceOf(DecompositionError);
    }
  });

  it('a missing model file names the path', async () => {
    await expect(loadLayersModelFile(join(dir, 'absent', 'model.json'))).rejects.toThrow(
      /cannot read model file .*absent.*ENOENT/,
    );
  });
});
