// End to end on loopback: a real coordinator (gRPC + HTTP + SQLite) with the analysis service,
// clients that speak the wire protocol (Register, PushAtoms, Session, PushProbeSummary) and answer
// probe requests with Gram matrices of synthetic layer activations, and an operator request over
// gRPC. One client keeps its session alive but never answers.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderReportHtml } from '../../src/analysis/report/html.js';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import { linearCka } from '../../src/analysis/representation.js';
import type { RunningCoordinator } from '../../src/coordinator/coordinator.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import type { RunAnalysisResponse__Output } from '../../src/generated/atomlens/v1/RunAnalysisResponse.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { runAnalysis } from '../coordinator/helpers.js';
import { type LiveCoordinator, startLiveCoordinator } from './live-coordinator.js';
import { type SimClient, startClient, unary } from './sim-client.js';
import { N } from './synthetic-report.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/report.schema.json', import.meta.url), 'utf8'));
const PROBE_DEADLINE_MS = 2500;

function requestAnalysis(
  operator: OperatorServiceClient,
  models: { clientId: string; taskId: string }[],
  reason: string,
): Promise<RunAnalysisResponse__Output[]> {
  return runAnalysis(
    operator,
    { models, reason, probeDeadlineMs: PROBE_DEADLINE_MS, probeSize: 0 },
    { deadline: Date.now() + PROBE_DEADLINE_MS + 60_000 },
  );
}

describe('analysis end to end over gRPC', () => {
  let live: LiveCoordinator;
  let coordinator: RunningCoordinator;
  let operator: OperatorServiceClient;
  const clients: SimClient[] = [];

  beforeAll(async () => {
    live = await startLiveCoordinator('e2e', 2);
    coordinator = live.coordinator;
    const address = live.address;
    clients.push(await startClient(address, 'alice', '0-1', 'classes', { seed: 11 }));
    clients.push(await startClient(address, 'bob', '0-1', 'classes2', { seed: 12 }));
    clients.push(await startClient(address, 'carol', '2-3', 'classes', { seed: 13 }));
    clients.push(await startClient(address, 'dave', '2-3', 'classes', { seed: 14, silent: true }));
    const proto = loadAtomlensProto();
    operator = new proto.atomlens.v1.OperatorService(
      address,
      grpc.credentials.createInsecure(),
    ) as unknown as OperatorServiceClient;
    // Sessions are open once the registry lists every client as connected.
    for (let i = 0; i < 100 && coordinator.sessions.connectedCount() < 4; i++)
      await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    operator?.close();
    await live?.stop();
  });

  const everyone = () => clients.map((c) => ({ clientId: c.id, taskId: c.task }));

  it('an operator request produces a report from probe data sent over gRPC; the silent client is named', async () => {
    expect(coordinator.sessions.connectedCount()).toBe(4);
    const started = Date.now();
    const progress = await requestAnalysis(operator, everyone(), 'e2e: operator asked');
    const elapsed = Date.now() - started;
    // The silent client held the analysis up to the probe deadline, not beyond it (plus solving).
    expect(elapsed).toBeGreaterThanOrEqual(PROBE_DEADLINE_MS - 50);
    expect(elapsed).toBeLessThan(PROBE_DEADLINE_MS + 30_000);
    const stages = progress.map((p) => p.stage);
    expect(stages).toContain('ANALYSIS_STAGE_PROBING');
    expect(stages).toContain('ANALYSIS_STAGE_SOLVING');
    expect(stages.at(-1)).toBe('ANALYSIS_STAGE_DONE');
    const fractions = progress.map((p) => p.fraction);
    expect([...fractions].sort((a, b) => a - b)).toEqual(fractions);
    const reportId = progress.at(-1)!.reportId;
    expect(reportId).toMatch(/^rep-/);

    const got = await unary<{ json: string; html: string }>((cb) =>
      operator.GetReport({ reportId, includeHtml: true }, cb),
    );
    const report = JSON.parse(got.json) as AnalysisReport;
    const validate = new Ajv({ allErrors: true, strict: true }).compile(schema);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.trigger.kind).toBe('operator');
    expect(report.trigger.reason).toBe('e2e: operator asked');
    expect(report.missing).toHaveLength(1);
    expect(report.missing[0]).toMatchObject({ clientId: 'dave', taskId: '2-3' });
    expect(report.missing[0]!.reason).toMatch(/deadline/);
    expect(report.models.map((m) => [m.clientId, m.answered, m.reused])).toEqual([
      ['alice', true, false],
      ['bob', true, false],
      ['carol', true, false],
      ['dave', false, false],
    ]);
    expect(clients.map((c) => c.probeRequests)).toEqual([1, 1, 1, 1]);

    // The probe data in the report is what the clients sent: stored under the request ids, and
    // CKA in the report equals CKA from the clients' own activations.
    for (const m of report.models.slice(0, 3)) {
      const rows = await coordinator.storage.getProbeSummaries(m.requestId!);
      expect(rows.map((r) => r.layer).sort()).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8']);
      expect(rows.every((r) => r.clientId === m.clientId && r.n === N)).toBe(true);
    }
    const c7 = report.crossModel.find((l) => l.layer === 'c7')!;
    const [a, b] = [clients[0]!.stack[6]!, clients[1]!.stack[6]!];
    expect(c7.cka[0]![1]!).toBeCloseTo(linearCka(a.X, b.X, N, a.d, b.d), 5);
    expect(report.blocks.map((x) => x.label)).toEqual(['shared', 'shared', 'client-specific']);

    expect(got.html).toContain('dave/2-3');
    expect(got.html).toContain('class="heatmap" data-kind="gw-layers"');
    // Stored once, as JSON: the page is rendered from it on request, the same page as before.
    const stored = await coordinator.storage.getReport(report.reportId);
    expect(stored!.html).toBe('');
    expect(got.html).toBe(renderReportHtml(JSON.parse(stored!.json) as AnalysisReport));

    // Metrics moved.
    const metrics = await coordinator.metrics.registry.metrics();
    expect(metrics).toMatch(/atomlens_escalations_total\{reason="operator"\} 1/);
    expect(metrics).toMatch(/atomlens_analyses_total\{outcome="completed"\} 1/);
    expect(metrics).toMatch(/atomlens_analysis_in_progress 0/);
  });

  it('a repeated analysis at the same round reuses the stored summaries', async () => {
    const answered = everyone().slice(0, 3);
    const progress = await requestAnalysis(operator, answered, 'e2e: again');
    const reportId = progress.at(-1)!.reportId;
    // Nobody was asked again.
    expect(clients.map((c) => c.probeRequests)).toEqual([1, 1, 1, 1]);
    const res = await fetch(`http://127.0.0.1:${coordinator.httpPort}/reports/${reportId}`);
    expect(res.status).toBe(200);
    const report = (await res.json()) as AnalysisReport;
    expect(report.models.every((m) => m.answered && m.reused)).toBe(true);
    expect(report.missing).toEqual([]);
    const page = await fetch(`http://127.0.0.1:${coordinator.httpPort}/reports/${reportId}.html`);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('reused from an earlier analysis');
    const list = await unary<{ reports: { reportId: string }[] }>((cb) =>
      operator.ListReports({ pageSize: 10 }, cb),
    );
    expect(list.reports.map((r) => r.reportId)[0]).toBe(reportId);
    expect(list.reports).toHaveLength(2);
  });

  it('refuses unknown models with NOT_FOUND', async () => {
    await expect(
      requestAnalysis(operator, [{ clientId: 'zed', taskId: '0-1' }], 'bad'),
    ).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
    });
  });
});
