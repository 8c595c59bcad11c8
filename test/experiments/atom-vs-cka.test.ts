// atom-vs-cka at a tiny size, in-process: the output files' structure — tables, figures as XML,
// numbers finite and in range, configuration recorded.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/client/backend.js';
import {
  ATOM_VS_CKA_DEFAULTS,
  ATOM_VS_CKA_TINY,
  type AtomVsCkaConfig,
  runAtomVsCka,
} from '../../src/experiments/index.js';
import { createLogger } from '../../src/shared/log.js';
import { column, interval, tableAfter } from './tables.js';
import { findAll, parseXml } from './xml.js';

const config: AtomVsCkaConfig = { ...ATOM_VS_CKA_DEFAULTS, ...ATOM_VS_CKA_TINY, seed: 5 };
// 2 initialisations (cohorts) + every client at checkpoints 1 and 2.
const MODELS = 2 + config.clients * config.checkpoints.filter((c) => c > 0).length;
const PAIRS = (MODELS * (MODELS - 1)) / 2;
const LAYERS = config.template.layers.map((l) => l.name);

describe('experiment atom-vs-cka (tiny)', () => {
  let dir: string;
  let summary: Awaited<ReturnType<typeof runAtomVsCka>>;
  let md: string;

  beforeAll(async () => {
    const log = createLogger('test', 'silent');
    const backend = await initBackend('auto', log);
    dir = mkdtempSync(join(tmpdir(), 'atomlens-avc-'));
    summary = await runAtomVsCka(config, dir, log, backend.name);
    md = readFileSync(join(dir, 'results.md'), 'utf8');
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes the tables, data and figures it lists', () => {
    expect(summary.models).toBe(MODELS);
    expect(summary.pairs).toBe(PAIRS);
    for (const f of ['results.md', 'config.json', 'results.json', 'pairs.csv', 'atom-vs-cka-model.svg']) {
      expect(summary.files).toContain(f);
    }
    for (const f of summary.files) expect(existsSync(join(dir, f)), f).toBe(true);
    // Every figure the Markdown links exists.
    const linked = [...md.matchAll(/\]\(([^)]+\.svg)\)/g)].map((m) => m[1]!);
    expect(linked.length).toBeGreaterThanOrEqual(LAYERS.length + 4);
    for (const f of linked) expect(existsSync(join(dir, f)), f).toBe(true);
    expect(md).toContain('npm run experiment -- atom-vs-cka --seed 5');
  });

  it('records the seed, configuration and environment', () => {
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(cfg.experiment).toBe('atom-vs-cka');
    expect(cfg.config.seed).toBe(5);
    expect(cfg.config.clients).toBe(config.clients);
    expect(cfg.config.probeSize).toBe(config.probeSize);
    expect(cfg.config.template.layers).toHaveLength(LAYERS.length);
    expect(cfg.alphaFingerprint).toMatch(/^[0-9a-f]{64}$/);
    expect(typeof cfg.environment.node).toBe('string');
    expect(['wasm', 'cpu', 'tensorflow']).toContain(cfg.environment.backend);
  });

  it('correlation table: every row complete, coefficients and intervals in [-1, 1]', () => {
    const t = tableAfter(md, '## Correlations');
    expect(t.headers).toEqual([
      'level',
      'x',
      'y',
      'pairs',
      'subset',
      'Pearson r',
      '95% CI (pairs)',
      '95% CI (models)',
      'Spearman ρ',
      '95% CI (pairs)',
      '95% CI (models)',
    ]);
    // model-level rows (atom: all, same init, other init; subspace: all, same init), two per layer,
    // cumulative per layer after the first, four OOD rows, two zero-bias rows, two CKA-vs-CKA rows.
    expect(t.rows).toHaveLength(5 + 2 * LAYERS.length + (LAYERS.length - 1) + 8);
    const all = t.rows.filter((r) => r[4] === 'all pairs');
    for (const r of all) {
      expect(Number(r[3])).toBe(PAIRS);
      for (const c of [5, 8]) {
        const v = Number(r[c]);
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThanOrEqual(1);
      }
      for (const c of [6, 7, 9, 10]) {
        const [lo, hi] = interval(r[c]!);
        expect(lo).toBeGreaterThanOrEqual(-1);
        expect(hi).toBeLessThanOrEqual(1);
        expect(lo).toBeLessThanOrEqual(hi);
      }
    }
    // The same-init and other-init subsets of the headline row partition the pairs.
    expect(t.rows.slice(0, 3).map((r) => r[4])).toEqual(['all pairs', 'same init', 'other init']);
    expect(Number(t.rows[1]![3]) + Number(t.rows[2]![3])).toBe(PAIRS);
  });

  it('between clients of one round: a row per round and starting point, plus the centred pool', () => {
    const t = tableAfter(md, '## Between clients of one round');
    const rounds = config.checkpoints.filter((c) => c > 0);
    // Clients c start from cohort ⌊c / tasks⌋ mod cohorts: two cohorts of two clients here.
    const origins = ['init 0', 'init 1', 'within origins'];
    expect(t.rows.map((r) => `${r[0]} ${r[1]}`)).toEqual(
      rounds.flatMap((r) => origins.map((o) => `${r} ${o}`)),
    );
    // One pair per cohort and round; the centred pool holds both.
    expect(column(t, 'pairs')).toEqual(rounds.flatMap(() => [1, 1, 2]));
    for (const v of column(t, 'atom cosine to the start (mean over clients)')) {
      expect(v).toBeGreaterThan(0.5);
      expect(v).toBeLessThanOrEqual(1);
    }
  });

  it('robustness table: CKA in [0, 1], the in-distribution row is the reference', () => {
    const t = tableAfter(md, '## Robustness to the probe set');
    expect(t.rows.map((r) => r[0])).toEqual(['in-distribution', 'held-out-digits', 'noise']);
    for (const v of column(t, 'mean CKA')) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(column(t, 'mean abs ΔCKA vs in-dist')[0]).toBe(0);
    expect(column(t, 'Pearson with CKA in-dist')[0]).toBe(1);
    for (const v of column(t, 'max abs ΔCKA')) expect(v).toBeGreaterThanOrEqual(0);
    for (const r of t.rows) expect(r[r.length - 1]).toMatch(/^0 /);
  });

  it('cost table: positive times, atom cosine the cheapest, analytic ratio ≥ 1', () => {
    const t = tableAfter(
      md,
      '## Cost per model pair (measured in this run; timings on a shared machine are noisy)',
    );
    expect(t.rows).toHaveLength(5);
    const seconds = column(t, 'measured s');
    for (const s of seconds) expect(s).toBeGreaterThan(0);
    expect(Math.min(...seconds)).toBe(seconds[0]);
    const ops = column(t, 'operations (analytic)');
    expect(ops[4]).toBeGreaterThan(ops[2]!);
    for (const r of column(t, 'ratio (analytic)')) expect(r).toBeGreaterThanOrEqual(1);
  });

  it('results.json and pairs.csv hold every pair with values in range', () => {
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
    expect(res.models).toHaveLength(MODELS);
    expect(res.models.filter((m: { round: number }) => m.round === 0)).toHaveLength(config.cohorts);
    expect(res.pairs).toBe(PAIRS);
    expect(res.cost.measuredRatio.probePairCold).toBeGreaterThan(1);
    const lines = readFileSync(join(dir, 'pairs.csv'), 'utf8').trim().split('\n');
    const header = lines[0]!.split(',');
    expect(lines).toHaveLength(PAIRS + 1);
    const idx = (name: string) => header.indexOf(name);
    for (const line of lines.slice(1)) {
      const cells = line.split(',');
      expect(cells).toHaveLength(header.length);
      const atom = Number(cells[idx('atom_mean')]);
      expect(atom).toBeGreaterThanOrEqual(-1);
      expect(atom).toBeLessThanOrEqual(1);
      for (const l of LAYERS) {
        const cka = Number(cells[idx(`cka_in-distribution_${l}`)]);
        expect(cka).toBeGreaterThanOrEqual(0);
        expect(cka).toBeLessThanOrEqual(1 + 1e-9);
      }
      const sub = Number(cells[idx('subspace_mean')]);
      expect(sub).toBeGreaterThanOrEqual(0);
      expect(sub).toBeLessThanOrEqual(1);
    }
  });

  it('the control cohort starts from atoms with no common origin', () => {
    const lines = readFileSync(join(dir, 'pairs.csv'), 'utf8').trim().split('\n');
    const header = lines[0]!.split(',');
    const row = lines.find((l) => l.startsWith('init0,init1,'))!.split(',');
    // Independent N(0, 1/k²) atom sets: cosine of 54-dim random vectors per layer, mean of 5.
    expect(Math.abs(Number(row[header.indexOf('atom_mean')]))).toBeLessThan(0.3);
    const c0 = lines.find((l) => l.startsWith('init0,c0-r1,'))!.split(',');
    // One round of training moves a model only a little from where it started.
    expect(Number(c0[header.indexOf('atom_mean')])).toBeGreaterThan(0.5);
  });

  it('figures parse as XML: scatter plots have one point per pair, the heatmap one cell per layer and probe set', () => {
    const scatter = parseXml(readFileSync(join(dir, 'atom-vs-cka-model.svg'), 'utf8'));
    expect(scatter.name).toBe('svg');
    expect(scatter.attributes.xmlns).toBe('http://www.w3.org/2000/svg');
    const points = findAll(scatter, 'circle').filter((c) => c.attributes.class === 'point');
    expect(points).toHaveLength(PAIRS);
    expect(Number(scatter.attributes['data-points'])).toBe(PAIRS);
    for (const p of points) {
      for (const a of ['cx', 'cy']) expect(Number.isFinite(Number(p.attributes[a]))).toBe(true);
    }
    expect(findAll(scatter, 'title').length).toBeGreaterThan(PAIRS);
    for (const l of LAYERS) {
      const fig = parseXml(readFileSync(join(dir, `atom-vs-cka-${l}.svg`), 'utf8'));
      expect(findAll(fig, 'circle').filter((c) => c.attributes.class === 'point')).toHaveLength(PAIRS);
    }
    const heat = parseXml(readFileSync(join(dir, 'layer-correlation.svg'), 'utf8'));
    expect(findAll(heat, 'rect').filter((r) => r.attributes.class === 'cell')).toHaveLength(
      3 * LAYERS.length,
    );
  });
});
