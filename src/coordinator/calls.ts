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
  /** "Federation" or "Operator". */
  service: string;
  method: string;
  call: AuthCall;
  /**
   * The client the call acts for: the request's client_id (PushAtoms), the hello's client_id
   * (Session, checked when the hello arrives) or each chunk's client_id (PushProbeSummary,
   * checked per chunk). Undefined for Operator calls.
   */
  clientId: string | undefined;
}

/**
 * Authorisation hook (bearer tokens in `authorization` metadata, mTLS identity). Return
 * an RpcError (UNAUTHENTICATED / PERMISSION_DENIED) to refuse the call; undefined to let it
 * through. It runs before any state is touched. Register is not passed through it: enrolment is
 * the `enroll` hook of FederationCore.
 */
export type Authorize = (ctx: CallContext) => RpcError | undefined;
