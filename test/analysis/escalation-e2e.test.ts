// Automatic escalation on a live coordinator: an upload whose atoms jumped (drift over the
// threshold) starts an analysis of its task's models by itself, the report says why, a client
// without a session is named as unreachable, and a second jump of the same client is debounced.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import type { RunningCoordinator } from '../../src/coordinator/coordinator.js';
import type { AnalysisServiceImpl } from '../../src/coordinator/level1/analysis-service.js';
import { type LiveCoordinator, startLiveCoordinator } from './live-coordinator.js';
import { type SimClient, startClient } from './sim-client.js';

async function until<T>(
  what: string,
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('automatic escalation', () => {
  let live: LiveCoordinator;
  let coordinator: RunningCoordinator;
  const clients: SimClient[] = [];

  beforeAll(async () => {
    live = await startLiveCoordinator('escalation-e2e', 1, {
      analysis: { probeDeadlineMs: 3000 },
      // Divergence off (a threshold above its range) so that drift alone decides.
      escalation: { driftThreshold: 0.25, divergenceThreshold: 5, cooldownMs: 0, modelCooldownMs: 600_000 },
    });
    coordinator = live.coordinator;
    const address = live.address;
    clients.push(await startClient(address, 'alice', '0-1', 'classes', { seed: 31 }));
    clients.push(await startClient(address, 'bob', '0-1', 'classes', { seed: 32 }));
    clients.push(await startClient(address, 'erin', '0-1', 'classes', { seed: 33, noSession: true }));
    clients.push(await startClient(address, 'carol', '2-3', 'classes', { seed: 34 }));
    await until('sessions', () => (coordinator.sessions.connectedCount() === 3 ? true : undefined));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await live?.stop();
  });

  it('a drifting upload starts an analysis of its task, recorded with the reason', async () => {
    const analysis = coordinator.analysis as AnalysisServiceImpl;
    expect(await analysis.listReports(10)).toEqual([]);
    await clients[1]!.push(2, true);
    const summary = await until('a report', async () => (await analysis.listReports(10))[0]);
    expect(summary.trigger).toBe('drift');
    const report = JSON.parse((await analysis.getReport(summary.reportId))!.json) as AnalysisReport;
    expect(report.trigger.kind).toBe('drift');
    expect(report.trigger.reason).toMatch(/bob\/0-1 drifted/);
    expect(report.trigger.evidence[0]).toMatchObject({ name: 'drift', threshold: 0.25, clientId: 'bob' });
    expect(report.trigger.evidence[0]!.value).toBeGreaterThan(0.25);
    // The task's models, the triggering one first; carol (another task) is not involved.
    expect(report.models.map((m) => m.clientId)).toEqual(['bob', 'alice', 'erin']);
    expect(report.models[0]!.round).toBe(2);
    expect(report.missing).toEqual([
      expect.objectContaining({ clientId: 'erin', reason: expect.stringMatching(/not reachable/) }),
    ]);
    const metrics = await coordinator.metrics.registry.metrics();
    expect(metrics).toMatch(/atomlens_escalations_total\{reason="drift"\} 1/);

    // bob jumps again at once: debounced by its own cooldown, no second analysis.
    await clients[1]!.push(3, true);
    await until(
      'the trigger to be seen',
      () => (analysis.policy.suppressed.get('drift') ? true : undefined),
      5000,
    );
    expect(await analysis.listReports(10)).toHaveLength(1);
  });
});
