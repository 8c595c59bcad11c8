// Worker-thread entry for GwPool: per message, solves one GW problem or calls one exported
// function of an atomlens module, and posts the result back, transferring its typed arrays'
// buffers.
import { parentPort, workerData } from 'node:worker_threads';
import { type GwOptions, type GwResult, gromovWasserstein } from './gromov/gw.js';
import type { GwCost } from './gromov/problem.js';
import { shareKernelModule } from './linalg.js';

export interface GwTask {
  kind: 'gw';
  id: number;
  C1: GwCost;
  C2: GwCost;
  options: GwOptions;
}

/** A call of `fn`, exported by the module at URL `module`, with `args`. */
export interface CallTask {
  kind: 'call';
  id: number;
  module: string;
  fn: string;
  args: unknown[];
}

export type WorkerReply = { id: number; result: GwResult | unknown } | { id: number; error: string };

/** The (non-shared) buffers of the typed arrays in a result, each once, for transfer. */
function transferables(value: unknown, out = new Set<ArrayBuffer>(), depth = 0): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    if (value.buffer instanceof ArrayBuffer) out.add(value.buffer);
  } else if (depth < 4 && Array.isArray(value)) {
    for (const v of value) transferables(v, out, depth + 1);
  } else if (depth < 4 && value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) transferables(v, out, depth + 1);
  }
  return [...out];
}

if (!parentPort) throw new Error('ot/worker.ts must run in a worker thread (started by GwPool)');
const port = parentPort;
// The matrix kernel as the parent compiled it: no second compilation here.
shareKernelModule((workerData as { kernelModule?: object } | undefined)?.kernelModule);
const modules = new Map<string, Promise<Record<string, unknown>>>();

async function call(task: CallTask): Promise<unknown> {
  let module = modules.get(task.module);
  if (!module) {
    module = import(task.module) as Promise<Record<string, unknown>>;
    modules.set(task.module, module);
  }
  const fn = (await module)[task.fn];
  if (typeof fn !== 'function') throw new Error(`${task.module} exports no function ${task.fn}`);
  return await (fn as (...args: unknown[]) => unknown)(...task.args);
}

port.on('message', (task: GwTask | CallTask) => {
  if (task.kind === 'call') {
    call(task).then(
      (result) => port.postMessage({ id: task.id, result } satisfies WorkerReply, transferables(result)),
      (err: unknown) =>
        port.postMessage({
          id: task.id,
          error: (err as Error)?.message ?? String(err),
        } satisfies WorkerReply),
    );
    return;
  }
  try {
    const result = gromovWasserstein(task.C1, task.C2, task.options);
    const transfer = result.plan ? [result.plan.buffer as ArrayBuffer] : [];
    port.postMessage({ id: task.id, result } satisfies WorkerReply, transfer);
  } catch (err) {
    port.postMessage({ id: task.id, error: (err as Error).message } satisfies WorkerReply);
  }
});
