// The handler side of error mapping. grpc-js handlers answer through callbacks and stream events;
// these settle a handler's promise on its call. An RpcError becomes its status and message. Any
// other failure is internal: the status carries a generic message, and the failure itself is
// kept for the error interceptor (interceptors.ts), which logs it. Its text never reaches callers.
import * as grpc from '@grpc/grpc-js';
import { RpcError } from '../calls.js';
import { StorageBusyError, StorageClosedError } from '../storage/types.js';

/** How long a client refused for a full write queue is told to wait before retrying. */
const STORAGE_BUSY_RETRY_MS = 1000;

/** Internal failures by the trailing metadata object of the status they were answered with. */
const internalFailures = new WeakMap<grpc.Metadata, unknown>();

/** A status as interceptors see it (grpc-js does not export the type by name). */
export type CallStatus = Parameters<grpc.FullResponder['sendStatus']>[0];

type StatusError = Error & { code: grpc.status; details: string; metadata: grpc.Metadata };

/** The status error a handler failure is answered with. */
export function statusError(err: unknown): StatusError {
  const metadata = new grpc.Metadata();
  if (err instanceof StorageBusyError) {
    return statusError(
      new RpcError(
        grpc.status.RESOURCE_EXHAUSTED,
        `the coordinator has ${err.queued} writes waiting to be stored (storage.maxQueuedWrites is ${err.limit}); ` +
          `nothing of this request was stored: retry in ${STORAGE_BUSY_RETRY_MS} ms`,
        STORAGE_BUSY_RETRY_MS,
      ),
    );
  }
  if (err instanceof StorageClosedError) {
    // A call that raced the shutdown: the client retries against the next instance.
    return statusError(new RpcError(grpc.status.UNAVAILABLE, 'the coordinator is shutting down'));
  }
  if (err instanceof RpcError) {
    // The standard gRPC retry hint: grpc clients with a retry policy wait this long.
    if (err.retryAfterMs !== undefined) metadata.set('grpc-retry-pushback-ms', String(err.retryAfterMs));
    return Object.assign(new Error(err.message), { code: err.code, details: err.message, metadata });
  }
  internalFailures.set(metadata, err);
  return Object.assign(new Error('internal error'), {
    code: grpc.status.INTERNAL,
    details: 'internal error',
    metadata,
  });
}

/** The internal failure a status was made from by statusError, if it was. */
export function internalFailure(status: CallStatus): { error: unknown } | undefined {
  const metadata = status.metadata;
  return metadata && internalFailures.has(metadata) ? { error: internalFailures.get(metadata) } : undefined;
}

/** Unary and client-streaming calls: the response, or the failure (thrown or rejected) as a status. */
export function reply<Res>(work: () => Res | Promise<Res>, callback: grpc.sendUnaryData<Res>): void {
  Promise.resolve()
    .then(work)
    .then(
      (response) => callback(null, response),
      (err: unknown) => callback(statusError(err)),
    );
}

/** Server-streaming calls: `work` writes; the call ends when it resolves, or fails with it. */
export function endStream(
  work: () => Promise<void>,
  call: grpc.ServerWritableStream<unknown, unknown>,
): void {
  Promise.resolve()
    .then(work)
    .then(
      () => call.end(),
      (err: unknown) => call.emit('error', statusError(err)),
    );
}
