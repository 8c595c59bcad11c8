// Cold GW as a user runs it: one `atomlens gw A B --json` process per size against one POT process
// (import, load, gromov_wasserstein from its default start), on the same normalised Euclidean
// distance matrices. Reported: the solver seconds each side measures around its solve, the whole
// process's wall time, and its CPU seconds (user + system over all threads, from /usr/bin/time),
// which the shared machine's load distorts less than wall time. Sizes: GW_BENCH_COLD_SIZES
// (default 256,512,1024,2048).
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeNpy } from '../src/shared/npy.js';
import { hasPot, PYTHON, spaces, timedRun } from './gw-data.js';
import type { BenchTable } from './run.js';

const CLI = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'atomlens.js');

// The default start is timed; the identity start runs after it (not timed, not in the CPU figure's
// meaning) only to give POT's better objective. Both are printed as one JSON line.
const POT_COLD = `
import json, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
import numpy as np
import ot
C1 = np.load(sys.argv[1]); C2 = np.load(sys.argv[2]); n = C1.shape[0]; p = np.ones(n) / n
t = time.perf_counter(); c = time.process_time()
T, log = ot.gromov.gromov_wasserstein(C1, C2, p, p, 'square_loss', log=True)
out = {'seconds': time.perf_counter() - t, 'cpu': time.process_time() - c, 'untilSolved': time.perf_counter() - t0,
       'cpuUntilSolved': time.process_time() - c0, 'gw': float(log['gw_dist']), 'iterations': len(log['loss']) - 1}
T, log = ot.gromov.gromov_wasserstein(C1, C2, p, p, 'square_loss', log=True, G0=np.diag(p))
out['identityGw'] = float(log['gw_dist'])
print(json.dumps(out))
`;

interface PotCold {
  seconds: number;
  cpu: number;
  untilSolved: number;
  cpuUntilSolved: number;
  gw: number;
  identityGw: number;
  iterations: number;
}

function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined ? '–' : x.toFixed(digits);
}

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const sizes = (process.env.GW_BENCH_COLD_SIZES ?? '256,512,1024,2048').split(',').map(Number);
  const pot = hasPot();
  if (!pot) log(`POT not importable from ${PYTHON}: POT columns are skipped (apt install python3-pot)`);
  // The command runs the compiled output, as after `npm install`: build it from these sources.
  log('npm run build');
  const build = spawnSync('npm', ['run', 'build'], { cwd: join(dirname(CLI), '..'), encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`npm run build failed: ${build.stderr}`);
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-gw-cold-'));
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  // Start-up alone: the same command on a 2-point problem.
  const tiny = join(dir, 'tiny.npy');
  writeFileSync(tiny, writeNpy([0, 1, 1, 0], [2, 2]));
  const baseline = timedRun(process.execPath, [CLI, 'gw', tiny, tiny, '--json'], 600);
  if (baseline.status !== 0) throw new Error(`atomlens gw failed: ${baseline.stderr}`);
  notes.push(
    `atomlens start-up alone (a 2-point problem): ${fmt(baseline.wall)} s wall, ${fmt(baseline.cpu)} s CPU`,
  );
  try {
    for (const n of sizes) {
      const { C1, C2 } = spaces(n, n);
      const f1 = join(dir, `C1_${n}.npy`);
      const f2 = join(dir, `C2_${n}.npy`);
      writeFileSync(f1, writeNpy(C1, [n, n]));
      writeFileSync(f2, writeNpy(C2, [n, n]));
      const loadBefore = loadavg()[0]!;
      let potOut: PotCold | undefined;
      if (pot) {
        log(`cold n=${n}: POT`);
        const r = timedRun(PYTHON, ['-c', POT_COLD, f1, f2], 3600);
        if (r.status !== 0) throw new Error(`POT failed: ${r.stderr}`);
        potOut = JSON.parse(r.stdout.trim().split('\n').pop()!) as PotCold;
      }
      log(`cold n=${n}: atomlens gw`);
      const ours = timedRun(process.execPath, [CLI, 'gw', f1, f2, '--json'], 3600);
      if (ours.status !== 0) throw new Error(`atomlens gw failed: ${ours.stderr}`);
      const out = JSON.parse(ours.stdout) as {
        gw: number;
        seconds: number;
        init: string;
        iterations: number;
      };
      const potBest = potOut ? Math.min(potOut.gw, potOut.identityGw) : undefined;
      rows.push([
        n,
        potOut ? `${fmt(potOut.seconds)} / ${fmt(potOut.cpu)}` : '–',
        potOut ? `${fmt(potOut.untilSolved)} / ${fmt(potOut.cpuUntilSolved)}` : '–',
        out.seconds,
        `${fmt(ours.wall)} / ${fmt(ours.cpu)}`,
        ours.cpu !== null && baseline.cpu !== null ? fmt(ours.cpu - baseline.cpu) : '–',
        potOut ? (out.seconds / potOut.seconds).toFixed(2) : '–',
        potOut ? `${potOut.gw.toPrecision(7)} / ${potOut.identityGw.toPrecision(7)}` : '–',
        `${out.gw.toPrecision(7)} (${out.init}, ${out.iterations} it)`,
        potBest !== undefined ? (out.gw / potBest - 1).toExponential(1) : '–',
        `${loadBefore.toFixed(1)}→${loadavg()[0]!.toFixed(1)}`,
      ]);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  notes.push(
    'one process each per size, POT first; POT solves from its default start (p qᵀ); atomlens runs its default --init best (identity and product starts, the lower E kept; from 1024² points the product start runs on a worker thread; below 512² the matrix products use no helper thread)',
    "process wall includes start-up: POT's Python + numpy/scipy import, atomlens's Node + loading the compiled CLI (dist/, built first) + compiling its WebAssembly modules (done as the command starts, before the solve's clock, as POT's compiled extensions load at import); CPU seconds count every thread (OpenBLAS threads for POT, the worker for atomlens)",
    'load = 1-min load average before→after the row, on a 2-core machine shared with other jobs: wall times are noisy when it exceeds 2',
  );
  return [
    {
      title: 'Cold GW as a user runs it: `atomlens gw A B --json` vs a fresh POT 0.8.2 process',
      columns: [
        'n',
        'POT solve: wall / CPU s',
        'POT process until solved: wall / CPU s',
        'ours solve s (as reported)',
        'ours process: wall / CPU s',
        'ours process CPU − start-up CPU s',
        'solve ratio ours/POT',
        'POT E default / identity start',
        'ours E',
        'ours E / POT min E − 1',
        'load',
      ],
      rows,
      notes,
    },
  ];
}
