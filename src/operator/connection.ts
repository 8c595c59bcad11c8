// The operator side of the wire, shared by `atomlens status`, `atomlens report` and the demo:
// one way to dial the Operator service (plaintext or TLS, bearer token), one promise wrapper for
// unary calls, and one translation of gRPC failures into messages that say what to do.
import * as grpc from '@grpc/grpc-js';
import type { GetSimilarityRequest } from '../generated/atomlens/v1/GetSimilarityRequest.js';
import type { ModelDivergence__Output } from '../generated/atomlens/v1/ModelDivergence.js';
import type { OperatorServiceClient } from '../generated/atomlens/v1/OperatorService.js';
import { loadAtomlensProto } from '../shared/proto.js';
import { ANALYSIS_STAGE, ANALYSIS_TRIGGER, SIMILARITY_MEASURE } from '../shared/wire-enums.js';

export interface OperatorConnection {
  address: string;
  client: OperatorServiceClient;
  /** Carries the bearer token; pass it to every call. */
  metadata: grpc.Metadata;
  close(): void;
}

export interface OperatorDialOptions {
  token?: string;
  credentials?: grpc.ChannelCredentials;
}

/** Dials the Operator service (plaintext unless credentials are given). */
export function connectOperator(address: string, options: OperatorDialOptions = {}): OperatorConnection {
  const proto = loadAtomlensProto();
  const client = new proto.atomlens.v1.OperatorService(
    address,
    options.credentials ?? grpc.credentials.createInsecure(),
    // Reports with HTML pages and full similarity matrices exceed grpc-js's 4 MiB default.
    { 'grpc.max_receive_message_length': 256 * 1024 * 1024 },
  ) as OperatorServiceClient;
  const metadata = new grpc.Metadata();
  if (options.token) metadata.set('authorization', `Bearer ${options.token}`);
  return { address, client, metadata, close: () => client.close() };
}

/** One model's level-0 divergence as `status` and the demo show it. */
export interface ModelDivergenceView {
  clientId: string;
  taskId: string;
  round: number;
  divergence: number;
  drift: number;
}

export function modelDivergenceView(m: ModelDivergence__Output): ModelDivergenceView {
  return {
    clientId: m.model?.clientId ?? '',
    taskId: m.model?.taskId ?? '',
    round: m.round,
    divergence: m.divergence,
    drift: m.drift,
  };
}

/** An analysis stage as the word operators read ('probing', 'done', …). */
export function stageName(stage: string | number): string {
  return ANALYSIS_STAGE.fromWire(stage) ?? String(stage);
}

/** A report's trigger as the word operators read ('operator', 'drift', …). */
export function triggerName(trigger: string | number): string {
  return ANALYSIS_TRIGGER.fromWire(trigger) ?? 'unknown';
}

/** The GetSimilarity request for every model's latest round by atom cosine. */
export function latestAtomCosine(): GetSimilarityRequest {
  return { round: 0, measure: SIMILARITY_MEASURE.toWire('cosine'), taskIds: [] };
}

/**
 * Every item of a paginated list: asks for pages until next_page_token comes back empty.
 * `fetch` returns one page for a page_token.
 */
export async function allPages<T>(
  fetch: (pageToken: string) => Promise<{ items: T[]; nextPageToken: string }>,
): Promise<T[]> {
  const out: T[] = [];
  let token = '';
  do {
    const page = await fetch(token);
    out.push(...page.items);
    token = page.nextPageToken;
  } while (token !== '');
  return out;
}

/** A unary grpc-js call as a promise. */
export function unary<T>(fn: (cb: (err: grpc.ServiceError | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

/**
 * A failed Operator call, told in words that name the flag or setting to change. `unreachable`
 * marks failures to reach the coordinator at all (the CLI exits with a distinct code for them).
 */
export class OperatorCallError extends Error {
  constructor(
    message: string,
    readonly unreachable = false,
  ) {
    super(message);
    this.name = 'OperatorCallError';
  }
}

/** Turns a failed call into an OperatorCallError with a hint at the likely fix. */
export function operatorFailure(address: string, err: grpc.ServiceError): OperatorCallError {
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      return new OperatorCallError(
        `cannot reach the coordinator at ${address} (${err.details || err.message}); is it running, is this its gRPC port, and does it expect TLS (--ca)?`,
        true,
      );
    case grpc.status.DEADLINE_EXCEEDED:
      return new OperatorCallError(`the coordinator at ${address} did not answer in time (--timeout)`, true);
    case grpc.status.UNAUTHENTICATED:
    case grpc.status.PERMISSION_DENIED:
      return new OperatorCallError(
        `the coordinator at ${address} refused the call (${err.details}); pass an operator token with --token or ATOMLENS_OPERATOR_TOKEN`,
      );
    case grpc.status.UNIMPLEMENTED:
      return new OperatorCallError(
        `the coordinator at ${address} runs without the analysis service: ${err.details}`,
      );
    default:
      return new OperatorCallError(
        `coordinator at ${address} answered ${grpc.status[err.code]}: ${err.details}`,
      );
  }
}

/** Divergence for sorting: a model without peers (NaN) ranks last. */
const rankable = (v: number) => (Number.isFinite(v) ? v : Number.NEGATIVE_INFINITY);

/** Most divergent first; models without peers (NaN divergence) last. */
export function byDivergenceDesc(a: { divergence: number }, b: { divergence: number }): number {
  const x = rankable(a.divergence);
  const y = rankable(b.divergence);
  return x === y ? 0 : x > y ? -1 : 1;
}

/** Mean of the finite off-diagonal entries of a row-major n×n matrix; null when there are none. */
export function meanOffDiagonal(values: readonly number[], n: number): number | null {
  if (n < 2) return null;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      const v = values[i * n + j];
      if (i !== j && v !== undefined && Number.isFinite(v)) {
        sum += v;
        count++;
      }
    }
  }
  return count > 0 ? sum / count : null;
}
