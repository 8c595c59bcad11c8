// End to end with the real client (src/client: TensorFlow.js training on split MNIST) on
// loopback: two clients train one short round each and linger to answer probes; a third
// client holds a session but never answers. An operator request over gRPC must produce a
// report whose probe data came from the trained models, name the silent client, and finish
// once the probe deadline has passed.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import { createLogger } from '../../src/shared/log.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { runAnalysis } from '../coordinator/helpers.js';
import { type SimClient, startClient, unary } from './sim-client.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/report.schema.json', import.meta.url), 'utf8'));
const PROBE_DEADLINE_MS = 8000;
const PROBE_SIZE = 48;

describe('analysis with real clients', () => {
  let dir: string;
  let coordinator: RunningCoordinator;
  let silent: SimClient;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atomlens-real-e2e-'));
    coordinator = await startCoordinator({
      dataDir: dir,
      config: {
        sessions: { heartbeatIntervalMs: 1000, timeoutMs: 30_000 },
        metrics: { defaultMetrics: false },
        escalation: { enabled: false },
      },
      analysis: createAnalysisService({ workers: 2 }),
      logger: createLogger('real-e2e', 'silent'),
    });
    const address = `127.0.0.1:${coordinator.grpcPort}`;
    // Each client in its own process, as deployed (training blocks a process's event loop).
    const trained = ['alice', 'bob'].map((clientId, i) => {
      const child = spawn(
        process.execPath,
        atomlensArgv([
          'client',
          '--coordinator',
          address,
          '--id',
          clientId,
          '--tasks',
          i === 0 ? '0-1' : '2-3',
          '--rounds',
          '1',
          '--seed',
          String(7 + i),
          '--linger',
          '300',
          '--json',
        ]),
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
      );
      children.push(child);
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      return new Promise<void>((resolve, reject) => {
        let buffer = '';
        child.stdout.on('data', (d: Buffer) => {
          buffer += d.toString();
          if (/"type":"uploaded"/.test(buffer)) resolve();
        });
        child.once('exit', (code) => reject(new Error(`client ${clientId} exited with ${code}: ${stderr}`)));
      });
    });
    await Promise.all(trained);
    silent = await startClient(address, 'dave', '4-5', 'classes', {
      seed: 3,
      silent: true,
      template: coordinator.template,
    });
    for (let i = 0; i < 200 && coordinator.sessions.connectedCount() < 3; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    silent?.close();
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
            child.once('exit', () => {
              clearTimeout(force);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    await coordinator?.stop({ drain: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('produces a report from the clients’ probe answers and names the one that never answered', async () => {
    expect(coordinator.sessions.connectedCount()).toBe(3);
    const proto = loadAtomlensProto();
    const operator = new proto.atomlens.v1.OperatorService(
      `127.0.0.1:${coordinator.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as OperatorServiceClient;
    const started = Date.now();
    const progress = await runAnalysis(
      operator,
      { models: [], reason: 'real clients', probeDeadlineMs: PROBE_DEADLINE_MS, probeSize: PROBE_SIZE },
      { deadline: Date.now() + PROBE_DEADLINE_MS + 90_000 },
    );
    const elapsed = Date.now() - started;
    expect(progress.at(-1)?.stage).toBe('ANALYSIS_STAGE_DONE');
    // Waited for the silent client up to the deadline, then went on without it.
    expect(elapsed).toBeGreaterThanOrEqual(PROBE_DEADLINE_MS - 100);
    const got = await unary<{ json: string }>((cb) =>
      operator.GetReport({ reportId: progress.at(-1)!.reportId, includeHtml: false }, cb),
    );
    operator.close();
    const report = JSON.parse(got.json) as AnalysisReport;
    expect(new Ajv({ strict: true }).validate(schema, report)).toBe(true);
    expect(report.models.map((m) => [m.clientId, m.answered])).toEqual([
      ['alice', true],
      ['bob', true],
      ['dave', false],
    ]);
    expect(report.missing.map((m) => m.clientId)).toEqual(['dave']);
    expect(report.missing[0]!.reason).toMatch(/deadline/);
    expect(report.template.probe.size).toBe(PROBE_SIZE);
    // The Gram matrices came over gRPC from the trained models and are stored.
    for (const m of report.models.slice(0, 2)) {
      const rows = await coordinator.storage.getProbeSummaries(m.requestId!);
      expect(rows).toHaveLength(coordinator.template.probeLayers.length);
      expect(rows.every((r) => r.n === PROBE_SIZE && r.round === 1)).toBe(true);
    }
    const L = coordinator.template.probeLayers.length;
    expect(report.layerGw).toHaveLength(2);
    for (const m of report.layerGw) {
      expect(m.gw).toHaveLength(L);
      expect(m.gw.flat().every((v) => v !== null && v >= 0)).toBe(true);
    }
    expect(report.blocks.length).toBeGreaterThanOrEqual(1);
    expect(report.crossCheck.points).toHaveLength(L);
  });
});
