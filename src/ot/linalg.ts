// Dense linear algebra on row-major Float64Arrays: the few kernels the GW solvers, CKA and the
// experiments need.
//
// The matrix product is the O(n³) step of every GW iteration. Plain JS has no SIMD, so it runs on
// a small WebAssembly kernel using 128-bit f64x2 lanes (assembled below, ~4× the best JS loop on
// this machine) and falls back to a JS 4×4 register-tiled loop where WebAssembly SIMD is missing
// or the product is tiny. Both accumulate Σ_p A_ip B_pj in the same order without fused
// multiply-add, so they give bit-identical results.

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
// WebAssembly SIMD kernel. The module is assembled here from named opcodes (WebAssembly core
// spec 2.0 binary format, SIMD proposal opcodes) rather than shipped as an opaque binary.
//
// export matmul(a, b, c, n4, k, m4): C (n4×m4) = A (n4×k) · Bpacked, all f64, byte offsets into
// the imported memory. B is packed in panels of 4 columns (packed[(panel·k + p)·4 + c]); for each
// 4 rows of A and each panel the kernel keeps the 4×4 block of C in eight f64x2 registers and
// streams p = 0…k−1: two 16-byte loads of B, four scalar loads of A splatted to both lanes.

/** Below this many multiply-adds the copies into WebAssembly memory cost more than they save. */
const SIMD_MIN_WORK = 32 * 32 * 32;
/** Above this many bytes of operands the JS kernel runs instead of growing WebAssembly memory. */
const SIMD_MAX_BYTES = 1 << 30;

function uleb(value: number): number[] {
  const out: number[] = [];
  let v = value >>> 0;
  do {
    let byte = v & 0x7f;
    v >>>= 7;
    if (v !== 0) byte |= 0x80;
    out.push(byte);
  } while (v !== 0);
  return out;
}

function sleb(value: number): number[] {
  const out: number[] = [];
  let v = value | 0;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

const op = {
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  end: [0x0b],
  br: (depth: number) => [0x0c, depth],
  brIf: (depth: number) => [0x0d, depth],
  get: (local: number) => [0x20, ...uleb(local)],
  set: (local: number) => [0x21, ...uleb(local)],
  i32: (value: number) => [0x41, ...sleb(value)],
  i32Add: [0x6a],
  i32Mul: [0x6c],
  i32Shl: [0x74],
  i32ShrU: [0x76],
  i32GeU: [0x4f],
  f64Load: [0x2b, 3, 0], // align 2^3, offset 0
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 3, ...uleb(offset)],
  v128Store: (offset: number) => [0xfd, ...uleb(0x0b), 3, ...uleb(offset)],
  v128Zero: [0xfd, ...uleb(0x0c), ...new Array<number>(16).fill(0)], // v128.const 0
  f64x2Splat: [0xfd, ...uleb(0x14)],
  f64x2Add: [0xfd, ...uleb(0xf0)],
  f64x2Mul: [0xfd, ...uleb(0xf2)],
};

function assembleMatmulModule(): Uint8Array {
  // Parameters 0…5: a, b, c, n4, k, m4. Then i32 locals, then v128 locals.
  const A_PTR = 0;
  const B_PTR = 1;
  const C_PTR = 2;
  const N4 = 3;
  const K = 4;
  const M4 = 5;
  const i = 6;
  const panel = 7;
  const aOffset = 8; // byte offset of column p within a row of A
  const bPtr = 9;
  const cPtr = 10;
  const panels = 11;
  const rowBytes = 12;
  const cRowBytes = 13;
  const aRow = (r: number) => 14 + r;
  const I32_LOCALS = 12;
  const v128 = 6 + I32_LOCALS;
  const acc = (r: number, half: number) => v128 + 2 * r + half; // columns 0–1 / 2–3 of row r
  const b01 = v128 + 8;
  const b23 = v128 + 9;
  const aSplat = v128 + 10;
  const V128_LOCALS = 11;
  const rows = [0, 1, 2, 3];
  const code = [
    ...op.get(M4),
    ...op.i32(2),
    ...op.i32ShrU,
    ...op.set(panels),
    ...op.get(K),
    ...op.i32(3),
    ...op.i32Shl,
    ...op.set(rowBytes),
    ...op.get(M4),
    ...op.i32(3),
    ...op.i32Shl,
    ...op.set(cRowBytes),
    ...op.i32(0),
    ...op.set(i),
    ...op.block,
    ...op.loop, // for i in 0, 4, …, n4 − 4
    ...op.get(i),
    ...op.get(N4),
    ...op.i32GeU,
    ...op.brIf(1),
    ...op.get(A_PTR),
    ...op.get(i),
    ...op.get(rowBytes),
    ...op.i32Mul,
    ...op.i32Add,
    ...op.set(aRow(0)),
    ...[1, 2, 3].flatMap((r) => [
      ...op.get(aRow(r - 1)),
      ...op.get(rowBytes),
      ...op.i32Add,
      ...op.set(aRow(r)),
    ]),
    ...op.i32(0),
    ...op.set(panel),
    ...op.block,
    ...op.loop, // for each panel of 4 columns
    ...op.get(panel),
    ...op.get(panels),
    ...op.i32GeU,
    ...op.brIf(1),
    ...rows.flatMap((r) => [...op.v128Zero, ...op.set(acc(r, 0)), ...op.v128Zero, ...op.set(acc(r, 1))]),
    ...op.get(B_PTR),
    ...op.get(panel),
    ...op.get(K),
    ...op.i32Mul,
    ...op.i32(5),
    ...op.i32Shl,
    ...op.i32Add,
    ...op.set(bPtr),
    ...op.i32(0),
    ...op.set(aOffset),
    ...op.block,
    ...op.loop, // for p in 0…k−1
    ...op.get(aOffset),
    ...op.get(rowBytes),
    ...op.i32GeU,
    ...op.brIf(1),
    ...op.get(bPtr),
    ...op.v128Load(0),
    ...op.set(b01),
    ...op.get(bPtr),
    ...op.v128Load(16),
    ...op.set(b23),
    ...rows.flatMap((r) => [
      ...op.get(aRow(r)),
      ...op.get(aOffset),
      ...op.i32Add,
      ...op.f64Load,
      ...op.f64x2Splat,
      ...op.set(aSplat),
      ...op.get(acc(r, 0)),
      ...op.get(aSplat),
      ...op.get(b01),
      ...op.f64x2Mul,
      ...op.f64x2Add,
      ...op.set(acc(r, 0)),
      ...op.get(acc(r, 1)),
      ...op.get(aSplat),
      ...op.get(b23),
      ...op.f64x2Mul,
      ...op.f64x2Add,
      ...op.set(acc(r, 1)),
    ]),
    ...op.get(bPtr),
    ...op.i32(32),
    ...op.i32Add,
    ...op.set(bPtr),
    ...op.get(aOffset),
    ...op.i32(8),
    ...op.i32Add,
    ...op.set(aOffset),
    ...op.br(0),
    ...op.end,
    ...op.end,
    // cPtr = c + (i·m4 + 4·panel)·8, then one row of the 4×4 block per step.
    ...op.get(C_PTR),
    ...op.get(i),
    ...op.get(cRowBytes),
    ...op.i32Mul,
    ...op.i32Add,
    ...op.get(panel),
    ...op.i32(5),
    ...op.i32Shl,
    ...op.i32Add,
    ...op.set(cPtr),
    ...rows.flatMap((r) => [
      ...op.get(cPtr),
      ...op.get(acc(r, 0)),
      ...op.v128Store(0),
      ...op.get(cPtr),
      ...op.get(acc(r, 1)),
      ...op.v128Store(16),
      ...op.get(cPtr),
      ...op.get(cRowBytes),
      ...op.i32Add,
      ...op.set(cPtr),
    ]),
    ...op.get(panel),
    ...op.i32(1),
    ...op.i32Add,
    ...op.set(panel),
    ...op.br(0),
    ...op.end,
    ...op.end,
    ...op.get(i),
    ...op.i32(4),
    ...op.i32Add,
    ...op.set(i),
    ...op.br(0),
    ...op.end,
    ...op.end,
    ...op.end,
  ];
  const vec = (items: number[][]) => [...uleb(items.length), ...items.flat()];
  const name = (s: string) => [...uleb(s.length), ...Array.from(s, (ch) => ch.charCodeAt(0))];
  const section = (id: number, body: number[]) => [id, ...uleb(body.length), ...body];
  const I32 = 0x7f;
  const V128 = 0x7b;
  const body = [
    ...vec([
      [...uleb(I32_LOCALS), I32],
      [...uleb(V128_LOCALS), V128],
    ]),
    ...code,
  ];
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00, // \0asm, version 1
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32], [I32], [I32], [I32]]), 0x00]])), // type: (i32×6) → ()
    ...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x00, 0x01]])), // import memory, min 1 page
    ...section(3, vec([[0x00]])), // one function of type 0
    ...section(7, vec([[...name('matmul'), 0x00, 0x00]])), // export it
    ...section(10, vec([[...uleb(body.length), ...body]])),
  ]);
}

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

/** The per-thread kernel instance, or null where WebAssembly SIMD is unavailable. */
function kernel(): SimdKernel | null {
  if (simdKernel !== undefined) return simdKernel;
  try {
    const bytes = assembleMatmulModule();
    if (!wasm?.validate(bytes)) {
      simdKernel = null;
      return null;
    }
    const memory = new wasm.Memory({ initial: 1 });
    const instance = new wasm.Instance(new wasm.Module(bytes), { env: { memory } });
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
