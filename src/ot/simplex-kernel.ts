// The network simplex's pivot loop (block-search pricing, the cycle, the tree update) and its cost
// shift on the WebAssembly kernel of kernels/simplex.wat, with every array of the simplex in that
// instance's memory, so the rest of it (JS: initial bases, potentials, reading the plan) works on
// views of them.
// Compiled WebAssembly runs at full speed from its first call, where a cold process would spend
// its first solves in the JS interpreter; the scan is also SIMD. Null where WebAssembly SIMD is
// missing or the arrays do not fit in a 32-bit memory: the simplex then uses its JS loops.
import { SIMPLEX_WASM_BASE64 } from './kernels/simplex.wasm.js';

// The project compiles without lib.dom, where TypeScript declares WebAssembly; these are the
// parts used here.
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Memory: new (descriptor: { initial: number; maximum?: number }) => { readonly buffer: ArrayBuffer };
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export interface SimplexKernel {
  /** cost[e] of the current solve (arcs n·m). */
  cost: Float64Array;
  /** Node potentials (n + m + 1). */
  pi: Float64Array;
  /** Arc states (n·m real arcs, then n + m artificial ones). */
  state: Int8Array;
  /** Flow on each node's predecessor arc (n + m + 1). */
  flow: Float64Array;
  /** The spanning tree, per node (n + m + 1): see NetworkSimplex. */
  parent: Int32Array;
  pred: Int32Array;
  predDir: Int32Array;
  thread: Int32Array;
  revThread: Int32Array;
  succNum: Int32Array;
  lastSucc: Int32Array;
  dirtyRevs: Int32Array;
  /** Potentials from the tree (computePotentials in emd.ts). */
  potentials(artificialCost: number): void;
  /** Pivots until optimal; returns their number (the next scan's start in nextArc()). */
  run(start: number, block: number, tolerance: number, artificialCost: number): number;
  nextArc(): number;
  /** sign·cost − min in place; [min, max] of sign·cost, or the index of a non-finite cost. */
  shiftCosts(sign: number): { lo: number; hi: number } | { nonFinite: number };
  /**
   * For a permutation σ of the rows' columns (n = m), the pair each pair t hangs below in
   * NetworkSimplex's re-hung permutation basis (−1 for pair 0): a view valid until the next call.
   */
  hang(sigma: Int32Array): Int32Array;
}

const PAGE = 65536;
const MAX_BYTES = 4 * 1024 * 1024 * 1024 - PAGE;
/** Arc indices times 8 must stay below 2³² in the kernel's 32-bit address arithmetic. */
const MAX_ARCS = 2 ** 28;

let compiled: object | null | undefined;

/** The compiled simplex.wat, once per process; null where WebAssembly SIMD is missing. */
export function simplexModule(): object | null {
  if (compiled !== undefined) return compiled;
  compiled = null;
  if (!wasmApi) return null;
  try {
    const bytes = Buffer.from(SIMPLEX_WASM_BASE64, 'base64');
    if (wasmApi.validate(bytes)) compiled = new wasmApi.Module(bytes);
  } catch {
    compiled = null;
  }
  return compiled;
}

/**
 * A kernel handed back by a finished simplex (releaseSimplexKernel), held weakly: a WeakRef's
 * target stays alive to the end of the current job, so the product run of a GW solve gets the
 * identity run's memory, while between jobs the collector may take it (a large problem's arrays
 * are not kept for the process's lifetime).
 */
let spare: { n: number; m: number; kernel: WeakRef<SimplexKernel> } | undefined;

/**
 * Gives a kernel whose state array is all zero again (every arc LOWER) to the
 * next simplexKernel(n, m) call in this job. Its pages are then already mapped, so that simplex
 * skips the first-touch page faults of n·m fresh costs and states.
 */
export function releaseSimplexKernel(kernel: SimplexKernel, n: number, m: number): void {
  spare = { n, m, kernel: new WeakRef(kernel) };
}

/** A kernel instance with room for an n × m problem, or null (use the JS loops). */
export function simplexKernel(n: number, m: number): SimplexKernel | null {
  const reused = spare && spare.n === n && spare.m === m ? spare.kernel.deref() : undefined;
  spare = undefined;
  if (reused) return reused;
  const arcs = n * m;
  const nodes = n + m + 1;
  if (arcs > MAX_ARCS) return null;
  const module = simplexModule();
  if (!module) return null;
  const allArcs = arcs + nodes - 1;
  // Layout: the f64 arrays (8-byte aligned), the i32 ones, then state; 64 spare bytes at each end
  // for the SIMD reads.
  const costAt = 64;
  const piAt = costAt + 8 * arcs;
  const flowAt = piAt + 8 * nodes;
  const treeAt = flowAt + 8 * nodes;
  const tree = (k: number) => treeAt + 4 * nodes * k;
  const stateAt = tree(8);
  // Scratch of hang(): diag, dist (f64[n]), then sigma, via, open (i32[n]).
  const hangAt = Math.ceil((stateAt + allArcs) / 8) * 8;
  const hangF64 = (k: number) => hangAt + 8 * n * k;
  const hangI32 = (k: number) => hangF64(2) + 4 * n * k;
  const bytes = hangI32(3) + 64;
  if (bytes > MAX_BYTES) return null;
  let memory: { readonly buffer: ArrayBuffer };
  let exports: Record<string, unknown>;
  try {
    memory = new wasmApi!.Memory({ initial: Math.ceil(bytes / PAGE) });
    exports = new wasmApi!.Instance(module, { env: { memory } }).exports;
  } catch {
    // Too large for this process's address space: the JS loops need no contiguous block.
    return null;
  }
  const nextArc = exports.next_arc as () => number;
  const shift = exports.shift_costs as (cost: number, count: number, sign: number) => number;
  const costLow = exports.cost_low as () => number;
  const costHigh = exports.cost_high as () => number;
  const run = exports.run as (...args: number[]) => number;
  const hang = exports.hang as (...args: number[]) => void;
  (exports.init as (...args: number[]) => void)(
    n,
    m,
    costAt,
    piAt,
    stateAt,
    flowAt,
    ...Array.from({ length: 8 }, (_, k) => tree(k)),
  );
  const treeArray = (k: number) => new Int32Array(memory.buffer, tree(k), nodes);
  return {
    cost: new Float64Array(memory.buffer, costAt, arcs),
    pi: new Float64Array(memory.buffer, piAt, nodes),
    state: new Int8Array(memory.buffer, stateAt, allArcs),
    flow: new Float64Array(memory.buffer, flowAt, nodes),
    parent: treeArray(0),
    pred: treeArray(1),
    predDir: treeArray(2),
    thread: treeArray(3),
    revThread: treeArray(4),
    succNum: treeArray(5),
    lastSucc: treeArray(6),
    dirtyRevs: treeArray(7),
    potentials: exports.potentials as (artificialCost: number) => void,
    run: (start, block, tolerance, artificialCost) =>
      run(start, block, tolerance, artificialCost, 0x7fffffff),
    nextArc,
    shiftCosts: (sign) => {
      const bad = shift(costAt, arcs, sign);
      return bad >= 0 ? { nonFinite: bad } : { lo: costLow(), hi: costHigh() };
    },
    hang: (sigma) => {
      new Int32Array(memory.buffer, hangI32(0), n).set(sigma);
      hang(costAt, n, m, hangI32(0), hangF64(0), hangF64(1), hangI32(1), hangI32(2));
      return new Int32Array(memory.buffer, hangI32(1), n);
    },
  };
}
