// Dense linear algebra on row-major Float64Arrays: the few kernels the GW solvers, CKA and the
// experiments need.
//
// The matrix product is the O(n³) step of every GW iteration. Plain JS has no SIMD, so it runs on
// WebAssembly kernels using 128-bit lanes (kernels/linalg.wat: packed operands, 4 × 4 register
// tiles, on both cores for large products via kernels/team.ts) and falls back to a JS 4×4
// register-tiled loop where WebAssembly SIMD is missing or the product is tiny. Both accumulate
// Σ_p A_ip B_pj in increasing p; the JS kernel and linalg.wat round the product and the sum
// separately and agree bit for bit, while linalg-fma.wat (chosen where relaxed SIMD exists) fuses
// them, which moves results by a few units in the last place (|ΔC_ij| ≤ k·2⁻⁵³·Σ_p |A_ip B_pj|).
// The same file has the float32 Gram kernel behind the pairwise similarity matrix.

import { kernelTeam } from './kernels/team.js';

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

/**
 * The JS kernel (also the fallback): 4×4 register tiles over a column-packed copy of B.
 * @internal exported for its tests and benchmarks
 */
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

// ---------------------------------------------------------------------------------------------
// WebAssembly SIMD kernels (kernels/linalg.wat, compiled by `npm run gen:wasm`) on a shared memory,
// with helper threads for large problems (kernels/team.ts).

export {
  kernelModule,
  kernelThreads,
  setKernelThreads,
  shareKernelModule,
} from './kernels/team.js';

/** Below this many multiply-adds the copies into WebAssembly memory cost more than they save. */
const SIMD_MIN_WORK = 32 * 32 * 32;
/** From this many multiply-adds (≈ 1 ms on one core) a product is split across threads. */
const PARALLEL_MIN_WORK = 160 * 160 * 160;
/** Rows of a register tile of C in linalg.wat (the height of A's packed micro-panels). */
const TILE_ROWS = 4;
// Blocking of the packed products as in Goto & van de Geijn 2008 ("Anatomy of high-performance
// matrix multiplication"), sized for the target machine's 48 KB L1d and 1 MB L2 per core: p in
// slices of GEMM_KC, so that one B micro-panel slice (512 × 32 B = 16 KB) stays in L1 while a
// slab of GEMM_SLAB_TILES row tiles of A (32 × 4 rows × 512 × 8 B = 512 KB for float64) stays in
// L2 and passes it; a block of work is one slab × GEMM_GROUP_PANELS panels of B. Against blocks
// of 4 row tiles over all of p this measured 3–15 % more GFLOP per CPU second (one thread,
// n = 256–2048, float64 and float32).
const GEMM_KC = 512;
const GEMM_SLAB_TILES = 32;
const GEMM_GROUP_PANELS = 16;

/** C = A·B on the SIMD kernel; false when it is unavailable or the operands are too large. */
function simdMatmul(A: Readable, B: Readable, n: number, k: number, m: number, out: Float64Array): boolean {
  return packedMatmul(A, B, n, k, m, out, 'matmul_f64', Float64Array, 4);
}

/**
 * C = A·B in float32 (A n×k, B k×m, row-major) on the WebAssembly SIMD kernel, on several threads
 * when large: for products whose inputs are float32 anyway and whose tolerance allows float32 sums
 * of k products (error ≈ √k·2⁻²⁴ relative, typically). Falls back to the float64 kernels (rounded
 * to float32) where WebAssembly SIMD is unavailable.
 * @internal exported for its tests and benchmarks
 */
export function matmulF32(
  A: Readable,
  B: Readable,
  n: number,
  k: number,
  m: number,
  out: Float32Array = new Float32Array(n * m),
): Float32Array {
  checkSize('matmulF32: A', A, n * k);
  checkSize('matmulF32: B', B, k * m);
  checkSize('matmulF32: out', out, n * m);
  if (n === 0 || m === 0) return out;
  if (k === 0) return out.fill(0);
  if (packedMatmul(A, B, n, k, m, out, 'matmul_f32', Float32Array, 8)) return out;
  out.set(jsMatmul(A, B, n, k, m));
  return out;
}

/**
 * Packs A into micro-panels of TILE_ROWS rows and B into panels of `width` columns (the layout
 * of linalg.wat), runs `op` and copies C out; false when the kernel is unavailable or too small.
 */
function packedMatmul<T extends Float64Array | Float32Array>(
  A: Readable,
  B: Readable,
  n: number,
  k: number,
  m: number,
  out: T,
  op: 'matmul_f64' | 'matmul_f32',
  Heap: { new (buffer: ArrayBuffer, offset: number, length: number): T; BYTES_PER_ELEMENT: number },
  width: number,
): boolean {
  const team = kernelTeam();
  if (!team) return false;
  const size = Heap.BYTES_PER_ELEMENT;
  const rowTiles = Math.ceil(n / TILE_ROWS);
  const panels = Math.ceil(m / width);
  const aLen = rowTiles * k * TILE_ROWS;
  const bLen = panels * k * width;
  const cStride = panels * width;
  const cLen = rowTiles * TILE_ROWS * cStride;
  // f64 operands are packed by loops.wat (a cold process would run the JS packing loops in its
  // interpreter): in place when they already lie in the team's memory (the dense GW solve keeps
  // its matrices there), else after a copy into the scratch space behind C.
  const loops = size === 8 ? team.loops : null;
  const resident = (X: Readable) => X instanceof Float64Array && team.owns(X);
  const stageA = loops && !resident(A) ? n * k : 0;
  const stageB = loops && !resident(B) ? k * m : 0;
  // C goes straight into `out` when that lies in the memory with no padding rows or columns.
  const direct = loops !== null && resident(out) && rowTiles * TILE_ROWS === n && cStride === m;
  const needed = (aLen + bLen + (direct ? 0 : cLen) + stageA + stageB) * size;
  if (needed > team.maxBytes) return false;
  const base = team.scratchBase;
  const heap = new Heap(team.reserve(needed), base, needed / size);
  if (loops) {
    const stagedAt = aLen + bLen + (direct ? 0 : cLen);
    if (stageA) heap.set(A, stagedAt);
    if (stageB) heap.set(B, stagedAt + stageA);
    const aAt = stageA ? base + stagedAt * size : (A as Float64Array).byteOffset;
    const bAt = stageB ? base + (stagedAt + stageA) * size : (B as Float64Array).byteOffset;
    loops.pack_a_f64(aAt, base, n, k);
    loops.pack_b_f64(bAt, base + aLen * size, k, m);
  } else {
    // Rows n… of the packed A and columns m… of the packed B only feed entries of C that are
    // never read back, so the padding is left as whatever the memory holds.
    for (let i = 0; i < n; i++) {
      const at = Math.floor(i / TILE_ROWS) * k * TILE_ROWS + (i % TILE_ROWS);
      const row = i * k;
      for (let p = 0; p < k; p++) heap[at + p * TILE_ROWS] = A[row + p]!;
    }
    for (let p = 0; p < k; p++) {
      const row = p * m;
      for (let j0 = 0, dst = aLen + p * width; j0 < m; j0 += width, dst += k * width) {
        const end = Math.min(width, m - j0);
        for (let c = 0; c < end; c++) heap[dst + c] = B[row + j0 + c]!;
      }
    }
  }
  const cAt = direct ? out.byteOffset : base + (aLen + bLen) * size;
  team.run(
    op,
    [
      base,
      base + aLen * size,
      cAt,
      rowTiles,
      k,
      panels,
      cStride * size,
      GEMM_KC,
      GEMM_SLAB_TILES,
      GEMM_GROUP_PANELS,
    ],
    n * k * m >= PARALLEL_MIN_WORK,
  );
  if (direct) return true;
  const c = new Heap(team.buffer, cAt, rowTiles * TILE_ROWS * cStride);
  if (cStride === m) out.set(c.subarray(0, n * m));
  else for (let i = 0; i < n; i++) out.set(c.subarray(i * cStride, i * cStride + m), i * m);
  return true;
}

/** Bytes of L2 a row slab of the Gram kernel may take (of 1 MB per core on the target machine). */
const GRAM_SLAB_BYTES = 384 << 10;

/**
 * S = clamp(scale · X Xᵀ, −bound, bound) for X (n × d, row-major float32), the whole symmetric
 * n × n matrix written into `out` (row-major), computed in float32 on the WebAssembly SIMD kernel,
 * on several threads when large. Only the upper triangle is computed; the kernel writes each tile
 * and its mirror image (linalg.wat, gram_sym_f32), with the scaling and clamping fused into the
 * same pass. Returns false (having written nothing) when the kernel is unavailable or the n × n
 * result does not fit its memory, so the caller can fall back.
 *
 * Error: each entry is a float32 sum of d products of float32 values, so |Ŝ − S| ≤ scale·γ_d
 * Σ_t |x_it x_jt| with γ_d ≈ d·2⁻²⁴ (Higham 2002, §3.1); random rounding typically gives ≈
 * √d·2⁻²⁴. S[i, j] and S[j, i] are the same float32 value.
 */
export function symmetricGramF32(
  x: Float32Array,
  n: number,
  d: number,
  out: Float32Array,
  scale = 1,
  bound = Number.POSITIVE_INFINITY,
): boolean {
  checkSize('symmetricGramF32: X', x, n * d);
  checkSize('symmetricGramF32: out', out, n * n);
  if (n === 0) return true;
  if (d === 0) {
    out.fill(0);
    return true;
  }
  const team = kernelTeam();
  if (!team) return false;
  const panels = Math.ceil(n / 8);
  const stride = panels * 8;
  const xLen = panels * d * 8;
  // Two f32 constants (scale, bound) first, then the packed X, then S (padded to whole panels).
  const constLen = 4;
  const needed = (constLen + xLen + stride * stride) * 4;
  if (needed > team.maxBytes) return false;
  const base = team.scratchBase;
  const heap = new Float32Array(team.reserve(needed), base, needed / 4);
  heap[0] = scale;
  heap[1] = bound;
  // X in panels of 8 rows: heap[constLen + (j·d + p)·8 + r] = X[8j + r, p]. Rows n… of the last
  // panel only feed entries of the padding, never copied out, so they are left as they are.
  for (let i = 0; i < n; i++) {
    const base = constLen + (i >> 3) * d * 8 + (i & 7);
    const row = i * d;
    for (let p = 0; p < d; p++) heap[base + p * 8] = x[row + p]!;
  }
  // Row tiles per block: an even number (whole panels) whose 4 rows × d slab fits GRAM_SLAB_BYTES.
  const blockTiles = Math.max(2, Math.min(128, Math.floor(GRAM_SLAB_BYTES / (16 * d)) & ~1));
  const sBase = constLen + xLen;
  team.run(
    'gram_sym_f32',
    [base + constLen * 4, base + sBase * 4, panels, d, stride * 4, base, blockTiles],
    n * n * d >= 2 * PARALLEL_MIN_WORK,
    // While the helpers compute, write one value per 4 KB page of `out`: a new array's first-write
    // page faults (≈ 150 ms of one core for n = 10,000) then overlap the kernel, which balances
    // its blocks between the threads, instead of following it in the copy below.
    () => {
      for (let e = 0; e < n * n; e += 1024) out[e] = 0;
    },
  );
  const s = new Float32Array(team.buffer, base + sBase * 4, stride * stride);
  if (stride === n) out.set(s.subarray(0, n * n));
  else for (let i = 0; i < n; i++) out.set(s.subarray(i * stride, i * stride + n), i * n);
  return true;
}
