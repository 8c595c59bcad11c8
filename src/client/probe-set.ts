// The operator's probe set on a client: fetched once over gRPC (FetchProbeSet), verified against
// the template's SHA-256, cached on disk under that hash so a restarted client does not download
// it again.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ProbeSetSpec } from '../shared/template.js';
import { decodeFloat32 } from '../shared/tensor.js';

/** Default cache directory: one file per probe set, named by its SHA-256. */
export const DEFAULT_PROBE_CACHE_DIR = join(tmpdir(), 'atomlens-probe-sets');

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The probe set's values: from the cache when a file with the right hash is there, else from
 * `download` (verified, then cached atomically). Throws when the downloaded bytes do not match.
 */
export async function operatorProbeValues(
  probe: Pick<ProbeSetSpec, 'sha256' | 'shape'>,
  cacheDir: string,
  download: (sha256: string) => Promise<Buffer>,
): Promise<Float32Array> {
  const expected = probe.sha256;
  const shape = probe.shape;
  if (!expected || !shape)
    throw new Error('the template names an operator probe set without its SHA-256 and shape');
  const path = join(cacheDir, `${expected}.f32`);
  try {
    const cached = readFileSync(path);
    if (sha256(cached) === expected) return decodeFloat32({ shape: [cached.length / 4], data: cached });
  } catch {
    // Not cached yet (or unreadable): download below.
  }
  const bytes = await download(expected);
  const got = sha256(bytes);
  if (got !== expected) {
    throw new Error(
      `the probe set received has SHA-256 ${got}, but the template says ${expected}; not using it`,
    );
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== count * 4) {
    throw new Error(
      `the probe set has ${bytes.length} bytes, shape [${shape.join(', ')}] needs ${count * 4}`,
    );
  }
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch {
    // A cache that cannot be written only costs a download next time.
  }
  return decodeFloat32({ shape: [count], data: bytes });
}
