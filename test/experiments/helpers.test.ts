// The experiments' own small pieces: partition agreement, the model-level bootstrap, the
// analytic cost model, Markdown tables and standalone SVG.
import { describe, expect, it } from 'vitest';
import { markdownTable, standaloneSvg } from '../../src/experiments/common.js';
import { correlate, modelBootstrapCi } from '../../src/experiments/correlation.js';
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
