// GW analysis fanned out through the PostgreSQL job queue: the same analysis computed in-process
// (SQLite coordinator, worker threads) and by `atomlens worker` processes taking jobs from the
// queue (PostgreSQL coordinator that solves nothing itself) gives the same report numbers, even
// when a worker is killed with SIGKILL in the middle of a job; one client answers with factors of
// its Gram matrices, which the workers read back from the store.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import type { AnalysisServiceOptions } from '../../src/coordinator/level1/analysis-service.js';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import { GW_QUEUE } from '../../src/coordinator/level1/gw-queue.js';
import { createLogger } from '../../src/shared/log.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { exposedFamilies } from '../deploy/coordinator-harness.js';
import { QUEUE_METRICS } from '../deploy/deploy-files.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../helpers/postgres-server.js';
import { type SimClient, startClient, templateConfig } from './sim-client.js';

const unavailable = postgresUnavailable();
if (unavailable) console.warn(unavailable);

const dirs: string[] = [];
const children: ChildProcess[] = [];

async function startFederation(
  name: string,
  store: string | undefined,
  analysis: AnalysisServiceOptions,
): Promise<{ coordinator: RunningCoordinator; clients: SimClient[] }> {
  const dir = mkdtempSync(join(tmpdir(), `atomlens-${name}-`));
  dirs.push(dir);
  const coordinator = await startCoordinator({
    dataDir: dir,
    ...(store ? { store } : {}),
    config: {
      template: templateConfig(),
      sessions: { heartbeatIntervalMs: 200, timeoutMs: 3000 },
      metrics: { defaultMetrics: false },
      escalation: { enabled: false },
    },
    analysis: createAnalysisService(analysis),
    logger: createLogger(name, 'silent'),
  });
  const address = `127.0.0.1:${coordinator.grpcPort}`;
  const clients = [
    await startClient(address, 'alice', '0-1', 'classes', { seed: 11 }),
    // bob answers with factors (his centred activations), the others with Gram matrices.
    await startClient(address, 'bob', '0-1', 'classes2', { seed: 12, factors: true }),
    await startClient(address, 'carol', '2-3', 'classes', { seed: 13 }),
  ];
  for (let i = 0; i < 100 && coordinator.sessions.connectedCount() < 3; i++)
    await new Promise((r) => setTimeout(r, 50));
  return { coordinator, clients };
}

async function analyse(coordinator: RunningCoordinator): Promise<AnalysisReport> {
  const { reportId } = await coordinator.analysis!.request(
    {
      models: ['alice', 'bob', 'carol'].map((c, i) => ({ clientId: c, taskId: i < 2 ? '0-1' : '2-3' })),
      reason: 'queue test',
      probeDeadlineMs: 10_000,
    },
    () => {},
  );
  const stored = await coordinator.analysis!.getReport(reportId);
  return JSON.parse(stored!.json) as AnalysisReport;
}

/** The numbers of a report: everything except ids, times and timings. */
function numbers(r: AnalysisReport): unknown {
  const { reportId: _r, analysisId: _a, createdAtMs: _c, createdAt: _d, timings: _t, ...rest } = r;
  return rest;
}

function startWorker(store: string): Promise<{ child: ChildProcess; metrics: string | undefined }> {
  const child = spawn(
    process.execPath,
    atomlensArgv([
      'worker',
      '--store',
      store,
      '--threads',
      '1',
      '--expired-check-seconds',
      '1',
      '--metrics-port',
      '0',
    ]),
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
  );
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      out += b.toString();
      if (out.includes('worker ready')) resolve({ child, metrics: /metrics on (\S+)/.exec(out)?.[1] });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`worker exited with ${code}: ${out}`)));
  });
}

describe.skipIf(unavailable !== undefined)('GW analysis on the PostgreSQL job queue', () => {
  let server: PostgresServer;
  const federations: { coordinator: RunningCoordinator; clients: SimClient[] }[] = [];
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const f of federations) {
      for (const c of f.clients) c.close();
      await f.coordinator.stop({ drain: false });
    }
    server?.destroy();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('queue workers give the in-process numbers, and a worker killed mid-job is replaced', async () => {
    const local = await startFederation('inproc', undefined, { workers: 2 });
    federations.push(local);
    const expected = await analyse(local.coordinator);
    expect(expected.timings.gwSolves).toBeGreaterThan(100);

    const store = await server.createDatabase();
    const queued = await startFederation('queued', store, {
      workers: 0,
      queue: { connectionString: store, expireInSeconds: 2, maintenanceIntervalSeconds: 1, pollMs: 50 },
    });
    federations.push(queued);
    const db = new pg.Client({ connectionString: store });
    db.on('error', () => {}); // cut by the database restart below
    await db.connect();
    try {
      const { child: doomed } = await startWorker(store);
      const report = analyse(queued.coordinator);
      // Wait until the worker holds a job, then kill it without warning.
      let active: string[] = [];
      for (let i = 0; i < 2000 && active.length === 0; i++) {
        const r = await db.query<{ id: string }>(
          "SELECT id FROM pgboss.job WHERE name = $1 AND state = 'active'",
          [GW_QUEUE],
        );
        active = r.rows.map((row) => row.id);
        if (active.length === 0) await new Promise((r) => setTimeout(r, 5));
      }
      doomed.kill('SIGKILL');
      await new Promise((r) => doomed.once('exit', r));
      const held = await db.query<{ id: string }>(
        "SELECT id FROM pgboss.job WHERE name = $1 AND state = 'active'",
        [GW_QUEUE],
      );
      expect(held.rows).toHaveLength(1);
      const survivor = await startWorker(store);
      const got = await report;
      expect(numbers(got)).toEqual(numbers(expected));
      // The job the killed worker held expired and was taken again.
      const retried = await db.query<{ retry_count: number; state: string }>(
        'SELECT retry_count, state FROM pgboss.job WHERE id = $1',
        [held.rows[0]!.id],
      );
      expect(retried.rows[0]).toMatchObject({ state: 'completed' });
      expect(retried.rows[0]!.retry_count).toBeGreaterThanOrEqual(1);
      // Every (analysis, models, layers) result is written once.
      const solves = await db.query<{ n: string; distinct_keys: string }>(
        'SELECT count(*) AS n, count(DISTINCT (side_a, side_b)) AS distinct_keys FROM analysis_solves WHERE analysis_id = $1',
        [got.analysisId],
      );
      expect(Number(solves.rows[0]!.n)).toBe(expected.timings.gwSolves);
      expect(Number(solves.rows[0]!.distinct_keys)).toBe(expected.timings.gwSolves);
      // The solves went out in batches: each in exactly one job, and fewer jobs than solves.
      const batches = await db.query<{ solves: number }>(
        "SELECT jsonb_array_length(data->'solves') AS solves FROM pgboss.job WHERE name = $1 AND data->>'analysisId' = $2",
        [GW_QUEUE, got.analysisId],
      );
      expect(batches.rows.reduce((sum, r) => sum + r.solves, 0)).toBe(expected.timings.gwSolves);
      expect(batches.rows.length).toBeLessThan(expected.timings.gwSolves / 2);

      // The surviving worker's metrics: what it solved, the retried job, the empty queue.
      const metrics = await (await fetch(survivor.metrics!)).text();
      expect(
        Number(/atomlens_gw_job_duration_seconds_count\{outcome="solved"\} (\d+)/.exec(metrics)?.[1]),
      ).toBeGreaterThan(0);
      expect(metrics).toMatch(/atomlens_gw_job_retries_total [1-9]/);
      expect(metrics).toMatch(/atomlens_gw_queue_depth 0/);
      // The survivor, and the killed worker until its last report is 30 s old.
      expect(metrics).toMatch(/atomlens_gw_workers_live [12]\n/);
      // Every queue metric the dashboard and alert rules may use, with its type.
      const families = exposedFamilies(metrics);
      for (const [name, type] of Object.entries(QUEUE_METRICS)) expect(families[name], name).toBe(type);
      const coordinatorMetrics = await queued.coordinator.metrics.registry.metrics();
      for (const name of [
        'atomlens_gw_queue_depth',
        'atomlens_gw_queue_active_jobs',
        'atomlens_gw_workers_live',
      ]) {
        expect(exposedFamilies(coordinatorMetrics)[name], name).toBe('gauge');
      }
      expect(coordinatorMetrics).toMatch(/atomlens_gw_queue_active_jobs 0/);

      // A database restart: the worker reconnects with backoff and the next analysis completes.
      server.stop();
      await new Promise((r) => setTimeout(r, 1500));
      server.start();
      const again = await analyse(queued.coordinator);
      expect(again.models.every((m) => m.reused)).toBe(true);
      expect([again.layerGw, again.crossModel, again.blocks]).toEqual([
        expected.layerGw,
        expected.crossModel,
        expected.blocks,
      ]);
    } finally {
      await db.end();
    }
  });
});
