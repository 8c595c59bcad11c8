// `atomlens gw A B`: Gromov–Wasserstein between two spaces read from .npy or JSON files — distance
// matrices, Gram matrices, or raw activations (rows = probe inputs).
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import {
  gramFromActivations,
  gramToDistances,
  gramToSquaredDistances,
} from '../../analysis/representation.js';
import {
  type GwCost,
  type GwInit,
  type GwResult,
  type GwSolver,
  gromovWasserstein,
  normaliseByMeanOffDiagonal,
  prepareKernels,
  setKernelThreads,
  solveBestOnTwoThreads,
  squaredEuclideanCost,
} from '../../ot/index.js';
import { readNpy, writeNpy } from '../../shared/npy.js';
import {
  CliError,
  type CommandSpec,
  choiceFlag,
  EXIT,
  intFlag,
  numberFlag,
  type Parsed,
  UsageError,
} from '../args.js';

const INPUTS = ['distance', 'gram', 'activations'] as const;
type InputKind = (typeof INPUTS)[number];
const NORMALISE = ['auto', 'mean', 'none'] as const;
const COSTS = ['euclidean', 'sqeuclidean'] as const;
type CostKind = (typeof COSTS)[number];
const THREADS = ['auto', '1', '2'] as const;
/** From this many point pairs (n·m) a start outlasts a worker thread's start-up. */
const TWO_THREADS_FROM = 1024 * 1024;
/** Below this many point pairs one solve is over before a kernel helper thread has started. */
const KERNEL_HELPERS_FROM = 512 * 512;

export const spec: CommandSpec = {
  name: 'gw',
  summary: 'Gromov–Wasserstein distance between two spaces (.npy or JSON)',
  usage: 'atomlens gw A B [options]',
  positionals: [2, 2],
  options: {
    input: {
      type: 'string',
      value: 'KIND',
      default: 'distance',
      description:
        'What A and B hold: distance (n×n), gram (n×n, X Xᵀ) or activations (n×d, rows = probe inputs)',
    },
    normalise: {
      type: 'string',
      value: 'HOW',
      default: 'auto',
      description:
        'Divide each distance matrix by its mean off-diagonal entry (mean), or not (none); auto = mean for gram/activations, none for distance',
    },
    cost: {
      type: 'string',
      value: 'KIND',
      default: 'euclidean',
      description:
        'With --input gram or activations: euclidean distances, or sqeuclidean (squared distances; from activations with few features GW runs on the rank d + 2 factorisation, O(n²d) per iteration)',
    },
    solver: {
      type: 'string',
      value: 'NAME',
      default: 'cg',
      description: 'cg (conditional gradient, exact OT steps) or entropic',
    },
    init: {
      type: 'string',
      value: 'START',
      default: 'best',
      description: 'best (identity and product, keep the lower), identity (needs equal sizes) or product',
    },
    epsilon: {
      type: 'string',
      value: 'E',
      description: 'Entropic regularisation (with --solver entropic; default 0.05)',
    },
    'max-iter': { type: 'string', value: 'N', default: '1000', description: 'Maximum outer iterations' },
    threads: {
      type: 'string',
      value: 'N',
      default: 'auto',
      description:
        'With --init best and --solver cg: 2 runs the product start on a worker thread alongside the identity start, 1 runs both here; auto = 2 from 1024×1024 points on a machine with 2+ cores',
    },
    plan: {
      type: 'string',
      value: 'FILE.npy',
      description: 'Also write the optimal coupling (n×m, float64) to this file',
    },
    json: { type: 'boolean', description: 'Print one JSON object instead of text' },
  },
  details: `A and B are .npy files (float32 or float64, C order, as numpy saves them) or JSON files holding
a nested array of numbers. Points carry uniform weights. The objective is
E = Σ (C1_ik − C2_jl)² T_ij T_kl; the distance printed is ½·√E. The seconds printed are the
solve's wall-clock time (input checks, starts, iterations; with --threads 2 the worker's start-up),
not reading the files or turning activations into distances.

Exit codes: 0 ok, 2 bad flags, 4 unreadable or malformed input file.

Example:
  atomlens gw layer3.npy layer7.npy --input activations --json`,
};

interface Matrix {
  rows: number;
  cols: number;
  data: Float64Array;
}

function badInput(file: string, msg: string): never {
  throw new CliError(`${file}: ${msg}`, EXIT.badInput);
}

function fromNested(file: string, value: unknown): Matrix {
  if (!Array.isArray(value) || value.length === 0 || !value.every(Array.isArray)) {
    badInput(file, 'expected a non-empty JSON array of rows (a 2-D nested array of numbers)');
  }
  const rows = value as unknown[][];
  const cols = rows[0]!.length;
  const data = new Float64Array(rows.length * cols);
  rows.forEach((row, i) => {
    if (row.length !== cols) badInput(file, `row ${i} has ${row.length} entries, row 0 has ${cols}`);
    row.forEach((v, j) => {
      if (typeof v !== 'number') badInput(file, `entry [${i}][${j}] is ${JSON.stringify(v)}, not a number`);
      data[i * cols + j] = v;
    });
  });
  return { rows: rows.length, cols, data };
}

/** Reads a 2-D matrix from .npy or JSON; any problem is a bad-input error naming the file. */
export function readMatrix(file: string): Matrix {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (err) {
    badInput(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let m: Matrix;
  const isNpy =
    extname(file).toLowerCase() === '.npy' || buf.subarray(0, 6).toString('latin1') === '\x93NUMPY';
  if (isNpy) {
    let arr: ReturnType<typeof readNpy>;
    try {
      arr = readNpy(buf);
    } catch (err) {
      badInput(file, (err as Error).message);
    }
    if (arr.shape.length !== 2) badInput(file, `expected a 2-D array, got shape (${arr.shape.join(', ')})`);
    m = { rows: arr.shape[0]!, cols: arr.shape[1]!, data: arr.data };
  } else {
    let parsed: unknown;
    try {
      parsed = JSON.parse(buf.toString('utf8'));
    } catch (err) {
      badInput(file, `neither a .npy file nor valid JSON (${(err as Error).message})`);
    }
    m = fromNested(file, parsed);
  }
  if (m.rows === 0 || m.cols === 0) badInput(file, 'the matrix is empty');
  for (let i = 0; i < m.data.length; i++) {
    if (!Number.isFinite(m.data[i]!)) {
      badInput(
        file,
        `entry [${Math.floor(i / m.cols)}, ${i % m.cols}] is ${m.data[i]}; all values must be finite`,
      );
    }
  }
  return m;
}

/** The (possibly normalised) cost a file describes: dense, or factored for squared distances of activations. */
function toCost(file: string, m: Matrix, input: InputKind, normalise: boolean, cost: CostKind): GwCost {
  if (input === 'activations' && cost === 'sqeuclidean') {
    try {
      return squaredEuclideanCost(m.data, m.rows, m.cols, { normalise });
    } catch (err) {
      badInput(file, (err as Error).message);
    }
  }
  let D: Float64Array;
  if (input === 'activations') {
    D = gramToDistances(gramFromActivations(m.data, m.rows, m.cols), m.rows);
  } else {
    if (m.rows !== m.cols) {
      badInput(
        file,
        `a ${input} matrix must be square, got ${m.rows}×${m.cols} (use --input activations for n×d data)`,
      );
    }
    if (input === 'gram') {
      D = cost === 'sqeuclidean' ? gramToSquaredDistances(m.data, m.rows) : gramToDistances(m.data, m.rows);
    } else D = m.data;
  }
  if (!normalise) return D;
  try {
    return normaliseByMeanOffDiagonal(D, m.rows);
  } catch (err) {
    badInput(file, (err as Error).message);
  }
}

export async function run(parsed: Parsed): Promise<number> {
  const { values, positionals } = parsed;
  const input = choiceFlag(values, 'input', INPUTS);
  const normaliseFlag = choiceFlag(values, 'normalise', NORMALISE);
  const solver = choiceFlag<GwSolver>(values, 'solver', ['cg', 'entropic']);
  const init = choiceFlag<GwInit>(values, 'init', ['best', 'identity', 'product']);
  const maxIter = intFlag(values, 'max-iter', 1, 1_000_000);
  let epsilon: number | undefined;
  if (values.epsilon !== undefined) {
    if (solver !== 'entropic') throw new UsageError('--epsilon applies to --solver entropic only');
    epsilon = numberFlag(values, 'epsilon', Number.MIN_VALUE, 1e6);
  }
  const normalise = normaliseFlag === 'auto' ? input !== 'distance' : normaliseFlag === 'mean';
  const cost = choiceFlag(values, 'cost', COSTS);
  if (cost !== 'euclidean' && input === 'distance') {
    throw new UsageError(
      '--cost applies to --input gram or activations (distance matrices are used as given)',
    );
  }
  const [fileA, fileB] = positionals as [string, string];
  // The solver's WebAssembly modules are compiled as the command starts, so the reported seconds
  // are the solve's (as POT's exclude loading its compiled extensions); the process's own
  // start-up includes them.
  prepareKernels();
  const A = readMatrix(fileA);
  const B = readMatrix(fileB);
  const C1 = toCost(fileA, A, input, normalise, cost);
  const C2 = toCost(fileB, B, input, normalise, cost);
  const n = A.rows;
  const m = B.rows;
  if (init === 'identity' && n !== m) {
    throw new UsageError(`--init identity needs spaces of equal size, got ${n} and ${m} points`);
  }
  const threads = choiceFlag(values, 'threads', THREADS);
  const twoThreads =
    init === 'best' &&
    solver === 'cg' &&
    n === m &&
    (threads === '2' || (threads === 'auto' && n * m >= TWO_THREADS_FROM && availableParallelism() >= 2));
  // A helper thread for the matrix products costs tens of milliseconds of CPU to start (a fresh
  // isolate) and some on this thread to launch, before it takes half of any product; a small
  // solve is over by then (measured at n = 256: +10 ms on this thread, +40% CPU, no gain).
  if (n * m < KERNEL_HELPERS_FROM) setKernelThreads(1);
  let result: GwResult;
  try {
    const options = {
      solver,
      maxIter,
      returnPlan: typeof values.plan === 'string',
      ...(epsilon !== undefined ? { epsilon } : {}),
    };
    result = twoThreads
      ? await solveBestOnTwoThreads(C1, C2, options)
      : gromovWasserstein(C1, C2, { ...options, init });
  } catch (err) {
    // What remains are properties of the data (asymmetric distances and the like).
    throw new CliError((err as Error).message, EXIT.badInput);
  }
  if (typeof values.plan === 'string' && result.plan) {
    try {
      writeFileSync(values.plan, writeNpy(result.plan, [n, m]));
    } catch (err) {
      throw new CliError(`cannot write --plan ${values.plan}: ${(err as Error).message}`);
    }
  }
  const { plan: _plan, ...summary } = result;
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ ...summary, solver, input, cost, normalised: normalise, n, m })}\n`,
    );
  } else {
    const lines = [
      `GW (square loss, ${solver}${solver === 'entropic' ? `, ε = ${epsilon ?? 0.05}` : ''}) between ${n} and ${m} points, ${input}${input === 'distance' ? '' : `, ${cost}`}${normalise ? ', normalised by mean off-diagonal distance' : ''}`,
      `  E          ${result.gw.toPrecision(8)}   (start: ${result.init})`,
      `  distance   ${result.distance.toPrecision(8)}   (½√E)`,
      `  identity   ${result.identityValue === null ? 'n/a (sizes differ)' : result.identityValue.toPrecision(8)}`,
      `  product    ${result.productValue.toPrecision(8)}`,
      `  ${result.iterations} iteration(s), ${result.converged ? 'converged' : 'NOT converged (raise --max-iter)'}, ${result.seconds.toFixed(3)} s`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return EXIT.ok;
}
