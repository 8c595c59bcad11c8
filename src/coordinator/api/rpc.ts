// gRPC plumbing shared by both services: the wrapper that every handler goes through
// (authorisation hook, metrics, error mapping).
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../shared/log.js';
import { type AuthCall, type Authorize, type CallContext, RpcError, statusName } from '../calls.js';
import type { CoordinatorMetrics } from '../metrics.js';

export interface HandlerContext {
  metrics: CoordinatorMetrics;
  logger: Logger;
  authorize: Authorize | undefined;
}

/**
 * When a wrapper authorises: 'start' (no client id; Operator calls), 'none' (Register, or
 * streams whose handler authorises each message), or a function giving the client id from a
 * unary request.
 */
export type AuthorizeWhen<Req> = 'start' | 'none' | ((request: Req) => string);

/** Runs the authorisation hook; throws its RpcError. */
export function authorizeCall(ctx: HandlerContext, context: CallContext): void {
  const refused = ctx.authorize?.(context);
  if (refused) throw refused;
}

function toServiceError(err: unknown, logger: Logger, method: string): grpc.ServiceError {
  if (err instanceof RpcError) {
    return Object.assign(new Error(err.message), {
      code: err.code,
      details: err.message,
      metadata: new grpc.Metadata(),
    });
  }
  logger.error('handler failed', { method, error: (err as Error).stack ?? String(err) });
  const message = `internal error in ${method}: ${(err as Error).message ?? String(err)}`;
  return Object.assign(new Error(message), {
    code: grpc.status.INTERNAL,
    details: message,
    metadata: new grpc.Metadata(),
  });
}

function observe(ctx: HandlerContext, method: string, code: grpc.status, started: number): void {
  ctx.metrics.grpcRequests.inc({ method, code: statusName(code) });
  ctx.metrics.grpcDuration.observe({ method }, (performance.now() - started) / 1000);
}

function check<Req>(
  ctx: HandlerContext,
  service: string,
  method: string,
  when: AuthorizeWhen<Req>,
  call: AuthCall,
  request?: Req,
): RpcError | undefined {
  if (when === 'none' || !ctx.authorize) return undefined;
  const clientId = when === 'start' ? undefined : when(request as Req);
  return ctx.authorize({ service, method, call, clientId });
}

/** What a wrapper does with the handler's outcome once the call's metrics are recorded. */
interface Outcome<T> {
  /** The status the call ended with, for the metrics, when the handler resolved. */
  status(result: T): grpc.status;
  reply(result: T): void;
  fail(error: grpc.ServiceError): void;
}

/**
 * The part every wrapper shares: refuse the call if authorisation denies it, else run the
 * handler; record requests and duration by final status, then reply or fail the call.
 */
function settle<T>(
  ctx: HandlerContext,
  label: string,
  authorize: () => RpcError | undefined,
  handler: () => Promise<T>,
  outcome: Outcome<T>,
): void {
  const started = performance.now();
  const denied = authorize();
  const run = denied ? Promise.reject(denied) : handler();
  run.then(
    (result) => {
      observe(ctx, label, outcome.status(result), started);
      outcome.reply(result);
    },
    (err: unknown) => {
      const e = toServiceError(err, ctx.logger, label);
      observe(ctx, label, e.code, started);
      outcome.fail(e);
    },
  );
}

const ok = () => grpc.status.OK;

/** Wraps an async unary handler: errors → status, metrics per call. */
export function unary<Req, Res>(
  ctx: HandlerContext,
  service: string,
  method: string,
  when: AuthorizeWhen<Req>,
  handler: (request: Req, call: grpc.ServerUnaryCall<Req, Res>) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  const label = `${service}/${method}`;
  return (call, callback) =>
    settle(
      ctx,
      label,
      () => check(ctx, service, method, when, call, call.request),
      () => handler(call.request, call),
      { status: ok, reply: (response) => callback(null, response), fail: (e) => callback(e) },
    );
}

/** Wraps a server-streaming handler; the handler writes, the wrapper ends or errors the call. */
export function serverStream<Req, Res>(
  ctx: HandlerContext,
  service: string,
  method: string,
  when: AuthorizeWhen<Req>,
  handler: (request: Req, call: grpc.ServerWritableStream<Req, Res>) => Promise<void>,
): grpc.handleServerStreamingCall<Req, Res> {
  const label = `${service}/${method}`;
  return (call) =>
    settle(
      ctx,
      label,
      () => check(ctx, service, method, when, call, call.request),
      () => handler(call.request, call),
      { status: ok, reply: () => call.end(), fail: (e) => call.emit('error', e) },
    );
}

/** Wraps a client-streaming handler that resolves with the single response. */
export function clientStream<Req, Res>(
  ctx: HandlerContext,
  service: string,
  method: string,
  when: 'start' | 'none',
  handler: (call: grpc.ServerReadableStream<Req, Res>) => Promise<Res>,
): grpc.handleClientStreamingCall<Req, Res> {
  const label = `${service}/${method}`;
  return (call, callback) =>
    settle(
      ctx,
      label,
      () => check(ctx, service, method, when, call),
      () => handler(call),
      { status: ok, reply: (response) => callback(null, response), fail: (e) => callback(e) },
    );
}

/**
 * Wraps a bidirectional handler. The handler owns the stream and resolves with the status the
 * call ended with (OK, CANCELLED, …) for the metrics; a rejection ends the call with that error.
 */
export function bidiStream<Req, Res>(
  ctx: HandlerContext,
  service: string,
  method: string,
  when: 'start' | 'none',
  handler: (call: grpc.ServerDuplexStream<Req, Res>) => Promise<grpc.status>,
): grpc.handleBidiStreamingCall<Req, Res> {
  const label = `${service}/${method}`;
  return (call) =>
    settle(
      ctx,
      label,
      () => check(ctx, service, method, when, call),
      () => handler(call),
      { status: (code) => code, reply: () => {}, fail: (e) => call.emit('error', e) },
    );
}
