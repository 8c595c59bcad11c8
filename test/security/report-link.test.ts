// Reports in a browser with authentication on: GetReport hands out a short-lived link token for
// that one report; GET /reports/<id>.html?view=<token> serves the page without an authorization
// header until the token expires, and for no other report or route.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/** The link lifetime the proto states (15 minutes). */
const REPORT_VIEW_TTL_MS = 15 * 60_000;

import { grpcAuthHooks, httpAuthorizeFor } from '../../src/coordinator/auth/hooks.js';
import type { GetReportResponse__Output } from '../../src/generated/atomlens/v1/GetReportResponse.js';
import { type Harness, rpc, startHarness } from '../coordinator/helpers.js';
import { tokenAuthenticator } from './helpers.js';

const OPERATOR = 'report-link-operator-token';

describe('report links', () => {
  let h: Harness;
  const clock = { offsetMs: 0 };
  const auth = tokenAuthenticator('report-link-enrolment-secret', OPERATOR, {
    key: Buffer.alloc(32, 9),
    now: () => Date.now() + clock.offsetMs,
  });
  beforeAll(async () => {
    h = await startHarness({
      extra: { ...grpcAuthHooks(auth), httpAuthorize: httpAuthorizeFor(auth) },
      analysis: (deps) => ({
        request: async () => ({ reportId: 'unused' }),
        listReports: (limit) => deps.storage.listReports(limit),
        getReport: (id) => deps.storage.getReport(id),
      }),
    });
    for (const reportId of ['rep-a', 'rep-b']) {
      await h.running.storage.putReport({
        reportId,
        createdAtMs: 1,
        trigger: 'operator',
        models: 1,
        json: '{}',
        html: `<!doctype html><p>${reportId}</p>`,
      });
    }
  });
  afterAll(async () => {
    await h?.close();
  });

  const get = (path: string) => fetch(`http://127.0.0.1:${h.running.httpPort}${path}`);

  it('opens one report for a while without an authorization header, and nothing else', async () => {
    const md = new grpc.Metadata();
    md.set('authorization', `Bearer ${OPERATOR}`);
    const res = await rpc<GetReportResponse__Output>((cb) => h.op.GetReport({ reportId: 'rep-a' }, md, cb));
    expect(res.viewToken).not.toBe('');
    const token = res.viewToken;

    expect((await get('/reports/rep-a.html')).status).toBe(401);
    const page = await get(`/reports/rep-a.html?view=${token}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('rep-a');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'/);

    expect((await get(`/reports/rep-b.html?view=${token}`)).status).toBe(401);
    expect((await get(`/reports?view=${token}`)).status).toBe(401);
    const tampered = token.replace(/^\d+/, (ms) => String(Number(ms) + 60_000));
    expect((await get(`/reports/rep-a.html?view=${tampered}`)).status).toBe(401);

    clock.offsetMs = REPORT_VIEW_TTL_MS + 1_000;
    expect((await get(`/reports/rep-a.html?view=${token}`)).status).toBe(401);
    clock.offsetMs = 0;
  });
});
