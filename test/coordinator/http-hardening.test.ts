// The HTTP side under bad input: malformed paths, oversized bodies announced by Content-Length
// (with and without Expect: 100-continue), refusals of POST /analyses mapped to HTTP statuses
// before any progress is streamed, and internal failures that never leak their text.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AnalysisFactory, AnalysisRequestError } from '../../src/coordinator/level1/types.js';
import { type Harness, startHarness } from './helpers.js';

interface RawResponse {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
  /** Whether the server sent 100 Continue first. */
  continued: boolean;
}

/** One request with raw headers; `body` is written only after 100 Continue when `expectContinue`. */
function raw(
  port: number,
  options: {
    method: string;
    path: string;
    headers?: Record<string, string>;
    body?: Buffer;
    expectContinue?: boolean;
  },
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = request({
      host: '127.0.0.1',
      port,
      method: options.method,
      path: options.path,
      headers: { ...options.headers, ...(options.expectContinue ? { expect: '100-continue' } : {}) },
    });
    req.on('continue', () => {
      continued = true;
      req.end(options.body);
    });
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (b: Buffer) => parts.push(b));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(parts).toString('utf8'),
          headers: res.headers,
          continued,
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    if (!options.expectContinue) {
      // Announce the length but send nothing: the server must answer from the headers alone.
      if (options.body) req.end(options.body);
      else req.flushHeaders();
    }
  });
}

describe('HTTP hardening', () => {
  let h: Harness;
  const factory: AnalysisFactory = (deps) => ({
    async request(req, onProgress) {
      const reason = req.reason;
      if (reason === 'unknown-model') throw new AnalysisRequestError('not_found', 'no model ghost/0-1');
      if (reason === 'busy') throw new AnalysisRequestError('busy', 'too many analyses queued');
      if (reason === 'crash') throw new Error('secret internal detail /var/lib/atomlens');
      onProgress({ analysisId: 'an-1', stage: 'probing', fraction: 0.5, message: 'probing' });
      if (reason === 'late-failure') throw new AnalysisRequestError('unavailable', 'clients vanished');
      return { reportId: 'rep-1' };
    },
    listReports: (limit, before) => deps.storage.listReports(limit, before),
    getReport: (id) => deps.storage.getReport(id),
  });
  const port = () => h.running.httpPort!;
  const post = (body: unknown) =>
    raw(port(), {
      method: 'POST',
      path: '/analyses',
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify(body)),
    });

  beforeAll(async () => {
    h = await startHarness({ analysis: factory });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('sends the report HTML with a Content-Security-Policy that allows no script and no fetch', async () => {
    await h.running.storage.putReport({
      reportId: 'rep-csp',
      createdAtMs: 1,
      trigger: 'operator',
      models: 0,
      analysisId: 'ana-csp',
      json: '{}',
      html: '<!doctype html><p>report</p>',
    });
    const res = await raw(port(), { method: 'GET', path: '/reports/rep-csp.html' });
    expect(res.status).toBe(200);
    const csp = String(res.headers['content-security-policy']);
    expect(csp).toMatch(/default-src 'none'/);
    expect(csp).not.toMatch(/script-src/);
    expect(csp).toMatch(/frame-ancestors 'none'/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
  });

  it('answers 400 for a malformed percent-encoding in a report path', async () => {
    const res = await raw(port(), { method: 'GET', path: '/reports/%ZZ' });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toMatch(/percent-encoding|malformed/i);
    const html = await raw(port(), { method: 'GET', path: '/reports/%E0%A4%A.html' });
    expect(html.status).toBe(400);
  });

  it('refuses an oversized body from its Content-Length, with Expect: 100-continue, without 100 Continue', async () => {
    const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
    const res = await raw(port(), {
      method: 'POST',
      path: '/analyses',
      headers: { 'content-length': String(big.byteLength), 'content-type': 'application/json' },
      body: big,
      expectContinue: true,
    });
    expect(res.status).toBe(413);
    expect(res.continued).toBe(false);
    expect(JSON.parse(res.body).error).toMatch(/1048576|1 MiB/);
  });

  it('refuses an oversized body from its Content-Length before reading it', async () => {
    const res = await raw(port(), {
      method: 'POST',
      path: '/analyses',
      headers: { 'content-length': String(8 * 1024 * 1024), 'content-type': 'application/json' },
    });
    expect(res.status).toBe(413);
  });

  it('maps a refusal before any progress to its HTTP status, as gRPC maps it to its code', async () => {
    const missing = await post({ models: [{ clientId: 'ghost', taskId: '0-1' }], reason: 'unknown-model' });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body).error).toMatch(/ghost\/0-1/);
    const busy = await post({ models: [{ clientId: 'a', taskId: '0-1' }], reason: 'busy' });
    expect(busy.status).toBe(429);
  });

  it('streams progress with 200 and ends with a failed line when the analysis fails after starting', async () => {
    const ok = await post({ models: [{ clientId: 'a', taskId: '0-1' }], reason: 'fine' });
    expect(ok.status).toBe(200);
    expect(
      ok.body
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).stage),
    ).toEqual(['probing', 'done']);
    const late = await post({ models: [{ clientId: 'a', taskId: '0-1' }], reason: 'late-failure' });
    expect(late.status).toBe(200);
    const stages = late.body
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { stage: string; message: string });
    expect(stages.map((s) => s.stage)).toEqual(['probing', 'failed']);
    expect(stages[1]!.message).toMatch(/clients vanished/);
  });

  it('never sends internal error text; the reply carries a correlation id instead', async () => {
    const res = await post({ models: [{ clientId: 'a', taskId: '0-1' }], reason: 'crash' });
    expect(res.status).toBe(500);
    expect(res.body).not.toMatch(/secret internal detail|\/var\/lib/);
    const body = JSON.parse(res.body) as { error: string; correlationId: string };
    expect(body.correlationId).toMatch(/^[0-9a-f]{8,}$/);
    expect(body.error).toContain(body.correlationId);
  });
});
