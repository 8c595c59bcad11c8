import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  gramFromActivations,
  gramToDistances,
  gramToSquaredDistances,
} from '../../src/analysis/representation.js';
import { gromovWasserstein, normaliseByMeanOffDiagonal, squaredEuclideanCost } from '../../src/ot/index.js';
import { readNpy, writeNpy } from '../../src/shared/npy.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { runAtomlens } from '../helpers/cli.js';
import { flat, gwCases } from './fixtures.js';

const atomlens = (args: string[]) => runAtomlens(args);

describe('atomlens gw (spawned CLI)', () => {
  let dir: string;
  const path = (name: string) => join(dir, name);
  const rng = mulberry32(31);
  const n = 24;
  const X = Float64Array.from({ length: n * 5 }, () => rng() - 0.5);
  const Y = new Float64Array(n * 3);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < 3; j++) Y[i * 3 + j] = Math.tanh(X[i * 5 + j]! + X[i * 5 + j + 2]!) + 0.1 * rng();
  }
  const reference = gwCases().find((c) => c.name === 'layers_n16')!.data;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'atomlens-gw-cli-'));
    writeFileSync(path('X.npy'), writeNpy(X, [n, 5]));
    writeFileSync(path('Y.npy'), writeNpy(Y, [n, 3]));
    writeFileSync(path('C1.npy'), writeNpy(flat(reference.C1), [16, 16]));
    writeFileSync(path('C2.json'), JSON.stringify(reference.C2));
    writeFileSync(path('bad.json'), '[[1, 2], [3]]');
    writeFileSync(path('garbage.npy'), 'definitely not numpy');
    writeFileSync(path('vector.npy'), writeNpy([1, 2, 3], [3]));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--input activations --json prints one object matching the library on the same data', async () => {
    const r = await atomlens(['gw', path('X.npy'), path('Y.npy'), '--input', 'activations', '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    for (const key of ['gw', 'distance', 'identityValue', 'iterations', 'converged', 'seconds']) {
      expect(out).toHaveProperty(key);
    }
    const dist = (Z: Float64Array, d: number) =>
      normaliseByMeanOffDiagonal(gramToDistances(gramFromActivations(Z, n, d), n), n);
    const expected = gromovWasserstein(dist(X, 5), dist(Y, 3));
    expect(out.gw).toBeCloseTo(expected.gw, 14);
    expect(out.distance).toBeCloseTo(0.5 * Math.sqrt(expected.gw), 14);
    expect(out.identityValue).toBeCloseTo(expected.identityValue!, 14);
    expect(out.converged).toBe(true);
    // --threads 2: the product start on a worker thread, the same answer.
    const two = await atomlens([
      'gw',
      path('X.npy'),
      path('Y.npy'),
      '--input',
      'activations',
      '--json',
      '--threads',
      '2',
    ]);
    expect(two.code).toBe(0);
    expect(JSON.parse(two.stdout).gw).toBe(out.gw);
  });

  it('--cost sqeuclidean: GW on squared distances (factored from activations), as the library computes it', async () => {
    const r = await atomlens([
      'gw',
      path('X.npy'),
      path('Y.npy'),
      '--input',
      'activations',
      '--cost',
      'sqeuclidean',
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.cost).toBe('sqeuclidean');
    const factored = gromovWasserstein(
      squaredEuclideanCost(X, n, 5, { normalise: true }),
      squaredEuclideanCost(Y, n, 3, { normalise: true }),
    );
    expect(out.gw).toBe(factored.gw);
    // The same objective as squared distances computed densely from the Gram matrices.
    const dense = (Z: Float64Array, d: number) =>
      normaliseByMeanOffDiagonal(gramToSquaredDistances(gramFromActivations(Z, n, d), n), n);
    expect(Math.abs(out.gw / gromovWasserstein(dense(X, 5), dense(Y, 3)).gw - 1)).toBeLessThan(1e-10);
  });

  it('reads distance matrices from .npy and JSON and reproduces POT from the product start', async () => {
    const r = await atomlens([
      'gw',
      path('C1.npy'),
      path('C2.json'),
      '--init',
      'product',
      '--json',
      '--plan',
      path('T.npy'),
    ]);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.gw).toBeLessThanOrEqual(reference.cg_product_init.gw * (1 + 1e-6));
    expect(out.normalised).toBe(false);
    const plan = readNpy(readFileSync(path('T.npy')));
    expect(plan.shape).toEqual([16, 16]);
    expect(plan.data.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it('prints a readable summary without --json, and runs the entropic solver', async () => {
    const r = await atomlens([
      'gw',
      path('C1.npy'),
      path('C2.json'),
      '--solver',
      'entropic',
      '--epsilon',
      '0.05',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/E\s+\d/);
    expect(r.stdout).toMatch(/½√E/);
  });

  it('exits 4 with a message naming the file for unreadable or malformed input', async () => {
    const files = ['missing.npy', 'garbage.npy', 'bad.json', 'vector.npy', 'X.npy'];
    // Spawned together: each CLI start (from the sources) pays tsx's start-up.
    const runs = new Map(files.map((f) => [f, atomlens(['gw', path(f), path('C1.npy')])]));
    for (const [file, message] of [
      ['missing.npy', /cannot read: ENOENT/],
      ['garbage.npy', /not a usable \.npy file/],
      ['bad.json', /row 1 has 1 entries/],
      ['vector.npy', /expected a 2-D array/],
      ['X.npy', /must be square.*--input activations/],
    ] as const) {
      const r = await runs.get(file)!;
      expect(r.code, file).toBe(4);
      expect(r.stderr).toContain(file);
      expect(r.stderr).toMatch(message);
    }
  });

  it('exits 2 for bad flags and arguments', async () => {
    const cases = [
      ['gw', path('C1.npy'), path('C2.json'), '--solver', 'simplex'],
      ['gw', path('C1.npy'), path('C2.json'), '--bogus'],
      ['gw', path('C1.npy')],
      ['gw', path('C1.npy'), path('C2.json'), '--epsilon', '0.1'],
      ['gw', path('C1.npy'), path('C2.json'), '--max-iter', '0'],
      ['gw', path('X.npy'), path('C1.npy'), '--input', 'activations', '--init', 'identity'],
      ['gw', path('C1.npy'), path('C2.json'), '--threads', '3'],
      ['gw', path('C1.npy'), path('C2.json'), '--cost', 'sqeuclidean'],
    ];
    const runs = await Promise.all(cases.map((args) => atomlens(args)));
    for (const [k, r] of runs.entries()) {
      expect(r.code, cases[k]!.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/atomlens gw: /);
    }
  });
});
