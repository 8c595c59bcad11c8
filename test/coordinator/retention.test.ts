// Retention: probe summaries and reports older than retention.probeSummariesMs / reportsMs are
// deleted by the running coordinator (at start and every retention.intervalMs), newer ones stay,
// and atomlens_retention_pruned_total says how many of each went.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, rpc, startHarness } from './helpers.js';

async function pruned(h: Harness): Promise<Record<string, number>> {
  const metric = await h.running.metrics.retentionPruned.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.kind), v.value]));
}

describe('retention', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      config: { retention: { probeSummariesMs: 60_000, reportsMs: 120_000, intervalMs: 100 } },
    });
    await rpc((cb) => h.fed.Register({ clientId: 'a', tasks: [{ taskId: 't', classes: [1] }] }, cb));
  });
  afterAll(async () => {
    await h?.close();
  });

  it('deletes what is older than its retention, keeps the rest, and counts it', async () => {
    const s = h.running.storage;
    const now = Date.now();
    const gram = Buffer.from(new Float32Array([1, 0, 0, 1]).buffer);
    const summary = (requestId: string, receivedAtMs: number) => ({
      requestId,
      clientId: 'a',
      taskId: 't',
      round: 1,
      layer: 'conv1',
      n: 2,
      featureDim: 1,
      gram,
      receivedAtMs,
    });
    await s.putProbeSummary(summary('old', now - 61_000));
    await s.putProbeSummary(summary('new', now - 1_000));
    const report = (reportId: string, createdAtMs: number) =>
      s.putReport({ reportId, createdAtMs, trigger: 'operator', models: 1, json: '{}', html: '' });
    await report('old-report', now - 121_000);
    await report('kept-report', now - 61_000); // older than the summaries' retention, not the reports'
    await expect.poll(() => pruned(h), { timeout: 5_000 }).toEqual({ probe_summaries: 1, reports: 1 });
    expect(await s.getProbeSummaries('old')).toEqual([]);
    expect((await s.getProbeSummaries('new')).length).toBe(1);
    expect((await s.listReports(10)).map((r) => r.reportId)).toEqual(['kept-report']);
    const exposition = await h.running.metrics.registry.metrics();
    expect(exposition).toMatch(/atomlens_retention_pruned_total\{kind="reports"\} 1/);
  });
});
