// Low-rank GW: squared Euclidean costs of activations with d = 64 features, solved in factored form
// (C = A Bᵀ, rank d + 2, O(n²d) per iteration) against POT 0.8.2 on the same dense n×n matrices
// (O(n³) per iteration), with the objectives. Sizes: GW_BENCH_LOWRANK_SIZES (default 1024,4096);
// POT is given GW_BENCH_POT_TIMEOUT seconds per size (default 3600).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { gromovWasserstein, lowRankToDense, squaredEuclideanCost } from '../src/ot/index.js';
import { writeNpy } from '../src/shared/npy.js';
import { activations, hasPot, PYTHON, timedRun } from './gw-data.js';
import type { BenchTable } from './run.js';

const D = 64;

const POT_SCRIPT = `
import json, sys, time
import numpy as np
import ot
C1 = np.load(sys.argv[1]); C2 = np.load(sys.argv[2]); n = C1.shape[0]; p = np.ones(n) / n
ot.gromov.gromov_wasserstein(C1[:32, :32], C2[:32, :32], p[:32] * n / 32, p[:32] * n / 32, 'square_loss')
for name, G0 in (('identity', np.diag(p)), ('default', None)):
    t = time.perf_counter(); c = time.process_time()
    T, log = ot.gromov.gromov_wasserstein(C1, C2, p, p, 'square_loss', log=True, G0=G0)
    print(json.dumps({'start': name, 'seconds': time.perf_counter() - t, 'cpu': time.process_time() - c,
                      'gw': float(log['gw_dist']), 'iterations': len(log['loss']) - 1}), flush=True)
`;

interface PotRun {
  start: 'identity' | 'default';
  seconds: number;
  cpu: number;
  gw: number;
  iterations: number;
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

function problem(n: number) {
  const { X, Y } = activations(n, n + 7, D, D);
  return {
    F1: squaredEuclideanCost(X, n, D, { normalise: true }),
    F2: squaredEuclideanCost(Y, n, D, { normalise: true }),
  };
}

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const sizes = (process.env.GW_BENCH_LOWRANK_SIZES ?? '1024,4096').split(',').map(Number);
  const potTimeout = Number(process.env.GW_BENCH_POT_TIMEOUT ?? 3600);
  const pot = hasPot();
  if (!pot) log(`POT not importable from ${PYTHON}: POT columns are skipped (apt install python3-pot)`);
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-gw-lowrank-'));
  const rows: (string | number)[][] = [];
  const notes: string[] = [];
  // JIT warm-up, as POT's script warms up on a 32×32 problem.
  const warm = problem(256);
  gromovWasserstein(warm.F1, warm.F2);
  try {
    for (const n of sizes) {
      const { F1, F2 } = problem(n);
      const loadBefore = loadavg()[0]!;
      let potOut: { default?: PotRun; identity?: PotRun } | undefined;
      let potNote = '';
      if (pot) {
        const f1 = join(dir, `C1_${n}.npy`);
        const f2 = join(dir, `C2_${n}.npy`);
        writeFileSync(f1, writeNpy(lowRankToDense(F1), [n, n]));
        writeFileSync(f2, writeNpy(lowRankToDense(F2), [n, n]));
        log(`low-rank n=${n}: POT on the dense matrices (up to ${potTimeout} s)`);
        // One JSON line per start as it finishes (identity first), so a timeout keeps what finished.
        const r = timedRun(PYTHON, ['-c', POT_SCRIPT, f1, f2], potTimeout);
        potOut = {};
        for (const line of r.stdout.split('\n').filter((l) => l.startsWith('{'))) {
          const run = JSON.parse(line) as PotRun;
          potOut[run.start] = run;
        }
        // POT's network simplex prints this (C++ side) when it stops at its iteration cap.
        const capped = `${r.stdout}${r.stderr}`.split('Max number of iteration reached').length - 1;
        if (capped > 0)
          notes.push(
            `n=${n}: POT's ot.emd stopped at its 100,000-iteration cap ${capped}× (it prints "RESULT MIGHT BE INACURATE")`,
          );
        if (r.status !== 0) {
          potNote =
            r.status === null
              ? `POT did not finish within ${potTimeout} s (${potOut.identity ? 'the identity start finished, the default start did not' : 'no start finished'})`
              : `POT failed: ${r.stderr.slice(-300)}`;
        }
        rmSync(f1);
        rmSync(f2);
      }
      log(`low-rank n=${n}: atomlens (factored)`);
      // The first call at this size, then a second one: V8 has then compiled the paths this size
      // takes (the warm-up at n = 256 runs their loops too briefly), as bench gw's untimed run
      // per size does; POT's numpy and C++ are compiled ahead of time.
      const since = process.cpuUsage();
      const first = gromovWasserstein(F1, F2);
      const firstCpu = cpuSeconds(since);
      const sinceWarm = process.cpuUsage();
      const ours = gromovWasserstein(F1, F2);
      const ourCpu = cpuSeconds(sinceWarm);
      const potEs = [potOut?.default?.gw, potOut?.identity?.gw].filter((x): x is number => x !== undefined);
      const potBest = potEs.length > 0 ? Math.min(...potEs) : undefined;
      const potCell = (x?: PotRun) =>
        x
          ? `${x.seconds.toFixed(2)} / ${x.cpu.toFixed(2)} s · E ${x.gw.toPrecision(8)} · ${x.iterations} it`
          : '–';
      if (first.gw !== ours.gw)
        notes.push(`n=${n}: the two calls' objectives differ (${first.gw} vs ${ours.gw})`);
      const ratio = (r: { seconds: number }) =>
        potOut?.default ? (potOut.default.seconds / r.seconds).toFixed(1) : '–';
      rows.push([
        n,
        D,
        potCell(potOut?.default),
        potCell(potOut?.identity),
        `${first.seconds.toFixed(3)} / ${firstCpu.toFixed(3)} s`,
        `${ours.seconds.toFixed(3)} / ${ourCpu.toFixed(3)} s`,
        `${ours.gw.toPrecision(8)} (${ours.init}, ${ours.iterations} it)`,
        `${ratio(first)} · ${ratio(ours)}`,
        potBest !== undefined ? (ours.gw / potBest - 1).toExponential(1) : '–',
        `${loadBefore.toFixed(1)}→${loadavg()[0]!.toFixed(1)}`,
      ]);
      if (potNote) notes.push(`n=${n}: ${potNote}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  notes.push(
    'costs: squared Euclidean distances of X (n×64) and Y = tanh(XW/8) + 0.3·noise (n×64), each divided by its mean off-diagonal entry; POT gets the same matrices densely (A Bᵀ)',
    "ours: --init best (identity and product starts, the lower E kept) in one thread, after a warm-up at n = 256: the first call at each size, then a second call (warm: V8 has compiled the paths of this size, as after bench gw's untimed run per size); POT: each start once after a 32×32 warm-up",
    "POT's CG calls ot.emd with its default cap of 100,000 simplex iterations; a note per size says how often a linear step stopped there",
    'CPU seconds count every thread (OpenBLAS uses 2 for POT); load = 1-min load average before→after, on a 2-core machine shared with other jobs',
  );
  return [
    {
      title: 'Low-rank GW (squared Euclidean, d = 64): factored atomlens vs POT 0.8.2 on the dense matrices',
      columns: [
        'n',
        'd',
        'POT default start: wall / CPU · E · it',
        'POT identity start: wall / CPU · E · it',
        'ours best, first call: wall / CPU',
        'ours best, warm: wall / CPU',
        'ours E',
        'POT default wall / ours (first · warm)',
        'ours E / POT min E − 1',
        'load',
      ],
      rows,
      notes,
    },
  ];
}
