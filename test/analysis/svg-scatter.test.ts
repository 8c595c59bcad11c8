// Scatter plots of values that are equal up to rounding (subspace similarity is 1 for every pair
// when m = k²) must render with a fixed margin, not loop over ticks smaller than the float spacing.
import { describe, expect, it } from 'vitest';
import { scatterSvg } from '../../src/analysis/report/svg.js';

describe('scatterSvg', () => {
  it('renders points whose x differ only by rounding, with a handful of ticks', () => {
    const points = [1, 1 - 2 ** -52, 1 - 2 ** -53, 1].map((x, i) => ({
      x,
      y: i / 4,
      group: 'g',
      tip: `p${i}`,
    }));
    const svg = scatterSvg({ kind: 'k', title: 't', xLabel: 'x', yLabel: 'y', points });
    expect(svg).toMatch(/data-points="4"/);
    const xTicks = svg.match(/text-anchor="middle" class="axis-label"/g) ?? [];
    expect(xTicks.length).toBeGreaterThan(0);
    expect(xTicks.length).toBeLessThanOrEqual(8);
  });
});
