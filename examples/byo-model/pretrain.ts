// Step 1 (the model's owner): train the small ResNet as an ordinary TensorFlow.js model on the
// base task — upright MNIST digits 0–4 — and save it as model.json + weights.bin. Nothing
// federated yet; any Layers model saved this way can be decomposed by `atomlens template create`.
//
//   node --import tsx examples/byo-model/pretrain.ts --out work/pretrained [--per-digit 300] [--epochs 2]
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { fileSaveHandler, initBackend } from 'atomlens';
import { type ImageSet, loadDigits, PIXELS, permutation, SIDE, SPLITS } from './data.js';
import { buildResNetModel } from './model.js';

const BASE_DIGITS = [0, 1, 2, 3, 4];

const { values } = parseArgs({
  options: {
    out: { type: 'string', default: 'work/pretrained' },
    'per-digit': { type: 'string', default: '300' },
    epochs: { type: 'string', default: '2' },
    seed: { type: 'string', default: '1' },
  },
});
const perDigit = Number(values['per-digit']);
const epochs = Number(values.epochs);
const seed = Number(values.seed);
if (perDigit > SPLITS.base.to - SPLITS.base.from) throw new Error('--per-digit is at most 600');

const backend = await initBackend('auto');
const started = performance.now();

/** The set as tensors, in an order shuffled by `shuffleSeed` (model.fit's own shuffle is unseeded). */
function tensors(set: ImageSet, shuffleSeed: number) {
  const order = permutation(set.count, shuffleSeed);
  const images = new Float32Array(set.images.length);
  const labels = new Int32Array(set.count);
  order.forEach((from, to) => {
    images.set(set.images.subarray(from * PIXELS, (from + 1) * PIXELS), to * PIXELS);
    labels[to] = set.labels[from]!;
  });
  return {
    x: tf.tensor4d(images, [set.count, SIDE, SIDE, 1]),
    y: tf.oneHot(tf.tensor1d(labels, 'int32'), BASE_DIGITS.length),
  };
}

const model = buildResNetModel({ classes: BASE_DIGITS.length, seed });
model.compile({
  optimizer: tf.train.adam(2e-3),
  // The head outputs logits.
  loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(yTrue, yPred),
  metrics: ['accuracy'],
});
const train = tensors(loadDigits(BASE_DIGITS, perDigit, SPLITS.base.from), seed);
await model.fit(train.x, train.y, {
  epochs,
  batchSize: 32,
  shuffle: false,
  verbose: 0,
  callbacks: {
    onEpochEnd: async (epoch, logs) => {
      process.stdout.write(
        `epoch ${epoch + 1}/${epochs}: loss ${logs?.loss?.toFixed(4)}, accuracy ${((logs?.acc ?? 0) * 100).toFixed(1)}%\n`,
      );
    },
  },
});

// Held-out images of the same digits (the members' index range, unused for digits 0–4).
const held = tensors(loadDigits(BASE_DIGITS, 40, SPLITS.members.from), seed + 1);
const accuracy = tf.tidy(
  () =>
    tf.mean(tf.equal(tf.argMax(model.predict(held.x) as tf.Tensor, 1), tf.argMax(held.y, 1))).dataSync()[0]!,
);
await model.save(fileSaveHandler(values.out));
process.stdout.write(
  `base task digits ${BASE_DIGITS.join(',')}: ${train.x.shape[0]} images, held-out accuracy ${(accuracy * 100).toFixed(1)}% ` +
    `(${backend.name}, ${((performance.now() - started) / 1000).toFixed(1)} s); saved ${values.out}/model.json\n`,
);
