// The gradient kernels registered for the WASM backend (Conv2DBackpropFilter, and the
// XNNPACK-based Conv2DBackpropInput, MaxPoolGrad, Tile) against the pure-JS CPU backend, on raw
// convolutions of assorted shapes, on batch norm's gradient and on the whole demo CNN.
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initBackend } from '../../src/client/backend.js';
import { ContinualModel } from '../../src/client/model.js';
import { rotateAndSwapFilter, writeTile, writeTransposedPatches } from '../../src/client/wasmKernels.js';
import { createLogger } from '../../src/shared/log.js';
import { buildTemplate } from '../../src/shared/template.js';
import { uniformFloat32 } from '../helpers/random.js';

const quiet = createLogger('test', 'silent');

/** Relative error: max |a−b| over max |b| (float32 sums of ~10³ terms agree to ~1e-6–1e-5). */
function relativeError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}

type Pad = 'same' | 'valid' | [[0, 0], [number, number], [number, number], [0, 0]];
interface ConvCase {
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride: number | [number, number];
  pad: Pad;
}

const CASES: ConvCase[] = [
  { x: [3, 9, 7, 2], w: [3, 3, 2, 4], stride: 1, pad: 'same' },
  { x: [2, 10, 9, 3], w: [3, 2, 3, 5], stride: 2, pad: 'valid' },
  { x: [2, 8, 8, 4], w: [5, 5, 4, 3], stride: 1, pad: 'same' },
  { x: [2, 11, 11, 3], w: [3, 3, 3, 4], stride: [2, 1], pad: 'same' },
  {
    x: [1, 7, 6, 2],
    w: [3, 3, 2, 2],
    stride: 1,
    pad: [
      [0, 0],
      [2, 0],
      [1, 1],
      [0, 0],
    ],
  },
  { x: [4, 28, 28, 1], w: [3, 3, 1, 8], stride: 1, pad: 'same' },
  // c_in ≥ 8: the filter gradient takes the convolution form.
  { x: [3, 7, 9, 8], w: [3, 3, 8, 5], stride: 1, pad: 'same' },
  { x: [2, 9, 8, 12], w: [3, 2, 12, 4], stride: 1, pad: 'valid' },
  {
    x: [2, 6, 6, 8],
    w: [3, 3, 8, 3],
    stride: 1,
    pad: [
      [0, 0],
      [2, 1],
      [0, 2],
      [0, 0],
    ],
  },
  { x: [2, 9, 9, 8], w: [3, 3, 8, 3], stride: 2, pad: 'same' },
];

/** dL/dx and dL/dW for L = Σ conv(x, W)² · r (r fixed random, so every output matters). */
function convGrads(c: ConvCase): [Float32Array, Float32Array] {
  return tf.tidy(() => {
    const x = tf.tensor4d(
      uniformFloat32(
        c.x.reduce((a, b) => a * b),
        1,
      ),
      c.x,
    );
    const w = tf.tensor4d(
      uniformFloat32(
        c.w.reduce((a, b) => a * b),
        2,
      ),
      c.w,
    );
    const f = (a: tf.Tensor, b: tf.Tensor) => {
      const y = tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad);
      const r = tf.tensor(uniformFloat32(y.size, 3), y.shape);
      return tf.sum(tf.mul(tf.square(y), r));
    };
    const [gx, gw] = tf.grads(f)([x, w]);
    return [gx!.dataSync() as Float32Array, gw!.dataSync() as Float32Array];
  });
}

/** Gradients of the demo CNN's loss w.r.t. every trainable variable, in a fixed order. */
function modelGrads(): Float32Array[] {
  const model = new ContinualModel(buildTemplate(), { seed: 9 });
  model.addTask({ id: '0-1', classes: [0, 1] });
  const grads = tf.tidy(() => {
    const x = tf.tensor4d(
      uniformFloat32(6 * 28 * 28, 4).map((v) => Math.abs(v)),
      [6, 28, 28, 1],
    );
    const labels = tf.oneHot(tf.tensor1d([0, 1, 1, 0, 1, 0], 'int32'), 2);
    const vars = model.trainableVariables('0-1');
    const { grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(labels, model.logits('0-1', x)) as tf.Scalar,
      vars,
    );
    return vars.map((v) => grads[v.name]!.dataSync() as Float32Array);
  });
  model.dispose();
  return grads;
}

describe('WASM gradient kernels', () => {
  it('the transposed patch matrix and rotated filter are what the formulas say', () => {
    // 1 image 3×3, 1 channel, 2×2 kernel, valid: patch rows are the 4 shifted windows.
    const info = tf.backend_util.computeConv2DInfo([1, 3, 3, 1], [2, 2, 1, 1], 1, 1, 'valid');
    const out = new Float32Array(4 * 4);
    writeTransposedPatches(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), out, info);
    expect([...out]).toEqual([1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9]);
    // W[i,j,c,o] for k=2, cIn=1, cOut=2 → W̃[i,j,o,c] = W[1−i,1−j,c,o].
    const w = Float32Array.from([1, 10, 2, 20, 3, 30, 4, 40]);
    const rotated = new Float32Array(8);
    rotateAndSwapFilter(w, rotated, 2, 2, 1, 2);
    expect([...rotated]).toEqual([4, 40, 3, 30, 2, 20, 1, 10]);
  });

  it('max-pool gradients on WASM equal the CPU backend (ties, tiling 2×2, overlapping windows, padding)', async () => {
    const cases: [number[], number, number, 'valid' | 'same'][] = [
      // 2×2 windows tiling the input: the branch-free path.
      [[3, 8, 8, 4], 2, 2, 'valid'],
      [[2, 6, 10, 3], 2, 2, 'same'],
      // 2×2 at stride 2 leaving the last row and column out: the general loop.
      [[2, 7, 9, 3], 2, 2, 'valid'],
      [[2, 9, 7, 3], 3, 2, 'same'],
      [[2, 7, 7, 2], 3, 1, 'valid'],
    ];
    const grads = () =>
      cases.map(([shape, size, stride, pad]) =>
        tf.tidy(() => {
          // Values quantised to a few levels so windows contain ties (first maximum wins).
          const x = tf.tensor4d(
            uniformFloat32(
              shape.reduce((a, b) => a * b),
              5,
            ).map((v) => Math.round(v * 3) / 3),
            shape as [number, number, number, number],
          );
          const f = (a: tf.Tensor) => {
            const y = tf.maxPool(a as tf.Tensor4D, size, stride, pad);
            return tf.sum(tf.mul(y, tf.tensor(uniformFloat32(y.size, 6), y.shape)));
          };
          return tf.grad(f)(x).dataSync() as Float32Array;
        }),
      );
    await initBackend('cpu', quiet);
    const reference = grads();
    await initBackend('wasm', quiet);
    const wasm = grads();
    wasm.forEach((g, i) => {
      expect(relativeError(g, reference[i]!), `case ${i}`).toBeLessThan(1e-6);
    });
  });

  it('conv2d gradients on WASM equal the CPU backend within float32 tolerance', async () => {
    await initBackend('cpu', quiet);
    const reference = CASES.map(convGrads);
    await initBackend('wasm', quiet);
    const wasm = CASES.map(convGrads);
    CASES.forEach((c, i) => {
      const [dxRef, dwRef] = reference[i]!;
      const [dx, dw] = wasm[i]!;
      expect(relativeError(dx, dxRef), `dx for ${JSON.stringify(c)}`).toBeLessThan(2e-5);
      expect(relativeError(dw, dwRef), `dW for ${JSON.stringify(c)}`).toBeLessThan(2e-5);
    });
  });

  it('gradients of the demo CNN (atoms, biases, head) on WASM equal the CPU backend', async () => {
    await initBackend('cpu', quiet);
    const reference = modelGrads();
    await initBackend('wasm', quiet);
    const wasm = modelGrads();
    expect(wasm.length).toBe(reference.length);
    // Atoms + bias per conv layer, then the head's kernel and bias.
    expect(wasm.length).toBe(buildTemplate().layers.length * 2 + 2);
    wasm.forEach((g, i) => {
      expect(relativeError(g, reference[i]!), `variable ${i}`).toBeLessThan(1e-4);
    });
  });

  it('writeTile repeats every dimension as the definition says', () => {
    const cases: [number[], number[]][] = [
      [[], []],
      [[3], [4]],
      [
        [2, 3],
        [1, 1],
      ],
      [
        [2, 3],
        [3, 2],
      ],
      [
        [1, 1, 1, 5],
        [4, 3, 2, 1],
      ],
      [
        [2, 1, 3, 2],
        [2, 3, 1, 2],
      ],
    ];
    for (const [shape, reps] of cases) {
      const size = shape.reduce((a, b) => a * b, 1);
      const outShape = shape.map((s, d) => s * reps[d]!);
      const x = Float32Array.from({ length: size }, (_, i) => i + 1);
      const out = new Float32Array(outShape.reduce((a, b) => a * b, 1));
      writeTile(x, shape, reps, out);
      // out[i] = x[Σ_d (i_d mod shape_d) · stride_d] for the output's multi-index i.
      const want = Array.from(out, (_, flat) => {
        let src = 0;
        let stride = 1;
        let rest = flat;
        for (let d = shape.length - 1; d >= 0; d--) {
          const i = rest % outShape[d]!;
          rest = Math.floor(rest / outShape[d]!);
          src += (i % shape[d]!) * stride;
          stride *= shape[d]!;
        }
        return x[src]!;
      });
      expect([...out], `${shape} × ${reps}`).toEqual(want);
    }
  });

  it('tile and batch-norm gradients on WASM equal the CPU backend', async () => {
    const run = () =>
      tf.tidy(() => {
        const tiles = [
          tf.tile(tf.tensor4d(uniformFloat32(16, 7), [1, 1, 1, 16]), [3, 5, 4, 1]),
          tf.tile(tf.tensor3d([1, 2, 3, 4, 5, 6], [1, 2, 3], 'int32'), [2, 2, 3]),
          tf.tile(tf.tensor2d([true, false, false, true], [2, 2], 'bool'), [3, 1]),
        ].map((t) => Array.from(t.dataSync()));
        const x = tf.tensor4d(uniformFloat32(3 * 6 * 5 * 8, 8), [3, 6, 5, 8]);
        const mean = tf.tensor1d(uniformFloat32(8, 9));
        const variance = tf.tensor1d(uniformFloat32(8, 10).map((v) => 0.5 + Math.abs(v)));
        const offset = tf.tensor1d(uniformFloat32(8, 11));
        const scale = tf.tensor1d(uniformFloat32(8, 12));
        const r = tf.tensor4d(uniformFloat32(x.size, 13), x.shape);
        const f = (a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) =>
          tf.sum(tf.mul(tf.batchNorm(a as tf.Tensor4D, mean, variance, o, s, 1e-3), r));
        const grads = tf
          .grads(f)([x, scale, offset])
          .map((g) => g.dataSync() as Float32Array);
        return { tiles, grads };
      });
    await initBackend('cpu', quiet);
    const reference = run();
    await initBackend('wasm', quiet);
    expect(tf.getKernel('Tile', 'wasm')?.kernelFunc.name).toBe('tileByBlockCopies');
    const wasm = run();
    expect(wasm.tiles).toEqual(reference.tiles);
    wasm.grads.forEach((g, i) => {
      expect(relativeError(g, reference.grads[i]!), `gradient ${i}`).toBeLessThan(1e-5);
    });
  });
});
