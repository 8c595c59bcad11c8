// What every part of the coordinator shares about a call: the error that becomes a gRPC status
// (thrown by federation, validation, queries and auth alike) and what an authorisation hook sees.
// It sits at the coordinator's root so that the roles below it (api, auth, federation, …) can
// all use it without importing one another.
import * as grpc from '@grpc/grpc-js';

/** An error that becomes a gRPC status: the message is what the caller sees. */
export class RpcError extends Error {
  constructor(
    readonly code: grpc.status,
    message: string,
  ) {
    super(message);
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
