// Slow and vanished clients: a session whose heartbeats stop (the stream stays open, as after a
// network partition) is marked gone within the timeout, counted in atomlens_sessions_gone_total,
// released (not connected), and a probe waiting on it ends without waiting for its deadline; a
// client that keeps heartbeating but never answers is given up at the probe deadline; an
// operator's analysis over a vanished and a healthy client finishes by its deadline with a report
// naming the missing one.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { ProbeError } from '../../src/coordinator/federation/sessions.js';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { ListClientsResponse__Output } from '../../src/generated/atomlens/v1/ListClientsResponse.js';
import type { ProbeRequest__Output } from '../../src/generated/atomlens/v1/ProbeRequest.js';
import type { RunAnalysisResponse__Output } from '../../src/generated/atomlens/v1/RunAnalysisResponse.js';
import type { SessionResponse__Output } from '../../src/generated/atomlens/v1/SessionResponse.js';
import { createLogger } from '../../src/shared/log.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import { atomsRequest, federationClient, operatorClient, rpc, waitFor } from './helpers.js';

const HEARTBEAT_MS = 100;
const TIMEOUT_MS = 600;
const TASK = { taskId: '0-1', classes: [0, 1] };

interface FakeClient {
  id: string;
  fed: FederationServiceClient;
  session: grpc.ClientDuplexStream<unknown, SessionResponse__Output>;
  probes: ProbeRequest__Output[];
  /** Stop heartbeating but keep the stream open (a vanished peer). */
  vanish(): void;
  close(): void;
}

/** A protocol-level client: registers, pushes one round, heartbeats, answers probes if asked to. */
async function fakeClient(address: string, id: string, answer: boolean): Promise<FakeClient> {
  const fed = federationClient(address);
  await rpc((cb) => fed.register({ clientId: id, tasks: [TASK], clientVersion: 'fake' }, cb));
  await rpc((cb) => fed.pushAtoms(atomsRequest(id, '0-1', 1, id.length), cb));
  const session = fed.session() as unknown as FakeClient['session'];
  const probes: ProbeRequest__Output[] = [];
  session.on('error', () => undefined);
  session.on('data', (m: SessionResponse__Output) => {
    if (m.kind !== 'probeRequest' || !m.probeRequest) return;
    probes.push(m.probeRequest);
    if (answer) void answerProbe(fed, id, m.probeRequest);
  });
  session.write({ hello: { clientId: id } });
  const beat = setInterval(() => session.write({ heartbeat: { sentAtMs: Date.now() } }), HEARTBEAT_MS);
  return {
    id,
    fed,
    session,
    probes,
    vanish: () => clearInterval(beat),
    close: () => {
      clearInterval(beat);
      session.cancel();
      fed.close();
    },
  };
}

/** Gram matrices K = X Xᵀ of random features, one layer after another on one stream. */
async function answerProbe(
  fed: FederationServiceClient,
  clientId: string,
  req: ProbeRequest__Output,
): Promise<void> {
  const n = req.probe!.size;
  const d = 6;
  const normal = normalSampler(mulberry32(n + clientId.length));
  await rpc((cb) => {
    const call = fed.pushProbeSummary(cb);
    for (const layer of req.layers) {
      const x = Float64Array.from({ length: n * d }, () => normal());
      const k = new Float32Array(n * n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let t = 0; t < d; t++) s += x[i * d + t]! * x[j * d + t]!;
          k[i * n + j] = s;
        }
      call.write({
        requestId: req.requestId,
        clientId,
        taskId: req.taskId,
        round: 1,
        layer,
        n,
        featureDim: d,
        offset: 0,
        data: Buffer.from(k.buffer),
      });
    }
    call.end();
  });
}

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe('slow and vanished clients', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-vanish-'));
  let running: RunningCoordinator;
  let address: string;
  const clients: FakeClient[] = [];
  const scrape = () => running.metrics.registry.metrics();

  beforeAll(async () => {
    running = await startCoordinator({
      dataDir,
      grpcPort: 0,
      httpPort: 0,
      logger: createLogger('vanish', 'silent'),
      config: { sessions: { heartbeatIntervalMs: HEARTBEAT_MS, timeoutMs: TIMEOUT_MS } },
      analysis: createAnalysisService({ workers: 1 }),
    });
    address = `127.0.0.1:${running.grpcPort}`;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await running?.stop({ drain: false });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a session that stops heartbeating is marked gone, counted and released; its waiting probe ends early', async () => {
    const ghost = await fakeClient(address, 'ghost', false);
    clients.push(ghost);
    await waitFor(() => running.sessions.connectedCount() === 1, 5_000);
    const goneBefore = metricValue(await scrape(), 'atomlens_sessions_gone_total');

    const deadline = Date.now() + 10_000;
    const probe = running.sessions.requestProbe('ghost', {
      taskId: '0-1',
      layers: ['conv1'],
      probe: { source: 'noise', size: 8, seed: 1, pooling: 'gap' },
      deadlineMs: deadline,
    });
    const settled = probe.then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitFor(() => ghost.probes.length === 1, 5_000);
    const vanishedAt = Date.now();
    ghost.vanish();

    const err = await settled;
    const after = Date.now() - vanishedAt;
    expect(err).toBeInstanceOf(ProbeError);
    expect((err as ProbeError).outcome).toBe('gone');
    // Gone after the heartbeat timeout, well before the 10 s probe deadline.
    expect(after).toBeGreaterThanOrEqual(TIMEOUT_MS - HEARTBEAT_MS);
    expect(after).toBeLessThan(TIMEOUT_MS + 3_000);
    expect(running.sessions.connectedCount()).toBe(0);

    const text = await scrape();
    expect(metricValue(text, 'atomlens_sessions_gone_total')).toBe(goneBefore + 1);
    expect(metricValue(text, 'atomlens_clients_connected')).toBe(0);
    expect(metricValue(text, 'atomlens_probe_requests_total{outcome="gone"}')).toBeGreaterThanOrEqual(1);
    const op = operatorClient(address);
    try {
      const listed = await rpc<ListClientsResponse__Output>((cb) => op.listClients({}, cb));
      expect(listed.clients.find((c) => c.clientId === 'ghost')?.connected).toBe(false);
    } finally {
      op.close();
    }
  });

  it('a client that heartbeats but never answers is given up at the probe deadline', async () => {
    const mute = await fakeClient(address, 'mute', false);
    clients.push(mute);
    await waitFor(() => running.sessions.connectedCount() === 1, 5_000);
    const waitMs = 800;
    const t0 = Date.now();
    const err = await running.sessions
      .requestProbe('mute', {
        taskId: '0-1',
        layers: ['conv1'],
        probe: { source: 'noise', size: 8, seed: 1, pooling: 'gap' },
        deadlineMs: t0 + waitMs,
      })
      .catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    expect((err as ProbeError).outcome).toBe('timeout');
    expect(elapsed).toBeGreaterThanOrEqual(waitMs - 20);
    expect(elapsed).toBeLessThan(waitMs + 3_000);
    // Still connected: being slow is not being gone.
    expect(running.sessions.connectedCount()).toBe(1);
    mute.close();
  });

  it('an analysis over a vanished and a healthy client finishes by its deadline and names the missing one', async () => {
    const healthy = await fakeClient(address, 'healthy', true);
    const vanishing = await fakeClient(address, 'vanishing', false);
    clients.push(healthy, vanishing);
    await waitFor(() => running.sessions.connectedCount() >= 2, 5_000);
    vanishing.vanish();
    const probeDeadlineMs = 4_000;
    const op = operatorClient(address);
    const t0 = Date.now();
    const progress: RunAnalysisResponse__Output[] = [];
    try {
      await new Promise<void>((resolve, reject) => {
        const call = op.runAnalysis({
          models: [
            { clientId: 'healthy', taskId: '0-1' },
            { clientId: 'vanishing', taskId: '0-1' },
          ],
          reason: 'vanished-client test',
          probeDeadlineMs,
          probeSize: 16,
        });
        call.on('data', (p: RunAnalysisResponse__Output) => progress.push(p));
        call.on('end', () => resolve());
        call.on('error', reject);
      });
    } finally {
      op.close();
    }
    const elapsed = Date.now() - t0;
    // Probing ends at the deadline at the latest; a small GW solve follows.
    expect(elapsed).toBeLessThan(probeDeadlineMs + 20_000);
    const last = progress.at(-1)!;
    expect(last.stage).toBe('ANALYSIS_STAGE_DONE');
    expect(healthy.probes).toHaveLength(1);
    expect(vanishing.probes).toHaveLength(1);
    const report = JSON.parse((await running.analysis!.getReport(last.reportId))!.json) as {
      missing: { clientId: string; reason: string }[];
    };
    expect(report.missing.map((m) => m.clientId)).toEqual(['vanishing']);
    expect(running.sessions.connectedCount()).toBe(1);
  });
});
