// The report's heavy computations on worker threads (GwPool.run) give the very numbers the calling
// thread gives: CKA equal to linearCkaFromGram bit for bit, the bootstrap split into resample ranges
// equal to one run over all, and the whole report identical either way.
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_LABEL_SETTINGS } from '../../src/analysis/labels.js';
import { type BootstrapInput, bootstrapHits, bootstrapResult } from '../../src/analysis/probeBootstrap.js';
import { buildReport, reportTasksVia } from '../../src/analysis/report/build.js';
import type { AnalysisReport, Matrix } from '../../src/analysis/report/types.js';
import { linearCkaFromGram, probeMetricSpace } from '../../src/analysis/representation.js';
import { type GwCost, GwPool, gromovWasserstein } from '../../src/ot/index.js';
import { N, syntheticSetup } from './synthetic-report.js';

const pool = new GwPool({ workers: 2 });
afterAll(() => pool.close());

const solve = async (C1: GwCost, C2: GwCost) => gromovWasserstein(C1, C2, { solver: 'cg', init: 'best' });

/** The synthetic setup with carol's last layer constant (CKA undefined there). */
function setupWithConstantLayer() {
  const setup = syntheticSetup();
  setup.input.grams.get(2)![7] = new Float32Array(N * N).fill(2);
  return setup;
}

const flat = (m: Matrix) => Float64Array.from(m.flat(), (v) => v ?? Number.NaN);
const withoutTimings = (r: AnalysisReport) => JSON.stringify({ ...r, timings: null });

describe('report tasks on worker threads', () => {
  it('the report is identical whether its tasks run here or on the pool', async () => {
    const { input } = setupWithConstantLayer();
    const here = await buildReport(input, solve);
    const pooled = await buildReport(
      input,
      solve,
      () => {},
      reportTasksVia((module, fn, args) => pool.run(module, fn, args)),
    );
    expect(pool.started).toBeGreaterThan(0);
    expect(withoutTimings(pooled)).toBe(withoutTimings(here));
    expect(here.notes.join('\n')).toMatch(/carol\/2-3 c8: all probe inputs give the same output/);
  });

  it('CKA between models is linearCkaFromGram of their Grams, exactly; null where undefined', async () => {
    const { input } = setupWithConstantLayer();
    const report = await buildReport(
      input,
      solve,
      () => {},
      reportTasksVia((module, fn, args) => pool.run(module, fn, args)),
    );
    const answered = report.crossModels;
    expect(answered).toEqual([0, 1, 2]);
    report.crossModel.forEach((layer, l) => {
      answered.forEach((i, a) => {
        answered.forEach((j, b) => {
          const got = layer.cka[a]![b];
          if (a === b) {
            expect(got).toBe(1);
            return;
          }
          // syntheticSetup gives every layer as its Gram matrix.
          const Ki = Float64Array.from(input.grams.get(i)![l]! as Float32Array);
          const Kj = Float64Array.from(input.grams.get(j)![l]! as Float32Array);
          let want: number | null;
          try {
            want = linearCkaFromGram(Ki, Kj, N);
          } catch {
            want = null;
          }
          expect(got, `${layer.layer} ${i}-${j}`).toBe(want);
        });
      });
    });
    expect(report.crossModel[7]!.cka[2]![0]).toBeNull();
  });

  it('the bootstrap over resample ranges counts what one run over all resamples counts', async () => {
    const { input } = syntheticSetup();
    const report = await buildReport(input, solve);
    const answered = report.crossModels;
    const bootstrap: BootstrapInput = {
      models: answered.map((i) => input.models[i]!),
      layers: input.template.probeLayers,
      n: N,
      spaces: answered.map((i) => input.grams.get(i)!.map((g) => probeMetricSpace(g, N).C)),
      layerGw: report.layerGw.map((m) => flat(m.gw)),
      layerIdentity: report.layerGw.map((m) => flat(m.identity)),
      crossGw: report.crossModel.map((l) => flat(l.gw)),
      crossIdentity: report.crossModel.map((l) => flat(l.identity)),
      blocks: report.consensus!.blocks,
      labels: report.blocks.map((b) => ({
        label: b.label,
        departing: (b.matched ?? b.gw).departing.map((d) => `${d.clientId}/${d.taskId}`),
      })),
      // A threshold on the edge of the middle block's distances: its label varies across resamples.
      settings: { ...DEFAULT_LABEL_SETTINGS, sharedMaxGw: 0.031 },
      resamples: 24,
      seed: 11,
    };
    const whole = bootstrapResult(bootstrap, [bootstrapHits(bootstrap, 0, 24)]);
    const single = bootstrapResult(
      bootstrap,
      Array.from({ length: 24 }, (_, r) => bootstrapHits(bootstrap, r, r + 1)),
    );
    const uneven = bootstrapResult(bootstrap, [
      bootstrapHits(bootstrap, 0, 5),
      bootstrapHits(bootstrap, 5, 24),
    ]);
    expect(single).toEqual(whole);
    expect(uneven).toEqual(whole);
    expect(whole.resamples).toBe(24);
    // Not all resamples agree (else the split would be checked on a constant).
    expect([...whole.labelConfidence, ...whole.boundaryConfidence].some((c) => c > 0 && c < 1)).toBe(true);
  });
});
