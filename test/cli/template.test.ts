// `atomlens template create|show` as a child process: decomposing a saved model with a residual
// block and batch norm (per-layer errors printed, exact at m = k²), a layer list for training from
// scratch, and the clear errors bad models get.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/client/backend.js';
import { fileSaveHandler } from '../../src/client/model-files.js';
import { createLogger } from '../../src/shared/log.js';
import { writeNpy } from '../../src/shared/npy.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { readTemplateFile } from '../../src/shared/template-file.js';

const dir = mkdtempSync(join(tmpdir(), 'atomlens-template-cli-'));

function cli(args: string[]) {
  const r = spawnSync(process.execPath, atomlensArgv(['template', ...args]), {
    encoding: 'utf8',
    env: { ...process.env, ATOMLENS_LOG: 'warn' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function residual(): tf.LayersModel {
  const input = tf.input({ shape: [10, 10, 3] });
  const stem = tf.layers
    .conv2d({ name: 'stem', filters: 8, kernelSize: 3, padding: 'same', activation: 'relu' })
    .apply(input) as tf.SymbolicTensor;
  let y = tf.layers
    .conv2d({ name: 'res_a', filters: 8, kernelSize: 3, padding: 'same' })
    .apply(stem) as tf.SymbolicTensor;
  y = tf.layers.batchNormalization({ name: 'res_bn' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers.activation({ activation: 'relu' }).apply(y) as tf.SymbolicTensor;
  y = tf.layers
    .conv2d({ name: 'res_b', filters: 8, kernelSize: 3, padding: 'same' })
    .apply(y) as tf.SymbolicTensor;
  const sum = tf.layers.add().apply([stem, y]) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({}).apply(sum) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 4 }).apply(pooled) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

async function save(name: string, model: tf.LayersModel): Promise<string> {
  await model.save(fileSaveHandler(join(dir, name)));
  model.dispose();
  return join(dir, name, 'model.json');
}

const paths: Record<string, string> = {};

beforeAll(async () => {
  await initBackend('cpu', createLogger('test', 'silent'));
  paths.residual = await save('residual', residual());
  const seq = (layers: tf.layers.Layer[]) =>
    tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [8, 8, 2] }), ...layers] });
  paths.dense = await save('dense', seq([tf.layers.flatten(), tf.layers.dense({ units: 2 })]));
  paths.depthwise = await save('depthwise', seq([tf.layers.depthwiseConv2d({ name: 'dw', kernelSize: 3 })]));
  const nan = seq([tf.layers.conv2d({ name: 'c', filters: 2, kernelSize: 3 })]);
  const [kernel, bias] = nan.getLayer('c').getWeights();
  nan.getLayer('c').setWeights([tf.fill(kernel!.shape, Number.NaN), bias!]);
  paths.nan = await save('nan', nan);
  writeFileSync(
    join(dir, 'probe.npy'),
    writeNpy(new Float64Array(4 * 10 * 10 * 3).fill(0.5), [4, 10, 10, 3], 'float32'),
  );
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('atomlens template create --model', () => {
  it('prints each layer’s reconstruction error; m = k² is exact and the file verifies', () => {
    const out = join(dir, 'exact.template.json');
    const r = cli([
      'create',
      '--model',
      paths.residual!,
      '--m',
      '9',
      '--out',
      out,
      '--federation',
      'res',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.layers.map((l: { name: string }) => l.name)).toEqual(['stem', 'res_a', 'res_b']);
    for (const l of report.layers) expect(l.relativeError).toBeLessThanOrEqual(1e-6);
    const t = readTemplateFile(out);
    expect(t.alphaFingerprint).toBe(report.alphaFingerprint);
    expect(t.federationId).toBe('res');
    expect(t.layers.map((l) => l.m)).toEqual([9, 9, 9]);
  });

  it('with fewer atoms, only the chosen layers, and a recorded probe set', () => {
    const out = join(dir, 'small.template.json');
    const r = cli([
      'create',
      '--model',
      paths.residual!,
      '--m',
      '4',
      '--layers',
      'res_a,res_b',
      '--probe-set',
      join(dir, 'probe.npy'),
      '--out',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.split('\n').filter((line) => /relative error/.test(line));
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      const err = Number(/relative error (\S+)/.exec(row)![1]);
      expect(err).toBeGreaterThan(1e-3);
      expect(err).toBeLessThan(1);
    }
    expect(r.stdout).toMatch(/^ {2}res_a +8→8 +k=3 m=4 /m);
    const t = readTemplateFile(out);
    expect(t.probe.set?.shape).toEqual([4, 10, 10, 3]);
    expect(t.probe.set?.dtype).toBe('float32');
    const shown = cli(['show', out]);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/probe set sha256 [0-9a-f]{64} shape \[4, 10, 10, 3\]/);
  });

  it('gives each bad model its clear error (exit code 4)', () => {
    const out = join(dir, 'bad.template.json');
    const cases: [string[], RegExp][] = [
      [['--model', paths.dense!], /no Conv2D layers/],
      [['--model', paths.depthwise!], /found only unsupported convolutions: dw \(DepthwiseConv2D\)/],
      [
        ['--model', paths.residual!, '--m', '10'],
        /layer 'stem': m = 10 atoms is not possible for a 3×3 kernel/,
      ],
      [['--model', paths.nan!], /layer 'c': kernel has non-finite values/],
      [['--model', join(dir, 'absent.json')], /cannot read model file .*absent.json: ENOENT/],
    ];
    for (const [args, message] of cases) {
      const r = cli(['create', ...args, '--out', out]);
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(message);
    }
  });
});

describe('atomlens template create from a layer list, and usage errors', () => {
  it('writes a from-scratch template and shows it', () => {
    const out = join(dir, 'scratch.template.json');
    const r = cli(['create', '--layers-spec', 'conv1:3:16:3:9,conv2:16:32:3:6', '--seed', '4', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/conv2 +16→32 +k=3 m=6 +from scratch/);
    const shown = cli(['show', out]);
    expect(shown.stdout).toMatch(/federation federation v1, α fingerprint [0-9a-f]{64}/);
    expect(shown.stdout).toMatch(/probed layers: conv1, conv2 \(gap\)/);
  });

  it('names the flag to fix', () => {
    const f64 = join(dir, 'probe64.npy');
    writeFileSync(f64, writeNpy(new Float64Array(8), [2, 4]));
    expect(
      cli(['create', '--layers-spec', 'a:1:2:3:4', '--probe-set', f64, '--out', join(dir, 'x.json')]).stderr,
    ).toMatch(/--probe-set .*probe64.npy holds float64; save it as float32/);
    expect(cli(['create', '--out', 'x.json']).stderr).toMatch(
      /exactly one of --model, --layers-spec or --layers-file/,
    );
    expect(cli(['create', '--layers-spec', 'a:1:2:3', '--out', 'x.json']).stderr).toMatch(
      /--layers-spec: layer 'a:1:2:3'/,
    );
    expect(cli(['create', '--layers-spec', 'a:1:2:3:4', '--m', '3', '--out', 'x.json']).stderr).toMatch(
      /--m applies to --model only/,
    );
    const r = cli(['show', join(dir, 'absent.json')]);
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/cannot read template file/);
  });
});
