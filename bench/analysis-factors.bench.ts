// A level-1 report on squared Euclidean costs from the same probe data sent two ways: as factors
// (each layer's centred activations, n × d — what the SDK sends when 2(d + 2) < n; GW runs on the
// rank d + 2 factored cost) and as the Gram matrices of those factors (GW dense). Same data, so the
// reports agree to rounding; the table gives the build time, the summed solve time and the
// largest relative difference of any GW distance. One thread, solves one after the other; sizes
// ANALYSIS_FACTORS_SIZES (default 256,512), d = 16, 3 models × 4 probe layers (18 GW solves).
// `npm run bench -- analysis-factors`.
import { buildReport, type ReportInput } from '../src/analysis/report/build.js';
import type { AnalysisReport } from '../src/analysis/report/types.js';
import { gramOfFactor, type ProbeLayerData } from '../src/analysis/representation.js';
import { gromovWasserstein } from '../src/ot/index.js';
import { factorOf, type PlantedFederation, plantedActivations } from '../test/analysis/planted.js';
import { plantedReportInput } from '../test/analysis/planted-report.js';
import type { BenchTable } from './run.js';

const SIZES = (process.env.ANALYSIS_FACTORS_SIZES ?? '256,512').split(',').map(Number);
const D = 16;
const federation: PlantedFederation = {
  models: [
    { clientId: 'a', taskId: 't0' },
    { clientId: 'b', taskId: 't0' },
    { clientId: 'c', taskId: 't1' },
  ],
  blocks: [
    { size: 2, kind: 'shared' },
    { size: 2, kind: 'task' },
  ],
};

function input(layers: ProbeLayerData[][], n: number): ReportInput {
  return plantedReportInput(federation, n, layers, {
    reason: 'bench',
    cost: 'sqeuclidean',
    federationId: 'factors',
  });
}

async function timedReport(layers: ProbeLayerData[][], n: number) {
  let solveSeconds = 0;
  const started = performance.now();
  const report = await buildReport(input(layers, n), async (C1, C2) => {
    const r = gromovWasserstein(C1, C2, { solver: 'cg', init: 'best' });
    solveSeconds += r.seconds;
    return r;
  });
  return { report, seconds: (performance.now() - started) / 1000, solveSeconds };
}

function largestRelativeDifference(a: AnalysisReport, b: AnalysisReport): number {
  let worst = 0;
  const values = (r: AnalysisReport) => [
    ...r.layerGw.flatMap((m) => m.gw.flat()),
    ...r.crossModel.flatMap((l) => l.gw.flat()),
  ];
  const va = values(a);
  const vb = values(b);
  va.forEach((x, i) => {
    const y = vb[i];
    if (typeof x !== 'number' || typeof y !== 'number') return;
    const scale = Math.max(Math.abs(x), Math.abs(y));
    if (scale > 0) worst = Math.max(worst, Math.abs(x - y) / scale);
  });
  return worst;
}

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const rows: (string | number)[][] = [];
  for (const n of SIZES) {
    const activations = plantedActivations(federation, { n, dim: D, noise: 0.1, seed: 3 });
    const factors = activations.map((layers) => layers.map((X) => factorOf(X, n, D)));
    const grams = factors.map((layers) => layers.map(gramOfFactor));
    // Warm-up at a small size, so neither form pays the first compilation.
    if (n === SIZES[0]) await timedReport(factors, n);
    const fromFactors = await timedReport(factors, n);
    const fromGrams = await timedReport(grams, n);
    const diff = largestRelativeDifference(fromFactors.report, fromGrams.report);
    log(`n = ${n}: factors ${fromFactors.seconds.toFixed(2)} s, Grams ${fromGrams.seconds.toFixed(2)} s`);
    rows.push([
      n,
      D,
      fromFactors.seconds,
      fromFactors.solveSeconds,
      fromGrams.seconds,
      fromGrams.solveSeconds,
      `${(fromGrams.seconds / fromFactors.seconds).toFixed(2)}×`,
      diff.toExponential(1),
    ]);
  }
  return [
    {
      title:
        'Level-1 report on squared Euclidean costs: layers sent as factors vs as Gram matrices (same data)',
      columns: [
        'n',
        'd',
        'factors: build s',
        'factors: solve s',
        'Grams: build s',
        'Grams: solve s',
        'speed-up',
        'largest relative GW difference',
      ],
      rows,
      notes: [
        '3 models × 4 probe layers, 18 CG GW solves (best of identity and product starts) one after the other in one thread; no bootstrap.',
        'With Euclidean costs (the default, docs/EVIDENCE.md §6) GW cannot be factored and both forms solve dense.',
      ],
    },
  ];
}
