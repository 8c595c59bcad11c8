import { describe, expect, it } from 'vitest';
import { averageRanks, bootstrapCi, correlationCi, pearson, spearman } from '../../src/analysis/stats.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';

describe('pearson', () => {
  it('matches the textbook value sqrt(3/5) for a small sample', () => {
    // cov = 1.5, var x = 2.5, var y = 1.5 (population) → r = 1.5 / sqrt(3.75) = sqrt(0.6).
    expect(pearson([1, 2, 3, 4, 5], [2, 4, 5, 4, 5])).toBeCloseTo(Math.sqrt(0.6), 14);
  });

  it('is ±1 for exact linear relations, invariant to offset and scale', () => {
    const x = [0.91, 0.95, 0.97, 0.99, 0.999];
    expect(
      pearson(
        x,
        x.map((v) => 3 * v - 7),
      ),
    ).toBeCloseTo(1, 12);
    expect(
      pearson(
        x,
        x.map((v) => -2 * v + 1e6),
      ),
    ).toBeCloseTo(-1, 9);
  });

  it('is NaN when a sample is constant or too short, and rejects unpaired input', () => {
    expect(pearson([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(pearson([1], [2])).toBeNaN();
    expect(() => pearson([1, 2], [1, 2, 3])).toThrow(/paired/);
  });
});

describe('spearman', () => {
  it('averages ranks of ties', () => {
    expect(Array.from(averageRanks([10, 20, 20, 30, 50, 50, 50]))).toEqual([1, 2.5, 2.5, 4, 6, 6, 6]);
  });

  it('agrees with scipy.stats.spearmanr on tied data', () => {
    // scipy 1.x: spearmanr([1,2,2,3,5,5,5],[3,1,2,2,9,7,8]).statistic
    expect(spearman([1, 2, 2, 3, 5, 5, 5], [3, 1, 2, 2, 9, 7, 8])).toBeCloseTo(0.7080514800462759, 12);
  });

  it('is 1 for any strictly increasing transform', () => {
    const x = [0.3, -1, 2, 5, 7.5, 8];
    expect(
      spearman(
        x,
        x.map((v) => Math.exp(v)),
      ),
    ).toBeCloseTo(1, 14);
    expect(
      pearson(
        x,
        x.map((v) => Math.exp(v)),
      ),
    ).toBeLessThan(0.95);
  });
});

describe('bootstrap confidence intervals', () => {
  it('are reproducible from the seed and contain the estimate', () => {
    const rng = mulberry32(3);
    const normal = normalSampler(rng);
    const x = Array.from({ length: 60 }, () => normal());
    const y = x.map((v) => v + 0.8 * normal());
    const a = correlationCi(x, y, 'pearson', { seed: 11, resamples: 500 });
    const b = correlationCi(x, y, 'pearson', { seed: 11, resamples: 500 });
    expect(a).toEqual(b);
    expect(a.low).toBeLessThan(a.estimate);
    expect(a.high).toBeGreaterThan(a.estimate);
    expect(a.estimate).toBeCloseTo(pearson(x, y), 14);
    const c = correlationCi(x, y, 'pearson', { seed: 12, resamples: 500 });
    expect(c.low).not.toBe(a.low);
  });

  it('cover the true mean at about the nominal rate', () => {
    // 200 samples of size 30 from N(0,1): a 90% CI of the mean should cover 0 in roughly 90%
    // of them (the percentile bootstrap undercovers a little at n = 30).
    const normal = normalSampler(mulberry32(99));
    let covered = 0;
    const trials = 200;
    for (let t = 0; t < trials; t++) {
      const sample = Array.from({ length: 30 }, () => normal());
      const ci = bootstrapCi(
        sample.length,
        (idx) => {
          let s = 0;
          for (const i of idx) s += sample[i]!;
          return s / idx.length;
        },
        { seed: t + 1, resamples: 400, level: 0.9 },
      );
      if (ci.low <= 0 && ci.high >= 0) covered++;
    }
    expect(covered / trials).toBeGreaterThan(0.8);
    expect(covered / trials).toBeLessThan(0.97);
  });

  it('narrows as the sample grows', () => {
    const normal = normalSampler(mulberry32(5));
    const width = (n: number) => {
      const x = Array.from({ length: n }, () => normal());
      const y = x.map((v) => v + normal());
      const ci = correlationCi(x, y, 'spearman', { seed: 2, resamples: 400 });
      return ci.high - ci.low;
    };
    expect(width(400)).toBeLessThan(width(25));
  });

  it('rejects bad options with a message', () => {
    expect(() => bootstrapCi(0, () => 0)).toThrow(/at least 1/);
    expect(() => bootstrapCi(3, () => 0, { level: 1.5 })).toThrow(/level/);
  });
});
