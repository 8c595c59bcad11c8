// Dense linear algebra on row-major Float64Arrays: the few kernels the GW solvers, CKA and the
// experiments need.
//
// The matrix product is the O(n³) step of every GW iteration. Plain JS has no SIMD, so it runs on
// a small WebAssembly kernel using 128-bit f64x2 lanes (kernels/linalg.wat, ~4× the best JS loop
// on this machine) and falls back to a JS 4×4 register-tiled loop where WebAssembly SIMD is missing
// or the product is tiny. Both accumulate Σ_p A_ip B_pj in the same order without fused
// multiply-add, so they give bit-identical results.

import { LINALG_WASM_BASE64 } from './kernels/linalg.wasm.js';

export type Matrix = Float64Array;
type Readable = ArrayLike<number>;

function checkSize(name: string, a: Readable, expected: number): void {
  if (a.length !== expected) {
    throw new Error(`${name} has ${a.length} values, expected ${expected}`);
  }
}

/**
 * C = A·B with A n×k and B k×m (row-major). Writes into `out` (n×m) when given, which must not
 * alias A or B. O(n·k·m).
 */
export function matmul(
  A: Readable,
  B: Readable,
  n: number,
  k: number,
  m: number,
  out: Float64Array = new Float64Array(n * m),
): Float64Array {
  checkSize('matmul: A', A, n * k);
  checkSize('matmul: B', B, k * m);
  checkSize('matmul: out', out, n * m);
  if (n === 0 || m === 0) return out;
  if (k === 0) return out.fill(0);
  if (n * k * m >= SIMD_MIN_WORK && simdMatmul(A, B, n, k, m, out)) return out;
  return jsMatmul(A, B, n, k, m, out);
}

/** The JS kernel (also the fallback): 4×4 register tiles over a column-packed copy of B. */
export function jsMatmul(
  A: Readable,
  B: Readable,
  n: number,
  k: number,
  m: number,
  out: Float64Array = new Float64Array(n * m),
): Float64Array {
  // Pack B into panels of 4 columns: packed[(panel·k + p)·4 + c] = B[p, 4·panel + c] (zero-padded).
  const panels = Math.ceil(m / 4);
  const packed = new Float64Array(panels * k * 4);
  for (let p = 0; p < k; p++) {
    const row = p * m;
    for (let j = 0; j < m; j++) packed[((j >> 2) * k + p) * 4 + (j & 3)] = B[row + j]!;
  }
  const a = A instanceof Float64Array ? A : Float64Array.from(A);
  for (let i = 0; i < n; i += 4) {
    const rows = Math.min(4, n - i);
    // Rows past the end reuse row i so the kernel stays branch-free; their results are dropped.
    const a0 = i * k;
    const a1 = rows > 1 ? a0 + k : a0;
    const a2 = rows > 2 ? a0 + 2 * k : a0;
    const a3 = rows > 3 ? a0 + 3 * k : a0;
    for (let panel = 0; panel < panels; panel++) {
      let c00 = 0,
        c01 = 0,
        c02 = 0,
        c03 = 0;
      let c10 = 0,
        c11 = 0,
        c12 = 0,
        c13 = 0;
      let c20 = 0,
        c21 = 0,
        c22 = 0,
        c23 = 0;
      let c30 = 0,
        c31 = 0,
        c32 = 0,
        c33 = 0;
      let bo = panel * k * 4;
      for (let p = 0; p < k; p++, bo += 4) {
        const b0 = packed[bo]!,
          b1 = packed[bo + 1]!,
          b2 = packed[bo + 2]!,
          b3 = packed[bo + 3]!;
        const x0 = a[a0 + p]!,
          x1 = a[a1 + p]!,
          x2 = a[a2 + p]!,
          x3 = a[a3 + p]!;
        c00 += x0 * b0;
        c01 += x0 * b1;
        c02 += x0 * b2;
        c03 += x0 * b3;
        c10 += x1 * b0;
        c11 += x1 * b1;
        c12 += x1 * b2;
        c13 += x1 * b3;
        c20 += x2 * b0;
        c21 += x2 * b1;
        c22 += x2 * b2;
        c23 += x2 * b3;
        c30 += x3 * b0;
        c31 += x3 * b1;
        c32 += x3 * b2;
        c33 += x3 * b3;
      }
      const j = panel * 4;
      const cols = Math.min(4, m - j);
      if (rows === 4 && cols === 4) {
        let o = i * m + j;
        out[o] = c00;
        out[o + 1] = c01;
        out[o + 2] = c02;
        out[o + 3] = c03;
        o += m;
        out[o] = c10;
        out[o + 1] = c11;
        out[o + 2] = c12;
        out[o + 3] = c13;
        o += m;
        out[o] = c20;
        out[o + 1] = c21;
        out[o + 2] = c22;
        out[o + 3] = c23;
        o += m;
        out[o] = c30;
        out[o + 1] = c31;
        out[o + 2] = c32;
        out[o + 3] = c33;
      } else {
        const tile = [c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33];
        for (let r = 0; r < rows; r++) {
          const o = (i + r) * m + j;
          for (let c = 0; c < cols; c++) out[o + c] = tile[r * 4 + c]!;
        }
      }
    }
  }
  return out;
}

/** Aᵀ of an n×m matrix (a new m×n array). */
export function transpose(A: Readable, n: number, m: number): Float64Array {
  checkSize('transpose: A', A, n * m);
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[j * n + i] = A[i * m + j]!;
  return out;
}

/** Frobenius inner product <A, B> = Σ A_ij B_ij. */
export function frobeniusDot(A: Readable, B: Readable): number {
  if (A.length !== B.length) throw new Error(`frobeniusDot: sizes differ (${A.length} vs ${B.length})`);
  let s = 0;
  for (let i = 0; i < A.length; i++) s += A[i]! * B[i]!;
  return s;
}

/** A·x for an n×m matrix A. */
export function matvec(A: Readable, x: Readable, n: number, m: number): Float64Array {
  checkSize('matvec: A', A, n * m);
  checkSize('matvec: x', x, m);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * m;
    for (let j = 0; j < m; j++) s += A[o + j]! * x[j]!;
    out[i] = s;
  }
  return out;
}

/** Row sums of an n×m matrix. */
export function rowSums(A: Readable, n: number, m: number): Float64Array {
  checkSize('rowSums: A', A, n * m);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let j = 0; j < m; j++) s += A[i * m + j]!;
    out[i] = s;
  }
  return out;
}

/** Column sums of an n×m matrix. */
export function colSums(A: Readable, n: number, m: number): Float64Array {
  checkSize('colSums: A', A, n * m);
  const out = new Float64Array(m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[j]! += A[i * m + j]!;
  return out;
}

/** Largest |A_ij − A_ji| of an n×n matrix (0 for a symmetric one). */
export function maxAsymmetry(A: Readable, n: number): number {
  checkSize('maxAsymmetry: A', A, n * n);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const d = Math.abs(A[i * n + j]! - A[j * n + i]!);
      if (d > worst || Number.isNaN(d)) worst = d;
    }
  }
  return worst;
}

/** Largest |A_ij|. */
export function maxAbs(A: Readable): number {
  let worst = 0;
  for (let i = 0; i < A.length; i++) {
    const v = Math.abs(A[i]!);
    if (v > worst) worst = v;
  }
  return worst;
}

// ---------------------------------------------------------------------------------------------
// WebAssembly SIMD kernel: `matmul` in kernels/linalg.wat (C = A·B with B packed in panels of 4
// columns, a 4×4 block of C in f64x2 registers), compiled by `npm run gen:wasm`.

/** Below this many multiply-adds the copies into WebAssembly memory cost more than they save. */
const SIMD_MIN_WORK = 32 * 32 * 32;
/** Above this many bytes of operands the JS kernel runs instead of growing WebAssembly memory. */
const SIMD_MAX_BYTES = 1 << 30;

// The project compiles without lib.dom, where TypeScript declares WebAssembly; these are the
// parts used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Memory: new (descriptor: { initial: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

interface SimdKernel {
  memory: WasmMemory;
  run: (a: number, b: number, c: number, n4: number, k: number, m4: number) => void;
}

let simdKernel: SimdKernel | null | undefined;
let compiledModule: object | null | undefined;

/**
 * The compiled kernel module, compiled once per process (null where WebAssembly SIMD is
 * unavailable). Worker threads receive it (a compiled module is structured-cloneable) instead of
 * compiling their own; see shareKernelModule.
 */
export function kernelModule(): object | null {
  if (compiledModule !== undefined) return compiledModule;
  try {
    const bytes = Buffer.from(LINALG_WASM_BASE64, 'base64');
    compiledModule = wasm?.validate(bytes) ? new wasm.Module(bytes) : null;
  } catch {
    compiledModule = null;
  }
  return compiledModule;
}

/** Makes this thread use a module compiled elsewhere (by the thread that started it). */
export function shareKernelModule(module: object | null | undefined): void {
  if (module && compiledModule === undefined) compiledModule = module;
}

/** The per-thread kernel instance, or null where WebAssembly SIMD is unavailable. */
function kernel(): SimdKernel | null {
  if (simdKernel !== undefined) return simdKernel;
  try {
    const module = kernelModule();
    if (!wasm || !module) {
      simdKernel = null;
      return null;
    }
    const memory = new wasm.Memory({ initial: 1 });
    const instance = new wasm.Instance(module, { env: { memory } });
    simdKernel = { memory, run: instance.exports.matmul as SimdKernel['run'] };
  } catch {
    simdKernel = null;
  }
  return simdKernel;
}

/** C = A·B on the SIMD kernel; false when it is unavailable or the operands are too large. */
function simdMatmul(A: Readable, B: Readable, n: number, k: number, m: number, out: Float64Array): boolean {
  const kern = kernel();
  if (!kern) return false;
  const n4 = Math.ceil(n / 4) * 4;
  const m4 = Math.ceil(m / 4) * 4;
  const aBytes = n4 * k * 8;
  const bBytes = m4 * k * 8;
  const cBytes = n4 * m4 * 8;
  const needed = aBytes + bBytes + cBytes;
  if (needed > SIMD_MAX_BYTES) return false;
  const have = kern.memory.buffer.byteLength;
  if (have < needed) kern.memory.grow(Math.ceil((needed - have) / 65536));
  const heap = new Float64Array(kern.memory.buffer);
  // Rows n…n4−1 of A and columns m…m4−1 of B only feed rows/columns of C that are never read
  // back, so the padding is left as whatever the memory holds.
  heap.set(A, 0);
  const bBase = aBytes / 8;
  for (let p = 0; p < k; p++) {
    const row = p * m;
    for (let j = 0; j < m; j++) heap[bBase + ((j >> 2) * k + p) * 4 + (j & 3)] = B[row + j]!;
  }
  const cBase = (aBytes + bBytes) / 8;
  kern.run(0, aBytes, aBytes + bBytes, n4, k, m4);
  if (m4 === m) out.set(heap.subarray(cBase, cBase + n * m));
  else for (let i = 0; i < n; i++) out.set(heap.subarray(cBase + i * m4, cBase + i * m4 + m), i * m);
  return true;
}
