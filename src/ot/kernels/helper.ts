// Helper thread of a KernelTeam (team.ts): instantiates the kernels on the team's shared memory,
// then sleeps on the control block's generation word and joins each open call.
import { workerData } from 'node:worker_threads';
import { ACTIVE, ARGC, ARGS, GEN, instantiate, JOINED, OP, OPEN, type WasmMemory } from './team.js';

const { module, memory } = workerData as { module: object; memory: WasmMemory };
const fns = instantiate(module, memory);
const ctrl = new Int32Array(memory.buffer, 0, 64);
let seen = Atomics.load(ctrl, GEN);
for (;;) {
  Atomics.wait(ctrl, GEN, seen);
  seen = Atomics.load(ctrl, GEN);
  // Announce first, then check the call is still open: the caller closes it before waiting for
  // ACTIVE to drop to 0, so it never reads results while a helper is inside the kernel.
  Atomics.add(ctrl, ACTIVE, 1);
  try {
    if (Atomics.load(ctrl, OPEN) === seen) {
      const args = Array.from(ctrl.subarray(ARGS, ARGS + ctrl[ARGC]!));
      fns[ctrl[OP]!]!(...args);
      Atomics.add(ctrl, JOINED, 1);
    }
  } finally {
    Atomics.sub(ctrl, ACTIVE, 1);
    Atomics.notify(ctrl, ACTIVE);
  }
}
