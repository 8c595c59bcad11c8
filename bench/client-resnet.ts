// Fine-tuning throughput of the SDK example's ResNet-style CNN (examples/byo-model) as its
// federation members run it: the model decomposed with m = 9 atoms per 3×3 convolution (what
// `atomlens template create` does), batch norm in inference mode, only the atoms and the dense head
// trained; Adam 1e-2, batch 32, random 28×28 images, each step's minibatch gathered from one
// in-memory tensor and its loss read back (examples/byo-model/client.ts's loop).
import * as tf from '@tensorflow/tfjs';
import { buildResNetModel, HEAD_LAYER } from '../examples/byo-model/model.js';
import { atomVariables } from '../src/client/atom-layers.js';
import { type BackendInfo, initBackend } from '../src/client/backend.js';
import { decomposeModel } from '../src/client/decompose.js';
import { createLogger } from '../src/shared/log.js';
import { mulberry32 } from '../src/shared/rng.js';

export const RESNET_BATCH = 32;
const CLASSES = 5;
const SAMPLES = 2048;

export interface ResNetMeasurement {
  backend: BackendInfo;
  /** samples/s of each repetition. */
  rates: number[];
  /** Samples per CPU-second of the process, best repetition. */
  perCpu: number;
  msPerBatch: number;
}

export async function measureResNet(
  backend: 'wasm' | 'cpu',
  batchesPerRep: number,
  reps: number,
  log: (msg: string) => void,
  warmUp = 3,
): Promise<ResNetMeasurement> {
  const info = await initBackend(backend, createLogger('bench', 'warn'));
  const plain = buildResNetModel({ classes: CLASSES, seed: 1 });
  const { atomModel: model } = await decomposeModel(plain, { m: 9 });
  plain.dispose();
  const rng = mulberry32(7);
  const x = tf.tensor4d(
    Float32Array.from({ length: SAMPLES * 28 * 28 }, () => rng()),
    [SAMPLES, 28, 28, 1],
  );
  const y = tf.oneHot(
    tf.tensor1d(
      Int32Array.from({ length: SAMPLES }, () => Math.floor(rng() * CLASSES)),
      'int32',
    ),
    CLASSES,
  );
  const head = model.getLayer(HEAD_LAYER).trainableWeights.map((w) => w.read() as tf.Variable);
  const trainable = [...atomVariables(model), ...head];
  const optimizer = tf.train.adam(1e-2);
  let position = 0;
  const step = () => {
    if (position + RESNET_BATCH > SAMPLES) position = 0;
    const idx = tf.tensor1d(
      Int32Array.from({ length: RESNET_BATCH }, (_, i) => (position + i * 61) % SAMPLES),
      'int32',
    );
    position += RESNET_BATCH;
    const loss = optimizer.minimize(
      () => {
        const logits = model.apply(tf.gather(x, idx), { training: false }) as tf.Tensor;
        return tf.losses.softmaxCrossEntropy(tf.gather(y, idx), logits) as tf.Scalar;
      },
      true,
      trainable,
    );
    loss!.dataSync();
    tf.dispose([loss!, idx]);
  };
  for (let i = 0; i < warmUp; i++) step(); // warm-up: kernels, first allocations
  if (process.env.RESNET_PROFILE) {
    const prof = await tf.profile(() => {
      for (let i = 0; i < 5; i++) step();
    });
    const byName = new Map<string, number>();
    for (const k of prof.kernels) {
      const key = `${k.name} ${JSON.stringify(k.inputShapes)}`;
      byName.set(key, (byName.get(key) ?? 0) + (k.kernelTimeMs as number) / 5);
    }
    const total = [...byName.values()].reduce((a, b) => a + b, 0);
    log(`kernel ms per step: ${total.toFixed(1)}`);
    for (const [k, ms] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, 25)) log(`${ms.toFixed(2)} ${k}`);
  }
  const rates: number[] = [];
  let perCpu = 0;
  let msPerBatch = Number.POSITIVE_INFINITY;
  for (let rep = 0; rep < reps; rep++) {
    const cpu = process.cpuUsage();
    const t0 = performance.now();
    for (let b = 0; b < batchesPerRep; b++) step();
    const seconds = (performance.now() - t0) / 1000;
    const used = process.cpuUsage(cpu);
    const samples = batchesPerRep * RESNET_BATCH;
    rates.push(samples / seconds);
    perCpu = Math.max(perCpu, samples / ((used.user + used.system) / 1e6));
    msPerBatch = Math.min(msPerBatch, (seconds * 1000) / batchesPerRep);
    log(
      `ResNet ${info.name}: ${samples} samples in ${seconds.toFixed(2)} s → ${(samples / seconds).toFixed(0)} samples/s`,
    );
  }
  optimizer.dispose();
  tf.dispose([x, y]);
  model.dispose();
  return { backend: info, rates, perCpu, msPerBatch };
}
