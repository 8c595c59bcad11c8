import { describe, expect, it } from 'vitest';
import {
  allPages,
  byDivergenceDesc,
  meanOffDiagonal,
  stageName,
  triggerName,
} from '../../src/operator/connection.js';

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

  it('reads enum values as the words operators know, and unknown ones as such', () => {
    expect(stageName('ANALYSIS_STAGE_SOLVING')).toBe('solving');
    expect(stageName(9)).toBe('9');
    expect(triggerName('ANALYSIS_TRIGGER_SIMILARITY_CHANGE')).toBe('similarity-change');
    expect(triggerName('ANALYSIS_TRIGGER_UNSPECIFIED')).toBe('unknown');
  });

  it('collects every page until the token comes back empty', async () => {
    const pages: Record<string, { items: number[]; nextPageToken: string }> = {
      '': { items: [1, 2], nextPageToken: 'a' },
      a: { items: [3], nextPageToken: 'b' },
      b: { items: [], nextPageToken: '' },
    };
    const asked: string[] = [];
    const all = await allPages(async (token) => {
      asked.push(token);
      return pages[token]!;
    });
    expect(all).toEqual([1, 2, 3]);
    expect(asked).toEqual(['', 'a', 'b']);
  });
});
