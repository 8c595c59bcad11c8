// Worker-thread entry for GwPool: solves one GW problem per message and posts the result back,
// transferring the plan's buffer.
import { parentPort, workerData } from 'node:worker_threads';
import { type GwOptions, gromovWasserstein } from './gromov/gw.js';
import type { GwCost } from './gromov/problem.js';
import { shareKernelModule } from './linalg.js';

export interface GwTask {
  id: number;
  C1: GwCost;
  C2: GwCost;
  options: GwOptions;
}

export type GwReply =
  | { id: number; result: import('./gromov/gw.js').GwResult }
  | { id: number; error: string };

if (!parentPort) throw new Error('gw/worker.ts must run in a worker thread (started by GwPool)');
const port = parentPort;
// The matrix kernel as the parent compiled it: no second compilation here.
shareKernelModule((workerData as { kernelModule?: object } | undefined)?.kernelModule);
port.on('message', (task: GwTask) => {
  try {
    const result = gromovWasserstein(task.C1, task.C2, task.options);
    const transfer = result.plan ? [result.plan.buffer as ArrayBuffer] : [];
    port.postMessage({ id: task.id, result } satisfies GwReply, transfer);
  } catch (err) {
    port.postMessage({ id: task.id, error: (err as Error).message } satisfies GwReply);
  }
});
