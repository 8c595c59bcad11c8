// The atom-factored layer: forward pass = plain conv2d with W[o,c] = Σ_a α[o,c,a]·D[a], weights
// and config survive a save/load round trip, α stays frozen while atoms train.
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { AtomConv2D, composeWeight } from '../../src/client/atomConv.js';
import { initBackend } from '../../src/client/backend.js';
import { createLogger } from '../../src/shared/log.js';
import { uniformFloat32 } from '../helpers/random.js';

const quiet = createLogger('test', 'silent');

/** W in tfjs layout [k][k][cIn][cOut] by the defining sum, written out longhand. */
function composeByHand(
  alpha: Float32Array,
  atoms: Float32Array,
  cOut: number,
  cIn: number,
  m: number,
  k: number,
) {
  const w = new Float32Array(k * k * cIn * cOut);
  for (let o = 0; o < cOut; o++)
    for (let c = 0; c < cIn; c++)
      for (let i = 0; i < k; i++)
        for (let j = 0; j < k; j++) {
          let sum = 0;
          for (let a = 0; a < m; a++) sum += alpha[(o * cIn + c) * m + a]! * atoms[(a * k + i) * k + j]!;
          w[((i * k + j) * cIn + c) * cOut + o] = sum;
        }
  return w;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe.each(['cpu', 'wasm'] as const)('AtomConv2D on %s', (backend) => {
  beforeAll(async () => {
    await initBackend(backend, quiet);
  });

  it.each([
    { cIn: 3, cOut: 5, k: 3, m: 4, strides: 1, padding: 'same' as const },
    { cIn: 2, cOut: 4, k: 5, m: 7, strides: 2, padding: 'valid' as const },
  ])('forward equals conv2d with the composed weight (%o)', ({ cIn, cOut, k, m, strides, padding }) => {
    const alpha = uniformFloat32(cOut * cIn * m, 11);
    const atoms = uniformFloat32(m * k * k, 12);
    const layer = new AtomConv2D({
      filters: cOut,
      kernelSize: k,
      atoms: m,
      strides,
      padding,
      activation: 'linear',
      useBias: false,
      alpha,
      initialAtoms: atoms,
    });
    const x = tf.tensor4d(uniformFloat32(2 * 9 * 9 * cIn, 13), [2, 9, 9, cIn]);
    const y = layer.apply(x) as tf.Tensor;
    const w = tf.tensor4d(composeByHand(alpha, atoms, cOut, cIn, m, k), [k, k, cIn, cOut]);
    const expected = tf.conv2d(x, w, strides, padding);
    expect(y.shape).toEqual(expected.shape);
    expect(maxAbsDiff(y.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
    // composeWeight (one matmul + transpose) is the same sum.
    const composed = composeWeight(
      tf.tensor3d(alpha, [cOut, cIn, m]),
      tf.tensor3d(atoms, [m, k, k]),
      cOut,
      cIn,
    );
    expect(maxAbsDiff(composed.dataSync(), w.dataSync())).toBeLessThan(1e-6);
    tf.dispose([x, y, w, expected, composed]);
    layer.dispose();
  });

  it('adds the bias and applies relu', () => {
    const layer = new AtomConv2D({
      filters: 2,
      kernelSize: 3,
      atoms: 3,
      activation: 'relu',
      alpha: uniformFloat32(2 * 1 * 3, 5),
    });
    const x = tf.tensor4d(uniformFloat32(1 * 6 * 6, 6), [1, 6, 6, 1]);
    layer.apply(x);
    layer.setBias(new Float32Array([0.5, -0.25]));
    const y = (layer.apply(x) as tf.Tensor).dataSync();
    const pre = tf.add(tf.conv2d(x, layer.composedWeight(), 1, 'same'), tf.tensor1d([0.5, -0.25])).dataSync();
    expect(
      maxAbsDiff(
        y,
        pre.map((v) => Math.max(0, v)),
      ),
    ).toBeLessThan(1e-6);
    expect(Math.min(...y)).toBeGreaterThanOrEqual(0);
    layer.dispose();
  });

  it.each([
    { strides: 1, padding: 'same' as const },
    { strides: 2, padding: 'valid' as const },
  ])(
    'relu layer: gradients of x, atoms and bias equal those of relu(conv2d + b) (%o)',
    ({ strides, padding }) => {
      const [cIn, cOut, k, m] = [3, 4, 3, 5];
      const layer = new AtomConv2D({
        filters: cOut,
        kernelSize: k,
        atoms: m,
        strides,
        padding,
        activation: 'relu',
        alpha: uniformFloat32(cOut * cIn * m, 21),
        initialAtoms: uniformFloat32(m * k * k, 22),
      });
      const x = tf.tensor4d(uniformFloat32(2 * 9 * 9 * cIn, 23), [2, 9, 9, cIn]);
      layer.apply(x);
      layer.setBias(uniformFloat32(cOut, 24).map((v) => v * 0.3));
      const [atoms, bias] = layer.trainableWeights.map((w) => w.read() as tf.Variable);
      // A loss whose gradient differs per output entry, so every mask and sum shows.
      const weighting = tf.tensor(uniformFloat32((layer.apply(x) as tf.Tensor).size, 25));
      const lossOf = (forward: (input: tf.Tensor) => tf.Tensor) => (input: tf.Tensor) =>
        tf.sum(tf.mul(tf.reshape(forward(input), [-1]), weighting)) as tf.Scalar;
      const fused = lossOf((input) => layer.apply(input) as tf.Tensor);
      const unfused = lossOf((input) =>
        tf.relu(tf.add(tf.conv2d(input as tf.Tensor4D, layer.composedWeight(), strides, padding), bias!)),
      );
      const grads = (loss: (input: tf.Tensor) => tf.Scalar) => {
        const dx = tf.grad(loss)(x).dataSync();
        const { grads: g } = tf.variableGrads(() => loss(x), [atoms!, bias!]);
        return [dx, g[atoms!.name]!.dataSync(), g[bias!.name]!.dataSync()];
      };
      const [expected, actual] = [grads(unfused), grads(fused)];
      expected.forEach((e, i) => {
        const scale = Math.max(...e.map(Math.abs));
        expect(scale).toBeGreaterThan(0);
        expect(maxAbsDiff(actual[i]!, e)).toBeLessThan(1e-5 * Math.max(1, scale));
      });
      weighting.dispose();
      x.dispose();
      layer.dispose();
    },
  );
});

describe('AtomConv2D as a Keras-style layer', () => {
  beforeAll(async () => {
    await initBackend('cpu', quiet);
  });

  it('has only atoms and bias trainable; atom init has variance 1/k²', () => {
    const layer = new AtomConv2D({
      filters: 16,
      kernelSize: 3,
      atoms: 6,
      seed: 3,
      alpha: uniformFloat32(16 * 8 * 6, 1),
    });
    layer.apply(tf.zeros([1, 10, 10, 8]));
    expect(layer.trainableWeights.map((w) => w.originalName.split('/').pop())).toEqual(['atoms', 'bias']);
    expect(layer.nonTrainableWeights.map((w) => w.originalName.split('/').pop())).toEqual(['alpha']);
    const atoms = layer.atomValues();
    const variance = atoms.reduce((s, v) => s + v * v, 0) / atoms.length;
    // 54 samples of N(0, 1/9): the sample variance is within a factor ~2 with near certainty.
    expect(variance).toBeGreaterThan(1 / 9 / 2.2);
    expect(variance).toBeLessThan((1 / 9) * 2.2);
    layer.dispose();
  });

  it('round-trips through model save/load (config + weights) and gives identical outputs', async () => {
    const input = tf.input({ shape: [8, 8, 2] });
    const conv = new AtomConv2D({
      filters: 3,
      kernelSize: 3,
      atoms: 5,
      alpha: uniformFloat32(3 * 2 * 5, 9),
      seed: 4,
    });
    const pooled = tf.layers.globalAveragePooling2d({}).apply(conv.apply(input) as tf.SymbolicTensor);
    const model = tf.model({ inputs: input, outputs: pooled as tf.SymbolicTensor });
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        artifacts = a;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }),
    );
    const topology = JSON.stringify(artifacts!.modelTopology);
    expect(topology).toContain('"class_name":"AtomConv2D"');
    expect(topology).toContain('"atoms":5');
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts!));
    const x = tf.tensor4d(uniformFloat32(2 * 8 * 8 * 2, 10), [2, 8, 8, 2]);
    const a = (model.predict(x) as tf.Tensor).dataSync();
    const b = (loaded.predict(x) as tf.Tensor).dataSync();
    expect(maxAbsDiff(a, b)).toBe(0);
    expect(loaded.layers[1]).toBeInstanceOf(AtomConv2D);
    model.dispose();
    loaded.dispose();
  });

  it('works inside tf.sequential and training moves atoms but never α', () => {
    const alpha = uniformFloat32(4 * 1 * 3, 21);
    const model = tf.sequential({
      layers: [
        new AtomConv2D({ inputShape: [6, 6, 1], filters: 4, kernelSize: 3, atoms: 3, alpha, seed: 2 }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 1 }),
      ],
    });
    const conv = model.layers[0] as AtomConv2D;
    const atomsBefore = conv.atomValues().slice();
    const x = tf.tensor4d(uniformFloat32(4 * 36, 22), [4, 6, 6, 1]);
    const y = tf.tensor2d([1, -1, 0.5, 2], [4, 1]);
    const optimizer = tf.train.sgd(0.1);
    for (let i = 0; i < 3; i++) {
      optimizer.minimize(() => tf.losses.meanSquaredError(y, model.apply(x) as tf.Tensor) as tf.Scalar);
    }
    expect(maxAbsDiff(conv.alphaValues(), alpha)).toBe(0);
    expect(maxAbsDiff(conv.atomValues(), atomsBefore)).toBeGreaterThan(1e-4);
    model.dispose();
  });

  it('rejects inconsistent arguments with a clear message', () => {
    expect(() => new AtomConv2D({ filters: 2, kernelSize: 3, atoms: 10 })).toThrow(/atoms must not exceed/);
    const layer = new AtomConv2D({ filters: 2, kernelSize: 3, atoms: 2, alpha: new Float32Array(5) });
    expect(() => layer.build([null, 5, 5, 1])).toThrow(/alpha has 5 values, expected 2×1×2/);
  });
});
