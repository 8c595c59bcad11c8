// gRPC server: both services of proto/atomlens/v1/atomlens.proto on one port. Handlers decode,
// delegate to FederationCore / OperatorQueries / the AnalysisService, and map errors to status
// codes (rpc.ts). TLS and authentication plug in through `credentials` and `authorize`.
import * as grpc from '@grpc/grpc-js';
import type { FederationServiceHandlers } from '../../generated/atomlens/v1/FederationService.js';
import type { ListReportsResponse } from '../../generated/atomlens/v1/ListReportsResponse.js';
import type { OperatorServiceHandlers } from '../../generated/atomlens/v1/OperatorService.js';
import type { PushProbeSummaryRequest__Output } from '../../generated/atomlens/v1/PushProbeSummaryRequest.js';
import type { RunAnalysisResponse as WireProgress } from '../../generated/atomlens/v1/RunAnalysisResponse.js';
import type { SessionRequest__Output } from '../../generated/atomlens/v1/SessionRequest.js';
import type { SessionResponse } from '../../generated/atomlens/v1/SessionResponse.js';
import { loadAtomlensProto } from '../../shared/proto.js';
import { templateToWire } from '../../shared/template.js';
import { ANALYSIS_STAGE, ANALYSIS_TRIGGER } from '../../shared/wire-enums.js';
import { type Authorize, failedPrecondition, invalid, notFound, RpcError, unimplemented } from '../calls.js';
import type { CoordinatorConfig } from '../config.js';
import { type FederationCore, ProbeIntake } from '../federation/federation.js';
import type { SessionHandle, SessionRegistry } from '../federation/sessions.js';
import { checkClientId, checkTaskId, validateRegister } from '../federation/validation.js';
import {
  type AnalysisProgress,
  AnalysisRequestError,
  type AnalysisRequestInput,
  type AnalysisService,
} from '../level1/types.js';
import type { Storage } from '../storage/types.js';
import type { OperatorQueries } from './operator-queries.js';
import {
  decodePageToken,
  encodePageToken,
  type PageLimits,
  type PageRequest,
  pageSize,
} from './page-token.js';
import { authorizeCall, bidiStream, clientStream, type HandlerContext, serverStream, unary } from './rpc.js';

export interface ServerDeps {
  config: CoordinatorConfig;
  federation: FederationCore;
  operator: OperatorQueries;
  sessions: SessionRegistry;
  storage: Storage;
  analysis: AnalysisService | undefined;
  handler: HandlerContext;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  /** Default: insecure (plaintext); TLS credentials when the coordinator is configured with them. */
  credentials?: grpc.ServerCredentials;
  authorize?: Authorize;
}

/** Largest response we send (similarity matrices, reports with HTML). */
const MAX_SEND_BYTES = 256 * 1024 * 1024;

export function createGrpcServer(deps: ServerDeps): grpc.Server {
  const proto = loadAtomlensProto();
  const server = new grpc.Server({
    'grpc.max_receive_message_length': deps.config.limits.maxMessageBytes,
    'grpc.max_send_message_length': MAX_SEND_BYTES,
    // Transport-level liveness in addition to Session heartbeats: a dead peer is noticed even
    // while no application message is due.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
  });
  server.addService(proto.atomlens.v1.FederationService.service, federationHandlers(deps));
  server.addService(proto.atomlens.v1.OperatorService.service, operatorHandlers(deps));
  return server;
}

/** Binds and resolves with the port actually bound (port 0 = pick one). */
export function bindGrpcServer(server: grpc.Server, options: GrpcServerOptions): Promise<number> {
  const address = options.host.includes(':')
    ? `[${options.host}]:${options.port}`
    : `${options.host}:${options.port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, options.credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(new Error(`cannot listen for gRPC on ${address}: ${err.message}`));
      else resolve(port);
    });
  });
}

function federationHandlers(deps: ServerDeps): FederationServiceHandlers {
  const { federation, sessions, handler: ctx, config } = deps;
  // The template never changes while the server runs: encode α once.
  const template = templateToWire(federation.template);
  return {
    Register: unary(ctx, 'Federation', 'Register', 'none', async (req, call) => {
      const tasks = validateRegister(req, config.limits.maxTasksPerClient);
      const result = await federation.register({
        clientId: req.clientId,
        tasks,
        alphaFingerprint: req.alphaFingerprint,
        clientVersion: req.clientVersion,
        enrollmentSecret: req.enrollmentSecret,
        call,
      });
      return {
        template,
        fingerprintMatch: result.fingerprintMatch,
        progress: result.progress,
        token: result.token,
        heartbeatIntervalMs: sessions.heartbeatIntervalMs,
      };
    }),

    PushAtoms: unary(
      ctx,
      'Federation',
      'PushAtoms',
      (req) => req.clientId,
      async (req) => {
        const result = await federation.pushAtoms(req);
        return {
          duplicate: result.duplicate,
          round: result.round,
          hasDrift: result.drift !== undefined,
          drift: result.drift ?? 0,
        };
      },
    ),

    Session: bidiStream<SessionRequest__Output, SessionResponse>(
      ctx,
      'Federation',
      'Session',
      'none',
      (call) => runSession(call, federation, sessions, ctx),
    ),

    PushProbeSummary: clientStream(ctx, 'Federation', 'PushProbeSummary', 'none', (call) => {
      const intake = new ProbeIntake({
        sessions,
        storage: deps.storage,
        maxLayerBytes: config.limits.maxProbeLayerBytes,
        now: Date.now,
      });
      return consumeChunks(call, intake, (clientId) =>
        authorizeCall(ctx, { service: 'Federation', method: 'PushProbeSummary', call, clientId }),
      );
    }),
  };
}

/** Serialises chunk handling: each chunk is stored before the next is read. */
function consumeChunks(
  call: grpc.ServerReadableStream<PushProbeSummaryRequest__Output, unknown>,
  intake: ProbeIntake,
  authorize: (clientId: string) => void,
): Promise<{ layers: string[] }> {
  return new Promise((resolve, reject) => {
    let chain = Promise.resolve();
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      call.removeAllListeners('data');
      reject(err);
    };
    call.on('data', (c: PushProbeSummaryRequest__Output) => {
      call.pause();
      chain = chain
        .then(() => {
          if (failed) return;
          authorize(c.clientId);
          return intake.chunk(c);
        })
        .then(
          () => {
            call.resume();
          },
          (err) => fail(err),
        );
    });
    call.on('end', () => {
      chain.then(() => {
        if (failed) return;
        try {
          intake.finish();
          resolve({ layers: intake.completed });
        } catch (err) {
          fail(err);
        }
      });
    });
    call.on('error', (err) => fail(err));
  });
}

/**
 * One Session stream: the first message must be a hello from a registered client; every message
 * after it is a heartbeat (and may report a probe failure). Resolves with the final status.
 */
function runSession(
  call: grpc.ServerDuplexStream<SessionRequest__Output, SessionResponse>,
  federation: FederationCore,
  sessions: SessionRegistry,
  ctx: HandlerContext,
): Promise<grpc.status> {
  return new Promise((resolve) => {
    let handle: SessionHandle | undefined;
    let finished = false;
    const finish = (code: grpc.status) => {
      if (finished) return;
      finished = true;
      resolve(code);
    };
    const failWith = (err: RpcError) => {
      call.emit('error', Object.assign(new Error(err.message), { code: err.code, details: err.message }));
      finish(err.code);
    };
    call.on('data', (msg: SessionRequest__Output) => {
      if (finished) return;
      if (!handle) {
        if (msg.kind !== 'hello' || !msg.hello) {
          failWith(failedPrecondition('the first Session message must be a hello carrying the client_id'));
          return;
        }
        try {
          checkClientId(msg.hello.clientId, 'hello.client_id');
          authorizeCall(ctx, {
            service: 'Federation',
            method: 'Session',
            call,
            clientId: msg.hello.clientId,
          });
          federation.checkSessionHello(msg.hello.clientId);
        } catch (err) {
          failWith(err as RpcError);
          return;
        }
        handle = sessions.open(msg.hello.clientId, {
          send: (m) => {
            if (!finished && call.writable) call.write(m);
          },
          end: (reason) =>
            failWith(new RpcError(grpc.status.UNAVAILABLE, `session closed by the coordinator: ${reason}`)),
        });
        return;
      }
      sessions.heartbeat(handle);
      if (msg.kind === 'probeFailure' && msg.probeFailure) {
        sessions.probeFailed(handle.clientId, msg.probeFailure.requestId, msg.probeFailure.message);
      }
    });
    call.on('end', () => {
      if (handle) sessions.closed(handle, true);
      if (!finished) {
        call.end();
        finish(grpc.status.OK);
      }
    });
    call.on('cancelled', () => {
      if (handle) sessions.closed(handle, false, 'the client cancelled the stream or the connection broke');
      finish(grpc.status.CANCELLED);
    });
    call.on('error', () => {
      if (handle) sessions.closed(handle, false, 'stream error');
      finish(grpc.status.UNKNOWN);
    });
  });
}

function operatorHandlers(deps: ServerDeps): OperatorServiceHandlers {
  const { operator, analysis, handler: ctx } = deps;
  const needAnalysis = (what: string): AnalysisService => {
    if (!analysis) {
      throw unimplemented(
        `${what} needs the analysis service, which this coordinator was started without (level-1 analysis not configured)`,
      );
    }
    return analysis;
  };
  return {
    ListClients: unary(ctx, 'Operator', 'ListClients', 'start', async (req) => operator.listClients(req)),
    GetSimilarity: unary(ctx, 'Operator', 'GetSimilarity', 'start', async (req) =>
      operator.similarityResponse(req),
    ),
    GetDivergence: unary(ctx, 'Operator', 'GetDivergence', 'start', async () => operator.divergence()),
    GetModelHistory: unary(ctx, 'Operator', 'GetModelHistory', 'start', async (req) => operator.history(req)),

    RunAnalysis: serverStream(ctx, 'Operator', 'RunAnalysis', 'start', async (req, call) => {
      const service = needAnalysis('RunAnalysis');
      const input = analysisInput(req);
      let sawDone = false;
      const write = (p: AnalysisProgress) => {
        if (p.stage === 'done') sawDone = true;
        if (!call.cancelled && call.writable) call.write(wireProgress(p));
      };
      try {
        const { reportId } = await service.request(input, write);
        if (!sawDone) {
          write({ analysisId: '', stage: 'done', fraction: 1, message: 'report written', reportId });
        }
      } catch (err) {
        throw analysisError(err);
      }
    }),

    ListReports: unary(ctx, 'Operator', 'ListReports', 'start', async (req) => {
      const service = needAnalysis('ListReports');
      return listReportsPage(service, req);
    }),

    GetReport: unary(ctx, 'Operator', 'GetReport', 'start', async (req) => {
      const service = needAnalysis('GetReport');
      if (!req.reportId) throw invalid('report_id is required');
      const report = await service.getReport(req.reportId);
      if (!report) throw notFound(`no report '${req.reportId}'; ListReports shows the stored ones`);
      return { reportId: req.reportId, json: report.json, html: req.includeHtml ? report.html : '' };
    }),
  };
}

/** Validates and converts an AnalysisRequest (shared with the HTTP POST /analyses route). */
export function analysisInput(req: {
  models: { clientId: string; taskId: string }[];
  reason: string;
  probeDeadlineMs: number;
  probeSize: number;
}): AnalysisRequestInput {
  req.models.forEach((m, i) => {
    checkClientId(m.clientId, `models[${i}].client_id`);
    checkTaskId(m.taskId, `models[${i}].task_id`);
  });
  if (!Number.isInteger(req.probeDeadlineMs) || req.probeDeadlineMs < 0) {
    throw invalid('probe_deadline_ms must be a non-negative integer (0 = configured default)');
  }
  if (!Number.isInteger(req.probeSize) || req.probeSize < 0 || req.probeSize === 1 || req.probeSize > 4096) {
    throw invalid('probe_size must be 0 (template default) or an integer from 2 to 4096');
  }
  return {
    models: req.models.map((m) => ({ clientId: m.clientId, taskId: m.taskId })),
    reason: req.reason,
    ...(req.probeDeadlineMs > 0 ? { probeDeadlineMs: req.probeDeadlineMs } : {}),
    ...(req.probeSize > 0 ? { probeSize: req.probeSize } : {}),
  };
}

/** Maps an AnalysisService rejection to an RpcError. */
export function analysisError(err: unknown): RpcError | unknown {
  if (err instanceof RpcError) return err;
  if (err instanceof AnalysisRequestError) {
    const code = {
      invalid: grpc.status.INVALID_ARGUMENT,
      not_found: grpc.status.NOT_FOUND,
      unavailable: grpc.status.UNAVAILABLE,
      busy: grpc.status.RESOURCE_EXHAUSTED,
    }[err.code];
    return new RpcError(code, err.message);
  }
  return err;
}

/** ListReports: 50 reports a page unless asked otherwise, at most 1,000. */
export const LIST_REPORTS_PAGE: PageLimits = { defaultSize: 50, maxSize: 1000 };

/** One page of stored reports, newest first; the token carries the last report's sort key. */
async function listReportsPage(service: AnalysisService, req: PageRequest): Promise<ListReportsResponse> {
  const size = pageSize(req.pageSize, LIST_REPORTS_PAGE);
  const after = decodePageToken('ListReports', req.pageToken, ['number', 'string']);
  const before = after ? { createdAtMs: after[0] as number, reportId: after[1] as string } : undefined;
  // One more than the page, to know whether another page follows.
  const found = await service.listReports(size + 1, before);
  const page = found.slice(0, size);
  const last = page[page.length - 1];
  return {
    reports: page.map((r) => ({
      reportId: r.reportId,
      createdAtMs: r.createdAtMs,
      trigger: ANALYSIS_TRIGGER.isName(r.trigger)
        ? ANALYSIS_TRIGGER.toWire(r.trigger)
        : 'ANALYSIS_TRIGGER_UNSPECIFIED',
      models: r.models,
    })),
    nextPageToken:
      found.length > size && last ? encodePageToken('ListReports', [last.createdAtMs, last.reportId]) : '',
  };
}

function wireProgress(p: AnalysisProgress): WireProgress {
  return {
    analysisId: p.analysisId,
    stage: ANALYSIS_STAGE.toWire(p.stage),
    fraction: p.fraction,
    message: p.message,
    reportId: p.reportId ?? '',
  };
}
