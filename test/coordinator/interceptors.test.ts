// What every gRPC call goes through, observed from real clients: the authorisation hook runs when
// a call starts (a stream without credentials is refused before it sends anything) and for each
// message naming a client; internal failures reach callers only as a generic INTERNAL and reach
// the log with their stack; every call is counted by its final status, refusals included.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CallContext, RpcError } from '../../src/coordinator/calls.js';
import type { AnalysisFactory } from '../../src/coordinator/level1/types.js';
import type { PushProbeSummaryResponse__Output } from '../../src/generated/atomlens/v1/PushProbeSummaryResponse.js';
import type { Logger } from '../../src/shared/log.js';
import { buildTemplate } from '../../src/shared/template.js';
import {
  expectStatus,
  type Harness,
  pushRequest,
  randomAtoms,
  rpc,
  startHarness,
  waitFor,
} from './helpers.js';

const template = buildTemplate();

/** A logger that keeps what it is given. */
function recordingLogger(lines: { level: string; msg: string; fields?: Record<string, unknown> }[]): Logger {
  const logger: Logger = {
    debug: (msg, fields) => lines.push({ level: 'debug', msg, ...(fields ? { fields } : {}) }),
    info: (msg, fields) => lines.push({ level: 'info', msg, ...(fields ? { fields } : {}) }),
    warn: (msg, fields) => lines.push({ level: 'warn', msg, ...(fields ? { fields } : {}) }),
    error: (msg, fields) => lines.push({ level: 'error', msg, ...(fields ? { fields } : {}) }),
    child: () => logger,
  };
  return logger;
}

function withToken(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

async function counted(h: Harness, method: string, code: string): Promise<number> {
  const metric = await h.running.metrics.grpcRequests.get();
  return metric.values.find((v) => v.labels.method === method && v.labels.code === code)?.value ?? 0;
}

describe('gRPC interceptors', () => {
  let h: Harness;
  const seen: string[] = [];
  const logged: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
  let slowStarted = false;
  const failing: AnalysisFactory = () => ({
    async request(req) {
      if (req.reason === 'slow') {
        slowStarted = true;
        await new Promise((resolve) => setTimeout(resolve, 1_500));
      }
      throw new Error('disk on fire under /var/lib/secret-path');
    },
    listReports: async () => {
      throw new Error('database file /var/lib/secret-path is corrupt');
    },
    getReport: async () => undefined,
  });

  beforeAll(async () => {
    h = await startHarness({
      analysis: failing,
      extra: {
        logger: recordingLogger(logged),
        authorize: (ctx: CallContext) => {
          seen.push(`${ctx.service}/${ctx.method}:${ctx.clientId ?? ''}`);
          if (ctx.clientId === 'explode') throw new Error('hook bug with internal detail');
          if (ctx.call.metadata.get('authorization')[0] !== 'Bearer ok') {
            return new RpcError(grpc.status.UNAUTHENTICATED, 'token required');
          }
          return ctx.clientId === 'mallory'
            ? new RpcError(grpc.status.PERMISSION_DENIED, 'not you')
            : undefined;
        },
      },
    });
    await rpc((cb) => h.fed.Register({ clientId: 'zed', tasks: [{ taskId: 't', classes: [1] }] }, cb));
  });
  afterAll(async () => {
    await h?.close();
  });

  it('refuses a Session without credentials at its start, before any message, and counts it', async () => {
    const before = seen.length;
    const session = h.fed.Session(new grpc.Metadata());
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      session.on('error', resolve);
      session.on('data', () => undefined);
    });
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(err.details).toBe('token required');
    expect(seen.slice(before)).toEqual(['Federation/Session:']);
    expect(h.running.sessions.connectedCount()).toBe(0);
    expect(await counted(h, 'Federation/Session', 'UNAUTHENTICATED')).toBe(1);
  });

  it('refuses a probe upload without credentials before its first chunk', async () => {
    const before = seen.length;
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      const call = h.fed.PushProbeSummary(
        new grpc.Metadata(),
        (e: grpc.ServiceError | null, r?: PushProbeSummaryResponse__Output) =>
          e ? resolve(e) : reject(new Error(`accepted: ${JSON.stringify(r)}`)),
      );
      // Nothing is written; the call stays open until the server answers.
      void call;
    });
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(seen.slice(before)).toEqual(['Federation/PushProbeSummary:']);
  });

  it('checks the client a Session hello names, and lets the named client in', async () => {
    const refused = h.fed.Session(withToken('ok'));
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      refused.on('error', resolve);
      refused.on('data', () => undefined);
      refused.write({ hello: { clientId: 'mallory' } });
    });
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
    expect(seen).toContain('Federation/Session:mallory');
    expect(h.running.sessions.connectedCount()).toBe(0);

    const accepted = h.fed.Session(withToken('ok'));
    accepted.on('data', () => undefined);
    accepted.on('error', () => undefined);
    accepted.write({ hello: { clientId: 'zed' } });
    await waitFor(() => h.running.sessions.connectedCount() === 1, 5_000, 'the session');
    accepted.cancel();
    await waitFor(() => h.running.sessions.connectedCount() === 0, 5_000, 'the session to close');
    await waitFor(() => seen.includes('Federation/Session:zed'), 1_000, 'the hello check');
  });

  it('counts a call the client cancels before the server answers as CANCELLED', async () => {
    const call = h.op.RunAnalysis({ models: [], reason: 'slow' }, withToken('ok'));
    call.on('data', () => undefined);
    const ended = new Promise<grpc.ServiceError>((resolve) => call.on('error', resolve));
    await waitFor(() => slowStarted, 5_000, 'the analysis to start');
    call.cancel();
    expect((await ended).code).toBe(grpc.status.CANCELLED);
    await expect.poll(() => counted(h, 'Operator/RunAnalysis', 'CANCELLED')).toBe(1);
  });

  it('checks the client a PushAtoms request names before the handler runs', async () => {
    const req = pushRequest(template, 'mallory', 't', 1, randomAtoms(template, 1));
    await expectStatus(
      rpc((cb) => h.fed.PushAtoms(req, withToken('ok'), cb)),
      grpc.status.PERMISSION_DENIED,
      /not you/,
    );
    expect(await h.running.storage.countUploads()).toBe(0);
    expect(await counted(h, 'Federation/PushAtoms', 'PERMISSION_DENIED')).toBe(1);
  });

  it('answers a hook that throws with a generic INTERNAL and logs the cause', async () => {
    const req = pushRequest(template, 'explode', 't', 1, randomAtoms(template, 2));
    const err = (await rpc((cb) => h.fed.PushAtoms(req, withToken('ok'), cb)).catch(
      (e) => e,
    )) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).not.toMatch(/hook bug/);
    expect(logged.some((l) => l.level === 'error' && String(l.fields?.error).includes('hook bug'))).toBe(
      true,
    );
  });

  it('turns a unary handler failure into INTERNAL without its text, logs the stack, counts it', async () => {
    const err = (await rpc((cb) => h.op.ListReports({}, withToken('ok'), cb)).catch(
      (e) => e,
    )) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.INTERNAL);
    const id =
      /^internal error in Operator\/ListReports \(correlation id ([0-9a-f]{12})\); the coordinator's log has the details$/.exec(
        err.details,
      )?.[1];
    expect(id, err.details).toBeDefined();
    const line = logged.find(
      (l) => l.msg === 'handler failed' && l.fields?.method === 'Operator/ListReports',
    );
    expect(line?.fields?.correlationId).toBe(id);
    expect(String(line?.fields?.error)).toMatch(/database file \/var\/lib\/secret-path is corrupt\n\s+at /);
    expect(await counted(h, 'Operator/ListReports', 'INTERNAL')).toBe(1);
  });

  it('does the same for a server stream', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
      const call = h.op.RunAnalysis({ models: [], reason: 'x' }, withToken('ok'));
      call.on('data', () => undefined);
      call.on('error', resolve);
      call.on('end', () => reject(new Error('the stream ended without an error')));
    });
    expect(err.code).toBe(grpc.status.INTERNAL);
    expect(err.details).not.toMatch(/disk on fire|secret-path/);
    expect(logged.some((l) => String(l.fields?.error).includes('disk on fire'))).toBe(true);
    await expect.poll(() => counted(h, 'Operator/RunAnalysis', 'INTERNAL')).toBe(1);
  });

  it('never passes Register through the hook', () => {
    expect(seen.some((s) => s.startsWith('Federation/Register'))).toBe(false);
  });
});
