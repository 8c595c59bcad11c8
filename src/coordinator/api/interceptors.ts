// What every gRPC call goes through, as grpc-js server interceptors, outermost first:
//   status         — internal failures logged and answered with a generic INTERNAL, then
//                    requests and handling time counted by method and final status;
//   authorisation  — the hook, run when a call starts (from its metadata, before any handler
//                    runs: a stream is refused before its first message) and again for each
//                    request message that names the client the call acts for.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../shared/log.js';
import { type Authorize, boundMessage, correlationId, type RpcError, statusName } from '../calls.js';
import type { CoordinatorMetrics } from '../metrics.js';
import { type CallStatus, internalFailure, statusError } from './rpc.js';

/** How the server treats one RPC. */
export interface MethodPolicy {
  /** Short service name for labels and the hook: "Federation", "Operator", "Health". */
  service: string;
  method: string;
  /** false: not passed through the authorisation hook (Register: enrolment is its own check). */
  authorize: boolean;
  /**
   * The client a request message acts for (checked by the hook for that message), given the
   * message and its index in the call; undefined when the message names none.
   */
  // biome-ignore lint/suspicious/noExplicitAny: messages are the decoded request of any RPC
  actsFor?: (message: any, index: number) => string | undefined;
  /**
   * Check every later message for the client an earlier one named (Session: each heartbeat
   * for the hello's client), so that a token revoked or expired while a long-lived stream is
   * open ends that stream at its next message.
   */
  recheckEachMessage?: boolean;
}

/** Policies by method path (`/atomlens.v1.FederationService/Register`). */
export type MethodPolicies = ReadonlyMap<string, MethodPolicy>;

/** A path no policy describes is still labelled and authorised, with its names from the path. */
function policyOf(policies: MethodPolicies, path: string): MethodPolicy {
  const known = policies.get(path);
  if (known) return known;
  const [, service = '', method = ''] = path.split('/');
  return { service: service.split('.').pop() ?? service, method, authorize: true };
}

const labelOf = (p: MethodPolicy) => `${p.service}/${p.method}`;

/**
 * Error mapping and metrics, in one interceptor (one layer fewer on every call):
 *
 * Internal failures (handler errors that are not an RpcError, and handlers that threw, which
 * grpc-js answers with UNKNOWN) are logged with their stack under a correlation id and answered
 * with INTERNAL, a generic message and that id: no internal text reaches the caller. Every other
 * status message is cut to STATUS_MESSAGE_MAX_CHARS, whoever wrote it.
 *
 * Then every call is counted by the status it ends with and its duration observed (streams: until
 * they end). A call that ends without a status from this server — the client cancelled, the
 * deadline passed, grpc-js refused a message itself — counts as CANCELLED.
 */
export function statusInterceptor(
  metrics: CoordinatorMetrics,
  logger: Logger,
  policies: MethodPolicies,
): grpc.ServerInterceptor {
  return (definition, call) => {
    const method = labelOf(policyOf(policies, definition.path));
    const started = performance.now();
    let ended = false;
    const observe = (code: grpc.status) => {
      if (ended) return;
      ended = true;
      metrics.grpcRequests.inc({ method, code: statusName(code) });
      metrics.grpcDuration.observe({ method }, (performance.now() - started) / 1000);
    };
    const responder = new grpc.ResponderBuilder()
      .withStart((next) =>
        next(new grpc.ServerListenerBuilder().withOnCancel(() => observe(grpc.status.CANCELLED)).build()),
      )
      .withSendStatus((status: CallStatus, next) => {
        const mapped = publicStatus(status, method, logger);
        observe(mapped.code);
        next(mapped);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}

/** The status a caller may see: internal failures become a generic INTERNAL, messages bounded. */
function publicStatus(status: CallStatus, method: string, logger: Logger): CallStatus {
  const failure = internalFailure(status);
  if (!failure && status.code !== grpc.status.UNKNOWN) {
    return status.details === undefined ? status : { ...status, details: boundMessage(status.details) };
  }
  const error = failure ? ((failure.error as Error)?.stack ?? String(failure.error)) : status.details;
  const id = correlationId();
  logger.error('handler failed', { method, error, correlationId: id });
  return {
    code: grpc.status.INTERNAL,
    details: `internal error in ${method} (correlation id ${id}); the coordinator's log has the details`,
    metadata: new grpc.Metadata(),
  };
}

/**
 * Runs the authorisation hook when a call's metadata arrives and for every request message that
 * names the client it acts for. A refusal ends the call with the hook's status at once: the
 * handler never sees the refused metadata or message.
 */
export function authorizationInterceptor(
  authorize: Authorize,
  policies: MethodPolicies,
): grpc.ServerInterceptor {
  return (definition, call) => {
    const policy = policyOf(policies, definition.path);
    if (!policy.authorize) return new grpc.ServerInterceptingCall(call);
    let metadata = new grpc.Metadata();
    let refused = false;
    let index = 0;
    let actingFor: string | undefined;
    const check = (clientId: string | undefined): RpcError | undefined =>
      authorize({
        service: policy.service,
        method: policy.method,
        clientId,
        call: { metadata, getPeer: () => call.getPeer(), getAuthContext: () => call.getAuthContext() },
      });
    /** The hook's verdict; a hook that throws refuses the call as an internal failure. */
    const allowed = (clientId: string | undefined): boolean => {
      let refusal: CallStatus | undefined;
      try {
        const denied = check(clientId);
        if (denied) refusal = { code: denied.code, details: denied.message, metadata: new grpc.Metadata() };
      } catch (err) {
        refusal = statusError(err);
      }
      if (!refusal) return true;
      refused = true;
      intercepting.sendStatus(refusal);
      return false;
    };
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((received, next) => {
        metadata = received;
        if (allowed(undefined)) next(received);
      })
      .withOnReceiveMessage((message, next) => {
        if (refused) return;
        const named = policy.actsFor?.(message, index++);
        if (named !== undefined) actingFor = named;
        const clientId = named ?? (policy.recheckEachMessage ? actingFor : undefined);
        if (clientId === undefined || allowed(clientId)) next(message);
      })
      .withOnReceiveHalfClose((next) => {
        if (!refused) next();
      })
      .build();
    const intercepting = new grpc.ServerInterceptingCall(
      call,
      new grpc.ResponderBuilder().withStart((next) => next(listener)).build(),
    );
    return intercepting;
  };
}
