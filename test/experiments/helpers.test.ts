// The experiments' own small pieces: partition agreement, the model-level bootstrap, the
// analytic cost model, Markdown tables and standalone SVG.
import { describe, expect, it } from 'vitest';
import { markdownTable, standaloneSvg } from '../../src/experiments/common.js';
import {
  correlate,
  modelBootstrapCi,
  pointCorrelation,
  withinGroupSample,
} from '../../src/experiments/correlation.js';
import { layerCosts, pairCostCount } from '../../src/experiments/cost.js';
import {
  adjustedRandIndex,
  blockLabels,
  boundaryAgreement,
  describeSplit,
} from '../../src/experiments/partition.js';
import { DEFAULT_TEMPLATE_CONFIG } from '../../src/shared/template.js';
import { findAll, parseXml } from './xml.js';

describe('adjustedRandIndex', () => {
  // Values from the scikit-learn documentation of adjusted_rand_score.
  it('matches the documented examples', () => {
    expect(adjustedRandIndex([0, 0, 1, 1], [0, 0, 1, 1])).toBeCloseTo(1, 12);
    expect(adjustedRandIndex([0, 0, 1, 1], [1, 1, 0, 0])).toBeCloseTo(1, 12);
    expect(adjustedRandIndex([0, 0, 1, 2], [0, 0, 1, 1])).toBeCloseTo(0.5714285714285714, 12);
    expect(adjustedRandIndex([0, 0, 1, 1], [0, 1, 0, 1])).toBeCloseTo(-0.5, 12);
    expect(adjustedRandIndex([0, 0, 0, 0], [0, 1, 2, 3])).toBe(0);
  });

  it('gives 1 for identical trivial partitions and 0 for different ones', () => {
    expect(adjustedRandIndex([0, 0, 0], [5, 5, 5])).toBe(1);
    expect(adjustedRandIndex([0, 1, 2], [2, 1, 0])).toBe(1);
    expect(() => adjustedRandIndex([0, 1], [0])).toThrow(/labels/);
  });
});

describe('blocks', () => {
  it('labels layers by block and rejects gaps', () => {
    expect([
      ...blockLabels(
        [
          { start: 0, end: 1 },
          { start: 2, end: 4 },
        ],
        5,
      ),
    ]).toEqual([0, 0, 1, 1, 1]);
    expect(() => blockLabels([{ start: 0, end: 1 }], 3)).toThrow(/layer 2 is in no block/);
  });

  it('boundary agreement counts gaps where both splits agree', () => {
    expect(boundaryAgreement([0, 0, 1, 1, 1], [0, 0, 1, 1, 1])).toBe(1);
    // Boundaries after layer 1 vs after layer 2: they agree on 2 of the 4 gaps.
    expect(boundaryAgreement([0, 0, 1, 1, 1], [0, 0, 0, 1, 1])).toBe(0.5);
    expect(boundaryAgreement([0], [0])).toBe(1);
  });

  it('describes a split with layer names', () => {
    expect(
      describeSplit(
        [
          { start: 0, end: 1 },
          { start: 2, end: 2 },
        ],
        ['a', 'b', 'c'],
      ),
    ).toBe('a–b | c');
  });
});

describe('model-level bootstrap', () => {
  const M = 8;
  const pairs: [number, number][] = [];
  for (let a = 0; a < M; a++) for (let b = a + 1; b < M; b++) pairs.push([a, b]);
  const pairA = Int32Array.from(pairs, (p) => p[0]);
  const pairB = Int32Array.from(pairs, (p) => p[1]);

  it('gives a degenerate interval at r = 1 for exactly linear data', () => {
    const x = Float64Array.from(pairs, ([a, b]) => a * 10 + b);
    const y = Float64Array.from(x, (v) => 3 * v - 2);
    const ci = modelBootstrapCi({ models: M, pairA, pairB, x, y }, 'pearson', { resamples: 200, seed: 3 });
    expect(ci.estimate).toBeCloseTo(1, 12);
    expect(ci.low).toBeCloseTo(1, 12);
    expect(ci.high).toBeCloseTo(1, 12);
  });

  it('is at least as wide as the pair bootstrap when one model drives the correlation', () => {
    // y tracks x only through pairs involving model 0: resampling models exposes that.
    const x = Float64Array.from(pairs, ([a, b]) => Math.sin(a * 1.7 + b * 0.3));
    const y = Float64Array.from(pairs, ([a], i) => (a === 0 ? x[i]! : Math.cos(i * 2.1)));
    const r = correlate(
      { models: M, pairA, pairB, x, y },
      { pairResamples: 500, modelResamples: 500, seed: 1 },
    );
    const width = (c: { low: number; high: number }) => c.high - c.low;
    expect(r.pairs).toBe(pairs.length);
    expect(width(r.pearsonModelCi)).toBeGreaterThanOrEqual(width(r.pearsonPairCi));
  });

  it('drops non-finite pairs and reports NaN when fewer than three remain', () => {
    const x = Float64Array.from(pairs, () => Number.NaN);
    const r = correlate(
      { models: M, pairA, pairB, x, y: x },
      { pairResamples: 10, modelResamples: 10, seed: 1 },
    );
    expect(r.pairs).toBe(0);
    expect(Number.isNaN(r.pearson)).toBe(true);
  });
});

describe('analytic cost', () => {
  it('counts the demo CNN convolutions by hand', () => {
    const costs = layerCosts(DEFAULT_TEMPLATE_CONFIG);
    // conv1 on 28×28 (same padding): 28²·8·1·9; pooled to 14. conv2 on 14×14: 14²·16·8·9; pooled to 7.
    expect(costs[0]).toMatchObject({
      convMacsPerInput: 28 * 28 * 8 * 9,
      outputSize: 14,
      composeMacs: 8 * 6 * 9,
    });
    expect(costs[1]).toMatchObject({ convMacsPerInput: 14 * 14 * 16 * 8 * 9, outputSize: 7 });
    expect(costs[4]).toMatchObject({ convMacsPerInput: 7 * 7 * 24 * 24 * 9, outputSize: 7, channels: 24 });
  });

  it('makes the atom measure far cheaper than probing', () => {
    const c = pairCostCount(DEFAULT_TEMPLATE_CONFIG, 256);
    expect(c.atomCosine).toBe(5 * 3 * 6 * 9);
    expect(c.probeTotal).toBe(c.forward + c.gram + c.ckaFromGram);
    expect(c.probeTotal / c.atomCosine).toBeGreaterThan(1e5);
    expect(() => pairCostCount({ ...DEFAULT_TEMPLATE_CONFIG, probeLayers: ['nope'] }, 8)).toThrow(/nope/);
  });
});

describe('output helpers', () => {
  it('writes Markdown tables with escaped cells and checked row widths', () => {
    expect(markdownTable(['a', 'b'], [[1, 'x|y']])).toBe('| a | b |\n| --- | --- |\n| 1 | x\\|y |');
    expect(() => markdownTable(['a', 'b'], [[1]])).toThrow(/1 cells, expected 2/);
  });

  it('makes a standalone SVG that parses as XML and carries its style', () => {
    const svg = standaloneSvg(
      '<svg xmlns="http://www.w3.org/2000/svg"><text class="axis-label">a &amp; b</text></svg>',
    );
    const root = parseXml(svg);
    expect(root.name).toBe('svg');
    expect(findAll(root, 'style')).toHaveLength(1);
    expect(() => standaloneSvg('<div/>')).toThrow(/not an <svg>/);
  });

  it('the XML reader rejects malformed documents', () => {
    expect(() => parseXml('<svg><g></svg>')).toThrow(/unexpected close tag/);
    expect(() => parseXml('<svg a=1/>')).toThrow(/unquoted attribute value/);
    expect(() => parseXml('<svg>a & b</svg>')).toThrow();
    expect(() => parseXml('<svg><title>a &bogus; b</title></svg>')).toThrow(/undefined entity/);
    expect(() => parseXml('<svg a="1" a="2"/>')).toThrow(/duplicate attribute/);
    expect(() => parseXml('<svg/><svg/>')).toThrow(/only one root/);
    expect(() => parseXml('<svg><g>')).toThrow(/unclosed/);
  });
});

describe('withinGroupSample (correlation between clients of one round, per starting point)', () => {
  // Two starting points: within each, atom cosine and CKA rise together, but the second group's
  // models sit higher in atom cosine and lower in CKA (as clients from other starting atoms did in
  // atom-vs-cka). Pooling the raw pairs, as the within-round figures were once computed, turns
  // two strong positive relations into a negative one.
  const models = 8;
  const groups = [0, 0, 0, 0, 1, 1, 1, 1];
  const pairA: number[] = [];
  const pairB: number[] = [];
  const x: number[] = [];
  const y: number[] = [];
  for (let a = 0; a < models; a++) {
    for (let b = a + 1; b < models; b++) {
      pairA.push(a);
      pairB.push(b);
      const g = groups[a]! === groups[b]! ? groups[a]! : -1;
      const t = ((a * 7 + b * 3) % 5) / 5; // a spread of values within the group
      x.push(g === 1 ? 0.97 + 0.01 * t : 0.95 + 0.01 * t);
      y.push(g === 1 ? 0.85 + 0.05 * t : g === 0 ? 0.9 + 0.05 * t : 0.5);
    }
  }
  const sample = {
    models,
    pairA: Int32Array.from(pairA),
    pairB: Int32Array.from(pairB),
    x: Float64Array.from(x),
    y: Float64Array.from(y),
  };
  const sameGroup = pairA.map((a, p) => groups[a] === groups[pairB[p]!]);
  const pooledRaw = {
    ...sample,
    pairA: Int32Array.from(pairA.filter((_, p) => sameGroup[p])),
    pairB: Int32Array.from(pairB.filter((_, p) => sameGroup[p])),
    x: Float64Array.from(x.filter((_, p) => sameGroup[p])),
    y: Float64Array.from(y.filter((_, p) => sameGroup[p])),
  };

  it('keeps same-group pairs only, centred within their group', () => {
    const s = withinGroupSample(sample, groups);
    expect(s.x.length).toBe(12);
    for (let p = 0; p < s.x.length; p++) expect(groups[s.pairA[p]!]).toBe(groups[s.pairB[p]!]);
    for (const g of [0, 1]) {
      const idx = [...s.pairA.keys()].filter((p) => groups[s.pairA[p]!] === g);
      expect(idx.reduce((acc, p) => acc + s.x[p]!, 0)).toBeCloseTo(0, 12);
      expect(idx.reduce((acc, p) => acc + s.y[p]!, 0)).toBeCloseTo(0, 12);
    }
  });

  it('recovers the within-group relation that pooling the raw pairs reverses', () => {
    expect(pointCorrelation(pooledRaw).pearson).toBeLessThan(0);
    expect(pointCorrelation(withinGroupSample(sample, groups)).pearson).toBeCloseTo(1, 10);
  });
});
