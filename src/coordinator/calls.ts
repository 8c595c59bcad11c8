// What every part of the coordinator shares about a call: the error that becomes a gRPC status
// (thrown by federation, validation, queries and auth alike) and what an authorisation hook sees.
// It sits at the coordinator's root so that the roles below it (api, auth, federation, …) can
// all use it without importing one another.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';

/** Characters of a caller's input that a message quotes back; the rest becomes '…'. */
const ECHO_MAX_CHARS = 80;
/**
 * Longest status message, in characters. The message travels as percent-encoded HTTP/2
 * metadata, and gRPC clients built on C-core (Python, C++, Ruby, PHP) and Java refuse metadata
 * above 8 KiB: 512 characters stay below that even when every one is a 4-byte UTF-8 character
 * (12 bytes percent-encoded) — with room for the rest of the headers.
 * @internal exported for its tests
 */
export const STATUS_MESSAGE_MAX_CHARS = 512;

/** A caller's value quoted for a message: at most ECHO_MAX_CHARS characters, then '…'. */
export function quoteInput(value: string): string {
  const chars = [...value];
  return `'${chars.length > ECHO_MAX_CHARS ? `${chars.slice(0, ECHO_MAX_CHARS).join('')}…` : value}'`;
}

/**
 * Any message cut to STATUS_MESSAGE_MAX_CHARS: the one bound every status passes through
 * (RpcError's constructor and the server's error interceptor), whatever a message quotes.
 */
export function boundMessage(message: string): string {
  if (message.length <= STATUS_MESSAGE_MAX_CHARS) return message;
  const chars = [...message];
  if (chars.length <= STATUS_MESSAGE_MAX_CHARS) return message;
  return `${chars.slice(0, STATUS_MESSAGE_MAX_CHARS - 1).join('')}…`;
}

/** A short random id under which an internal failure is logged; the caller gets only the id. */
export function correlationId(): string {
  return randomBytes(6).toString('hex');
}

/** An error that becomes a gRPC status: the message (bounded) is what the caller sees. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
    /** When set, the status tells the caller to wait this long before retrying (grpc-retry-pushback-ms). */
    readonly retryAfterMs?: number,
  ) {
    super(boundMessage(message));
    this.name = 'RpcError';
  }
}

export const invalid = (message: string) => new RpcError(grpc.status.INVALID_ARGUMENT, message);
export const notFound = (message: string) => new RpcError(grpc.status.NOT_FOUND, message);
export const failedPrecondition = (message: string) => new RpcError(grpc.status.FAILED_PRECONDITION, message);
export const exhausted = (message: string) => new RpcError(grpc.status.RESOURCE_EXHAUSTED, message);
export const alreadyExists = (message: string) => new RpcError(grpc.status.ALREADY_EXISTS, message);
export const unimplemented = (message: string) => new RpcError(grpc.status.UNIMPLEMENTED, message);

export function statusName(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}

/** The parts of a grpc-js server call an authorisation check may look at. */
export interface AuthCall {
  metadata: grpc.Metadata;
  getPeer(): string;
  /** TLS details (peer certificate) when the connection is TLS. */
  getAuthContext?: grpc.ServerUnaryCall<unknown, unknown>['getAuthContext'];
}

/** What an authorisation hook sees for each call. */
export interface CallContext {
  /** "Federation", "Operator" or "Health". */
  service: string;
  method: string;
  call: AuthCall;
  /**
   * Undefined when the call starts (its metadata has arrived, no handler has run). Then, for each
   * request message that names the client the call acts for — the PushAtoms request's client_id,
   * the Session hello's, each PushProbeSummary chunk's — that client id.
   */
  clientId: string | undefined;
}

/**
 * Authorisation hook (bearer tokens in `authorization` metadata, mTLS identity), run by the gRPC
 * server's authorisation interceptor. Return an RpcError (UNAUTHENTICATED / PERMISSION_DENIED) to
 * refuse the call; undefined to let it through. It runs before any state is touched. Register is
 * not passed through it: enrolment is the `enroll` hook of FederationCore.
 */
export type Authorize = (ctx: CallContext) => RpcError | undefined;
