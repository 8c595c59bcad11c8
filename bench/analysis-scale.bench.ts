// Scaling GW analysis out: the same analysis (M models × 8 probe layers, n probe inputs) solved
//   * in process on the worker-thread pool (1 and 2 threads),
//   * through the PostgreSQL job queue by 1 and 2 `atomlens worker` processes (1 thread each),
// checking that every report has the same numbers, and measuring the wall-time ratio from 1 to 2
// workers (target ≥ 1.8× on 2 cores), end to end and in the GW phase alone, and the queue's overhead
// per solve.
//
//   ANALYSIS_SCALE_MODELS=24 ANALYSIS_SCALE_N=512 npm run bench -- analysis-scale   (the full size)
// Defaults are smaller (6 models, n = 128) so that the bench finishes on a shared 2-core machine.
// Needs Debian's postgresql package (server binaries under /usr/lib/postgresql).
import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { buildReport, type ReportInput, type SolveGw } from '../src/analysis/report/build.js';
import type { AnalysisReport, ReportModel } from '../src/analysis/report/types.js';
import { GwQueue } from '../src/coordinator/level1/gw-queue.js';
import { PostgresStorage } from '../src/coordinator/storage/postgres.js';
import { GwPool } from '../src/ot/index.js';
import { atomlensArgv } from '../src/shared/runtime.js';
import {
  gram,
  type LayerMap,
  layerStack,
  noiseProbeTemplate,
  probeInputs,
} from '../test/analysis/synthetic.js';
import { postgresUnavailable, startPostgres } from '../test/helpers/postgres-server.js';
import type { BenchTable } from './run.js';

const MODELS = Number(process.env.ANALYSIS_SCALE_MODELS ?? 6);
const N = Number(process.env.ANALYSIS_SCALE_N ?? 128);
const LAYERS = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8'];

function setup(): ReportInput {
  const template = noiseProbeTemplate({
    federationId: 'bench',
    layers: LAYERS,
    channels: 4,
    m: 4,
    n: N,
    probeSeed: 3,
  });
  const inputs = probeInputs(N, 8, 4);
  const lasts: LayerMap[] = ['classes', 'classes2'];
  const models: ReportModel[] = [];
  const grams = new Map<number, Float32Array[]>();
  for (let i = 0; i < MODELS; i++) {
    models.push({
      clientId: `client${String(i).padStart(2, '0')}`,
      taskId: i % 2 === 0 ? '0-1' : '2-3',
      round: 1,
      fingerprintMatch: true,
      answered: true,
      reused: false,
      requestId: `req-${i}`,
    });
    const last = lasts[i % 2]!;
    const stack = layerStack(
      ['linear', 'linear', 'linear', 'folded', 'folded', 'folded', last, last],
      inputs,
      N,
      8,
      {
        mapSeed: 9,
        noiseSeed: 50 + i,
        noise: 0.1,
      },
    );
    grams.set(i, stack.map(gram));
  }
  return {
    reportId: 'rep-bench',
    analysisId: 'ana-bench',
    createdAtMs: Date.UTC(2025, 0, 1),
    trigger: { kind: 'operator', reason: 'bench', evidence: [] },
    template,
    probe: template.probe,
    models,
    missing: [],
    atoms: models.map(() => null),
    grams,
    solver: { method: 'cg', init: 'best', maxIterations: null, tolerance: null },
    probingSeconds: 0,
  };
}

function numbers(r: AnalysisReport): string {
  return JSON.stringify([r.layerGw, r.crossModel, r.blocks, r.consensus]);
}

async function timed(
  input: ReportInput,
  solve: SolveGw,
): Promise<{ seconds: number; report: AnalysisReport }> {
  const t0 = performance.now();
  const report = await buildReport(input, solve);
  return { seconds: (performance.now() - t0) / 1000, report };
}

function startWorker(store: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, atomlensArgv(['worker', '--store', store, '--threads', '1']), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ATOMLENS_LOG: 'warn' },
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('worker ready')) resolve(child);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}: ${out}`)));
  });
}

async function stopWorkers(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          c.removeAllListeners('exit');
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
}

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const input = setup();
  const jobs =
    MODELS * ((LAYERS.length * (LAYERS.length - 1)) / 2) + LAYERS.length * ((MODELS * (MODELS - 1)) / 2);
  const rows: (string | number)[][] = [];
  log(`${MODELS} models × ${LAYERS.length} layers, n = ${N}: ${jobs} GW solves`);

  let reference: string | undefined;
  const inProcess: number[] = [];
  const inProcessGw: number[] = [];
  for (const threads of [1, 2]) {
    const pool = new GwPool({ workers: threads });
    log(`in process, ${threads} thread(s)`);
    const r = await timed(input, (C1, C2) => pool.solve(C1, C2, {}));
    await pool.close();
    reference ??= numbers(r.report);
    inProcess.push(r.seconds);
    inProcessGw.push(r.report.timings.solvingSeconds);
    rows.push([
      `in process, ${threads} thread(s)`,
      r.seconds,
      r.report.timings.solvingSeconds,
      jobs / r.seconds,
      numbers(r.report) === reference ? 'yes' : 'NO',
    ]);
  }

  const notes: string[] = [];
  const unavailable = postgresUnavailable();
  if (unavailable) {
    notes.push(unavailable);
  } else {
    const server = await startPostgres();
    try {
      const store = await server.createDatabase();
      const storage = await PostgresStorage.open({ connectionString: store });
      const stored: Promise<void>[] = [];
      input.models.forEach((m, i) => {
        // setup() gives every layer as its Gram matrix.
        (input.grams.get(i)! as Float32Array[]).forEach((g, l) => {
          stored.push(
            storage.putProbeSummary({
              requestId: m.requestId!,
              clientId: m.clientId,
              taskId: m.taskId,
              round: 1,
              layer: LAYERS[l]!,
              n: N,
              featureDim: 8,
              gram: Buffer.from(g.buffer, g.byteOffset, g.byteLength),
              receivedAtMs: 0,
            }),
          );
        });
      });
      await Promise.all(stored);
      const queue = await GwQueue.open({ connectionString: store, pollMs: 20 });
      const queued: number[] = [];
      const queuedGw: number[] = [];
      for (const workers of [1, 2]) {
        const analysisId = `ana-bench-${workers}`;
        await storage.putAnalysis({
          analysisId,
          status: 'running',
          trigger: 'operator',
          reason: 'bench',
          models: input.models.map((m) => ({ clientId: m.clientId, taskId: m.taskId })),
          createdAtMs: Date.now(),
        });
        const children = await Promise.all(Array.from({ length: workers }, () => startWorker(store)));
        log(`queue, ${workers} worker process(es)`);
        const solver = queue.solverFor(analysisId, N, {}, (model, layer) => ({
          requestId: input.models[model]!.requestId!,
          clientId: input.models[model]!.clientId,
          taskId: input.models[model]!.taskId,
          layer: LAYERS[layer]!,
        }));
        const r = await timed({ ...input, analysisId }, solver.solve);
        await solver.finish();
        await stopWorkers(children);
        queued.push(r.seconds);
        queuedGw.push(r.report.timings.solvingSeconds);
        rows.push([
          `PostgreSQL queue, ${workers} worker(s) × 1 thread`,
          r.seconds,
          r.report.timings.solvingSeconds,
          jobs / r.seconds,
          numbers(r.report) === reference ? 'yes' : 'NO',
        ]);
      }
      await queue.close();
      await storage.close();
      const overheadMs = ((queuedGw[0]! - inProcessGw[0]!) / jobs) * 1000;
      notes.push(
        `1 → 2 workers: ${(queued[0]! / queued[1]!).toFixed(2)}× faster end to end (target ≥ 1.8× on 2 cores), ` +
          `${(queuedGw[0]! / queuedGw[1]!).toFixed(2)}× in the GW phase`,
        `queue overhead per solve (GW phase, 1 worker vs 1 in-process thread): ${overheadMs.toFixed(2)} ms ` +
          '(per job of several solves: fetch, status check, result insert with NOTIFY, complete; per worker: ' +
          'Gram load and distance matrix on first use)',
        '"GW phase": from the first solve asked to the last result in; the rest of the wall time is the ' +
          "coordinator's own work before and after (representations, segmentation), the same in every row",
      );
    } finally {
      server.destroy();
    }
  }
  notes.push(
    `"same numbers": layer GW matrices, cross-model GW, blocks and consensus identical to the first run`,
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} on ${availableParallelism()} cores — the machine is shared, wall times are noisy`,
  );
  return [
    {
      title: `Analysis scale-out: ${MODELS} models × ${LAYERS.length} layers, n = ${N} (${jobs} GW solves, CG best-of-two starts)`,
      columns: ['solver', 'wall s', 'GW phase s', 'solves/s', 'same numbers'],
      rows,
      notes,
    },
  ];
}
