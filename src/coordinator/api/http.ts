// HTTP side of the coordinator (node:http): Prometheus /metrics, /healthz (process alive),
// /readyz (accepting work), and the report routes, which delegate to the AnalysisService:
//   GET  /reports            JSON list, newest first (?limit=N)
//   GET  /reports/:id        the report JSON
//   GET  /reports/:id.html   the self-contained HTML page
//   POST /analyses           body {models:[{clientId,taskId}], reason, probeDeadlineMs?, probeSize?};
//                            answers with NDJSON progress lines, the last one stage "done" (with
//                            reportId) or "failed".
// Without an AnalysisService the report routes answer 501.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type ServerOptions as HttpsOptions } from 'node:https';
import type { Logger } from '../../shared/log.js';
import type { AnalysisProgress, AnalysisService } from '../level1/types.js';
import type { CoordinatorMetrics } from '../metrics.js';
import { analysisError, analysisInput } from './grpc-server.js';
import { RpcError } from './rpc.js';

export type HttpRoute = 'metrics' | 'health' | 'reports' | 'analyses';

/**
 * Authorisation hook for HTTP (issue 8): return a refusal for the request, or undefined to serve
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
      deps.logger.error('http handler failed', { url: req.url, error: (err as Error).stack ?? String(err) });
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${(err as Error).message}` });
      else res.end();
    });
  };
  const server = deps.https ? createHttpsServer(deps.https, handler) : createServer(handler);
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
      sendJson(res, 200, { reports: service.listReports(limit) });
      return;
    }
    const name = decodeURIComponent(path.slice('/reports/'.length));
    const html = name.endsWith('.html');
    const id = html ? name.slice(0, -'.html'.length) : name;
    const report = service.getReport(id);
    if (!report) {
      sendJson(res, 404, { error: `no report '${id}'; GET /reports lists the stored ones` });
      return;
    }
    if (html) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(report.html);
    } else {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
      res.end(report.json);
    }
    return;
  }
  if (path === '/analyses') {
    if (!allow(method, ['POST'], res)) return;
    const service = requireAnalysis(deps, res);
    if (!service) return;
    await postAnalysis(service, req, res);
    return;
  }
  sendJson(res, 404, {
    error: `no route ${path}; try /metrics, /healthz, /readyz, /reports, POST /analyses`,
  });
}

async function postAnalysis(
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
  res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
  const line = (v: unknown) => {
    if (!res.writableEnded) res.write(`${JSON.stringify(v)}\n`);
  };
  let sawDone = false;
  try {
    const { reportId } = await service.request(input, (p: AnalysisProgress) => {
      if (p.stage === 'done') sawDone = true;
      line(p);
    });
    if (!sawDone) line({ stage: 'done', fraction: 1, message: 'report written', reportId });
  } catch (err) {
    const mapped = analysisError(err);
    line({ stage: 'failed', fraction: 1, message: (mapped as Error).message ?? String(err) });
  }
  res.end();
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
