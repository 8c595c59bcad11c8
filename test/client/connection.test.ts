// Probe-summary chunking: ≤ 1 MiB per chunk, offsets in order, bytes = the Gram in LE float32.

import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import {
  gramChunks,
  isTransient,
  MAX_CHUNK_DATA_BYTES,
  readableDetails,
} from '../../src/client/connection.js';
import { mulberry32 } from '../../src/shared/rng.js';

describe('gramChunks', () => {
  const header = {
    requestId: 'r1',
    clientId: 'c',
    taskId: '0-1',
    round: 3,
    layer: 'conv2',
    n: 600,
    featureDim: 16,
  };

  it('splits a 600 × 600 Gram (1.44 MB) into ordered chunks of at most 1 MiB that reassemble exactly', () => {
    const rng = mulberry32(1);
    const gram = Float32Array.from({ length: 600 * 600 }, () => rng() * 100 - 50);
    const chunks = [...gramChunks(header, gram)];
    expect(chunks.length).toBe(2);
    let expectedOffset = 0;
    for (const c of chunks) {
      expect(c).toMatchObject(header);
      expect(c.offset).toBe(expectedOffset);
      const data = c.data as Buffer;
      expect(data.length).toBeLessThanOrEqual(MAX_CHUNK_DATA_BYTES);
      expect(data.length % 4).toBe(0);
      expectedOffset += data.length;
    }
    expect(expectedOffset).toBe(gram.byteLength);
    const all = Buffer.concat(chunks.map((c) => c.data as Buffer));
    for (let i = 0; i < gram.length; i += 997) expect(all.readFloatLE(i * 4)).toBe(gram[i]);
    expect(MAX_CHUNK_DATA_BYTES).toBeLessThan(1024 * 1024);
  });

  it('honours a smaller chunk size and sends small Grams in one chunk', () => {
    const gram = new Float32Array(10 * 10).fill(1.5);
    expect([...gramChunks(header, gram)].length).toBe(1);
    const small = [...gramChunks(header, gram, 64)];
    expect(small.map((c) => c.offset)).toEqual([0, 64, 128, 192, 256, 320, 384]);
    expect(small.map((c) => (c.data as Buffer).length)).toEqual([64, 64, 64, 64, 64, 64, 16]);
  });
});

describe('readableDetails', () => {
  it('drops grpc-js boilerplate and timestamps', () => {
    expect(
      readableDetails(
        'No connection established. Last error: Failed to connect (2026-11-30T14:06:35.495Z). Resolution note: ',
      ),
    ).toBe('Failed to connect');
  });

  it('turns OpenSSL errors into the fix', () => {
    expect(
      readableDetails(
        'No connection established. Last error: error:0A000086:SSL routines::certificate verify failed (2026-11-30T14:06:35.495Z)',
      ),
    ).toMatch(/^TLS: .*--ca$/);
    expect(readableDetails('error:0A00010B:SSL routines::wrong version number')).toMatch(
      /does not speak TLS/,
    );
    expect(
      readableDetails(
        "Hostname/IP does not match certificate's altnames: IP: 10.0.0.1 is not in the cert's list",
      ),
    ).toMatch(/not for this address/);
  });
});

describe('isTransient', () => {
  const err = (code: number) => Object.assign(new Error('x'), { code });
  it('retries what a stopping or busy coordinator answers, and network failures without a status', () => {
    for (const code of [
      grpc.status.UNAVAILABLE,
      grpc.status.DEADLINE_EXCEEDED,
      grpc.status.RESOURCE_EXHAUSTED,
      grpc.status.CANCELLED,
    ]) {
      expect(isTransient(err(code))).toBe(true);
    }
    expect(isTransient(new Error('socket hang up'))).toBe(true);
  });
  it('does not retry an answer the same request would get again', () => {
    for (const code of [
      grpc.status.INVALID_ARGUMENT,
      grpc.status.NOT_FOUND,
      grpc.status.ALREADY_EXISTS,
      grpc.status.PERMISSION_DENIED,
      grpc.status.UNAUTHENTICATED,
      grpc.status.FAILED_PRECONDITION,
      grpc.status.INTERNAL,
      grpc.status.UNIMPLEMENTED,
    ]) {
      expect(isTransient(err(code))).toBe(false);
    }
  });
});
