import { describe, expect, it } from 'vitest';
import { byDivergenceDesc, meanOffDiagonal } from '../../src/operator/connection.js';

describe('operator view helpers', () => {
  it('orders models most divergent first and puts models without peers (NaN) last', () => {
    const models = [
      { id: 'a', divergence: 0.1 },
      { id: 'lonely', divergence: Number.NaN },
      { id: 'b', divergence: 0.4 },
      { id: 'c', divergence: 0 },
    ];
    expect([...models].sort(byDivergenceDesc).map((m) => m.id)).toEqual(['b', 'a', 'c', 'lonely']);
    expect(
      [...models]
        .reverse()
        .sort(byDivergenceDesc)
        .map((m) => m.id),
    ).toEqual(['b', 'a', 'c', 'lonely']);
  });

  it('averages only finite off-diagonal similarities', () => {
    expect(meanOffDiagonal([1, 0.2, 0.4, 0.2, 1, Number.NaN, 0.4, Number.NaN, 1], 3)).toBeCloseTo(0.3, 12);
    expect(meanOffDiagonal([1, Number.NaN, Number.NaN, 1], 2)).toBeNull();
    expect(meanOffDiagonal([1], 1)).toBeNull();
  });
});
