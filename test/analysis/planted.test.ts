// Planted structure through the real analysis path (Gram matrices → buildReport with the real GW
// solver → segmentation → labels): clean federations of every structure family are recovered
// exactly — every block boundary, every label, every departing client — on 50 seeds each. Small
// probe sets (n = 16) keep the GW solves cheap; the noisy recovery rates are a benchmark
// (`npm run bench -- labels`), not a test.
import { describe, expect, it } from 'vitest';
import { DEFAULT_PROBE_COST, PROBE_COSTS } from '../../src/analysis/representation.js';
import { plantedTruth, randomFederation, STRUCTURE_TYPES } from './planted.js';
import { analysePlanted, recovery } from './planted-report.js';

const SEEDS = 50;
const CLEAN = { n: 16, dim: 6, noise: 0.02 };

describe('planted structure, clean: exact recovery over 50 seeds per family', () => {
  for (const type of STRUCTURE_TYPES) {
    it(type, { timeout: 600_000 }, async () => {
      const failures: string[] = [];
      for (let seed = 1; seed <= SEEDS; seed++) {
        const fed = randomFederation(type, seed);
        const r = recovery(fed, await analysePlanted(fed, { ...CLEAN, seed }));
        if (!r.boundaries || !r.labels.every(Boolean)) {
          failures.push(
            `seed ${seed}: planted ${JSON.stringify(plantedTruth(fed))}, found ${JSON.stringify(r.found)}`,
          );
        }
      }
      expect(failures).toEqual([]);
    });
  }

  // The default cost is covered above; the other one (the coordinator's analysis.cost / --gw-cost)
  // must recover clean structure too.
  for (const cost of PROBE_COSTS.filter((c) => c !== DEFAULT_PROBE_COST)) {
    it(`${cost} costs: every family, 10 seeds each`, { timeout: 600_000 }, async () => {
      const failures: string[] = [];
      for (const type of STRUCTURE_TYPES) {
        for (let seed = 1; seed <= 10; seed++) {
          const fed = randomFederation(type, seed);
          const report = await analysePlanted(fed, { ...CLEAN, seed }, 0, cost);
          expect(report.solver.cost).toBe(cost);
          const r = recovery(fed, report);
          if (!r.boundaries || !r.labels.every(Boolean)) failures.push(`${type} seed ${seed}`);
        }
      }
      expect(failures).toEqual([]);
    });
  }

  it('the families cover what they claim', () => {
    const feds = STRUCTURE_TYPES.flatMap((t) =>
      Array.from({ length: SEEDS }, (_, s) => ({ t, f: randomFederation(t, s + 1) })),
    );
    const layers = feds.map(({ f }) => f.blocks.reduce((a, b) => a + b.size, 0));
    expect(Math.min(...layers)).toBe(5);
    expect(Math.max(...layers)).toBe(9);
    const models = feds.map(({ f }) => f.models.length);
    expect(Math.min(...models)).toBe(3);
    expect(Math.max(...models)).toBe(12);
    const kinds = new Set(feds.flatMap(({ f }) => f.blocks.map((b) => b.kind)));
    expect([...kinds].sort()).toEqual(['client', 'shared', 'task']);
    // Three blocks in five layers; singletons; permuted (correspondence-breaking) task blocks.
    expect(feds.filter(({ t }) => t === 'three-in-five').every(({ f }) => f.blocks.length === 3)).toBe(true);
    expect(feds.some(({ f }) => f.blocks.every((b) => b.size === 1))).toBe(true);
    expect(
      feds.filter(({ t }) => t === 'permuted-tasks').every(({ f }) => f.blocks.some((b) => b.permute)),
    ).toBe(true);
  });
});
