// Probe layers sent as factors (a layer's centred activations, n × d) instead of Gram matrices give
// the same report: on the same data — the factors, and the Grams F Fᵀ computed from them in
// float64 — every GW distance, identity-coupling value and CKA agrees to 1e-10 relative. With
// squared Euclidean costs the factored GW path (rank d + 2) is the one that runs.
import { afterAll, describe, expect, it } from 'vitest';
import {
  buildReport,
  type ReportInput,
  reportTasksVia,
  type SolveGw,
} from '../../src/analysis/report/build.js';
import type { AnalysisReport, Matrix } from '../../src/analysis/report/types.js';
import {
  type GramFactor,
  gramOfFactor,
  type ProbeCost,
  type ProbeLayerData,
} from '../../src/analysis/representation.js';
import { GwPool, gromovWasserstein } from '../../src/ot/index.js';
import { factorOf, type PlantedFederation, plantedActivations } from './planted.js';
import { plantedReportInput } from './planted-report.js';

const N = 40;
const DIM = 6;
const federation: PlantedFederation = {
  models: [
    { clientId: 'a', taskId: 't0' },
    { clientId: 'b', taskId: 't0' },
    { clientId: 'c', taskId: 't1' },
  ],
  blocks: [
    { size: 2, kind: 'shared' },
    { size: 2, kind: 'task' },
    { size: 1, kind: 'client', departing: ['b'] },
  ],
};

/** Per model, per layer: the centred activations as a float32 factor (what the SDK sends). */
function factors(): GramFactor[][] {
  return plantedActivations(federation, { n: N, dim: DIM, noise: 0.1, seed: 3 }).map((layers) =>
    layers.map((X) => factorOf(X, N, DIM)),
  );
}

function input(layers: ProbeLayerData[][], cost: ProbeCost): ReportInput {
  return plantedReportInput(federation, N, layers, {
    reason: 'factors',
    bootstrapResamples: 10,
    cost,
    federationId: 'factors',
  });
}

const pool = new GwPool({ workers: 2 });
afterAll(() => pool.close());

async function report(layers: ProbeLayerData[][], cost: ProbeCost, onPool = false) {
  const kinds: string[] = [];
  const solve: SolveGw = async (C1, C2) => {
    kinds.push(C1 instanceof Float64Array && C2 instanceof Float64Array ? 'dense' : 'factored');
    return gromovWasserstein(C1, C2, { solver: 'cg', init: 'best' });
  };
  const tasks = onPool ? reportTasksVia((module, fn, args) => pool.run(module, fn, args)) : undefined;
  return { report: await buildReport(input(layers, cost), solve, () => {}, tasks), kinds };
}

/** Largest |a − b| / max(|a|, |b|) over every entry of the reports' matrices. */
function largestRelativeDifference(a: AnalysisReport, b: AnalysisReport): number {
  let worst = 0;
  const compare = (x: Matrix, y: Matrix) => {
    x.forEach((row, i) => {
      row.forEach((v, j) => {
        const w = y[i]![j];
        if (v === null || w === null || w === undefined) {
          expect(v).toBe(w);
          return;
        }
        const scale = Math.max(Math.abs(v), Math.abs(w));
        if (scale > 0) worst = Math.max(worst, Math.abs(v - w) / scale);
      });
    });
  };
  a.layerGw.forEach((m, k) => {
    compare(m.gw, b.layerGw[k]!.gw);
    compare(m.identity, b.layerGw[k]!.identity);
  });
  a.crossModel.forEach((l, k) => {
    compare(l.gw, b.crossModel[k]!.gw);
    compare(l.identity, b.crossModel[k]!.identity);
    compare(l.cka, b.crossModel[k]!.cka);
  });
  return worst;
}

describe('probe layers as factors', () => {
  const F = factors();
  const grams = F.map((layers) => layers.map(gramOfFactor));

  for (const cost of ['sqeuclidean', 'euclidean'] as const) {
    it(`${cost}: the report from factors equals the one from their Gram matrices to 1e-10`, async () => {
      const fromFactors = await report(F, cost);
      const fromGrams = await report(grams, cost);
      // 3 models × 10 layer pairs + 5 layers × 3 model pairs.
      expect(fromFactors.kinds).toHaveLength(45);
      // Squared distances of 6 features have rank 8 < 40 / 2: every solve runs factored then.
      expect(new Set(fromFactors.kinds)).toEqual(new Set([cost === 'sqeuclidean' ? 'factored' : 'dense']));
      expect(new Set(fromGrams.kinds)).toEqual(new Set(['dense']));
      expect(largestRelativeDifference(fromFactors.report, fromGrams.report)).toBeLessThanOrEqual(1e-10);
      // The same structure is found: blocks, labels and their bootstrap confidence.
      const summary = (r: AnalysisReport) =>
        r.blocks.map((b) => [b.start, b.end, b.label, b.labelConfidence, b.boundaryConfidence]);
      expect(summary(fromFactors.report)).toEqual(summary(fromGrams.report));
      expect(fromFactors.report.blocks.map((b) => b.label)).toEqual([
        'shared',
        'task-specific',
        'client-specific',
      ]);
      // Factors cross to the report's worker threads as well (distances and centring run there).
      const pooled = await report(F, cost, true);
      expect(JSON.stringify({ ...pooled.report, timings: null })).toBe(
        JSON.stringify({ ...fromFactors.report, timings: null }),
      );
    });
  }

  it('mixes factors and Gram matrices from different clients', async () => {
    const mixed = [F[0]!, grams[1]!, F[2]!];
    const a = await report(mixed, 'sqeuclidean');
    const b = await report(grams, 'sqeuclidean');
    expect(a.kinds).toContain('dense');
    expect(a.kinds).toContain('factored');
    expect(largestRelativeDifference(a.report, b.report)).toBeLessThanOrEqual(1e-10);
  });
});
