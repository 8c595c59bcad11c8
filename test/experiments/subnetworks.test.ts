// subnetworks at a tiny size, in-process with the real GW worker pool: the output files'
// structure — tables, figures as XML, GW matrices well formed, blocks covering the layers,
// numbers finite and in range, configuration recorded.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/client/backend.js';
import {
  runSubnetworks,
  SUBNETWORKS_DEFAULTS,
  SUBNETWORKS_TINY,
  type SubnetworksConfig,
} from '../../src/experiments/index.js';
import { createLogger } from '../../src/shared/log.js';
import { column, tableAfter } from './tables.js';
import { findAll, parseXml } from './xml.js';

const config: SubnetworksConfig = { ...SUBNETWORKS_DEFAULTS, ...SUBNETWORKS_TINY, seed: 3, workers: 2 };
const LABELS = ['shared', 'task-specific', 'client-specific', 'inconclusive'];

interface ModelJson {
  learner: number;
  task: string;
  accuracy: number;
  accuracyAtEnd: number;
  byProbeSize: {
    n: number;
    k: number;
    blocks: [number, number][];
    identityBlocks: [number, number][];
    ariVsLargest: number;
    gw: number[];
    identity: number[];
    identityOptimal: number;
    solves: number;
  }[];
}

function section(md: string, arch: string): string {
  const start = md.indexOf(`## Architecture ${arch} `);
  if (start < 0) throw new Error(`no section for ${arch}`);
  const next = md.indexOf('\n## ', start + 1);
  return md.slice(start, next < 0 ? undefined : next);
}

function coversLayers(blocks: [number, number][], L: number): boolean {
  let next = 0;
  for (const [s, e] of blocks) {
    if (s !== next || e < s) return false;
    next = e + 1;
  }
  return next === L;
}

describe('experiment subnetworks (tiny)', () => {
  let dir: string;
  let summary: Awaited<ReturnType<typeof runSubnetworks>>;
  let md: string;
  let results: {
    architectures: {
      architecture: string;
      layers: string[];
      models: ModelJson[];
      labels: { label: string; atomLabel: string | null }[];
      consensus: { blocks: { start: number; end: number }[] };
    }[];
  };

  beforeAll(async () => {
    const log = createLogger('test', 'silent');
    const backend = await initBackend('auto', log);
    dir = mkdtempSync(join(tmpdir(), 'atomlens-subnet-'));
    summary = await runSubnetworks(config, dir, log, backend.name);
    md = readFileSync(join(dir, 'results.md'), 'utf8');
    results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
  });

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('writes every listed file and records the configuration', () => {
    const perArch = config.seeds * config.tasks.length;
    expect(summary.models).toBe(config.architectures.length * perArch);
    for (const f of summary.files) expect(existsSync(join(dir, f)), f).toBe(true);
    const linked = [...md.matchAll(/\]\(([^)]+\.svg)\)/g)].map((m) => m[1]!);
    expect(linked.length).toBe(summary.files.filter((f) => f.endsWith('.svg')).length);
    const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(cfg.experiment).toBe('subnetworks');
    expect(cfg.config.seed).toBe(3);
    expect(cfg.config.probeSizes).toEqual(config.probeSizes);
    expect(cfg.config.architectures.map((a: { name: string }) => a.name)).toEqual(['demo', 'deep']);
    expect(md).toContain('npm run experiment -- subnetworks --seed 3');
    // Per model and probe size: L(L−1)/2 solves; across models: L · M(M−1)/2.
    const expected = config.architectures.reduce((s, a) => {
      const L = a.template.layers.length;
      return s + perArch * config.probeSizes.length * ((L * (L - 1)) / 2) + (L * perArch * (perArch - 1)) / 2;
    }, 0);
    expect(summary.solves).toBe(expected);
  });

  it('GW layer matrices are symmetric, finite, ≥ 0 with a zero diagonal, and never above the identity coupling', () => {
    for (const arch of results.architectures) {
      const L = arch.layers.length;
      expect(arch.models).toHaveLength(config.seeds * config.tasks.length);
      for (const m of arch.models) {
        expect(m.byProbeSize.map((b) => b.n)).toEqual(config.probeSizes);
        for (const b of m.byProbeSize) {
          expect(b.gw).toHaveLength(L * L);
          for (let i = 0; i < L; i++) {
            expect(b.gw[i * L + i]).toBe(0);
            for (let j = 0; j < L; j++) {
              const g = b.gw[i * L + j]!;
              expect(Number.isFinite(g)).toBe(true);
              expect(g).toBeGreaterThanOrEqual(0);
              expect(g).toBe(b.gw[j * L + i]);
              // 'best' includes the identity start, and CG never increases E.
              expect(g).toBeLessThanOrEqual(b.identity[i * L + j]! * (1 + 1e-9) + 1e-12);
            }
          }
          expect(b.k).toBe(b.blocks.length);
          expect(coversLayers(b.blocks, L)).toBe(true);
          expect(coversLayers(b.identityBlocks, L)).toBe(true);
          expect(b.ariVsLargest).toBeGreaterThanOrEqual(-1);
          expect(b.ariVsLargest).toBeLessThanOrEqual(1);
          expect(b.identityOptimal).toBeLessThanOrEqual(b.solves);
        }
        // Atom swapping: a task's accuracy cannot change after later tasks.
        expect(m.accuracyAtEnd).toBe(m.accuracy);
      }
      expect(arch.labels.length).toBe(arch.consensus.blocks.length);
      for (const l of arch.labels) {
        expect(LABELS).toContain(l.label);
        if (l.atomLabel !== null) expect(LABELS).toContain(l.atomLabel);
      }
    }
  });

  it('tables per architecture: one row per model and probe size, agreement values in range', () => {
    for (const arch of config.architectures) {
      const s = section(md, arch.name);
      const perModel = tableAfter(s, '### Blocks per model and probe size');
      expect(perModel.rows).toHaveLength(config.seeds * config.tasks.length * config.probeSizes.length);
      for (const v of column(perModel, 'ARI vs n max')) {
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThanOrEqual(1);
      }
      for (const v of column(perModel, 'boundary agreement')) {
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThanOrEqual(1);
      }
      for (const v of column(perModel, 'GW/identity')) expect(v).toBeLessThanOrEqual(1 + 1e-3);
      const k = column(perModel, 'k');
      for (const v of k) expect(v).toBeGreaterThanOrEqual(1);
      const seeds = tableAfter(s, '### Agreement across learners (same task, same probe size)');
      expect(seeds.rows).toHaveLength(config.tasks.length * config.probeSizes.length);
      for (const v of column(seeds, 'mean pairwise ARI')) {
        expect(v).toBeGreaterThanOrEqual(-1);
        expect(v).toBeLessThanOrEqual(1);
      }
      const labels = tableAfter(s, '### Consensus blocks and labels (n = 32; learners act as clients)');
      for (const r of labels.rows) expect(LABELS).toContain(r[1]);
      const consensusBlocks = results.architectures.find((a) => a.architecture === arch.name)!.consensus
        .blocks.length;
      expect(labels.rows).toHaveLength(consensusBlocks);
      const within = tableAfter(s, '### Within each learner: blocks across its tasks (n = 32)');
      expect(within.rows).toHaveLength(config.seeds * consensusBlocks);
      for (const r of within.rows) {
        // One model per task: the rule can only call a block shared, task-specific or inconclusive.
        expect(['shared', 'task-specific', 'inconclusive']).toContain(r[2]);
        expect(['yes', 'no', '—']).toContain(r[4]);
      }
      const layers = tableAfter(
        s,
        `### Per layer: GW / identity distance / atom cosine by kind of model pair (n = 32)`,
      );
      expect(layers.rows).toHaveLength(arch.template.layers.length);
    }
  });

  it('figures parse as XML: GW heatmaps have L×L cells and one outline per block', () => {
    for (const arch of results.architectures) {
      const L = arch.layers.length;
      const file = `${arch.architecture}-consensus-gw.svg`;
      const svg = parseXml(readFileSync(join(dir, file), 'utf8'));
      expect(svg.name).toBe('svg');
      expect(svg.attributes['data-kind']).toBe('gw-layers');
      expect(findAll(svg, 'rect').filter((r) => r.attributes.class === 'cell')).toHaveLength(L * L);
      expect(findAll(svg, 'rect').filter((r) => r.attributes.class === 'block-boundary')).toHaveLength(
        arch.consensus.blocks.length,
      );
      const first = arch.models.find((m) => m.learner === 1)!;
      const perModel = parseXml(
        readFileSync(join(dir, `${arch.architecture}-learner1-${first.task}-gw.svg`), 'utf8'),
      );
      const ref = first.byProbeSize.find((b) => b.n === config.referenceProbeSize)!;
      expect(findAll(perModel, 'rect').filter((r) => r.attributes.class === 'block-boundary')).toHaveLength(
        ref.blocks.length,
      );
      const stability = parseXml(readFileSync(join(dir, `${arch.architecture}-stability.svg`), 'utf8'));
      expect(findAll(stability, 'rect').filter((r) => r.attributes.class === 'cell')).toHaveLength(
        arch.models.length * config.probeSizes.length,
      );
      const scatter = parseXml(readFileSync(join(dir, `${arch.architecture}-atoms-vs-gw.svg`), 'utf8'));
      const M = arch.models.length;
      expect(findAll(scatter, 'circle').filter((c) => c.attributes.class === 'point')).toHaveLength(
        (L * M * (M - 1)) / 2,
      );
    }
  });
});
