// The scale-out deploy files: compose.postgres.yaml (PostgreSQL and a scalable worker service over
// compose.yaml) and the Kubernetes overlay deploy/k8s/overlays/postgres (CloudNativePG cluster,
// coordinator on --store, worker Deployment, HPA on the queue depth). Structural checks against
// the real commands and metrics; kustomize renders the overlay where kubectl exists.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import client from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { registerQueueGauges } from '../../src/coordinator/level1/gw-queue-metrics.js';
import { checkFlags, commandSpec } from './cli-flags.js';
import {
  asList,
  asMap,
  canRun,
  DEPLOY_DIR,
  K8S_DIR,
  parseYamlDocuments,
  readText,
  readYaml,
  readYamlDocuments,
  run,
  type YamlMap,
  type YamlValue,
} from './deploy-files.js';

const OVERLAY = join(K8S_DIR, 'overlays', 'postgres');
const hasKubectl = canRun('kubectl', ['kustomize', '--help']);
if (!hasKubectl)
  console.warn('kubectl not found: skipping the kustomize rendering of deploy/k8s/overlays/postgres');

/** Metric names the queue exporters register. */
function queueMetricNames(): string[] {
  const registry = new client.Registry();
  registerQueueGauges(registry, async () => ({ waiting: 0, active: 0, liveWorkers: 0 }));
  return registry.getMetricsAsArray().map((m) => m.name);
}

describe('compose.postgres.yaml', () => {
  const compose = asMap(readYaml(join(DEPLOY_DIR, 'compose.postgres.yaml')), 'compose.postgres.yaml');
  const base = asMap(readYaml(join(DEPLOY_DIR, 'compose.yaml')), 'compose.yaml');
  const services = asMap(compose.services, 'services');
  const command = (name: string) =>
    asList(asMap(services[name], name).command, `${name}.command`).map(String);

  it('adds PostgreSQL and a worker service to the base file, for the same project', () => {
    expect(compose.name).toBe(base.name);
    expect(Object.keys(services).sort()).toEqual(['coordinator', 'postgres', 'worker']);
    expect(Object.keys(asMap(base.services, 'base services'))).toContain('coordinator');
    expect(Object.keys(asMap(compose.volumes, 'volumes'))).toEqual(['postgres-data']);
    const worker = asMap(services.worker, 'worker');
    // The worker runs the coordinator's image (no TensorFlow.js needed) and can be scaled.
    expect(worker.image).toBe(asMap(asMap(base.services, 'base').coordinator, 'coordinator').image);
    expect(worker.ports).toBeUndefined();
    expect(worker.container_name).toBeUndefined();
    expect(asMap(worker.healthcheck, 'healthcheck').disable).toBe(true);
  });

  it('points the coordinator and the workers at the same database, the password only in the environment', () => {
    const store = (args: string[]) => args[args.indexOf('--store') + 1];
    checkFlags(commandSpec('coordinator'), command('coordinator').slice(1), 'compose coordinator');
    checkFlags(commandSpec('worker'), command('worker').slice(1), 'compose worker');
    expect(command('worker')[0]).toBe('worker');
    expect(store(command('coordinator'))).toBe(store(command('worker')));
    const url = new URL(store(command('worker'))!);
    expect(url.hostname).toBe('postgres');
    expect(url.password).toBe('');
    const env = (name: string) => asMap(asMap(services[name], name).environment, `${name}.environment`);
    expect(env('coordinator').PGPASSWORD).toBe(env('postgres').POSTGRES_PASSWORD);
    expect(env('worker').PGPASSWORD).toBe(env('postgres').POSTGRES_PASSWORD);
    expect(url.username).toBe(env('postgres').POSTGRES_USER);
    expect(url.pathname).toBe(`/${env('postgres').POSTGRES_DB}`);
    // Every solve goes to the workers.
    const args = command('coordinator');
    expect(args[args.indexOf('--analysis-workers') + 1]).toBe('0');
  });

  it('starts the coordinator and workers once PostgreSQL accepts connections', () => {
    for (const name of ['coordinator', 'worker']) {
      const dependsOn = asMap(asMap(services[name], name).depends_on, `${name}.depends_on`);
      expect(asMap(dependsOn.postgres, 'postgres').condition).toBe('service_healthy');
    }
    expect(asList(asMap(asMap(services.postgres, 'postgres').healthcheck, 'hc').test, 'test')).toContain(
      'pg_isready',
    );
  });
});

describe('Kubernetes overlay deploy/k8s/overlays/postgres', () => {
  const kustomization = asMap(readYaml(join(OVERLAY, 'kustomization.yaml')), 'kustomization');
  const docs = new Map<string, YamlMap>();
  for (const file of asList(kustomization.resources, 'resources')
    .map(String)
    .filter((f) => !f.startsWith('..'))) {
    for (const d of readYamlDocuments(join(OVERLAY, file))) {
      const m = asMap(d, file);
      docs.set(String(m.kind), m);
    }
  }
  const patch = asMap(parseYamlDocuments(readText(join(OVERLAY, 'coordinator-store.yaml')))[0], 'patch');
  const containerOf = (m: YamlMap) =>
    asMap(
      asList(
        asMap(asMap(asMap(m.spec, 'spec').template, 'template').spec, 'pod').containers,
        'containers',
      )[0],
      'c',
    );

  it('holds a CloudNativePG cluster, a worker Deployment and its HPA, and patches the coordinator', () => {
    expect([...docs.keys()].sort()).toEqual(['Cluster', 'Deployment', 'HorizontalPodAutoscaler']);
    expect(asList(kustomization.patches, 'patches').map((p) => asMap(p, 'patch').path)).toEqual([
      'coordinator-store.yaml',
    ]);
    for (const m of [...docs.values(), patch])
      expect(asMap(m.metadata, 'metadata').namespace).toBe('atomlens');
  });

  it('keeps every argument of the base coordinator and adds --store with the password only in the environment', () => {
    const baseSet = readYamlDocuments(join(K8S_DIR, 'base', 'statefulset.yaml')).map((d) => asMap(d, 'base'));
    const baseArgs = asList(containerOf(baseSet[0]!).args, 'args').map(String);
    const args = asList(containerOf(patch).args, 'args').map(String);
    expect(asMap(patch.metadata, 'metadata').name).toBe(asMap(baseSet[0]!.metadata, 'metadata').name);
    expect(args.slice(0, baseArgs.length)).toEqual(baseArgs);
    checkFlags(commandSpec('coordinator'), args.slice(1), 'coordinator-store.yaml');
    expect(args.slice(baseArgs.length)).toEqual([
      '--store',
      'postgres://$(DB_USER)@$(DB_HOST):$(DB_PORT)/$(DB_NAME)',
      '--analysis-workers',
      '0',
    ]);
  });

  it('runs workers with flags the worker command accepts, reading the database Secret CloudNativePG writes', () => {
    const deployment = docs.get('Deployment')!;
    const worker = containerOf(deployment);
    const args = asList(worker.args, 'args').map(String);
    expect(args[0]).toBe('worker');
    checkFlags(commandSpec('worker'), args.slice(1), 'worker.yaml');
    const cluster = asMap(docs.get('Cluster')!.metadata, 'cluster').name;
    for (const c of [worker, containerOf(patch)]) {
      const env = asList(c.env, 'env').map((e) => asMap(e, 'env'));
      // Every $(VAR) in the arguments is defined, all from the cluster's application Secret.
      const used = [
        ...asList(c.args, 'args')
          .map(String)
          .join(' ')
          .matchAll(/\$\((\w+)\)/g),
      ].map((m) => m[1]);
      for (const name of used) expect(env.map((e) => e.name)).toContain(name);
      for (const e of env) {
        const ref = asMap(asMap(e.valueFrom, 'valueFrom').secretKeyRef, 'secretKeyRef');
        expect(ref.name).toBe(`${cluster}-app`);
        expect(['username', 'host', 'port', 'dbname', 'password']).toContain(ref.key);
      }
      expect(env.map((e) => e.name)).toContain('PGPASSWORD');
    }
    const port = asList(worker.ports, 'ports').map((p) => asMap(p, 'port'))[0]!;
    expect(String(port.containerPort)).toBe(args[args.indexOf('--metrics-port') + 1]);
  });

  it('scales the workers on a metric the queue exports', () => {
    const hpa = docs.get('HorizontalPodAutoscaler')!;
    const spec = asMap(hpa.spec, 'spec');
    const target = asMap(spec.scaleTargetRef, 'scaleTargetRef');
    expect([target.kind, target.name]).toEqual([
      'Deployment',
      asMap(docs.get('Deployment')!.metadata, 'm').name,
    ]);
    const metric = asMap(
      asMap(asMap(asList(spec.metrics, 'metrics')[0], 'm').external, 'external').metric,
      'metric',
    );
    expect(queueMetricNames()).toContain(metric.name as YamlValue as string);
    expect(Number(spec.minReplicas)).toBeGreaterThanOrEqual(1);
  });
});

describe.skipIf(!hasKubectl)('deploy/k8s/overlays/postgres rendered by kustomize', () => {
  const copy = mkdtempSync(join(tmpdir(), 'atomlens-k8s-pg-'));
  afterAll(() => rmSync(copy, { recursive: true, force: true }));
  it('renders the base with the database, workers and HPA, the coordinator patched', () => {
    cpSync(K8S_DIR, copy, { recursive: true });
    const r = run('kubectl', ['kustomize', join(copy, 'overlays', 'postgres')]);
    expect(r.status, r.stderr).toBe(0);
    const kinds = parseYamlDocuments(r.stdout).map((d) => asMap(d, 'doc').kind);
    expect(kinds).toEqual(
      expect.arrayContaining(['StatefulSet', 'Deployment', 'HorizontalPodAutoscaler', 'Cluster']),
    );
    expect(r.stdout).toContain('--store');
  });
});
