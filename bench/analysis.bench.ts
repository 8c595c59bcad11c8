// Wall time of one level-1 analysis after probing: every GW solve on the
// worker pool, segmentation, labels, cross-check and the HTML page, for synthetic models with
// the demo template's shape (5 probe layers). `npm run bench -- analysis`.
import { availableParallelism } from 'node:os';
import { buildReport } from '../src/analysis/report/build.js';
import { renderReportHtml } from '../src/analysis/report/html.js';
import type { ReportModel } from '../src/analysis/report/types.js';
import { GwPool } from '../src/ot/index.js';
import { mulberry32, normalSampler } from '../src/shared/rng.js';
import { buildTemplate, DEFAULT_TEMPLATE_CONFIG } from '../src/shared/template.js';
import type { BenchTable } from './run.js';

/** Gram matrices of random ReLU features of shared inputs: layer l of model i mixes a shared and an own part. */
function grams(models: number, layers: number, n: number, seed: number): Float32Array[][] {
  const normal = normalSampler(mulberry32(seed));
  const d = 32;
  const inputs = Float64Array.from({ length: n * d }, () => normal());
  const shared = Array.from({ length: layers }, () =>
    Float64Array.from({ length: d * d }, () => normal() / Math.sqrt(d)),
  );
  return Array.from({ length: models }, () =>
    shared.map((W, l) => {
      const own = Float64Array.from({ length: d * d }, () => normal() / Math.sqrt(d));
      const mix = l / layers;
      const X = new Float64Array(n * d);
      for (let i = 0; i < n; i++) {
        for (let c = 0; c < d; c++) {
          let s = 0;
          for (let t = 0; t < d; t++)
            s += inputs[i * d + t]! * ((1 - mix) * W[t * d + c]! + mix * own[t * d + c]!);
          X[i * d + c] = Math.max(0, s);
        }
      }
      const K = new Float32Array(n * n);
      for (let i = 0; i < n; i++) {
        for (let j = i; j < n; j++) {
          let s = 0;
          for (let c = 0; c < d; c++) s += X[i * d + c]! * X[j * d + c]!;
          K[i * n + j] = K[j * n + i] = s;
        }
      }
      return K;
    }),
  );
}

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const template = buildTemplate(DEFAULT_TEMPLATE_CONFIG);
  const L = template.probeLayers.length;
  const rows: (string | number)[][] = [];
  const pool = new GwPool();
  try {
    for (const [M, n] of [
      [4, 64],
      [4, 128],
      [4, 256],
      [8, 256],
    ] as const) {
      log(`${M} models, n = ${n}`);
      const models: ReportModel[] = Array.from({ length: M }, (_, i) => ({
        clientId: `c${i}`,
        taskId: i % 2 ? '2-3' : '0-1',
        round: 1,
        fingerprintMatch: true,
        answered: true,
        reused: false,
        requestId: `r${i}`,
      }));
      const g = grams(M, L, n, 7);
      const normal = normalSampler(mulberry32(3));
      const atoms = models.map(() =>
        template.layers.map((l) => Float32Array.from({ length: l.m * l.k * l.k }, () => normal())),
      );
      const started = performance.now();
      const report = await buildReport(
        {
          reportId: 'bench',
          analysisId: 'bench',
          createdAtMs: Date.now(),
          trigger: { kind: 'operator', reason: 'bench', evidence: [] },
          template,
          probe: { ...template.probe, size: n },
          models,
          missing: [],
          atoms,
          grams: new Map(g.map((x, i) => [i, x])),
          solver: { method: 'cg', init: 'best', maxIterations: null, tolerance: null },
          probingSeconds: 0,
        },
        (C1, C2) => pool.solve(C1, C2),
      );
      const html = renderReportHtml(report);
      const seconds = (performance.now() - started) / 1000;
      rows.push([
        M,
        n,
        report.timings.gwSolves,
        report.timings.solvingSeconds,
        seconds,
        Math.round(html.length / 1024),
      ]);
    }
  } finally {
    await pool.close();
  }
  return [
    {
      title:
        'Analysis after probing (GW solves + segmentation + labels + report), demo template (5 probe layers)',
      columns: ['models', 'n', 'GW solves', 'solving s', 'total s', 'HTML KiB'],
      rows,
      notes: [
        `GwPool with ${availableParallelism()} worker(s); CG from the identity and product couplings (the default).`,
        'Solves = M·L(L−1)/2 within models + L·M(M−1)/2 across models.',
      ],
    },
  ];
}
