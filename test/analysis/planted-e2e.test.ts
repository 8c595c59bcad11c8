// Planted structure end to end: a real coordinator (gRPC + analysis service) and protocol-speaking
// clients that answer probe requests with planted activations — a shared block, a task-specific
// block whose tasks differ only by which inputs they put where (GW cannot see it), a block one
// client computes its own way, and a shared last layer. The report must recover all of it.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { runAnalysis } from '../coordinator/helpers.js';
import { type LiveCoordinator, startLiveCoordinator } from './live-coordinator.js';
import { type PlantedFederation, plantedActivations, plantedTruth } from './planted.js';
import { type SimClient, startClient, unary } from './sim-client.js';
import { N } from './synthetic-report.js';

const DIM = 6;
const FED: PlantedFederation = {
  models: [
    { clientId: 'alice', taskId: '0-1' },
    { clientId: 'bob', taskId: '0-1' },
    { clientId: 'erin', taskId: '0-1' },
    { clientId: 'carol', taskId: '2-3' },
    { clientId: 'dave', taskId: '2-3' },
  ],
  blocks: [
    { size: 3, kind: 'shared' },
    { size: 2, kind: 'task', permute: true },
    { size: 2, kind: 'client', departing: ['bob'] },
    { size: 1, kind: 'shared' },
  ],
};

describe('planted structure over gRPC', () => {
  let live: LiveCoordinator;
  let operator: OperatorServiceClient;
  const clients: SimClient[] = [];

  beforeAll(async () => {
    live = await startLiveCoordinator('planted-e2e', 2);
    const activations = plantedActivations(FED, { n: N, dim: DIM, noise: 0.02, seed: 5 });
    for (const [i, m] of FED.models.entries()) {
      clients.push(
        await startClient(live.address, m.clientId, m.taskId, 'classes', {
          seed: 30 + i,
          stack: activations[i]!.map((X) => ({ X, n: N, d: DIM })),
        }),
      );
    }
    const proto = loadAtomlensProto();
    operator = new proto.atomlens.v1.OperatorService(
      live.address,
      grpc.credentials.createInsecure(),
    ) as unknown as OperatorServiceClient;
    for (let i = 0; i < 100 && live.coordinator.sessions.connectedCount() < FED.models.length; i++)
      await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    operator?.close();
    await live?.stop();
  });

  it('recovers every boundary and label, including the one GW alone gets wrong', async () => {
    const progress = await runAnalysis(
      operator,
      { models: FED.models, reason: 'planted', probeDeadlineMs: 5000, probeSize: 0 },
      { deadline: Date.now() + 120_000 },
    );
    const reportId = progress.at(-1)!.reportId;
    const got = await unary<{ json: string }>((cb) =>
      operator.GetReport({ reportId, includeHtml: false }, cb),
    );
    const report = JSON.parse(got.json) as AnalysisReport;
    expect(report.models.every((m) => m.answered)).toBe(true);
    const truth = plantedTruth(FED);
    expect(report.blocks.slice(0, -1).map((b) => b.end)).toEqual(truth.boundaries);
    expect(report.blocks.map((b) => b.label)).toEqual([
      'shared',
      'task-specific',
      'client-specific',
      'shared',
    ]);
    const permuted = report.blocks[1]!;
    expect(permuted.decidedBy).toBe('matched');
    expect(permuted.gw.label).toBe('shared');
    expect(permuted.gwAgrees).toBe(false);
    expect(report.blocks[2]!.matched!.departing.map((d) => d.clientId)).toEqual(['bob']);
    for (const b of report.blocks) expect(b.labelConfidence).toBeGreaterThanOrEqual(0.9);
    expect(report.verdict.some((v) => v.startsWith('GW alone would call c4–c5 shared'))).toBe(true);
  });
});
