// Chooses and initialises the TensorFlow.js backend the client trains on.
//
// Order for 'auto': @tensorflow/tfjs-node (native TensorFlow, an optional dependency that is
// usually absent) → WASM (XNNPACK; SIMD when the runtime validates it) → the pure-JS CPU backend
// as a last resort. The WASM backend lacks some gradient kernels the demo CNN needs; they are
// registered from ./wasmKernels.ts before the backend is first used.
//
// SIMD and threads, measured on the demo CNN (batch 64, 2 shared cores, same load): SIMD ≈ 1,490
// samples/s vs ≈ 500 without (WASM_HAS_SIMD_SUPPORT forced off). Threads are unavailable in
// Node: tfjs reports WASM_HAS_MULTITHREAD_SUPPORT = false there, and forcing it fails because
// emscripten starts its pthread workers from blob: URLs, which Node's Worker rejects
// (ERR_WORKER_PATH); with that worked around (and os.cpus() doubled, since the binary caps
// XNNPACK's pool at half the logical cores), 2 XNNPACK threads gave ≈ 1.2× on the demo CNN
// (≈ 19.5 → 16 ms per batch of 64; much of a step is small ops and the client's JS kernels) and
// ≈ 1.35× on the SDK example's ResNet (≈ 450 → 610 samples/s), at the price of patching
// emscripten's worker start-up and 8 pthread workers per process. So WASM runs on one core per
// thread, and TaskTrainer uses the second core data parallel instead (train-shards.ts, ≈ 1.6×).

import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { getThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { createLogger, type Logger } from '../shared/log.js';
import { registerWasmGradientKernels } from './wasmKernels.js';

/** Which TensorFlow.js backend to use ('auto': tfjs-node when installed, else WASM). */
export type BackendPreference = 'auto' | 'wasm' | 'cpu' | 'tensorflow';
export const BACKEND_CHOICES: readonly BackendPreference[] = ['auto', 'wasm', 'cpu', 'tensorflow'];

/** The backend {@link initBackend} activated. */
export interface BackendInfo {
  /** The tfjs backend name now active: 'tensorflow', 'wasm' or 'cpu'. */
  name: string;
  /** WASM only: whether the SIMD binary was loaded. */
  simd?: boolean;
  /** WASM only: XNNPACK threads in use (1 in Node: tfjs disables wasm threads there). */
  threads?: number;
}

const requireFromHere = createRequire(import.meta.url);
let wasmPathsSet = false;

/** Directory holding the tfjs-backend-wasm .wasm binaries (the package's own dist/). */
function wasmBinaryDir(): string {
  return dirname(requireFromHere.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
}

async function tryTensorflowNode(log: Logger): Promise<boolean> {
  try {
    // A variable specifier keeps TypeScript from requiring the optional package's types.
    const specifier = '@tensorflow/tfjs-node';
    await import(specifier);
  } catch {
    return false;
  }
  try {
    return await tf.setBackend('tensorflow');
  } catch (err) {
    log.warn(`@tensorflow/tfjs-node is installed but failed to start: ${(err as Error).message}`);
    return false;
  }
}

async function tryWasm(log: Logger): Promise<boolean> {
  if (!wasmPathsSet) {
    // In Node the emscripten loader reads the binary from disk: point it at the package's dist.
    setWasmPaths(`${wasmBinaryDir()}/`);
    wasmPathsSet = true;
  }
  registerWasmGradientKernels();
  // The emscripten glue adds process-wide 'uncaughtException'/'unhandledRejection' listeners
  // that rethrow (crashing the process on any stray rejection and printing its minified
  // source); they are removed again so error handling stays the application's.
  const emitter = process as unknown as NodeJS.EventEmitter;
  const events = ['uncaughtException', 'unhandledRejection'];
  const before = events.map((e) => new Set(emitter.listeners(e)));
  try {
    return await tf.setBackend('wasm');
  } catch (err) {
    log.warn(`WASM backend failed to start: ${(err as Error).message ?? String(err)}`);
    return false;
  } finally {
    events.forEach((event, i) => {
      for (const listener of emitter.listeners(event)) {
        if (!before[i]!.has(listener)) emitter.removeListener(event, listener as () => void);
      }
    });
  }
}

/**
 * Activates a backend and logs which one is in use. 'auto' never fails: it falls back to the
 * CPU backend. An explicit choice that cannot start throws an Error saying what to do.
 */
export async function initBackend(
  preferred: BackendPreference = 'auto',
  log: Logger = createLogger('backend'),
): Promise<BackendInfo> {
  let ok = false;
  if (preferred === 'tensorflow') {
    ok = await tryTensorflowNode(log);
    if (!ok) {
      throw new Error(
        "backend 'tensorflow' needs @tensorflow/tfjs-node, which is not installed or failed to load; use --backend wasm",
      );
    }
  } else if (preferred === 'wasm') {
    ok = await tryWasm(log);
    if (!ok) throw new Error("backend 'wasm' could not start; use --backend cpu");
  } else if (preferred === 'cpu') {
    ok = await tf.setBackend('cpu');
  } else {
    ok = (await tryTensorflowNode(log)) || (await tryWasm(log)) || (await tf.setBackend('cpu'));
  }
  if (!ok) throw new Error(`no TensorFlow.js backend could start (asked for '${preferred}')`);
  await tf.ready();
  const info: BackendInfo = { name: tf.getBackend() };
  if (info.name === 'wasm') {
    info.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    info.threads = getThreadsCount();
  }
  log.info(
    `TensorFlow.js backend: ${info.name}${info.name === 'wasm' ? ` (SIMD ${info.simd ? 'on' : 'off'}, ${info.threads} thread${info.threads === 1 ? '' : 's'})` : ''}`,
  );
  return info;
}
