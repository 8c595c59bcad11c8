// Many GW problems at once (every layer pair of every model pair) on worker threads, so the
// coordinator's gRPC event loop never runs a solver. Inputs are copied and the copies' buffers
// transferred, so callers keep their arrays; plans come back by transfer.
//
// Backpressure: at most `maxQueue` problems wait for a worker; further solve() calls *await room*
// (they resolve later rather than grow the queue without bound). close() rejects whatever has not
// finished and terminates the workers.
//
// init 'best' with equal-size, equal-weight spaces is split into its identity and product runs,
// which go to different workers and are merged (lower E wins): one problem uses both cores.
// Workers start on first use. Problems too small to repay a message round trip (and, for the
// first ones, a worker's start-up) are solved in the calling thread; they take about a
// millisecond. Workers receive the compiled WebAssembly kernel rather than compiling their own.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { moduleUrl, startWorker } from '../shared/runtime.js';
import { type GwOptions, type GwResult, gromovWasserstein } from './gromov/gw.js';
import type { GwCost } from './gromov/problem.js';
import { kernelModule, kernelThreads, setKernelThreads } from './linalg.js';
import type { GwReply, GwTask } from './worker.js';

export interface GwPoolOptions {
  /** Worker threads (default: available parallelism). */
  workers?: number;
  /** Problems allowed to wait for a worker before solve() awaits room (default 256). */
  maxQueue?: number;
  /** Problems with n·m at most this are solved in the calling thread (default 48², 0 = never). */
  inThreadMaxSize?: number;
}

const IN_THREAD_MAX_SIZE = 48 * 48;

const WORKER_ENTRY = moduleUrl('./worker.js', import.meta.url);

interface Job {
  task: GwTask;
  transfer: ArrayBuffer[];
  resolve: (r: GwResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job?: Job;
}

function copy(a: Float64Array): Float64Array {
  return Float64Array.from(a);
}

/** A copy of a cost for transfer to a worker, with the buffers to transfer. */
function copyCost(C: GwCost): [GwCost, ArrayBuffer[]] {
  if (C instanceof Float64Array) {
    const c = copy(C);
    return [c, [c.buffer as ArrayBuffer]];
  }
  const A = copy(C.A);
  const B = copy(C.B);
  return [{ n: C.n, rank: C.rank, A, B }, [A.buffer as ArrayBuffer, B.buffer as ArrayBuffer]];
}

/** Number of points of a cost (NaN when a dense matrix is not square). */
function sizeOf(C: GwCost): number {
  if (!(C instanceof Float64Array)) return C.n;
  const n = Math.round(Math.sqrt(C.length));
  return n * n === C.length ? n : Number.NaN;
}

function sameWeights(n: number, m: number, p?: Float64Array, q?: Float64Array): boolean {
  if (n !== m) return false;
  if (!p && !q) return true;
  const pp = p ?? new Float64Array(n).fill(1 / n);
  const qq = q ?? new Float64Array(m).fill(1 / m);
  if (pp.length !== n || qq.length !== m) return false;
  for (let i = 0; i < n; i++) {
    if (Math.abs(pp[i]! - qq[i]!) > 1e-12 * Math.max(1, Math.abs(pp[i]!))) return false;
  }
  return true;
}

export class GwPool {
  private readonly size: number;
  private readonly maxQueue: number;
  private readonly inThreadMaxSize: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly roomWaiters: (() => void)[] = [];
  private nextId = 1;
  private closed = false;
  private running = 0;

  constructor(opts: GwPoolOptions = {}) {
    const workers = opts.workers ?? availableParallelism();
    const maxQueue = opts.maxQueue ?? 256;
    if (!Number.isInteger(workers) || workers < 1)
      throw new Error(`GwPool: workers must be ≥ 1, got ${workers}`);
    if (!Number.isInteger(maxQueue) || maxQueue < 1)
      throw new Error(`GwPool: maxQueue must be ≥ 1, got ${maxQueue}`);
    this.size = workers;
    this.maxQueue = maxQueue;
    this.inThreadMaxSize = opts.inThreadMaxSize ?? IN_THREAD_MAX_SIZE;
  }

  /** Worker threads started so far. */
  get started(): number {
    return this.slots.length;
  }

  /** Problems submitted and not yet finished (waiting or running). */
  get pending(): number {
    return this.queue.length + this.running;
  }

  /** Solves one GW problem on a worker; same arguments and result as gromovWasserstein(). */
  async solve(C1: GwCost, C2: GwCost, options: GwOptions = {}): Promise<GwResult> {
    if (this.closed) throw new Error('GwPool is closed');
    const n = sizeOf(C1);
    const m = sizeOf(C2);
    // Malformed input (n or m NaN) fails fast here too.
    if (this.inThreadMaxSize > 0 && !(n * m > this.inThreadMaxSize))
      return gromovWasserstein(C1, C2, options);
    const init = options.init ?? 'best';
    if (init === 'best' && this.size > 1 && Number.isInteger(n) && sameWeights(n, m, options.p, options.q)) {
      const started = performance.now();
      const [a, b] = await Promise.all([
        this.submit(C1, C2, { ...options, init: 'identity' }),
        this.submit(C1, C2, { ...options, init: 'product' }),
      ]);
      const best = a.gw <= b.gw ? a : b;
      return { ...best, seconds: (performance.now() - started) / 1000 };
    }
    return this.submit(C1, C2, options);
  }

  private async submit(C1: GwCost, C2: GwCost, options: GwOptions): Promise<GwResult> {
    while (this.queue.length >= this.maxQueue) {
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
      if (this.closed) throw new Error('GwPool is closed');
    }
    if (this.closed) throw new Error('GwPool is closed');
    const [c1, t1] = copyCost(C1);
    const [c2, t2] = copyCost(C2);
    const task: GwTask = { id: this.nextId++, C1: c1, C2: c2, options: { ...options } };
    const transfer = [...t1, ...t2];
    for (const key of ['p', 'q'] as const) {
      const w = options[key];
      if (w) {
        const c = copy(w);
        task.options[key] = c;
        transfer.push(c.buffer as ArrayBuffer);
      }
    }
    if (options.init instanceof Float64Array) {
      const c = copy(options.init);
      task.options.init = c;
      transfer.push(c.buffer as ArrayBuffer);
    }
    return new Promise<GwResult>((resolve, reject) => {
      this.queue.push({ task, transfer, resolve, reject });
      this.dispatch();
    });
  }

  private spawn(): Slot {
    const worker = startWorker(WORKER_ENTRY, { workerData: { kernelModule: kernelModule() } });
    const slot: Slot = { worker };
    worker.on('message', (reply: GwReply) => {
      const job = slot.job;
      if (!job || job.task.id !== reply.id) return;
      slot.job = undefined;
      this.running--;
      worker.unref();
      if ('error' in reply) job.reject(new Error(reply.error));
      else job.resolve(reply.result);
      this.dispatch();
    });
    const lost = (why: string) => {
      const idx = this.slots.indexOf(slot);
      if (idx >= 0) this.slots.splice(idx, 1);
      if (slot.job) {
        this.running--;
        slot.job.reject(new Error(this.closed ? 'GwPool closed before the solve finished' : why));
        slot.job = undefined;
      }
      if (!this.closed) this.dispatch();
    };
    worker.on('error', (err) => lost(`GW worker failed: ${err.message}`));
    worker.on('exit', (code) => lost(`GW worker exited (code ${code}) during a solve`));
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private dispatch(): void {
    while (this.queue.length > 0 && !this.closed) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const job = this.queue.shift()!;
      slot.job = job;
      this.running++;
      slot.worker.ref();
      slot.worker.postMessage(job.task, job.transfer);
      this.roomWaiters.shift()?.();
    }
  }

  /** Rejects queued and running solves and terminates the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0)) job.reject(new Error('GwPool closed before the solve started'));
    for (const wake of this.roomWaiters.splice(0)) wake();
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots.length = 0;
  }
}

/**
 * init 'best' for one problem in a process that may block (the CLI): the product start runs on a
 * worker thread started now, the identity start in this thread meanwhile, and the lower E wins.
 * Pays off once a start takes longer than a worker's start-up (hundreds of milliseconds).
 */
export async function solveBestOnTwoThreads(
  C1: GwCost,
  C2: GwCost,
  options: Omit<GwOptions, 'init'> = {},
): Promise<GwResult> {
  const started = performance.now();
  const pool = new GwPool({ workers: 1, inThreadMaxSize: 0 });
  try {
    const product = pool.solve(C1, C2, { ...options, init: 'product' });
    // A failure in this thread must not leave the worker's promise unobserved.
    product.catch(() => undefined);
    // Both cores are busy with the two starts: this thread's products get no helper thread.
    const threads = kernelThreads();
    setKernelThreads(1);
    let identity: GwResult;
    try {
      identity = gromovWasserstein(C1, C2, { ...options, init: 'identity' });
    } finally {
      setKernelThreads(threads);
    }
    const other = await product;
    // As 'best' in one thread: identity first, product only when strictly lower.
    const best = other.gw < identity.gw ? other : identity;
    return { ...best, seconds: (performance.now() - started) / 1000 };
  } finally {
    await pool.close();
  }
}
