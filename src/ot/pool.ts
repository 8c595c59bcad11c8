// Many GW problems at once (every layer pair of every model pair) on worker threads, so the
// coordinator's gRPC event loop never runs a solver. Inputs are copied and the copies' buffers
// transferred, so callers keep their arrays (costs on SharedArrayBuffers are shared instead);
// plans come back by transfer. The same threads run
// other pure numerical work of an analysis (run(): an exported function of an atomlens module,
// typed arrays in and out, SharedArrayBuffers shared rather than copied), so that one set of
// threads, sized to the cores, serves both.
//
// Cancellation: a solve or run given an AbortSignal leaves the queue when the signal aborts; one
// already running has its worker terminated (a fresh one starts on the next task). The pool adds
// one 'abort' listener per signal, however many of its tasks wait on it (an analysis passes one
// signal to hundreds of solves and tasks), and removes it when the last of them settles.
//
// Backpressure: at most `maxQueue` problems wait for a worker; further solve() calls *await room*
// (they resolve later rather than grow the queue without bound). close() rejects whatever has not
// finished and terminates the workers.
//
// init 'best' with equal-size, equal-weight spaces is split into its identity and product runs,
// which go to different workers and are merged (lower E wins): one problem uses both cores.
// Workers start on first use. Problems too small to repay a message round trip (and, for the
// first ones, a worker's start-up) are solved in the calling thread; they take about a
// millisecond each, and are run a few milliseconds' worth per event-loop turn so that thousands
// of them never hold the calling thread's event loop for long. Workers receive the compiled
// WebAssembly kernel rather than compiling their own.
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { moduleUrl, startWorker } from '../shared/runtime.js';
import { type GwOptions, type GwResult, gromovWasserstein } from './gromov/gw.js';
import type { GwCost } from './gromov/problem.js';
import { kernelModule, kernelThreads, setKernelThreads } from './linalg.js';
import type { CallTask, GwTask, WorkerReply } from './worker.js';

export interface GwPoolOptions {
  /** Worker threads (default: available parallelism). */
  workers?: number;
  /** Problems allowed to wait for a worker before solve() awaits room (default 256). */
  maxQueue?: number;
  /** Problems with n·m at most this are solved in the calling thread (default 48², 0 = never). */
  inThreadMaxSize?: number;
}

const IN_THREAD_MAX_SIZE = 48 * 48;

/** In-thread solves run back to back for at most this long before the event loop gets a turn. */
const IN_THREAD_SLICE_MS = 8;

export interface TaskOptions {
  /** Aborting it takes the task out of the queue, or stops its worker if it is running. */
  signal?: AbortSignal;
}

const WORKER_ENTRY = moduleUrl('./worker.js', import.meta.url);

interface Job {
  task: GwTask | CallTask;
  transfer: ArrayBuffer[];
  resolve: (r: unknown) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  job?: Job;
}

/** A copy on a new (transferable) ArrayBuffer, also of a view on shared memory, by block copy. */
function copy(a: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  out.set(a);
  return out;
}

const shared = (a: Float64Array) => a.buffer instanceof SharedArrayBuffer;

/**
 * A cost for a worker, with the buffers to transfer: a copy, or the cost itself when it lives on
 * shared memory (the solver only reads its costs, and the worker reads them in place).
 */
function copyCost(C: GwCost): [GwCost, ArrayBuffer[]] {
  if (C instanceof Float64Array) {
    if (shared(C)) return [C, []];
    const c = copy(C);
    return [c, [c.buffer as ArrayBuffer]];
  }
  if (shared(C.A) && shared(C.B)) return [C, []];
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

/**
 * Abort callbacks of many tasks behind a single listener per signal, removed with the last callback,
 * so a signal shared by many tasks neither accumulates listeners nor trips Node's
 * MaxListenersExceededWarning (more than 10 listeners on one EventTarget).
 */
class AbortWatch {
  private readonly watched = new Map<AbortSignal, { callbacks: Set<() => void>; fire: () => void }>();

  /** Calls `onAbort` when `signal` aborts; the function returned stops that (call it when the task settles). */
  watch(signal: AbortSignal, onAbort: () => void): () => void {
    let entry = this.watched.get(signal);
    if (!entry) {
      const callbacks = new Set<() => void>();
      const fire = () => {
        this.watched.delete(signal);
        for (const cb of [...callbacks]) cb();
      };
      entry = { callbacks, fire };
      this.watched.set(signal, entry);
      signal.addEventListener('abort', fire, { once: true });
    }
    // A wrapper of its own, so the same function watched twice is two entries.
    const callback = () => onAbort();
    entry.callbacks.add(callback);
    return () => {
      const current = this.watched.get(signal);
      if (!current?.callbacks.delete(callback)) return;
      if (current.callbacks.size === 0) {
        this.watched.delete(signal);
        signal.removeEventListener('abort', current.fire);
      }
    };
  }
}

export class GwPool {
  private readonly size: number;
  private readonly maxQueue: number;
  private readonly inThreadMaxSize: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly roomWaiters: (() => void)[] = [];
  private readonly aborts = new AbortWatch();
  private readonly local: (() => void)[] = [];
  private localHead = 0;
  private localScheduled = false;
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

  /** Problems and tasks submitted and not yet finished (waiting or running). */
  get pending(): number {
    return this.queue.length + this.running + (this.local.length - this.localHead);
  }

  /** Solves one GW problem on a worker; same arguments and result as gromovWasserstein(). */
  async solve(C1: GwCost, C2: GwCost, options: GwOptions = {}, task: TaskOptions = {}): Promise<GwResult> {
    if (this.closed) throw new Error('GwPool is closed');
    task.signal?.throwIfAborted();
    const n = sizeOf(C1);
    const m = sizeOf(C2);
    // Malformed input (n or m NaN) fails fast here too.
    if (this.inThreadMaxSize > 0 && !(n * m > this.inThreadMaxSize)) {
      return this.inThread(() => gromovWasserstein(C1, C2, options), task.signal);
    }
    const init = options.init ?? 'best';
    if (init === 'best' && this.size > 1 && Number.isInteger(n) && sameWeights(n, m, options.p, options.q)) {
      const started = performance.now();
      const [a, b] = await Promise.all([
        this.submit(C1, C2, { ...options, init: 'identity' }, task.signal),
        this.submit(C1, C2, { ...options, init: 'product' }, task.signal),
      ]);
      const best = a.gw <= b.gw ? a : b;
      return { ...best, seconds: (performance.now() - started) / 1000 };
    }
    return this.submit(C1, C2, options, task.signal);
  }

  /**
   * Calls `fn`, an export of the module at `module` (a URL from shared/runtime's moduleUrl), with
   * `args` on a worker, and resolves with what it returns (awaited). Arguments are copied by
   * structured clone except SharedArrayBuffers (shared) and the buffers in `transfer` (moved);
   * typed arrays in the result come back by transfer.
   */
  async run<T>(
    module: URL,
    fn: string,
    args: unknown[],
    options: TaskOptions & { transfer?: ArrayBuffer[] } = {},
  ): Promise<T> {
    await this.waitForRoom(options.signal);
    const task: CallTask = { kind: 'call', id: this.nextId++, module: module.href, fn, args };
    return this.enqueue(task, options.transfer ?? [], options.signal) as Promise<T>;
  }

  /** Runs `work` in this thread, a time slice of queued ones per event-loop turn. */
  private inThread<T>(work: () => T, signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.local.push(() => {
        if (this.closed) return reject(new Error('GwPool closed before the solve started'));
        if (signal?.aborted) return reject(signal.reason);
        try {
          resolve(work());
        } catch (err) {
          reject(err);
        }
      });
      if (!this.localScheduled) {
        this.localScheduled = true;
        setImmediate(() => this.runLocalSlice());
      }
    });
  }

  private runLocalSlice(): void {
    this.localScheduled = false;
    const until = performance.now() + IN_THREAD_SLICE_MS;
    do {
      const work = this.local[this.localHead];
      this.local[this.localHead++] = undefined as unknown as () => void;
      work?.();
    } while (this.localHead < this.local.length && performance.now() < until);
    if (this.localHead >= this.local.length) {
      this.local.length = 0;
      this.localHead = 0;
    } else {
      this.localScheduled = true;
      setImmediate(() => this.runLocalSlice());
    }
  }

  /** Resolves when the queue has room (or throws when the pool closes or `signal` aborts). */
  private async waitForRoom(signal: AbortSignal | undefined): Promise<void> {
    while (this.queue.length >= this.maxQueue && !this.closed) {
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        let stopWatching = () => {};
        const wake = () => {
          stopWatching();
          resolve();
        };
        this.roomWaiters.push(wake);
        if (signal) {
          stopWatching = this.aborts.watch(signal, () => {
            const i = this.roomWaiters.indexOf(wake);
            if (i >= 0) this.roomWaiters.splice(i, 1);
            resolve();
          });
        }
      });
    }
    if (this.closed) throw new Error('GwPool is closed');
    signal?.throwIfAborted();
  }

  private async submit(C1: GwCost, C2: GwCost, options: GwOptions, signal?: AbortSignal): Promise<GwResult> {
    await this.waitForRoom(signal);
    const [c1, t1] = copyCost(C1);
    const [c2, t2] = copyCost(C2);
    const task: GwTask = { kind: 'gw', id: this.nextId++, C1: c1, C2: c2, options: { ...options } };
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
    return this.enqueue(task, transfer, signal) as Promise<GwResult>;
  }

  private enqueue(task: GwTask | CallTask, transfer: ArrayBuffer[], signal?: AbortSignal): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      if (this.closed) return reject(new Error('GwPool is closed'));
      if (signal?.aborted) return reject(signal.reason);
      if (!signal) {
        this.queue.push({ task, transfer, resolve, reject });
        this.dispatch();
        return;
      }
      const job: Job = {
        task,
        transfer,
        resolve: (r) => {
          stopWatching();
          resolve(r);
        },
        reject: (e) => {
          stopWatching();
          reject(e);
        },
      };
      const stopWatching = this.aborts.watch(signal, () => this.abort(job, signal.reason));
      this.queue.push(job);
      this.dispatch();
    });
  }

  /** Takes an aborted job out of the queue, or terminates the worker running it. */
  private abort(job: Job, reason: unknown): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      this.roomWaiters.shift()?.();
      job.reject(reason);
      return;
    }
    const slot = this.slots.find((s) => s.job === job);
    if (!slot) return;
    slot.job = undefined;
    this.running--;
    this.slots.splice(this.slots.indexOf(slot), 1);
    // The solve or task cannot be interrupted inside the thread: the thread goes.
    void slot.worker.terminate();
    job.reject(reason);
    this.dispatch();
  }

  private spawn(): Slot {
    const worker = startWorker(WORKER_ENTRY, { workerData: { kernelModule: kernelModule() } });
    const slot: Slot = { worker };
    worker.on('message', (reply: WorkerReply) => {
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
    // In-thread work still queued is refused by its own closure (this.closed).
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
