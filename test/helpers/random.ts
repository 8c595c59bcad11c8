// Seeded test inputs shared by the suites.
import { mulberry32 } from '../../src/shared/rng.js';

/** `n` float32 values uniform in [−1, 1), reproducible from `seed` (mulberry32). */
export function uniformFloat32(n: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}
