// Gradient kernels for the TensorFlow.js WASM backend.
//
// tfjs-backend-wasm 4.22 has no Conv2DBackpropFilter at all, and its Conv2DBackpropInput is a
// naive loop roughly 8× slower than its XNNPACK forward convolution. Both are expressed here
// through the backend's own fast kernels:
//
//   * filter gradient  dW[i,j,c,o] = Σ_{b,y,x} xpad[b, y·s+i, x·s+j, c] · dy[b,y,x,o], two ways:
//     - im2col (Chellapilla et al. 2006): the transposed patch matrix Pᵀ (k_h·k_w·c_in × N,
//       N = batch·out_h·out_w) is written by a JS loop straight into the WASM heap, then
//       dW = Pᵀ · dy is one XNNPACK matrix product (the backend's BatchMatMul without transposes;
//       its transposed variants take a slow path);
//     - as a convolution: with the batch as channels, x' = x as [c_in, h, w, batch] and the
//       "filter" dy' = dy as [out_h, out_w, batch, c_out], conv(x', dy') over the padded input
//       is dW as [c_in, k_h, k_w, c_out] — XNNPACK's indirect convolution, no patch copy.
//     Measured per layer of the demo CNN (batch 64): the convolution wins from c_in ≥ 8 (e.g.
//     1.5 vs 2.3 ms at 7×7×24→24), im2col for c_in = 1 (1.1 vs 3.4 ms: packing dy' dominates).
//   * input gradient (stride 1)  dx = conv2d(dy, W̃) with W̃[i,j,o,c] = W[k_h−1−i, k_w−1−j, c, o]
//     (the 180°-rotated, in/out-swapped filter) and padding (k−1−p) on each side — the
//     convolution-transpose identity (Dumoulin & Visin 2016, §4), run on XNNPACK's Conv2D.
//     Strided cases keep the backend's original kernel.
//   * max-pool gradient: the backend's MaxPoolGrad is a naive loop (~25 ns per input); here each
//     window's first maximum (the convention of tfjs's CPU backend) receives dy, in one JS pass
//     over the WASM heap.
//   * Tile: the backend's kernel computes every output element's source index (~200 ns per
//     element measured), and batch norm's gradient tiles a per-channel vector to the activation's
//     full shape; here the innermost run is copied once and every dimension's repetitions are
//     block copies (copyWithin, doubling), at memory speed.
//
// Kernels work on TensorInfo objects through the backend (as tfjs's own kernels do), never
// through tf.* ops, so they add nothing to the gradient tape.
import {
  backend_util,
  type DataType,
  getKernel,
  type KernelConfig,
  type KernelFunc,
  type NamedAttrMap,
  registerKernel,
  type TensorInfo,
  unregisterKernel,
} from '@tensorflow/tfjs';

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
interface WasmBackendLike {
  makeOutput(shape: number[], dtype: DataType): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
  disposeData(dataId: object): boolean;
}

const BACKEND = 'wasm';
let registered = false;
let originalBackpropInput: KernelFunc | undefined;
let originalTile: KernelFunc | undefined;

function runKernel(
  name: string,
  backend: WasmBackendLike,
  inputs: Record<string, TensorInfo>,
  attrs: NamedAttrMap,
): TensorInfo {
  const kernel = getKernel(name, BACKEND);
  if (!kernel) throw new Error(`WASM kernel ${name} is missing; tfjs-backend-wasm must be loaded first`);
  return kernel.kernelFunc({ inputs, backend: backend as never, attrs }) as TensorInfo;
}

function reshape(backend: WasmBackendLike, x: TensorInfo, shape: number[]): TensorInfo {
  return runKernel('Reshape', backend, { x }, { shape });
}

/** The forward Conv2D kernel, NHWC, stride 1, no dilation, explicit padding of height and width. */
function conv2DStride1(
  backend: WasmBackendLike,
  x: TensorInfo,
  filter: TensorInfo,
  [top, bottom]: [number, number],
  [left, right]: [number, number],
): TensorInfo {
  return runKernel(
    'Conv2D',
    backend,
    { x, filter },
    {
      strides: [1, 1],
      pad: [
        [0, 0],
        [top, bottom],
        [left, right],
        [0, 0],
      ],
      dataFormat: 'NHWC',
      dilations: [1, 1],
    },
  );
}

/**
 * Writes Pᵀ for a channels-last input: row (i·kW + j)·cIn + c, column (b·outH + y)·outW + x holds
 * xpad[b, y·sH + i, x·sW + j, c] (zero where the window hangs over the padding).
 * @internal exported for its tests
 */
export function writeTransposedPatches(
  x: Float32Array,
  out: Float32Array,
  info: backend_util.Conv2DInfo,
): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth, filterHeight, filterWidth } = info;
  const { strideHeight, strideWidth, dilationHeight, dilationWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  const n = batchSize * outHeight * outWidth;
  for (let i = 0; i < filterHeight; i++) {
    for (let j = 0; j < filterWidth; j++) {
      for (let c = 0; c < inChannels; c++) {
        const row = ((i * filterWidth + j) * inChannels + c) * n;
        let col = row;
        for (let b = 0; b < batchSize; b++) {
          const xBatch = b * inHeight;
          for (let y = 0; y < outHeight; y++) {
            const iy = y * strideHeight + i * dilationHeight - padTop;
            if (iy < 0 || iy >= inHeight) {
              out.fill(0, col, col + outWidth);
              col += outWidth;
              continue;
            }
            const xRow = (xBatch + iy) * inWidth;
            let ix = j * dilationWidth - padLeft;
            for (let xo = 0; xo < outWidth; xo++, ix += strideWidth) {
              out[col++] = ix >= 0 && ix < inWidth ? x[(xRow + ix) * inChannels + c]! : 0;
            }
          }
        }
      }
    }
  }
}

/** Smallest input depth for which the convolution form of the filter gradient is used. */
const FILTER_GRAD_CONV_MIN_CHANNELS = 8;

/**
 * The filter gradient as one XNNPACK convolution (see the header), or undefined when the case
 * does not fit it (few input channels, strides, or a window that ends before the padding).
 */
function filterGradViaConvolution(
  backend: WasmBackendLike,
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
): TensorInfo | undefined {
  const { inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, outChannels: o } = info;
  if (c < FILTER_GRAD_CONV_MIN_CHANNELS || info.strideHeight !== 1 || info.strideWidth !== 1)
    return undefined;
  if (info.dilationHeight !== 1 || info.dilationWidth !== 1) return undefined;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // Output height of conv(x', dy') is h + top + bottom − oh + 1; choose bottom so it is kh.
  const bottom = kh - 1 - h - top + oh;
  const right = kw - 1 - w - left + ow;
  if (top < 0 || left < 0 || bottom < 0 || right < 0) return undefined;
  // The backend's Transpose (compiled): ≈ 3× faster than the same copies as JS loops (measured
  // on the demo CNN's layers, e.g. 0.2 vs 0.58 ms for both operands at 64×14×14×8 → 16).
  const xT = runKernel('Transpose', backend, { x }, { perm: [3, 1, 2, 0] });
  const dyT = runKernel('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });
  const product = conv2DStride1(backend, xT, dyT, [top, bottom], [left, right]);
  backend.disposeData(xT.dataId);
  backend.disposeData(dyT.dataId);
  // [c, kh, kw, o] → [kh, kw, c, o]
  const dw = backend.makeOutput([kh, kw, c, o], 'float32');
  const src = backend.typedArrayFromHeap(product);
  const dst = backend.typedArrayFromHeap(dw);
  for (let ci = 0; ci < c; ci++) {
    for (let t = 0; t < kh * kw; t++) {
      dst.set(src.subarray((ci * kh * kw + t) * o, (ci * kh * kw + t + 1) * o), (t * c + ci) * o);
    }
  }
  backend.disposeData(product.dataId);
  return dw;
}

/** Conv2DBackpropFilter(x, dy) → dW of shape filterShape [kH, kW, cIn, cOut]. */
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend: rawBackend, attrs }) => {
  const backend = rawBackend as unknown as WasmBackendLike;
  const { x, dy } = inputs as { x: TensorInfo; dy: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    filterShape: [number, number, number, number];
  };
  if (dataFormat === 'NCHW')
    throw new Error('Conv2DBackpropFilter on wasm supports only NHWC (channels last)');
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  const viaConvolution = filterGradViaConvolution(backend, x, dy, info);
  if (viaConvolution) return viaConvolution;
  const n = info.batchSize * info.outHeight * info.outWidth;
  const rows = info.filterHeight * info.filterWidth * info.inChannels;
  const patches = backend.makeOutput([1, rows, n], 'float32');
  // Views are taken after every allocation: growing the WASM memory detaches older views.
  writeTransposedPatches(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(patches), info);
  const dy3 = reshape(backend, dy, [1, n, info.outChannels]);
  const product = runKernel(
    'BatchMatMul',
    backend,
    { a: patches, b: dy3 },
    { transposeA: false, transposeB: false },
  );
  backend.disposeData(patches.dataId);
  backend.disposeData(dy3.dataId);
  const dw = reshape(backend, product, [...filterShape]);
  backend.disposeData(product.dataId);
  return dw;
};

/**
 * W̃[i,j,o,c] = W[kH−1−i, kW−1−j, c, o].
 * @internal exported for its tests
 */
export function rotateAndSwapFilter(
  w: Float32Array,
  out: Float32Array,
  kH: number,
  kW: number,
  cIn: number,
  cOut: number,
): void {
  for (let i = 0; i < kH; i++) {
    for (let j = 0; j < kW; j++) {
      const src = ((kH - 1 - i) * kW + (kW - 1 - j)) * cIn * cOut;
      const dst = (i * kW + j) * cOut * cIn;
      for (let c = 0; c < cIn; c++) {
        for (let o = 0; o < cOut; o++) out[dst + o * cIn + c] = w[src + c * cOut + o]!;
      }
    }
  }
}

/** Conv2DBackpropInput(dy, filter) → dx of shape inputShape, via a forward convolution. */
const conv2DBackpropInput: KernelFunc = (args) => {
  const { inputs, backend: rawBackend, attrs } = args;
  const backend = rawBackend as unknown as WasmBackendLike;
  const { dy, filter } = inputs as { dy: TensorInfo; filter: TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as {
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dataFormat: 'NHWC' | 'NCHW';
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
    inputShape: [number, number, number, number];
  };
  const [kH, kW, cIn, cOut] = filter.shape as [number, number, number, number];
  const info = backend_util.computeConv2DInfo(
    inputShape,
    [kH, kW, cIn, cOut],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    dataFormat === 'NCHW' ? 'channelsFirst' : 'channelsLast',
  );
  const { top, bottom, left, right } = info.padInfo;
  const padT = kH - 1 - top;
  const padB = kH - 1 - bottom;
  const padL = kW - 1 - left;
  const padR = kW - 1 - right;
  const simple =
    info.strideHeight === 1 &&
    info.strideWidth === 1 &&
    info.dataFormat === 'channelsLast' &&
    Math.min(padT, padB, padL, padR) >= 0;
  if (!simple) {
    if (!originalBackpropInput) throw new Error('Conv2DBackpropInput: no fallback kernel on wasm');
    return originalBackpropInput(args);
  }
  const rotated = backend.makeOutput([kH, kW, cOut, cIn], 'float32');
  rotateAndSwapFilter(
    backend.typedArrayFromHeap(filter),
    backend.typedArrayFromHeap(rotated),
    kH,
    kW,
    cIn,
    cOut,
  );
  const dx = conv2DStride1(backend, dy, rotated, [padT, padB], [padL, padR]);
  backend.disposeData(rotated.dataId);
  return dx;
};

/**
 * dx for max pooling: each window's first maximum of x (scanning rows, then columns) receives
 * that window's dy; overlapping windows accumulate. dx must be zero-filled by the caller.
 */
function writeMaxPoolGrad(
  x: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  info: backend_util.Conv2DInfo,
): void {
  const { batchSize, inHeight, inWidth, inChannels, outHeight, outWidth } = info;
  const { strideHeight, strideWidth, filterHeight, filterWidth } = info;
  const padTop = info.padInfo.top;
  const padLeft = info.padInfo.left;
  let o = 0;
  for (let b = 0; b < batchSize; b++) {
    const xBatch = b * inHeight;
    for (let y = 0; y < outHeight; y++) {
      const y0 = y * strideHeight - padTop;
      const yStart = Math.max(0, y0);
      const yEnd = Math.min(inHeight, y0 + filterHeight);
      for (let xo = 0; xo < outWidth; xo++) {
        const x0 = xo * strideWidth - padLeft;
        const xStart = Math.max(0, x0);
        const xEnd = Math.min(inWidth, x0 + filterWidth);
        for (let c = 0; c < inChannels; c++, o++) {
          let best = Number.NEGATIVE_INFINITY;
          let at = -1;
          for (let iy = yStart; iy < yEnd; iy++) {
            let p = ((xBatch + iy) * inWidth + xStart) * inChannels + c;
            for (let ix = xStart; ix < xEnd; ix++, p += inChannels) {
              const v = x[p]!;
              if (v > best) {
                best = v;
                at = p;
              }
            }
          }
          if (at >= 0) dx[at]! += dy[o]!;
        }
      }
    }
  }
}

/**
 * writeMaxPoolGrad for 2×2 windows at stride 2 that tile the input exactly (even height and
 * width, no padding), the demo CNN's pools: every input lies in one window, so dx is written
 * outright (no zero fill) and without branches — each of the window's four entries gets dy times
 * "it is the first maximum", a 0/1 factor. A comparison branch per entry is close to random and
 * was most of the general loop's time (≈ 1.8 ms per step of the demo CNN at batch 64, measured;
 * cf. the ReLU mask).
 */
function writeMaxPoolGrad2x2(
  x: Float32Array,
  y: Float32Array,
  dy: Float32Array,
  dx: Float32Array,
  batch: number,
  outHeight: number,
  outWidth: number,
  channels: number,
): void {
  const rowStride = 2 * outWidth * channels;
  let o = 0;
  for (let r = 0; r < batch * outHeight; r++) {
    // Input row 2r of this image (batch · outHeight output rows = batch · height/2 row pairs).
    let p = 2 * r * rowStride;
    for (let xo = 0; xo < outWidth; xo++, p += 2 * channels) {
      for (let c = 0; c < channels; c++, o++) {
        const pa = p + c;
        const pb = pa + channels;
        const pc = pa + rowStride;
        const pd = pc + channels;
        const a = x[pa]!;
        const b = x[pb]!;
        const cc = x[pc]!;
        const d = x[pd]!;
        // The forward pass's maximum: Math.max itself branches (−0 and NaN rules).
        const m = y[o]!;
        const g = dy[o]!;
        const fa = +(a === m);
        const fb = +(b === m) * (1 - fa);
        const fc = +(cc === m) * (1 - fa) * (1 - fb);
        const fd = +(d === m) * (1 - fa) * (1 - fb) * (1 - fc);
        dx[pa] = g * fa;
        dx[pb] = g * fb;
        dx[pc] = g * fc;
        dx[pd] = g * fd;
      }
    }
  }
}

/** MaxPoolGrad(dy, input, output) → dx of the input's shape. */
const maxPoolGrad: KernelFunc = ({ inputs, backend: rawBackend, attrs }) => {
  const backend = rawBackend as unknown as WasmBackendLike;
  const { dy, input, output } = inputs as { dy: TensorInfo; input: TensorInfo; output: TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = attrs as unknown as {
    filterSize: [number, number] | number;
    strides: [number, number] | number;
    pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
    dimRoundingMode?: 'floor' | 'round' | 'ceil';
  };
  const info = backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    filterSize,
    strides,
    1,
    pad,
    dimRoundingMode,
  );
  const dx = backend.makeOutput([...input.shape], 'float32');
  const out = backend.typedArrayFromHeap(dx);
  const tiles2x2 =
    info.filterHeight === 2 &&
    info.filterWidth === 2 &&
    info.strideHeight === 2 &&
    info.strideWidth === 2 &&
    info.padInfo.top === 0 &&
    info.padInfo.left === 0 &&
    info.outHeight * 2 === info.inHeight &&
    info.outWidth * 2 === info.inWidth;
  if (tiles2x2) {
    const { batchSize, outHeight, outWidth, inChannels } = info;
    const heap = (t: TensorInfo) => backend.typedArrayFromHeap(t);
    writeMaxPoolGrad2x2(heap(input), heap(output), heap(dy), out, batchSize, outHeight, outWidth, inChannels);
    return dx;
  }
  out.fill(0);
  writeMaxPoolGrad(backend.typedArrayFromHeap(input), backend.typedArrayFromHeap(dy), out, info);
  return dx;
};

type HeapArray = Float32Array | Int32Array | Uint8Array;

/**
 * out = x (row-major, `shape`) repeated reps[d] times along every dimension d, as tf.tile does:
 * the innermost run of x copied once per position, then each dimension's block replicated by
 * doubling block copies.
 * @internal exported for its tests
 */
export function writeTile(
  x: HeapArray,
  shape: readonly number[],
  reps: readonly number[],
  out: HeapArray,
): void {
  const rank = shape.length;
  if (rank === 0) {
    out[0] = x[0]!;
    return;
  }
  const xStride = new Array<number>(rank).fill(1);
  const outStride = new Array<number>(rank).fill(1);
  for (let d = rank - 2; d >= 0; d--) {
    xStride[d] = xStride[d + 1]! * shape[d + 1]!;
    outStride[d] = outStride[d + 1]! * shape[d + 1]! * reps[d + 1]!;
  }
  /** Copies out[start, start + block) to the next times − 1 blocks. */
  const replicate = (start: number, block: number, times: number) => {
    const total = block * times;
    for (let filled = block; filled < total; ) {
      const n = Math.min(filled, total - filled);
      out.copyWithin(start + filled, start, start + n);
      filled += n;
    }
  };
  const fill = (d: number, xAt: number, outAt: number): void => {
    const size = shape[d]!;
    if (d === rank - 1) {
      out.set(x.subarray(xAt, xAt + size), outAt);
    } else {
      for (let i = 0; i < size; i++) fill(d + 1, xAt + i * xStride[d]!, outAt + i * outStride[d]!);
    }
    replicate(outAt, size * outStride[d]!, reps[d]!);
  };
  fill(0, 0, 0);
}

const tileByBlockCopies: KernelFunc = (args) => {
  const backend = args.backend as unknown as WasmBackendLike;
  const { x } = args.inputs as { x: TensorInfo };
  const { reps } = args.attrs as unknown as { reps: number[] };
  const numeric = x.dtype === 'float32' || x.dtype === 'int32' || x.dtype === 'bool';
  if (!numeric || !originalTile) {
    if (!originalTile) throw new Error(`WASM Tile of ${x.dtype} is not supported`);
    return originalTile(args);
  }
  const out = backend.makeOutput(
    x.shape.map((s, d) => s * reps[d]!),
    x.dtype,
  );
  if (x.shape.every((s) => s > 0) && reps.every((r) => r > 0)) {
    const heap = (t: TensorInfo) => backend.typedArrayFromHeap(t) as HeapArray;
    writeTile(heap(x), x.shape, reps, heap(out));
  }
  return out;
};

/**
 * Registers the kernels above for the 'wasm' backend (idempotent). Must run after
 * @tensorflow/tfjs-backend-wasm has been imported (it registers the kernels these build on).
 */
export function registerWasmGradientKernels(): void {
  if (registered) return;
  const existingInput = getKernel('Conv2DBackpropInput', BACKEND);
  if (existingInput) {
    originalBackpropInput = existingInput.kernelFunc;
    unregisterKernel('Conv2DBackpropInput', BACKEND);
  }
  const configs: KernelConfig[] = [
    {
      kernelName: 'Conv2DBackpropInput',
      backendName: BACKEND,
      kernelFunc: conv2DBackpropInput,
      // The original's setup (binding its WASM function) still has to run for the fallback.
      ...(existingInput?.setupFunc ? { setupFunc: existingInput.setupFunc } : {}),
    },
  ];
  const existingPoolGrad = getKernel('MaxPoolGrad', BACKEND);
  if (existingPoolGrad) unregisterKernel('MaxPoolGrad', BACKEND);
  configs.push({ kernelName: 'MaxPoolGrad', backendName: BACKEND, kernelFunc: maxPoolGrad });
  if (!getKernel('Conv2DBackpropFilter', BACKEND)) {
    configs.push({
      kernelName: 'Conv2DBackpropFilter',
      backendName: BACKEND,
      kernelFunc: conv2DBackpropFilter,
    });
  }
  const existingTile = getKernel('Tile', BACKEND);
  if (existingTile) {
    originalTile = existingTile.kernelFunc;
    unregisterKernel('Tile', BACKEND);
    configs.push({
      kernelName: 'Tile',
      backendName: BACKEND,
      kernelFunc: tileByBlockCopies,
      ...(existingTile.setupFunc ? { setupFunc: existingTile.setupFunc } : {}),
    });
  }
  for (const config of configs) registerKernel(config);
  registered = true;
}
