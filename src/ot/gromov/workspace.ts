// Where a dense GW solve keeps its n×n arrays (C1, C2, G and the vertex products): in the kernel
// team's WebAssembly memory (kernels/team.ts), for the duration of the solve. There the loops of
// kernels/loops.wat and the matrix products read them in place — no copy in or out, and no
// packing in JS — which is what makes a cold solve fast: a fresh process would otherwise run every
// O(n²) loop first in the JS interpreter, boxing each f64 it computes (megabytes of garbage per
// pass). The arrays are ordinary Float64Array views, so the JS code around them is unchanged, and
// where WebAssembly (SIMD, shared memory) is missing they are ordinary arrays and the same loops
// run in JS, with bit-identical results.

import { type KernelTeam, kernelTeam, type Loops } from '../kernels/team.js';
import { simplexModule } from '../simplex-kernel.js';

/**
 * Compiles the WebAssembly modules a GW solve runs (products, loops, network simplex) and creates
 * this thread's kernel team — work a process does once, which a command about to solve can do at
 * start-up, as a Python process loads POT's compiled extensions when it imports them, rather
 * than inside its first solve (≈ 1.5 ms here). Later calls do nothing.
 */
export function prepareKernels(): void {
  void kernelTeam()?.loops;
  simplexModule();
}

let depth = 0;
let enabled = true;

/**
 * With false, solves keep every array on the JS heap and run the JS loops, as where WebAssembly
 * is missing (the products still use the kernels).
 * @internal exported for the tests that compare the two
 */
export function setWorkspaceEnabled(on: boolean): void {
  enabled = on;
}

/**
 * Runs `solve` with a workspace: arrays from residentArray() live until it returns. Whatever
 * `solve` returns must not hold such arrays (copy them out with detached()).
 */
export function withWorkspace<T>(solve: () => T): T {
  const team = enabled ? kernelTeam() : null;
  if (!team) return solve();
  const mark = team.mark();
  depth++;
  try {
    return solve();
  } finally {
    depth--;
    team.release(mark);
  }
}

/** A zeroed array of `length` f64: in the workspace when there is one with room, else on the heap. */
export function residentArray(length: number): Float64Array {
  return (depth > 0 ? kernelTeam()?.allocate(length) : null) ?? new Float64Array(length);
}

/** `x` itself when it lies in the workspace, else a copy there (or `x` when there is no room). */
export function resident(x: Float64Array): Float64Array {
  const team = kernelTeam();
  if (!team || depth === 0 || team.owns(x)) return x;
  const copy = team.allocate(x.length);
  if (!copy) return x;
  copy.set(x);
  return copy;
}

/** `x`, or a heap copy of it when it lies in the workspace (for results that outlive the solve). */
export function detached(x: Float64Array): Float64Array {
  const team = kernelTeam();
  return team?.owns(x) ? x.slice() : x;
}

/**
 * The loops of loops.wat and the team whose memory they run on, when every array given lies in
 * that memory (their byteOffsets are then addresses); null otherwise (the caller runs its JS loop).
 */
export function loopsFor(...arrays: ArrayBufferView[]): { loops: Loops; team: KernelTeam } | null {
  const team = kernelTeam();
  const loops = team?.loops;
  if (!team || !loops) return null;
  for (const a of arrays) if (!team.owns(a)) return null;
  return { loops, team };
}

/**
 * Copies small arrays (a sparse plan's indices and values) into the team's scratch space for one
 * loops.wat call, returning their addresses; valid until the next kernel call.
 */
export function staged(team: KernelTeam, ...arrays: (Float64Array | Int32Array)[]): number[] {
  let bytes = 0;
  for (const a of arrays) bytes += Math.ceil(a.byteLength / 16) * 16;
  const buffer = team.reserve(bytes);
  let at = team.scratchBase;
  return arrays.map((a) => {
    const address = at;
    new Uint8Array(buffer, at, a.byteLength).set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    at += Math.ceil(a.byteLength / 16) * 16;
    return address;
  });
}
