// Functions GwPool.run() calls on its worker threads in the pool tests.
import { threadId } from 'node:worker_threads';

/** Σ values, with the thread that computed it. */
export function sum(values: Float64Array): { total: number; threadId: number } {
  let total = 0;
  for (const v of values) total += v;
  return { total, threadId };
}

/** Doubles every value into a new array (returned by transfer). */
export async function doubled(values: Float64Array): Promise<Float64Array> {
  return values.map((v) => 2 * v);
}

/** Writes `value` into a shared array at `index`. */
export function writeShared(shared: Int32Array, index: number, value: number): void {
  Atomics.store(shared, index, value);
}

/** Busy for `ms` milliseconds (a long computation), counting its start in `started[0]`. */
export function spin(ms: number, started: Int32Array): number {
  Atomics.add(started, 0, 1);
  const until = Date.now() + ms;
  let x = 0;
  while (Date.now() < until) x++;
  return x;
}

export function fails(): never {
  throw new Error('this task fails');
}
