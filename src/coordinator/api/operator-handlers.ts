// OperatorService handlers: queries over the federation's state, and the level-1 analysis
// (RunAnalysis, reports). Every call needs an operator's credentials, checked by the server's
// authorisation interceptor when the call starts.
import * as grpc from '@grpc/grpc-js';
import type { ListReportsResponse } from '../../generated/atomlens/v1/ListReportsResponse.js';
import type { OperatorServiceHandlers } from '../../generated/atomlens/v1/OperatorService.js';
import type { RunAnalysisResponse as WireProgress } from '../../generated/atomlens/v1/RunAnalysisResponse.js';
import { ANALYSIS_STAGE, ANALYSIS_TRIGGER } from '../../shared/wire-enums.js';
import { invalid, notFound, quoteInput, RpcError, unimplemented } from '../calls.js';
import { checkClientId, checkLength, checkTaskId, FIELD_LIMITS } from '../federation/validation.js';
import {
  type AnalysisProgress,
  AnalysisRequestError,
  type AnalysisRequestInput,
  type AnalysisService,
} from '../level1/types.js';
import type { MethodPolicy } from './interceptors.js';
import type { OperatorQueries } from './operator-queries.js';
import {
  decodePageToken,
  encodePageToken,
  type PageLimits,
  type PageRequest,
  pageSize,
} from './page-token.js';
import { endStream, reply } from './rpc.js';

const operatorCall = (method: string): MethodPolicy => ({ service: 'Operator', method, authorize: true });

export const OPERATOR_POLICIES: Record<keyof OperatorServiceHandlers, MethodPolicy> = {
  ListClients: operatorCall('ListClients'),
  GetSimilarity: operatorCall('GetSimilarity'),
  GetDivergence: operatorCall('GetDivergence'),
  GetModelHistory: operatorCall('GetModelHistory'),
  RunAnalysis: operatorCall('RunAnalysis'),
  ListReports: operatorCall('ListReports'),
  GetReport: operatorCall('GetReport'),
  RemoveClient: operatorCall('RemoveClient'),
};

export function operatorHandlers(
  operator: OperatorQueries,
  analysis: AnalysisService | undefined,
  reportViewToken?: (reportId: string) => string,
): OperatorServiceHandlers {
  const needAnalysis = (what: string): AnalysisService => {
    if (!analysis) {
      throw unimplemented(
        `${what} needs the analysis service, which this coordinator was started without (level-1 analysis not configured)`,
      );
    }
    return analysis;
  };
  return {
    ListClients: (call, callback) => reply(() => operator.listClients(call.request), callback),
    GetSimilarity: (call, callback) => reply(() => operator.similarityResponse(call.request), callback),
    GetDivergence: (_call, callback) => reply(() => operator.divergence(), callback),
    GetModelHistory: (call, callback) => reply(() => operator.history(call.request), callback),

    RunAnalysis: (call) =>
      endStream(
        () => runAnalysis(needAnalysis('RunAnalysis'), call),
        call as grpc.ServerWritableStream<unknown, unknown>,
      ),

    ListReports: (call, callback) =>
      reply(() => listReportsPage(needAnalysis('ListReports'), call.request), callback),

    RemoveClient: (call, callback) =>
      reply(async () => {
        checkClientId(call.request.clientId);
        const removed = await operator.removeClient(call.request.clientId);
        return { uploadsRemoved: removed.uploads, probeSummariesRemoved: removed.probeSummaries };
      }, callback),

    GetReport: (call, callback) =>
      reply(async () => {
        const service = needAnalysis('GetReport');
        const req = call.request;
        if (!req.reportId) throw invalid('report_id is required');
        checkLength('report_id', req.reportId, FIELD_LIMITS.reportId);
        const report = await service.getReport(req.reportId);
        if (!report)
          throw notFound(
            `no report ${quoteInput(req.reportId)}; \`atomlens report --list\` shows the stored ones`,
          );
        return {
          reportId: req.reportId,
          json: report.json,
          html: req.includeHtml ? report.html : '',
          viewToken: reportViewToken?.(req.reportId) ?? '',
        };
      }, callback),
  };
}

/** Streams an analysis' progress; ends with a `done` message naming the report. */
async function runAnalysis(
  service: AnalysisService,
  call: Parameters<OperatorServiceHandlers['RunAnalysis']>[0],
): Promise<void> {
  // A cancelled call (the caller's cancel or deadline, a broken connection) stops the analysis.
  const cancel = new AbortController();
  call.on('cancelled', () => cancel.abort());
  const input = { ...analysisInput(call.request), signal: cancel.signal };
  let sawDone = false;
  const write = (p: AnalysisProgress) => {
    if (p.stage === 'done') sawDone = true;
    if (!call.cancelled && call.writable) call.write(wireProgress(p));
  };
  try {
    const { reportId } = await service.request(input, write);
    if (!sawDone) write({ analysisId: '', stage: 'done', fraction: 1, message: 'report written', reportId });
  } catch (err) {
    throw analysisError(err);
  }
}

/** Validates and converts an AnalysisRequest (shared with the HTTP POST /analyses route). */
export function analysisInput(req: {
  models: { clientId: string; taskId: string }[];
  reason: string;
  probeDeadlineMs: number;
  probeSize: number;
}): AnalysisRequestInput {
  checkLength('reason', req.reason, FIELD_LIMITS.analysisReason);
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
      cancelled: grpc.status.CANCELLED,
      timeout: grpc.status.DEADLINE_EXCEEDED,
    }[err.code];
    return new RpcError(code, err.message);
  }
  return err;
}

/** ListReports: 50 reports a page unless asked otherwise, at most 1,000. */
const LIST_REPORTS_PAGE: PageLimits = { defaultSize: 50, maxSize: 1000 };

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
