// /metrics after known uploads (series and values, promtool when installed), /healthz, /readyz,
// and the report routes / RunAnalysis with and without an AnalysisService.
import { spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RpcError } from '../../src/coordinator/calls.js';
import type { AnalysisFactory, AnalysisRequestInput } from '../../src/coordinator/level1/types.js';
import { AnalysisRequestError } from '../../src/coordinator/level1/types.js';
import type { GetReportResponse__Output } from '../../src/generated/atomlens/v1/GetReportResponse.js';
import type { ListReportsResponse__Output } from '../../src/generated/atomlens/v1/ListReportsResponse.js';
import type { RunAnalysisResponse__Output } from '../../src/generated/atomlens/v1/RunAnalysisResponse.js';
import { buildTemplate } from '../../src/shared/template.js';
import { cos, expectStatus, type Harness, pushRequest, randomAtoms, rpc, startHarness } from './helpers.js';

const template = buildTemplate();
const hasPromtool = spawnSync('promtool', ['--version']).status === 0;
if (!hasPromtool)
  console.warn('promtool not found (Debian package prometheus): skipping `promtool check metrics`');

/** Parses `name{labels} value` lines into name → [{labels, value}]. */
function parseExposition(text: string): Map<string, { labels: Record<string, string>; value: number }[]> {
  const out = new Map<string, { labels: Record<string, string>; value: number }[]>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    const list = out.get(m[1]!) ?? [];
    list.push({ labels, value: Number(m[3]) });
    out.set(m[1]!, list);
  }
  return out;
}

async function get(h: Harness, path: string, init?: RequestInit): Promise<Response> {
  return fetch(`http://127.0.0.1:${h.running.httpPort}${path}`, init);
}

describe('metrics and HTTP without an analysis service', () => {
  let h: Harness;
  const atoms = new Map<string, Float32Array[]>();

  beforeAll(async () => {
    h = await startHarness();
    for (const [id, task] of [
      ['a', '0-1'],
      ['b', '0-1'],
      ['c', '0-1'],
    ]) {
      await rpc((cb) => h.fed.Register({ clientId: id!, tasks: [{ taskId: task!, classes: [0, 1] }] }, cb));
    }
    let seed = 1;
    for (const round of [1, 2]) {
      for (const id of ['a', 'b', 'c']) {
        const a = randomAtoms(template, seed++);
        if (round === 2) atoms.set(`${id}/prev`, atoms.get(id)!);
        atoms.set(id, a);
        await rpc((cb) => h.fed.PushAtoms(pushRequest(template, id, '0-1', round, a), cb));
      }
    }
    await rpc((cb) => h.fed.PushAtoms(pushRequest(template, 'a', '0-1', 2, atoms.get('a')!), cb)); // duplicate
    await rpc((cb) =>
      h.fed.PushAtoms({ ...pushRequest(template, 'a', '0-1', 3, atoms.get('a')!), round: 0 }, cb),
    ).catch(() => undefined); // invalid
  });
  afterAll(async () => {
    await h?.close();
  });

  it('exports the documented series with values matching the uploads', async () => {
    const res = await get(h, '/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const m = parseExposition(await res.text());
    const one = (name: string, labels: Record<string, string> = {}) => {
      const hit = (m.get(name) ?? []).find((s) =>
        Object.entries(labels).every(([k, v]) => s.labels[k] === v),
      );
      expect(hit, `${name}${JSON.stringify(labels)}`).toBeDefined();
      return hit!.value;
    };
    expect(one('atomlens_build_info')).toBe(1);
    expect(one('atomlens_clients_registered')).toBe(3);
    expect(one('atomlens_clients_connected')).toBe(0);
    expect(one('atomlens_atom_uploads_total', { outcome: 'accepted' })).toBe(6);
    expect(one('atomlens_atom_uploads_total', { outcome: 'duplicate' })).toBe(1);
    expect(one('atomlens_atom_uploads_total', { outcome: 'invalid' })).toBe(1);
    expect(one('atomlens_atom_uploads_total', { outcome: 'conflict' })).toBe(0);
    expect(one('atomlens_grpc_requests_total', { method: 'Federation/PushAtoms', code: 'OK' })).toBe(7);
    expect(
      one('atomlens_grpc_requests_total', { method: 'Federation/PushAtoms', code: 'INVALID_ARGUMENT' }),
    ).toBe(1);
    expect(one('atomlens_grpc_request_duration_seconds_count', { method: 'Federation/Register' })).toBe(3);
    expect(one('atomlens_storage_commit_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(m.has('process_cpu_user_seconds_total')).toBe(true);
    for (const id of ['a', 'b', 'c']) {
      expect(one('atomlens_model_round', { client: id, task: '0-1' })).toBe(2);
      const own = atoms.get(id)!;
      const prev = atoms.get(`${id}/prev`)!;
      const drift = 1 - own.reduce((s, l, i) => s + cos(l, prev[i]!), 0) / own.length;
      expect(one('atomlens_model_drift', { client: id, task: '0-1' })).toBeCloseTo(drift, 6);
      // Divergence: per layer 1 − cos(own, mean of the two others' unit vectors).
      const others = ['a', 'b', 'c'].filter((o) => o !== id).map((o) => atoms.get(o)!);
      let div = 0;
      own.forEach((layer, l) => {
        const centroid = new Float64Array(layer.length);
        for (const o of others) {
          const norm = Math.sqrt(o[l]!.reduce((s, v) => s + v * v, 0));
          for (let t = 0; t < layer.length; t++) centroid[t]! += o[l]![t]! / norm;
        }
        div += (1 - cos(layer, centroid)) / own.length;
      });
      expect(one('atomlens_model_divergence', { client: id, task: '0-1' })).toBeCloseTo(div, 6);
      expect(one('atomlens_client_last_seen_timestamp_seconds', { client: id })).toBeGreaterThan(
        Date.now() / 1000 - 600,
      );
    }
    let meanOverLayers = 0;
    template.layers.forEach((layer, l) => {
      let s = 0;
      for (const x of ['a', 'b', 'c'])
        for (const y of ['a', 'b', 'c']) if (x !== y) s += cos(atoms.get(x)![l]!, atoms.get(y)![l]!);
      expect(one('atomlens_federation_similarity', { layer: layer.name })).toBeCloseTo(s / 6, 6);
      meanOverLayers += s / 6 / template.layers.length;
    });
    expect(one('atomlens_federation_similarity_mean')).toBeCloseTo(meanOverLayers, 6);
    for (const name of [
      'atomlens_sessions_gone_total',
      'atomlens_analyses_total',
      'atomlens_probe_requests_total',
      'atomlens_analysis_in_progress',
      'atomlens_analysis_progress_ratio',
      'atomlens_analysis_duration_seconds_count',
    ]) {
      expect(m.has(name), name).toBe(true);
    }
    // Round numbers never become labels.
    for (const series of m.values())
      for (const s of series) expect(Object.keys(s.labels)).not.toContain('round');
  });

  it.skipIf(!hasPromtool)('passes promtool check metrics', async () => {
    const text = await (await get(h, '/metrics')).text();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(r.stderr + r.stdout).toBe('');
    expect(r.status).toBe(0);
  });

  it('answers /healthz and /readyz, 404 for unknown routes, 501 for reports', async () => {
    expect(await (await get(h, '/healthz')).text()).toBe('ok\n');
    expect((await get(h, '/readyz')).status).toBe(200);
    expect((await get(h, '/nope')).status).toBe(404);
    expect((await get(h, '/metrics', { method: 'POST' })).status).toBe(405);
    for (const path of ['/reports', '/reports/x', '/reports/x.html']) {
      const res = await get(h, path);
      expect(res.status).toBe(501);
      expect(((await res.json()) as { error: string }).error).toMatch(/analysis service/);
    }
    expect((await get(h, '/analyses', { method: 'POST', body: '{}' })).status).toBe(501);
    await expectStatus(
      new Promise((resolve, reject) => {
        const call = h.op.RunAnalysis({ reason: 'x' });
        call.on('data', () => {});
        call.on('error', reject);
        call.on('end', resolve);
      }),
      grpc.status.UNIMPLEMENTED,
      /analysis service/,
    );
  });
});

describe('with an analysis service', () => {
  let h: Harness;
  const requests: AnalysisRequestInput[] = [];
  const factory: AnalysisFactory = (deps) => ({
    async request(req, onProgress) {
      requests.push(req);
      if (req.reason === 'refuse') throw new AnalysisRequestError('not_found', 'no model alice/9-9');
      onProgress({
        analysisId: 'an-1',
        stage: 'probing',
        fraction: 0.25,
        message: `${deps.similarity.size} models`,
      });
      await deps.storage.putReport({
        reportId: 'rep-1',
        createdAtMs: 1_700_000_000_000,
        trigger: 'operator',
        models: req.models.length,
        json: '{"schema":"x"}',
        html: '<!doctype html><title>r</title>',
      });
      return { reportId: 'rep-1' };
    },
    listReports: (limit, before) => deps.storage.listReports(limit, before),
    getReport: (id) => deps.storage.getReport(id),
  });

  beforeAll(async () => {
    h = await startHarness({ analysis: factory });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('streams RunAnalysis progress and serves the report over gRPC and HTTP', async () => {
    const progress: RunAnalysisResponse__Output[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = h.op.RunAnalysis({
        models: [{ clientId: 'a', taskId: '0-1' }],
        reason: 'look',
        probeDeadlineMs: 1500,
      });
      call.on('data', (p: RunAnalysisResponse__Output) => progress.push(p));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    expect(requests[0]).toEqual({
      models: [{ clientId: 'a', taskId: '0-1' }],
      reason: 'look',
      probeDeadlineMs: 1500,
      // Aborted when the call is cancelled, which stops the analysis.
      signal: expect.any(AbortSignal),
    });
    expect(progress.map((p) => p.stage)).toEqual(['ANALYSIS_STAGE_PROBING', 'ANALYSIS_STAGE_DONE']);
    expect(progress[1]!.reportId).toBe('rep-1');
    const list = await rpc<ListReportsResponse__Output>((cb) => h.op.ListReports({}, cb));
    expect(list.reports.map((r) => r.reportId)).toEqual(['rep-1']);
    const report = await rpc<GetReportResponse__Output>((cb) =>
      h.op.GetReport({ reportId: 'rep-1', includeHtml: true }, cb),
    );
    expect(report.json).toBe('{"schema":"x"}');
    expect(report.html).toMatch(/<!doctype html>/);
    await expectStatus(
      rpc((cb) => h.op.GetReport({ reportId: 'nope' }, cb)),
      grpc.status.NOT_FOUND,
    );
    const html = await get(h, '/reports/rep-1.html');
    expect(html.headers.get('content-type')).toMatch(/text\/html/);
    expect(await html.text()).toMatch(/<title>r<\/title>/);
    expect(await (await get(h, '/reports/rep-1')).text()).toBe('{"schema":"x"}');
    expect((await get(h, '/reports/nope')).status).toBe(404);
    expect(
      ((await (await get(h, '/reports?limit=5')).json()) as { reports: unknown[] }).reports,
    ).toHaveLength(1);
  });

  it('POST /analyses streams NDJSON progress; refusals map to errors', async () => {
    const res = await get(h, '/analyses', {
      method: 'POST',
      body: JSON.stringify({ models: [{ clientId: 'b', taskId: '0-1' }], reason: 'http' }),
    });
    const lines = (await res.text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { stage: string; reportId?: string });
    expect(lines.map((l) => l.stage)).toEqual(['probing', 'done']);
    expect(lines[1]!.reportId).toBe('rep-1');
    const bad = await get(h, '/analyses', {
      method: 'POST',
      body: JSON.stringify({ models: [{ clientId: 'no way' }] }),
    });
    expect(bad.status).toBe(400);
    await expectStatus(
      new Promise((resolve, reject) => {
        const call = h.op.RunAnalysis({ reason: 'refuse' });
        call.on('data', () => {});
        call.on('error', reject);
        call.on('end', resolve);
      }),
      grpc.status.NOT_FOUND,
      /alice\/9-9/,
    );
  });
});

describe('label cardinality caps', () => {
  it('exports only the most divergent models and the most recently seen clients beyond the caps', async () => {
    const { CoordinatorMetrics } = await import('../../src/coordinator/metrics.js');
    const metrics = new CoordinatorMetrics({
      version: 't',
      maxModelSeries: 2,
      maxClientSeries: 1,
      defaultMetrics: false,
    });
    const model = (clientId: string, divergence: number) => ({
      clientId,
      taskId: 't',
      round: 3,
      divergence,
      layerDivergence: new Float64Array(0),
      measure: 'cosine' as const,
      peers: 2,
      drift: undefined,
    });
    metrics.bind({
      clientsRegistered: () => 3,
      clientsConnected: () => 0,
      lastSeen: () =>
        new Map([
          ['x', 5_000],
          ['y', 9_000],
          ['z', 1_000],
        ]).entries(),
      divergences: () => [model('x', 0.1), model('y', 0.5), model('z', 0.3)],
      federationSimilarity: () => ({ perLayer: new Float64Array(0), mean: Number.NaN, models: 3 }),
      layerNames: () => [],
    });
    const m = parseExposition(await metrics.scrape());
    expect(m.get('atomlens_model_divergence')!.map((s) => s.labels.client)).toEqual(['y', 'z']);
    expect(m.get('atomlens_model_round')!.map((s) => s.value)).toEqual([3, 3]);
    expect(m.has('atomlens_model_drift')).toBe(false); // no previous rounds: no drift series
    expect(m.get('atomlens_client_last_seen_timestamp_seconds')).toEqual([
      { labels: { client: 'y' }, value: 9 },
    ]);
  });
});

describe('authorisation hooks', () => {
  let h: Harness;
  const seen: string[] = [];
  beforeAll(async () => {
    h = await startHarness({
      extra: {
        httpAuthorize: (req, route) => {
          seen.push(route);
          return route === 'metrics' && req.headers.authorization !== 'Bearer ok'
            ? { status: 401, message: 'metrics need a token' }
            : undefined;
        },
        authorize: (ctx) => {
          seen.push(`${ctx.service}/${ctx.method}:${ctx.clientId ?? ''}`);
          return ctx.call.metadata.get('authorization')[0] === 'Bearer ok'
            ? undefined
            : new RpcError(grpc.status.UNAUTHENTICATED, 'token required');
        },
        enroll: (req) => ({ token: `token-for-${req.clientId}`, bindCredential: false }),
      },
    });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('refuses before any state changes and passes the client id being acted for', async () => {
    const denied = await get(h, '/metrics');
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toBe('Bearer');
    expect((await get(h, '/metrics', { headers: { authorization: 'Bearer ok' } })).status).toBe(200);
    expect((await get(h, '/healthz')).status).toBe(200);

    const reg = await rpc<{ token: string }>((cb) =>
      h.fed.Register({ clientId: 'zed', tasks: [{ taskId: 't', classes: [1] }] }, cb),
    );
    expect(reg.token).toBe('token-for-zed');
    const req = pushRequest(template, 'zed', 't', 1, randomAtoms(template, 3));
    await expectStatus(
      rpc((cb) => h.fed.PushAtoms(req, cb)),
      grpc.status.UNAUTHENTICATED,
      /token required/,
    );
    expect(await h.running.storage.countUploads()).toBe(0);
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer ok');
    await rpc((cb) => h.fed.PushAtoms(req, md, cb));
    await expectStatus(
      rpc((cb) => h.op.ListClients({}, cb)),
      grpc.status.UNAUTHENTICATED,
    );
    expect(seen).toContain('Federation/PushAtoms:zed');
    expect(seen).toContain('Operator/ListClients:');
    expect(seen.some((s) => s.startsWith('Federation/Register'))).toBe(false);
  });
});
