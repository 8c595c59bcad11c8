// Raw-bytes access to every RPC of the atomlens services, for fuzzing: requests are sent as
// arbitrary Buffers (no protobuf encoding on our side), responses are returned undecoded.
import * as grpc from '@grpc/grpc-js';
import { loadAtomlensProto } from '../../src/shared/proto.js';

const identity = (b: Buffer): Buffer => b;

export interface RawMethod {
  service: 'Federation' | 'Operator';
  name: string;
  path: string;
  requestStream: boolean;
  responseStream: boolean;
  /** Encoder of the real request type, to build valid seeds for mutation. */
  encode(value: object): Buffer;
  /** Decoder of the real request type (proto-loader options: camelCase, longs as numbers). */
  decode(bytes: Buffer): Record<string, unknown>;
}

/** Every method of both services, from the loaded proto. */
export function rawMethods(): RawMethod[] {
  const v1 = loadAtomlensProto().atomlens.v1;
  const out: RawMethod[] = [];
  for (const [service, ctor] of [
    ['Federation', v1.FederationService],
    ['Operator', v1.OperatorService],
  ] as const) {
    for (const [name, def] of Object.entries(ctor.service)) {
      const d = def as grpc.MethodDefinition<object, unknown>;
      out.push({
        service,
        name,
        path: d.path,
        requestStream: d.requestStream,
        responseStream: d.responseStream,
        encode: (value) => d.requestSerialize(value),
        decode: (bytes) => d.requestDeserialize(bytes) as Record<string, unknown>,
      });
    }
  }
  return out;
}

export type RawOutcome = { code: grpc.status; details: string; responses: number };

/**
 * Sends `messages` (raw bytes) on `method` and resolves with the final status. For client
 * streams every message is written; `cancelAfter` cancels the call after that many writes.
 */
export function callRaw(
  client: grpc.Client,
  method: RawMethod,
  messages: Buffer[],
  options: { metadata?: grpc.Metadata; deadlineMs?: number; cancelAfter?: number; holdMs?: number } = {},
): Promise<RawOutcome> {
  const metadata = options.metadata ?? new grpc.Metadata();
  const callOptions: grpc.CallOptions = { deadline: Date.now() + (options.deadlineMs ?? 10_000) };
  return new Promise<RawOutcome>((resolve) => {
    let responses = 0;
    const done = (err: grpc.ServiceError | null) =>
      resolve({ code: err ? err.code : grpc.status.OK, details: err?.details ?? '', responses });
    if (!method.requestStream && !method.responseStream) {
      client.makeUnaryRequest(
        method.path,
        identity,
        identity,
        messages[0] ?? Buffer.alloc(0),
        metadata,
        callOptions,
        (err: grpc.ServiceError | null) => {
          if (!err) responses += 1;
          done(err);
        },
      );
      return;
    }
    if (!method.requestStream && method.responseStream) {
      const call = client.makeServerStreamRequest(
        method.path,
        identity,
        identity,
        messages[0] ?? Buffer.alloc(0),
        metadata,
        callOptions,
      );
      call.on('data', () => {
        responses += 1;
      });
      call.on('error', (err: grpc.ServiceError) => done(err));
      call.on('end', () => done(null));
      if (options.cancelAfter !== undefined) setTimeout(() => call.cancel(), 5);
      return;
    }
    if (method.requestStream && !method.responseStream) {
      const call = client.makeClientStreamRequest(
        method.path,
        identity,
        identity,
        metadata,
        callOptions,
        (err: grpc.ServiceError | null) => {
          if (!err) responses += 1;
          done(err);
        },
      );
      writeAll(call, messages, options.cancelAfter);
      return;
    }
    const call = client.makeBidiStreamRequest(method.path, identity, identity, metadata, callOptions);
    call.on('data', () => {
      responses += 1;
    });
    let finished = false;
    call.on('error', (err: grpc.ServiceError) => {
      if (!finished) {
        finished = true;
        done(err);
      }
    });
    call.on('end', () => {
      if (!finished) {
        finished = true;
        done(null);
      }
    });
    writeAll(call, messages, options.cancelAfter);
    // An accepted session stays open while the server waits for heartbeats: cancel after holdMs.
    setTimeout(() => {
      if (!finished) {
        finished = true;
        call.cancel();
        resolve({ code: grpc.status.OK, details: 'held open by the server', responses });
      }
    }, options.holdMs ?? 300);
  });
}

function writeAll(
  call: grpc.ClientWritableStream<Buffer> & { cancel(): void },
  messages: Buffer[],
  cancelAfter: number | undefined,
): void {
  messages.forEach((m, i) => {
    if (cancelAfter !== undefined && i === cancelAfter) call.cancel();
    if (cancelAfter === undefined || i < cancelAfter) call.write(m);
  });
  if (cancelAfter === undefined || cancelAfter >= messages.length) call.end();
}

/** A generic client able to call any path with raw bytes. */
export function rawClient(
  address: string,
  credentials: grpc.ChannelCredentials = grpc.credentials.createInsecure(),
) {
  return new grpc.Client(address, credentials, { 'grpc.max_send_message_length': 64 * 2 ** 20 });
}

/** Deterministic byte mutations of a valid message (bit flips, truncation, insertion, garbage). */
export function mutate(seed: Buffer, rand: () => number): Buffer {
  const pick = (n: number) => Math.floor(rand() * n);
  const bytes = Buffer.from(seed);
  switch (pick(7)) {
    case 0: {
      // Flip a few bits.
      for (let i = 0, k = 1 + pick(8); i < k && bytes.length > 0; i++)
        bytes[pick(bytes.length)]! ^= 1 << pick(8);
      return bytes;
    }
    case 1:
      return bytes.subarray(0, pick(bytes.length + 1));
    case 2: {
      const at = pick(bytes.length + 1);
      const junk = Buffer.from(Array.from({ length: 1 + pick(32) }, () => pick(256)));
      return Buffer.concat([bytes.subarray(0, at), junk, bytes.subarray(at)]);
    }
    case 3: {
      // Overwrite a byte with a length/varint-looking extreme value.
      if (bytes.length > 0) bytes[pick(bytes.length)] = [0xff, 0x7f, 0x80, 0x00][pick(4)]!;
      return bytes;
    }
    case 4: {
      // Duplicate a slice (repeated fields, overlapping length prefixes).
      const a = pick(bytes.length + 1);
      const b = a + pick(bytes.length - a + 1);
      return Buffer.concat([bytes, bytes.subarray(a, b)]);
    }
    case 5:
      return Buffer.from(Array.from({ length: pick(512) }, () => pick(256)));
    default: {
      // An unknown field number with a huge declared length.
      return Buffer.concat([bytes, Buffer.from([0xfa, 0x3f, 0xff, 0xff, 0xff, 0xff, 0x0f])]);
    }
  }
}

const ODD_STRINGS = [
  '',
  'x'.repeat(70),
  '../../etc/passwd',
  'conv1',
  '0-1',
  'fuzz',
  'ünïcødé',
  'a\u0000b',
  ' ',
  '-',
];
const ODD_NUMBERS = [0, 1, 2, 255, 2 ** 31, 2 ** 32 - 1, 2 ** 53 - 1, 1e12];

/**
 * Structure-aware mutation: decode a valid message, replace one leaf (string, number, bytes) or
 * reshape one array (drop, duplicate, empty) somewhere in the tree, encode again. This reaches the
 * handlers' validation, which byte-level mutation mostly cannot (most bit flips stop decoding).
 */
export function mutateFields(method: RawMethod, seed: Buffer, rand: () => number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const tree = method.decode(seed) as unknown;
  // Collect every (parent, key) slot in the tree.
  const slots: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const walk = (node: unknown) => {
    if (Buffer.isBuffer(node) || node === null || typeof node !== 'object') return;
    const entries = Array.isArray(node) ? node.map((v, i) => [i, v] as const) : Object.entries(node);
    for (const [k, v] of entries) {
      slots.push({ parent: node as Record<string, unknown>, key: k });
      walk(v);
    }
  };
  walk(tree);
  for (let edits = 1 + Math.floor(rand() * 3); edits > 0 && slots.length > 0; edits--) {
    const { parent, key } = pick(slots);
    const old = (parent as Record<string | number, unknown>)[key];
    let next: unknown = old;
    if (typeof old === 'string') next = pick(ODD_STRINGS);
    else if (typeof old === 'number') next = pick(ODD_NUMBERS);
    else if (typeof old === 'boolean') next = !old;
    else if (Buffer.isBuffer(old)) {
      const kind = Math.floor(rand() * 4);
      if (kind === 0) next = Buffer.alloc(Math.floor(rand() * 64));
      else if (kind === 1) next = Buffer.from(new Float32Array(old.length / 4).fill(Number.NaN).buffer);
      else if (kind === 2)
        next = Buffer.from(new Float32Array(old.length / 4).fill(Number.POSITIVE_INFINITY).buffer);
      else next = Buffer.concat([old, Buffer.alloc(4)]);
    } else if (Array.isArray(old)) {
      const kind = Math.floor(rand() * 3);
      if (kind === 0) next = [];
      else if (kind === 1) next = [...old, ...old];
      else next = old.slice(1);
    } else if (old && typeof old === 'object') {
      next = rand() < 0.5 ? {} : null;
    }
    (parent as Record<string | number, unknown>)[key] = next;
  }
  try {
    return method.encode(tree as object);
  } catch {
    return mutate(seed, rand);
  }
}
