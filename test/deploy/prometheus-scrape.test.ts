// End to end with the real consumer: a Prometheus server (the Debian binary, loopback only,
// temporary storage) runs the repository's scrape job and alert rules against a coordinator
// started here; test clients register and push atoms over gRPC; the divergence series is then
// read back through Prometheus' HTTP query API and compared with what the coordinator itself says
// (Operator.GetDivergence). The dashboard's queries are run against the same server.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { freePort } from '../helpers/free-port.js';
import { startTestCoordinator, type TestCoordinator } from './coordinator-harness.js';
import {
  asList,
  asMap,
  canRun,
  dashboardQueries,
  grafanaToPromql,
  PROMETHEUS_CONFIG,
  RULES_FILE,
  readYaml,
  rulesOf,
  warnMissing,
} from './deploy-files.js';

const PROMETHEUS_BIN = '/usr/bin/prometheus';
const hasPrometheus = canRun(PROMETHEUS_BIN, ['--version']);
if (!hasPrometheus) {
  warnMissing(PROMETHEUS_BIN, 'the Prometheus scrape integration test', 'apt-get install prometheus');
}

const JOB = 'atomlens-coordinator';
const TASK = { taskId: '0-1', classes: [0, 1] };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls until `probe` returns a value (not undefined) or the deadline passes. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
}

/**
 * The repository's Prometheus configuration, made runnable here: the same job, metrics path and
 * labels, the target replaced by the test coordinator, short intervals, and the rule files by
 * absolute path. JSON is YAML, so it is written as JSON.
 */
function testPrometheusConfig(httpPort: number): string {
  const config = structuredClone(asMap(readYaml(PROMETHEUS_CONFIG), 'prometheus.yml'));
  const global = asMap(config.global, 'global');
  global.scrape_interval = '1s';
  global.evaluation_interval = '1s';
  const jobs = asList(config.scrape_configs, 'scrape_configs').map((j) => asMap(j, 'scrape config'));
  const job = jobs.find((j) => j.job_name === JOB);
  if (!job) throw new Error(`${PROMETHEUS_CONFIG} has no job ${JOB}`);
  job.scrape_timeout = '1s';
  const statics = asList(job.static_configs, 'static_configs').map((s) => asMap(s, 'static config'));
  expect(statics.length).toBe(1);
  statics[0]!.targets = [`127.0.0.1:${httpPort}`];
  config.scrape_configs = [job];
  config.rule_files = asList(config.rule_files, 'rule_files').map((f) =>
    isAbsolute(String(f)) ? String(f) : join(dirname(PROMETHEUS_CONFIG), String(f)),
  );
  return JSON.stringify(config, null, 2);
}

interface PromVector {
  metric: Record<string, string>;
  value: [number, string];
}

function call<Req, Res>(
  fn: (req: Req, cb: (err: grpc.ServiceError | null, res?: Res) => void) => unknown,
  req: Req,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    fn(req, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}

/** Deterministic pseudo-random atoms (not the project's rng: the test stands on its own). */
function atomsFor(seed: number, count: number): Buffer {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return Buffer.from(out.buffer);
}

describe.skipIf(!hasPrometheus)('Prometheus scraping a real coordinator', () => {
  let coordinator: TestCoordinator;
  let prometheus: ChildProcess | undefined;
  let promLog = '';
  let promUrl = '';
  let scratch = '';
  let federation: FederationServiceClient;
  let operator: OperatorServiceClient;

  const query = async (promql: string): Promise<PromVector[]> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; error?: string; data: { result: PromVector[] } };
    if (body.status !== 'success') throw new Error(`query ${promql}: ${body.error}`);
    return body.data.result;
  };

  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    scratch = mkdtempSync(join(tmpdir(), 'atomlens-prometheus-'));
    const configPath = join(scratch, 'prometheus.json.yml');
    writeFileSync(configPath, testPrometheusConfig(coordinator.httpPort));
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      PROMETHEUS_BIN,
      [
        `--config.file=${configPath}`,
        `--storage.tsdb.path=${join(scratch, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    prometheus.stderr!.on('data', (d: Buffer) => {
      promLog += d.toString();
    });
    await waitFor(`Prometheus ready on ${promUrl}\n${promLog}`, async () => {
      if (prometheus!.exitCode !== null) throw new Error(`prometheus exited: ${promLog}`);
      const r = await fetch(`${promUrl}/-/ready`);
      return r.ok ? true : undefined;
    });

    const proto = loadAtomlensProto();
    const address = `127.0.0.1:${coordinator.grpcPort}`;
    federation = new proto.atomlens.v1.FederationService(address, grpc.credentials.createInsecure());
    operator = new proto.atomlens.v1.OperatorService(address, grpc.credentials.createInsecure());
  });

  afterAll(async () => {
    federation?.close();
    operator?.close();
    if (prometheus && prometheus.exitCode === null) {
      const exited = new Promise((r) => prometheus!.once('exit', r));
      prometheus.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000)]);
      if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
    }
    await coordinator?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  it('reads the clients’ divergence back through the query API, equal to the coordinator’s own', async () => {
    // Three clients learn the same task: two push identical atoms, the third different ones, so
    // the third is the one that diverges from the task's centroid.
    const clients = ['deploy-a', 'deploy-b', 'deploy-c'];
    const seeds: Record<string, number> = { 'deploy-a': 7, 'deploy-b': 7, 'deploy-c': 99 };
    for (const clientId of clients) {
      const reg = await call(federation.register.bind(federation), {
        clientId,
        tasks: [TASK],
        alphaFingerprint: '',
        clientVersion: 'deploy-test',
      });
      const layers = reg.template!.layers.map((l, i) => ({
        layer: l.name,
        atoms: { shape: [l.m, l.k, l.k], data: atomsFor(seeds[clientId]! * 1000 + i, l.m * l.k * l.k) },
      }));
      const ack = await call(federation.pushAtoms.bind(federation), {
        clientId,
        taskId: TASK.taskId,
        round: 1,
        layers,
        stats: { loss: 0.5, accuracy: 0.9, samples: 100 },
      });
      expect(ack.round).toBe(1);
    }

    // Prometheus scrapes the coordinator (job from the repo's config) and stores the series.
    const series = await waitFor('atomlens_model_divergence series in Prometheus', async () => {
      const r = await query(`atomlens_model_divergence{job="${JOB}", task="${TASK.taskId}"}`);
      return r.length === clients.length ? r : undefined;
    });
    const fromPrometheus = new Map(series.map((s) => [s.metric.client!, Number(s.value[1])]));
    expect([...fromPrometheus.keys()].sort()).toEqual(clients);
    for (const s of series) {
      expect(s.metric.job).toBe(JOB);
      expect(s.metric.component, 'labels from the repo scrape config').toBe('coordinator');
    }
    expect(fromPrometheus.get('deploy-a')).toBeCloseTo(fromPrometheus.get('deploy-b')!, 12);
    expect(fromPrometheus.get('deploy-c')!).toBeGreaterThan(fromPrometheus.get('deploy-a')! + 0.05);

    const divergence = await call(operator.getDivergence.bind(operator), {});
    for (const m of divergence.models.filter((m) => m.model!.taskId === TASK.taskId)) {
      expect(fromPrometheus.get(m.model!.clientId), m.model!.clientId).toBeCloseTo(m.divergence, 9);
    }
    expect((await query(`up{job="${JOB}"}`))[0]?.value[1]).toBe('1');
    expect(Number((await query('sum(atomlens_clients_registered)'))[0]?.value[1])).toBe(clients.length);
  });

  it('loads the repository’s alert rules', async () => {
    const res = await fetch(`${promUrl}/api/v1/rules`);
    const body = (await res.json()) as {
      data: { groups: { name: string; rules: { name: string; health: string }[] }[] };
    };
    const loaded = body.data.groups.flatMap((g) => g.rules);
    const expected = rulesOf(readYaml(RULES_FILE), 'rules').map((r) => r.name);
    expect(loaded.map((r) => r.name).sort()).toEqual([...expected].sort());
    // Each rule is evaluated without errors against the real series.
    await waitFor('every rule evaluated healthy', async () => {
      const b = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof body;
      const rules = b.data.groups.flatMap((g) => g.rules);
      return rules.every((r) => r.health === 'ok') ? true : undefined;
    });
  });

  it('answers every dashboard query, with data for the federation panels', async () => {
    for (const q of dashboardQueries()) {
      const label = /^label_values\((.*),\s*\w+\)$/.exec(q.expr);
      await expect(query(grafanaToPromql(label ? label[1]! : q.expr)), q.panel).resolves.toBeDefined();
    }
    const withData = (title: string): Promise<PromVector[]> => {
      const q = dashboardQueries().find((d) => d.panel === title);
      if (!q) throw new Error(`no dashboard panel "${title}"`);
      return query(grafanaToPromql(q.expr));
    };
    expect((await withData('Divergence per model')).length).toBe(3);
    expect((await withData('Registered clients'))[0]?.value[1]).toBe('3');
  });
});
