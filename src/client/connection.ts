// Promise-based wrapper around the generated Federation client (proto/atomlens/v1): unary calls
// with deadlines, the Session stream, and the chunked probe-summary upload. No retry policy
// here — the SDK client (sdk-client.ts) decides when to reconnect.
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { FederationServiceClient } from '../generated/atomlens/v1/FederationService.js';
import type { FetchProbeSetResponse__Output } from '../generated/atomlens/v1/FetchProbeSetResponse.js';
import type { PushAtomsRequest } from '../generated/atomlens/v1/PushAtomsRequest.js';
import type { PushAtomsResponse__Output } from '../generated/atomlens/v1/PushAtomsResponse.js';
import type { PushProbeSummaryRequest } from '../generated/atomlens/v1/PushProbeSummaryRequest.js';
import type { PushProbeSummaryResponse__Output } from '../generated/atomlens/v1/PushProbeSummaryResponse.js';
import type { RegisterRequest } from '../generated/atomlens/v1/RegisterRequest.js';
import type { RegisterResponse__Output } from '../generated/atomlens/v1/RegisterResponse.js';
import type { SessionRequest } from '../generated/atomlens/v1/SessionRequest.js';
import type { SessionResponse__Output } from '../generated/atomlens/v1/SessionResponse.js';
import { loadAtomlensProto } from '../shared/proto.js';
import { encodeFloat32 } from '../shared/tensor.js';
import type { ClientIdentity } from './identity.js';

/**
 * Largest probe-summary payload per chunk: 1 MiB minus room for the chunk's other fields.
 * @internal exported for its tests
 */
export const MAX_CHUNK_DATA_BYTES = 1024 * 1024 - 4096;

export interface ConnectionOptions {
  /** HOST:PORT of the coordinator. */
  address: string;
  /** Channel credentials; insecure (plaintext) when absent. The hook for TLS. */
  credentials?: grpc.ChannelCredentials;
  /** Deadline of each unary call, ms (default 15 s). */
  callTimeoutMs?: number;
  /** Extra gRPC channel options (e.g. the channel's own reconnect backoff). */
  channelOptions?: grpc.ChannelOptions;
  /**
   * This client's credential: Register sends it along with an enrolment secret (the coordinator
   * binds the client id to it at the first enrolment and asks for it at every later one).
   */
  identity?: ClientIdentity;
}

/**
 * gRPC status codes worth retrying (after a backoff): the coordinator is not there right now,
 * did not answer in time, or is over a limit for the moment. Every other code is an answer that
 * the same request will get again.
 *
 * CANCELLED is among them because grpc-js reports a call sent on a connection the coordinator was
 * closing (a coordinator stopping or restarting) as CANCELLED rather than UNAVAILABLE, depending
 * on which side noticed the close first. The client's own cancellations happen only when it is
 * closed or its signal aborts, and every retry loop stops on those before retrying.
 */
const TRANSIENT = new Set<number>([
  grpc.status.UNAVAILABLE,
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.CANCELLED,
]);

/** True for a transient status, and for failures that carry no status (the network itself). */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: number } | null)?.code;
  return typeof code === 'number' ? TRANSIENT.has(code) : true;
}

export function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: number } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export interface SessionHandlers {
  onMessage(message: SessionResponse__Output): void;
  /** The stream ended (error or clean end). Called once. */
  onClose(err: Error | undefined): void;
}

export interface SessionHandle {
  send(message: SessionRequest): void;
  close(): void;
}

export class FederationConnection {
  readonly address: string;
  private readonly client: FederationServiceClient;
  private readonly callTimeoutMs: number;
  private readonly identity: ClientIdentity | undefined;
  private token = '';

  constructor(options: ConnectionOptions) {
    const proto = loadAtomlensProto();
    this.address = options.address;
    this.callTimeoutMs = options.callTimeoutMs ?? 15_000;
    this.identity = options.identity;
    this.client = new proto.atomlens.v1.FederationService(
      options.address,
      options.credentials ?? grpc.credentials.createInsecure(),
      // Keepalive pings notice a vanished coordinator even while the session is idle.
      { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000, ...options.channelOptions },
    );
  }

  /** Bearer token from Register, sent as `authorization` metadata on later calls. */
  setToken(token: string): void {
    this.token = token;
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  private deadline(): Date {
    return new Date(Date.now() + this.callTimeoutMs);
  }

  /** Register; with an enrolment secret, the identity's credential goes along (unless given). */
  register(request: RegisterRequest): Promise<RegisterResponse__Output> {
    const withCredential =
      request.enrollmentSecret && !request.clientCredential?.length && this.identity
        ? { ...request, clientCredential: this.identity.credential() }
        : request;
    return new Promise((resolve, reject) => {
      this.client.register(withCredential, this.metadata(), { deadline: this.deadline() }, (err, res) =>
        err || !res ? reject(err ?? new Error('empty Register response')) : resolve(res),
      );
    });
  }

  pushAtoms(request: PushAtomsRequest): Promise<PushAtomsResponse__Output> {
    return new Promise((resolve, reject) => {
      this.client.pushAtoms(request, this.metadata(), { deadline: this.deadline() }, (err, res) =>
        err || !res ? reject(err ?? new Error('empty PushAtoms response')) : resolve(res),
      );
    });
  }

  /** Opens the long-lived Session stream. */
  openSession(handlers: SessionHandlers): SessionHandle {
    const call = this.client.session(this.metadata());
    let closed = false;
    const finish = (err: Error | undefined) => {
      if (closed) return;
      closed = true;
      handlers.onClose(err);
    };
    call.on('data', (message: SessionResponse__Output) => handlers.onMessage(message));
    call.on('error', (err: Error) => finish(err));
    call.on('end', () => finish(undefined));
    call.on('close', () => finish(undefined));
    return {
      send(message) {
        if (!closed) call.write(message);
      },
      close() {
        if (closed) return;
        closed = true;
        call.end();
        call.cancel();
      },
    };
  }

  /** Streams probe-summary chunks (in order) and resolves with the coordinator's answer. */
  pushProbeSummary(
    chunks: Iterable<PushProbeSummaryRequest>,
    timeoutMs?: number,
  ): Promise<PushProbeSummaryResponse__Output> {
    return new Promise((resolve, reject) => {
      const call = this.client.pushProbeSummary(
        this.metadata(),
        { deadline: new Date(Date.now() + (timeoutMs ?? this.callTimeoutMs)) },
        (err, res) =>
          err || !res ? reject(err ?? new Error('empty PushProbeSummary response')) : resolve(res),
      );
      const iterator = chunks[Symbol.iterator]();
      const pump = () => {
        for (;;) {
          const next = iterator.next();
          if (next.done) {
            call.end();
            return;
          }
          // Respect back-pressure: wait for 'drain' when the write buffer is full.
          if (!call.write(next.value)) {
            call.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
  }

  /**
   * Downloads the operator's probe set (FetchProbeSet): the chunks in order, concatenated.
   * The caller verifies the bytes against the template's SHA-256.
   */
  fetchProbeSet(clientId: string, sha256: string, timeoutMs?: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const call = this.client.fetchProbeSet({ clientId, sha256, offset: 0 }, this.metadata(), {
        deadline: new Date(Date.now() + (timeoutMs ?? this.callTimeoutMs)),
      });
      const parts: Buffer[] = [];
      let received = 0;
      let total = -1;
      call.on('data', (chunk: FetchProbeSetResponse__Output) => {
        if (Number(chunk.offset) !== received) {
          call.cancel();
          reject(new Error(`probe set chunk at offset ${String(chunk.offset)}, expected ${received}`));
          return;
        }
        total = Number(chunk.totalBytes);
        parts.push(Buffer.from(chunk.data));
        received += chunk.data.length;
      });
      call.on('error', reject);
      call.on('end', () => {
        if (received !== total)
          reject(new Error(`probe set download ended at ${received} of ${total} bytes`));
        else resolve(Buffer.concat(parts, received));
      });
    });
  }

  /** Resolves when the channel is connected, rejects after timeoutMs. */
  waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.client.waitForReady(new Date(Date.now() + timeoutMs), (err) => (err ? reject(err) : resolve()));
    });
  }

  close(): void {
    this.client.close();
  }
}

/** Splits one layer's Gram matrix (or its factor, with header.factorRank) into PushProbeSummaryRequest chunks of at most MAX_CHUNK_DATA_BYTES. */
export function* gramChunks(
  header: Omit<PushProbeSummaryRequest, 'offset' | 'data'>,
  gram: Float32Array,
  maxBytes = MAX_CHUNK_DATA_BYTES,
): Generator<PushProbeSummaryRequest> {
  // Little-endian float32 on every host (proto: Tensor conventions).
  const bytes = encodeFloat32(gram, [gram.length]).data;
  const step = Math.max(4, maxBytes - (maxBytes % 4));
  if (bytes.length === 0) {
    yield { ...header, offset: 0, data: Buffer.alloc(0) };
    return;
  }
  for (let offset = 0; offset < bytes.length; offset += step) {
    yield { ...header, offset, data: bytes.subarray(offset, Math.min(bytes.length, offset + step)) };
  }
}

/**
 * Whether `address` (HOST:PORT, [IPv6]:PORT) completes a TLS handshake within `timeoutMs`: a
 * plaintext client failing to connect asks this once, so that a coordinator that speaks TLS is
 * named at once instead of after the whole reconnect budget. The certificate is not checked (no
 * data is sent): the answer only picks the message.
 */
export function speaksTls(address: string, timeoutMs = 2_000): Promise<boolean> {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(address);
  if (!match) return Promise.resolve(false);
  const host = match[1] ?? match[2]!;
  const port = Number(match[3]);
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      ...(isIP(host) ? {} : { servername: host }),
    });
    const done = (answer: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/**
 * A status message a person can read: grpc-js's connection boilerplate and timestamps removed,
 * and OpenSSL's error codes replaced by what they mean and the flag that fixes them.
 */
export function readableDetails(details: string): string {
  if (
    /certificate verify failed|unable to (get local issuer|verify)|self[- ]signed certificate/i.test(details)
  ) {
    return "TLS: the coordinator's certificate is not signed by the CA given with --ca";
  }
  if (/Hostname\/IP does not match|altnames|ERR_TLS_CERT_ALTNAME_INVALID/i.test(details)) {
    return "TLS: the coordinator's certificate is not for this address (connect by a name in its SAN, or re-issue it)";
  }
  if (/wrong version number|packet length too long|http_request/i.test(details)) {
    return 'TLS: the coordinator does not speak TLS on this port (drop --ca, or check the port)';
  }
  const cleaned = details
    .replace(/^No connection established\. Last error: /, '')
    .replace(/\s*\(\d{4}-\d{2}-\d{2}T[\d:.]+Z\)/g, '')
    .replace(/\.?\s*Resolution note:\s*$/, '')
    .replace(/\berror:[0-9A-F]{8}:[^:]*:[^:]*:/g, '')
    .trim();
  return cleaned || details;
}
