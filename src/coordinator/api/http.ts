// HTTP side of the coordinator (node:http): Prometheus /metrics, /healthz (process alive),
// /readyz (accepting work), and the report routes, which delegate to the AnalysisService:
//   GET  /reports            JSON list, newest first (?limit=N)
//   GET  /reports/:id        the report JSON
//   GET  /reports/:id.html   the self-contained HTML page
//   POST /analyses           body {models:[{clientId,taskId}], reason, probeDeadlineMs?, probeSize?};
//                            a refusal before the analysis starts (unknown model, queue full, bad
//                            input) is an HTTP error status with a JSON body; once it has started,
//                            200 with NDJSON progress lines, the last one stage "done" (with
//                            reportId) or "failed".
// Internal failures are logged with a correlation id; callers see only the id.
// Without an AnalysisService the report routes answer 501.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { Logger } from '../../shared/log.js';
import { quoteInput, RpcError } from '../calls.js';
import type { AnalysisProgress, AnalysisService } from '../level1/types.js';
import type { CoordinatorMetrics } from '../metrics.js';
import { analysisError, analysisInput } from './operator-handlers.js';

export type HttpRoute = 'metrics' | 'health' | 'reports' | 'analyses';

/**
 * Authorisation hook for HTTP: return a refusal for the request, or undefined to serve
 * it. Runs before the route does anything.
 */
export type HttpAuthorize = (
  req: IncomingMessage,
  route: HttpRoute,
) => { status: 401 | 403; message: string } | undefined;

export interface HttpDeps {
  metrics: CoordinatorMetrics;
  analysis: AnalysisService | undefined;
  /** Why the coordinator is not ready (undefined = ready). */
  notReady: () => string | undefined;
  logger: Logger;
  authorize?: HttpAuthorize;
  /** Serve HTTPS with these options (certificate, key, client CA) instead of plain HTTP. */
  https?: HttpsOptions;
}

const MAX_BODY_BYTES = 1024 * 1024;

export function createHttpServer(deps: HttpDeps): Server {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    route(deps, req, res).catch((err: unknown) => {
      if (!res.headersSent) sendInternalError(deps, res, err, req.url);
      else {
        logInternal(deps, err, req.url);
        res.end();
      }
    });
  };
  const server = deps.https ? createHttpsServer(deps.https, handler) : createServer(handler);
  // Expect: 100-continue — decide from the headers whether the body is welcome, so an oversized
  // upload gets its 413 instead of 100 Continue followed by a reset.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (refuseOversized(req, res)) return;
    res.writeContinue();
    handler(req, res);
  });
  // Keep-alive sockets must not hold shutdown hostage.
  server.keepAliveTimeout = 5_000;
  // Slow or stalled senders (slowloris) cannot pin sockets: headers within 10 s, the whole
  // request (bodies are ≤ 1 MiB) within 30 s. Streaming responses are not affected.
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  return server;
}

/** Listens and resolves with the bound port. */
export function listenHttp(server: Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) =>
      reject(new Error(`cannot listen for HTTP on ${host}:${port}: ${err.message}`));
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    });
  });
}

async function route(deps: HttpDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const path = url.pathname;
  const method = req.method ?? 'GET';
  const kind: HttpRoute | undefined =
    path === '/metrics'
      ? 'metrics'
      : path === '/healthz' || path === '/readyz'
        ? 'health'
        : path === '/reports' || path.startsWith('/reports/')
          ? 'reports'
          : path === '/analyses'
            ? 'analyses'
            : undefined;
  const refused = kind && deps.authorize?.(req, kind);
  if (refused) {
    res.writeHead(refused.status, {
      'content-type': 'application/json; charset=utf-8',
      ...(refused.status === 401 ? { 'www-authenticate': 'Bearer' } : {}),
    });
    res.end(`${JSON.stringify({ error: refused.message })}\n`);
    return;
  }
  if (path === '/metrics') {
    if (!allow(method, ['GET', 'HEAD'], res)) return;
    const body = await deps.metrics.scrape();
    res.writeHead(200, { 'content-type': deps.metrics.contentType });
    res.end(method === 'HEAD' ? undefined : body);
    return;
  }
  if (path === '/healthz') {
    if (!allow(method, ['GET', 'HEAD'], res)) return;
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('ok\n');
    return;
  }
  if (path === '/readyz') {
    if (!allow(method, ['GET', 'HEAD'], res)) return;
    const reason = deps.notReady();
    res.writeHead(reason ? 503 : 200, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(reason ? `not ready: ${reason}\n` : 'ready\n');
    return;
  }
  if (path === '/reports' || path.startsWith('/reports/')) {
    if (!allow(method, ['GET'], res)) return;
    const service = requireAnalysis(deps, res);
    if (!service) return;
    if (path === '/reports') {
      const limit = Number(url.searchParams.get('limit') ?? '50');
      if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
        sendJson(res, 400, { error: 'limit must be an integer from 1 to 1000' });
        return;
      }
      sendJson(res, 200, { reports: await service.listReports(limit) });
      return;
    }
    let name: string;
    try {
      name = decodeURIComponent(path.slice('/reports/'.length));
    } catch {
      sendJson(res, 400, { error: 'malformed percent-encoding in the report id' });
      return;
    }
    const html = name.endsWith('.html');
    const id = html ? name.slice(0, -'.html'.length) : name;
    const report = await service.getReport(id);
    if (!report) {
      sendJson(res, 404, {
        error: `no report ${quoteInput(id)}; \`atomlens report --list\` (or GET /reports) shows the stored ones`,
      });
      return;
    }
    if (html) {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        // The page is self-contained (inline style and SVG, no script): nothing else may load or run.
        'content-security-policy': REPORT_CSP,
        'x-content-type-options': 'nosniff',
      });
      res.end(report.html);
    } else {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(report.json);
    }
    return;
  }
  if (path === '/analyses') {
    if (!allow(method, ['POST'], res)) return;
    if (refuseOversized(req, res)) return;
    const service = requireAnalysis(deps, res);
    if (!service) return;
    await postAnalysis(deps, service, req, res);
    return;
  }
  sendJson(res, 404, {
    error: `no route ${path}; try /metrics, /healthz, /readyz, /reports, POST /analyses`,
  });
}

async function postAnalysis(
  deps: HttpDeps,
  service: AnalysisService,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  let body: unknown;
  try {
    body = JSON.parse((await readBody(req)) || '{}');
  } catch (err) {
    sendJson(res, 400, { error: `request body must be JSON: ${(err as Error).message}` });
    return;
  }
  const b = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
  let input: ReturnType<typeof analysisInput>;
  try {
    if (b.models !== undefined && !Array.isArray(b.models)) throw new RpcError(3, 'models must be an array');
    input = analysisInput({
      models: ((b.models as unknown[] | undefined) ?? []).map((m) => {
        const o = (m ?? {}) as Record<string, unknown>;
        return { clientId: String(o.clientId ?? ''), taskId: String(o.taskId ?? '') };
      }),
      reason: typeof b.reason === 'string' ? b.reason : 'operator request (HTTP)',
      probeDeadlineMs: b.probeDeadlineMs === undefined ? 0 : Number(b.probeDeadlineMs),
      probeSize: b.probeSize === undefined ? 0 : Number(b.probeSize),
    });
  } catch (err) {
    sendJson(res, 400, { error: (err as Error).message });
    return;
  }
  // The 200 and the NDJSON stream start with the first progress line, so that a refusal before
  // the analysis starts can still be an error status (as gRPC answers it with a status code).
  const line = (v: unknown) => {
    if (!res.headersSent) res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
    if (!res.writableEnded) res.write(`${JSON.stringify(v)}\n`);
  };
  // The caller closing the request before the reply ended stops the analysis.
  const cancel = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) cancel.abort();
  });
  let sawDone = false;
  try {
    const { reportId } = await service.request({ ...input, signal: cancel.signal }, (p: AnalysisProgress) => {
      if (p.stage === 'done') sawDone = true;
      line(p);
    });
    if (!sawDone) line({ stage: 'done', fraction: 1, message: 'report written', reportId });
  } catch (err) {
    const mapped = analysisError(err);
    if (!(mapped instanceof RpcError)) {
      if (!res.headersSent) return sendInternalError(deps, res, err, req.url);
      const id = logInternal(deps, err, req.url);
      line({ stage: 'failed', fraction: 1, message: `analysis failed (internal error ${id})` });
    } else if (!res.headersSent) {
      sendJson(res, httpStatusForGrpc(mapped.code), { error: mapped.message });
      return;
    } else {
      line({ stage: 'failed', fraction: 1, message: mapped.message });
    }
  }
  res.end();
}

/** HTTP status for a gRPC status code, as the gRPC–HTTP mapping conventions pair them. */
function httpStatusForGrpc(code: number): number {
  const byCode: Record<number, number> = {
    1: 499, // CANCELLED
    3: 400, // INVALID_ARGUMENT
    4: 504, // DEADLINE_EXCEEDED
    5: 404, // NOT_FOUND
    6: 409, // ALREADY_EXISTS
    7: 403, // PERMISSION_DENIED
    8: 429, // RESOURCE_EXHAUSTED
    9: 409, // FAILED_PRECONDITION
    12: 501, // UNIMPLEMENTED
    14: 503, // UNAVAILABLE
    16: 401, // UNAUTHENTICATED
  };
  return byCode[code] ?? 500;
}

/** Answers 413 (and closes the connection, leaving the body unread) when Content-Length is over the cap. */
function refuseOversized(req: IncomingMessage, res: ServerResponse): boolean {
  const length = Number(req.headers['content-length'] ?? 0);
  if (!(length > MAX_BODY_BYTES)) return false;
  res.shouldKeepAlive = false;
  sendJson(res, 413, {
    error: `request body of ${length} bytes is over the limit of ${MAX_BODY_BYTES} bytes`,
  });
  return true;
}

/** The report page needs its inline style and data: images, nothing more. */
const REPORT_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function logInternal(deps: HttpDeps, err: unknown, url: string | undefined): string {
  const correlationId = randomBytes(6).toString('hex');
  deps.logger.error('http handler failed', {
    url,
    correlationId,
    error: (err as Error)?.stack ?? String(err),
  });
  return correlationId;
}

/** 500 with a generic message and the correlation id under which the details were logged. */
function sendInternalError(deps: HttpDeps, res: ServerResponse, err: unknown, url: string | undefined): void {
  const correlationId = logInternal(deps, err, url);
  sendJson(res, 500, {
    error: `internal error (correlation id ${correlationId}); see the coordinator log`,
    correlationId,
  });
}

function requireAnalysis(deps: HttpDeps, res: ServerResponse): AnalysisService | undefined {
  if (deps.analysis) return deps.analysis;
  sendJson(res, 501, {
    error:
      'reports need the analysis service, which this coordinator was started without (level-1 analysis not configured)',
  });
  return undefined;
}

function allow(method: string, methods: string[], res: ServerResponse): boolean {
  if (methods.includes(method)) return true;
  res.writeHead(405, { allow: methods.join(', '), 'content-type': 'application/json; charset=utf-8' });
  res.end(`${JSON.stringify({ error: `use ${methods.join(' or ')}` })}\n`);
  return false;
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(`${JSON.stringify(value)}\n`);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.byteLength;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`body larger than ${MAX_BODY_BYTES} bytes`));
        req.destroy();
        return;
      }
      parts.push(b);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}
