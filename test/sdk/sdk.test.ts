// The SDK end to end, through the package's public exports only (src/index.ts): a small
// ResNet-style CNN (not the demo's) is trained on a base task and decomposed into a template;
// the coordinator runs with that template and an .npy probe set; two SDK clients fine-tune their
// own copies with their own training loop, push their atoms, answer the probe requests, and an
// analysis report names the template's layers.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATABASE_FILE } from '../../src/coordinator/storage/sqlite.js';
import {
  AtomlensClient,
  decomposeModel,
  fileSaveHandler,
  initBackend,
  layerActivations,
  loadLayersModelFile,
  readAtoms,
  swapAtoms,
  templateMismatches,
  writeNpy,
  writeTemplateFile,
} from '../../src/index.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { analysisReport } from '../helpers/operator-analysis.js';

const SIZE = 12;

/** Images with one bright 3×3 blob; label = which half (task 'lr': left/right, 'tb': top/bottom, 'diag'). */
function dataset(n: number, task: 'lr' | 'tb' | 'diag', seed: number): { x: tf.Tensor4D; y: tf.Tensor2D } {
  const rng = mulberry32(seed);
  const pixels = new Float32Array(n * SIZE * SIZE);
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = Math.floor(rng() * (SIZE - 3));
    const c = Math.floor(rng() * (SIZE - 3));
    for (let p = 0; p < SIZE * SIZE; p++) pixels[i * SIZE * SIZE + p] = rng() * 0.2;
    for (let dr = 0; dr < 3; dr++)
      for (let dc = 0; dc < 3; dc++) pixels[i * SIZE * SIZE + (r + dr) * SIZE + c + dc] = 1;
    const mid = (SIZE - 3) / 2;
    labels.push(task === 'lr' ? Number(c > mid) : task === 'tb' ? Number(r > mid) : Number(r > c));
  }
  return {
    x: tf.tensor4d(pixels, [n, SIZE, SIZE, 1]),
    y: tf.oneHot(tf.tensor1d(labels, 'int32'), 2) as tf.Tensor2D,
  };
}

function resnet(): tf.LayersModel {
  const init = (s: number) => tf.initializers.heNormal({ seed: s });
  const input = tf.input({ shape: [SIZE, SIZE, 1] });
  let x = tf.layers
    .conv2d({ name: 'stem', filters: 8, kernelSize: 3, padding: 'same', kernelInitializer: init(1) })
    .apply(input) as tf.SymbolicTensor;
  x = tf.layers.batchNormalization({ name: 'stem_bn' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(x) as tf.SymbolicTensor;
  let y = tf.layers
    .conv2d({
      name: 'res_a',
      filters: 8,
      kernelSize: 3,
      padding: 'same',
      activation: 'relu',
      kernelInitializer: init(2),
    })
    .apply(x) as tf.SymbolicTensor;
  y = tf.layers
    .conv2d({ name: 'res_b', filters: 8, kernelSize: 3, padding: 'same', kernelInitializer: init(3) })
    .apply(y) as tf.SymbolicTensor;
  x = tf.layers.reLU().apply(tf.layers.add().apply([x, y]) as tf.SymbolicTensor) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers
    .dense({ name: 'head', units: 2, kernelInitializer: init(4) })
    .apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

async function trainRound(
  model: tf.LayersModel,
  data: { x: tf.Tensor4D; y: tf.Tensor2D },
  steps: number,
): Promise<number> {
  const optimizer = tf.train.adam(0.01);
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  let loss = 0;
  for (let s = 0; s < steps; s++) {
    const l = optimizer.minimize(
      () =>
        tf.losses.softmaxCrossEntropy(
          data.y,
          model.apply(data.x, { training: true }) as tf.Tensor,
        ) as tf.Scalar,
      true,
      variables,
    );
    loss = l!.dataSync()[0]!;
    l!.dispose();
  }
  optimizer.dispose();
  return loss;
}

describe('the SDK with a model of the user’s own', () => {
  let dir: string;
  let coordinator: ChildProcess;
  let address = '';
  const clients: AtomlensClient[] = [];

  beforeAll(async () => {
    await initBackend('wasm');
    dir = mkdtempSync(join(tmpdir(), 'atomlens-sdk-'));
    // Base training, then decomposition with m = k² (exact) into a template and an atom model.
    const base = resnet();
    const baseData = dataset(96, 'diag', 1);
    await trainRound(base, baseData, 15);
    const { template, atomModel, layers } = await decomposeModel(base, {
      m: 9,
      federationId: 'own-model',
      pooling: 'gap',
    });
    expect(layers.every((l) => l.relativeError <= 1e-6)).toBe(true);
    writeTemplateFile(join(dir, 'own.template.json'), template);
    await atomModel.save(fileSaveHandler(join(dir, 'atom-model')));
    const rng = mulberry32(5);
    const probe = Float32Array.from({ length: 32 * SIZE * SIZE }, () => rng());
    writeFileSync(join(dir, 'probe.npy'), writeNpy(probe, [32, SIZE, SIZE, 1], 'float32'));
    tf.dispose([baseData.x, baseData.y]);
    base.dispose();
    atomModel.dispose();

    coordinator = spawn(
      process.execPath,
      atomlensArgv([
        'coordinator',
        '--grpc-port',
        '0',
        '--http-port',
        '0',
        '--data',
        join(dir, 'data'),
        '--template',
        join(dir, 'own.template.json'),
        '--probe-set',
        join(dir, 'probe.npy'),
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
    );
    let stderr = '';
    coordinator.stderr!.on('data', (d) => (stderr += d));
    address = await new Promise<string>((resolve, reject) => {
      let out = '';
      coordinator.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /grpc listening on (\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      coordinator.once('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${stderr}`)));
    });
  }, 300_000);

  afterAll(async () => {
    for (const c of clients) c.close();
    if (coordinator && coordinator.exitCode === null) {
      coordinator.kill('SIGTERM');
      await new Promise((r) => coordinator.once('exit', r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('the built-in split-MNIST client refuses a custom network’s template and points at the SDK', async () => {
    const child = spawn(
      process.execPath,
      atomlensArgv([
        'client',
        '--coordinator',
        address,
        '--id',
        'carol',
        '--tasks',
        '0-1',
        '--rounds',
        '1',
        '--give-up',
        '10',
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(
      /custom network; this built-in client trains only the demo CNN — use the atomlens SDK/,
    );
  });

  it('two clients train with their own loop, push atoms, answer probes; the report names the layers', async () => {
    for (const [clientId, task] of [
      ['alice', 'lr'],
      ['bob', 'tb'],
    ] as const) {
      const model = await loadLayersModelFile(join(dir, 'atom-model', 'model.json'));
      const client = await AtomlensClient.connect({
        address,
        clientId,
        tasks: [{ id: task, classes: [0, 1] }],
        probeCacheDir: join(dir, `cache-${clientId}`),
        probe: async (call) => {
          const live = swapAtoms(model, call.atoms);
          try {
            return layerActivations(model, call.inputs, call.shape, call.layers, call.pooling);
          } finally {
            swapAtoms(model, live);
          }
        },
      });
      clients.push(client);
      expect(client.template.layers.map((l) => l.name)).toEqual(['stem', 'res_a', 'res_b']);
      expect(templateMismatches(model, client.template)).toEqual([]);
      const start = readAtoms(model);
      expect(Array.from(start.get('res_a')!)).toEqual(Array.from(client.template.layers[1]!.initialAtoms));
      const { shape } = await client.probeSet();
      expect(shape).toEqual([32, SIZE, SIZE, 1]);
      const data = dataset(64, task, clientId === 'alice' ? 2 : 3);
      for (let round = client.lastRound(task) + 1; round <= 2; round++) {
        const loss = await trainRound(model, data, 5);
        const ack = await client.push(task, round, readAtoms(model), { loss, samples: 64 });
        expect(ack).toMatchObject({ duplicate: false, round });
      }
      // Pushing the same round again is acknowledged as a duplicate.
      expect((await client.push(task, 2, readAtoms(model))).duplicate).toBe(true);
      expect(Array.from(readAtoms(model).get('res_a')!)).not.toEqual(Array.from(start.get('res_a')!));
      tf.dispose([data.x, data.y]);
    }

    const report = await analysisReport(address, { models: [], reason: 'sdk', probeDeadlineMs: 60_000 });
    expect(report.missing).toEqual([]);
    expect(report.template.probeLayers).toEqual(['stem', 'res_a', 'res_b']);
    expect(report.template.probe).toMatchObject({ size: 32 });
    expect(report.models.map((m) => [m.clientId, m.answered])).toEqual([
      ['alice', true],
      ['bob', true],
    ]);
    // 8 channels per layer (pooled) against 32 probe inputs: 2(d + 2) < n, so the SDK sent every
    // layer as its centred activations (a factor of rank 8, 1 KiB) rather than the 4 KiB Gram.
    const db = new Database(join(dir, 'data', DATABASE_FILE), { readonly: true });
    const sent = db
      .prepare(
        'SELECT client_id, layer, n, feature_dim, factor_rank, length(gram) AS bytes FROM probe_summaries ORDER BY client_id, layer',
      )
      .all();
    db.close();
    expect(sent).toHaveLength(6);
    for (const row of sent as { n: number; feature_dim: number; factor_rank: number; bytes: number }[]) {
      expect(row).toMatchObject({ n: 32, feature_dim: 8, factor_rank: 8, bytes: 32 * 8 * 4 });
    }
  }, 180_000);
});
