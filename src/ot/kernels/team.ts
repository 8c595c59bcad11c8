// The WebAssembly kernels of linalg.wat on a shared memory, run by the calling thread and — for
// large problems, from the main thread — by helper worker threads instantiated on the same memory.
//
// A call writes its arguments into a control block at the start of the memory, opens a new
// generation and wakes the helpers (Atomics.notify); every participant calls the same export,
// which claims blocks of work with an atomic counter until none are left. The caller never waits
// for a helper to start: a helper that wakes late finds the generation closed or the counter
// exhausted, so the caller only ever waits for blocks a helper actually claimed. Helpers start
// on the first large call (that call runs in-thread) and never hold the process open.
import { availableParallelism } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { isMainThread, type Worker } from 'node:worker_threads';
import { moduleUrl, startWorker } from '../../shared/runtime.js';
import { LINALG_WASM_BASE64 } from './linalg.wasm.js';
import { LINALG_FMA_WASM_BASE64 } from './linalg-fma.wasm.js';
import { LOOPS_WASM_BASE64 } from './loops.wasm.js';

// The project compiles without lib.dom, where TypeScript declares WebAssembly; these are the
// parts used here.
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

/** Exports of linalg.wat, by the op number written into the control block. */
const OPS = ['matmul_f64', 'matmul_f32', 'gram_sym_f32'] as const;
export type Op = (typeof OPS)[number];
type KernelFn = (...args: number[]) => void;

// Control block (Int32 indices) and where data starts (bytes).
export const GEN = 0;
export const OPEN = 1;
export const ACTIVE = 2;
export const OP = 3;
export const ARGC = 4;
export const ARGS = 5;
const MAX_ARGS = 16;
/** Calls a helper has taken part in (for tests: proof the threaded path ran). */
export const JOINED = 40;
const COUNTER_BYTES = 192;
const DATA_BASE = 256;
const PAGE = 65536;
const MAX_PAGES = 65536;

let compiledModule: object | null | undefined;
let fmaModule = false;

/**
 * True when WebAssembly relaxed SIMD validates. Node 20's V8 (11.3) has it behind a flag, on by
 * default from V8 11.4 (Node 22); V8 reads wasm feature flags when it validates a module, so
 * turning the flag on before the first compilation takes effect for this and later modules.
 */
function relaxedSimd(bytes: Uint8Array): boolean {
  if (wasmApi!.validate(bytes)) return true;
  try {
    setFlagsFromString('--experimental-wasm-relaxed-simd');
  } catch {
    return false;
  }
  return wasmApi!.validate(bytes);
}

/**
 * The compiled kernel module, once per process: linalg-fma.wat where relaxed SIMD is available
 * (fused multiply-add in every kernel), else linalg.wat; null where WebAssembly SIMD or
 * threads are missing.
 */
export function kernelModule(): object | null {
  if (compiledModule !== undefined) return compiledModule;
  compiledModule = null;
  if (!wasmApi) return null;
  for (const base64 of [LINALG_FMA_WASM_BASE64, LINALG_WASM_BASE64]) {
    try {
      const bytes = Buffer.from(base64, 'base64');
      const valid = base64 === LINALG_FMA_WASM_BASE64 ? relaxedSimd(bytes) : wasmApi.validate(bytes);
      if (!valid) continue;
      compiledModule = new wasmApi.Module(bytes);
      fmaModule = base64 === LINALG_FMA_WASM_BASE64;
      return compiledModule;
    } catch {
      compiledModule = null;
    }
  }
  return compiledModule;
}

/**
 * Which kernel module this process runs: 'fma' (linalg-fma.wat), 'simd' (linalg.wat) or 'none'.
 * @internal exported for the kernel benchmark, which reports it
 */
export function kernelVariant(): 'fma' | 'simd' | 'none' {
  const module = kernelModule();
  return module === null ? 'none' : fmaModule ? 'fma' : 'simd';
}

/** The exports of loops.wat (pointers are byte offsets into the team's memory). */
export interface Loops {
  check_space(c: number, n: number, out: number): void;
  row_products(c: number, w: number, n: number, cw: number): number;
  paired_row_products(
    c1: number,
    c2: number,
    w: number,
    n: number,
    c1w: number,
    c2w: number,
    out: number,
  ): void;
  scale_columns(src: number, w: number, dst: number, n: number, k: number): void;
  outer(u: number, v: number, out: number, n: number, m: number): void;
  blend(g: number, gc: number, count: number, a: number, b: number): void;
  add_to(dst: number, src: number, count: number): void;
  scale(x: number, count: number, s: number): void;
  sparse_self_product(
    c1: number,
    c2: number,
    rows: number,
    cols: number,
    values: number,
    count: number,
    n: number,
    m: number,
  ): number;
  sparse_rows(
    c2: number,
    rows: number,
    cols: number,
    values: number,
    count: number,
    m: number,
    w: number,
    distinct: number,
  ): number;
  gather_columns(c: number, n: number, distinct: number, k: number, out: number): void;
  pack_a_f64(src: number, dst: number, n: number, k: number): void;
  pack_b_f64(src: number, dst: number, k: number, m: number): void;
}

let loopsModule: object | null | undefined;

/** loops.wat compiled once per process, or null where it does not validate. */
function compiledLoops(): object | null {
  if (loopsModule !== undefined) return loopsModule;
  loopsModule = null;
  try {
    const bytes = Buffer.from(LOOPS_WASM_BASE64, 'base64');
    if (wasmApi?.validate(bytes)) loopsModule = new wasmApi.Module(bytes);
  } catch {
    loopsModule = null;
  }
  return loopsModule;
}

/** Makes this thread use a module compiled elsewhere (by the thread that started it). */
export function shareKernelModule(module: object | null | undefined, fma = false): void {
  if (module && compiledModule === undefined) {
    compiledModule = module;
    fmaModule = fma;
  }
}

/** Instantiates the kernels on `memory`: the export for each op number. */
export function instantiate(module: object, memory: WasmMemory): KernelFn[] {
  const instance = new wasmApi!.Instance(module, { env: { memory } });
  return OPS.map((name) => instance.exports[name] as KernelFn);
}

let threadLimit = isMainThread ? Math.min(4, availableParallelism()) : 1;

/**
 * Threads a large kernel call may use, the caller included (default: the available cores, up to
 * 4, on the main thread; 1 in worker threads, which are already one of several). Set 1 where the
 * caller runs other CPU-bound threads itself.
 */
export function setKernelThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1)
    throw new Error(`kernel threads must be ≥ 1, got ${threads}`);
  threadLimit = threads;
}

export function kernelThreads(): number {
  return threadLimit;
}

const HELPER_ENTRY = moduleUrl('./helper.js', import.meta.url);

/** Bytes the arrays allocated with allocate() may take, leaving the rest for the products' scratch. */
const ARENA_BYTES = 1 << 30;

export class KernelTeam {
  readonly memory: WasmMemory;
  private readonly fns: KernelFn[];
  private readonly helpers: Worker[] = [];
  private generation = 0;
  /**
   * The memory holds, after the control block, arrays allocated with allocate() (a stack, freed
   * with release()), then from `top` the scratch space of one kernel call at a time.
   */
  private top = DATA_BASE;
  /** Memory above this has never been written (it is still zero as WebAssembly allocated it). */
  private written = DATA_BASE;
  /** Every buffer object the memory has handed out (a new one after each grow), for owns(). */
  private readonly buffers = new WeakSet<ArrayBuffer>();
  private loopFns: Loops | null | undefined;

  constructor(private readonly module: object) {
    this.memory = new wasmApi!.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    this.fns = instantiate(module, this.memory);
  }

  /** The memory's current buffer (views on older ones stay valid: shared memory never detaches). */
  get buffer(): ArrayBuffer {
    const buffer = this.memory.buffer;
    this.buffers.add(buffer);
    return buffer;
  }

  /** Where a kernel call's scratch space starts (bytes; 16-aligned). */
  get scratchBase(): number {
    return this.top;
  }

  /** Largest scratch size (bytes from scratchBase) the memory can hold. */
  get maxBytes(): number {
    return MAX_PAGES * PAGE - PAGE - this.top;
  }

  /** Grows the memory so `bytes` of scratch fit from scratchBase; returns its (new) buffer. */
  reserve(bytes: number): ArrayBuffer {
    const needed = this.top + bytes;
    if (needed > this.written) this.written = needed;
    const have = this.memory.buffer.byteLength;
    if (have < needed) this.memory.grow(Math.ceil((needed - have) / PAGE));
    return this.buffer;
  }

  /**
   * A zeroed array of `length` f64 in this memory, kept until release() of an earlier mark(), or
   * null when the arrays already take ARENA_BYTES: kernels then read it where it lies, with no
   * copy in or out. Views stay valid as the memory grows.
   */
  allocate(length: number): Float64Array | null {
    const bytes = Math.ceil((length * 8) / 16) * 16;
    if (this.top + bytes > ARENA_BYTES) return null;
    const at = this.top;
    const dirty = this.written;
    this.top += bytes;
    this.reserve(0);
    const view = new Float64Array(this.buffer, at, length);
    // Memory freed by release() or used as scratch holds what was there; fresh memory is zero
    // (and filling it would only take its page faults early).
    if (at < dirty) view.fill(0, 0, Math.min(length, Math.ceil((dirty - at) / 8)));
    return view;
  }

  /** The allocation state, for release(). */
  mark(): number {
    return this.top;
  }

  /** Frees every array allocated since `mark` (their views must no longer be used). */
  release(mark: number): void {
    if (mark < DATA_BASE || mark > this.top) throw new Error('KernelTeam.release: not a mark of this team');
    this.top = mark;
  }

  /** True when `view` lies in this memory (then its byteOffset is its address for the kernels). */
  owns(view: ArrayBufferView): boolean {
    return this.buffers.has(view.buffer as ArrayBuffer);
  }

  /** The loops of loops.wat on this memory, or null where they do not compile. */
  get loops(): Loops | null {
    if (this.loopFns !== undefined) return this.loopFns;
    const module = compiledLoops();
    this.loopFns = module
      ? (new wasmApi!.Instance(module, { env: { memory: this.memory } }).exports as unknown as Loops)
      : null;
    return this.loopFns;
  }

  /** Helper threads started so far. */
  get helperCount(): number {
    return this.helpers.length;
  }

  /** Calls that a helper thread has taken part in so far. */
  get helperJoins(): number {
    return Atomics.load(new Int32Array(this.buffer, 0, DATA_BASE / 4), JOINED);
  }

  /**
   * Runs `op(...args, counter)` to completion; with `parallel`, helper threads (started now if
   * there are none yet) take part. `meanwhile` runs in this thread after the helpers have been
   * woken and before this thread joins the call: work that overlaps the helpers' (it must not
   * touch the memory the call writes, nor start another call).
   */
  run(op: Op, args: number[], parallel: boolean, meanwhile?: () => void): void {
    const code = OPS.indexOf(op);
    const fn = this.fns[code]!;
    const all = [...args, COUNTER_BYTES];
    const ctrl = new Int32Array(this.buffer, 0, DATA_BASE / 4);
    ctrl[COUNTER_BYTES / 4] = 0;
    if (!parallel || threadLimit < 2) {
      meanwhile?.();
      fn(...all);
      return;
    }
    if (this.helpers.length < threadLimit - 1) this.startHelpers();
    if (all.length > MAX_ARGS) throw new Error(`${op}: too many arguments`);
    ctrl[OP] = code;
    ctrl[ARGC] = all.length;
    for (let i = 0; i < all.length; i++) ctrl[ARGS + i] = all[i]!;
    this.generation = (this.generation % 0x7ffffffe) + 1;
    Atomics.store(ctrl, OPEN, this.generation);
    Atomics.store(ctrl, GEN, this.generation);
    Atomics.notify(ctrl, GEN);
    try {
      meanwhile?.();
      fn(...all);
    } finally {
      Atomics.store(ctrl, OPEN, 0);
      // Helpers that joined finish the blocks they claimed; the results are read after this.
      for (;;) {
        const active = Atomics.load(ctrl, ACTIVE);
        if (active === 0) break;
        Atomics.wait(ctrl, ACTIVE, active);
      }
    }
  }

  private startHelpers(): void {
    while (this.helpers.length < threadLimit - 1) {
      // A helper never prints. Default stdio would pipe its output into this thread's
      // process.stdout and stderr, creating them now (1.5–3 ms of this thread when stdout is a
      // pipe) in the middle of the first large product.
      const worker = startWorker(HELPER_ENTRY, {
        workerData: { module: this.module, memory: this.memory },
        stdout: true,
        stderr: true,
      });
      worker.unref();
      const drop = () => {
        const i = this.helpers.indexOf(worker);
        if (i >= 0) this.helpers.splice(i, 1);
      };
      worker.on('error', drop);
      worker.on('exit', drop);
      this.helpers.push(worker);
    }
  }

  /** Stops the helper threads (the next large call starts new ones). */
  async stopHelpers(): Promise<void> {
    const helpers = this.helpers.splice(0);
    await Promise.all(helpers.map((w) => w.terminate()));
  }
}

let team: KernelTeam | null | undefined;

/** This thread's kernel team, or null where WebAssembly SIMD or shared memory is unavailable. */
export function kernelTeam(): KernelTeam | null {
  if (team !== undefined) return team;
  try {
    const module = kernelModule();
    team = module ? new KernelTeam(module) : null;
  } catch {
    team = null;
  }
  return team;
}
