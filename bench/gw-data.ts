// Inputs shared by the GW benchmarks, and where POT runs: /usr/bin/python3 with Debian's
// python3-pot (0.8.2) and python3-numpy.
import { spawnSync } from 'node:child_process';
import { gramFromActivations, gramToDistances } from '../src/analysis/representation.js';
import { normaliseByMeanOffDiagonal } from '../src/ot/index.js';
import { mulberry32, normalSampler } from '../src/shared/rng.js';

export const PYTHON = '/usr/bin/python3';

export function hasPot(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import ot, numpy'], { encoding: 'utf8' });
  return r.status === 0;
}

/** Layer-like activations: X (n×dx) and a noisy non-linear map of it, Y (n×dy). */
export function activations(
  n: number,
  seed: number,
  dx: number,
  dy: number,
): { X: Float64Array; Y: Float64Array } {
  const normal = normalSampler(mulberry32(seed));
  const X = Float64Array.from({ length: n * dx }, normal);
  const W = Float64Array.from({ length: dx * dy }, normal);
  const Y = new Float64Array(n * dy);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dy; j++) {
      let s = 0;
      for (let k = 0; k < dx; k++) s += X[i * dx + k]! * W[k * dy + j]!;
      Y[i * dy + j] = Math.tanh(s / Math.sqrt(dx)) + 0.3 * normal();
    }
  }
  return { X, Y };
}

/**
 * Normalised Euclidean distance matrices of random "layer activations" (X, and a noisy
 * non-linear map of X, so the probe inputs correspond and the identity coupling is meaningful).
 */
export function spaces(n: number, seed: number): { C1: Float64Array; C2: Float64Array } {
  const { X, Y } = activations(n, seed, 32, 48);
  const dist = (Z: Float64Array, d: number) =>
    normaliseByMeanOffDiagonal(gramToDistances(gramFromActivations(Z, n, d), n), n);
  return { C1: dist(X, 32), C2: dist(Y, 48) };
}

/** Wall and CPU seconds (user + system, all threads) of a child process, via /usr/bin/time. */
export function timedRun(
  command: string,
  args: string[],
  timeoutSeconds: number,
): { stdout: string; stderr: string; status: number | null; wall: number; cpu: number | null } {
  const t = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', 'CPU %U %S', command, ...args], {
    encoding: 'utf8',
    timeout: timeoutSeconds * 1000,
    maxBuffer: 1 << 26,
  });
  const wall = (performance.now() - t) / 1000;
  const m = /CPU ([0-9.]+) ([0-9.]+)\s*$/.exec(r.stderr ?? '');
  return {
    stdout: r.stdout ?? '',
    stderr: r.stderr ?? '',
    status: r.status,
    wall,
    cpu: m ? Number(m[1]) + Number(m[2]) : null,
  };
}
