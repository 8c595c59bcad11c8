// Kubernetes manifests in deploy/k8s: rendered with kustomize (`kubectl kustomize`) where kubectl
// is installed, and in every case checked structurally — the references between the resources
// (selectors, named ports, volumes, Secret and ConfigMap keys behind the files the coordinator is
// told to read, the Service the client Job dials, the Service the ServiceMonitor scrapes) must
// resolve, and the probes, resources and security settings a production deployment needs must be there.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveAuthConfig } from '../../src/coordinator/auth/config.js';
import { loadConfigFile } from '../../src/coordinator/config.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { checkFlags, commandSpec } from './cli-flags.js';
import {
  asList,
  asMap,
  canRun,
  K8S_DIR,
  parseYamlDocuments,
  REPO_ROOT,
  RULES_FILE,
  readText,
  readYaml,
  readYamlDocuments,
  rulesOf,
  run,
  warnMissing,
  type YamlMap,
  type YamlValue,
} from './deploy-files.js';

const hasKubectl = canRun('kubectl', ['kustomize', '--help']);
if (!hasKubectl) {
  warnMissing(
    'kubectl',
    'rendering deploy/k8s with kustomize (structural checks still run)',
    'install kubectl',
  );
}

const scratch = mkdtempSync(join(tmpdir(), 'atomlens-k8s-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const KUSTOMIZATIONS = ['base', 'monitoring', 'examples', 'overlays/example'] as const;
const NAMESPACE = 'atomlens';

type Resource = YamlMap & { kind: string; metadata: YamlMap };

function asResource(v: YamlValue, where: string): Resource {
  const r = asMap(v, where);
  expect(typeof r.apiVersion, `${where}: apiVersion`).toBe('string');
  expect(typeof r.kind, `${where}: kind`).toBe('string');
  expect(typeof asMap(r.metadata, `${where}: metadata`).name, `${where}: metadata.name`).toBe('string');
  return r as Resource;
}

const nameOf = (r: Resource): string => String(r.metadata.name);
const labelsOf = (m: YamlValue | undefined): Record<string, string> =>
  Object.fromEntries(Object.entries(m ? asMap(m, 'labels') : {}).map(([k, v]) => [k, String(v)]));
const selects = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/**
 * The resources a kustomization directory produces, read without kustomize: its resource files
 * (and nested kustomizations) plus ConfigMaps/Secrets from its generators (keys only). Good enough
 * to check references; kustomize's own rendering is checked separately where kubectl exists.
 */
function readKustomizationRaw(dir: string): Resource[] {
  const k = asMap(readYaml(join(dir, 'kustomization.yaml')), `${dir}/kustomization.yaml`);
  const out: Resource[] = [];
  for (const entry of asList(k.resources ?? [], 'resources')) {
    const path = join(dir, String(entry));
    expect(existsSync(path), `${dir}: resource ${String(entry)} does not exist`).toBe(true);
    if (existsSync(join(path, 'kustomization.yaml'))) out.push(...readKustomizationRaw(path));
    else out.push(...readYamlDocuments(path).map((d, i) => asResource(d, `${path}#${i}`)));
  }
  const generated = (kind: 'ConfigMap' | 'Secret', list: YamlValue | undefined): void => {
    for (const g of asList(list ?? [], `${kind} generators`)) {
      const gen = asMap(g, 'generator');
      const keys: YamlMap = {};
      for (const f of asList(gen.files ?? [], 'files')) {
        const [key, file] = String(f).includes('=')
          ? String(f).split('=')
          : [posix.basename(String(f)), String(f)];
        keys[key!] = `(file ${file})`;
      }
      for (const l of asList(gen.literals ?? [], 'literals')) keys[String(l).split('=')[0]!] = '(literal)';
      const resource: Resource = { apiVersion: 'v1', kind, metadata: { name: String(gen.name) }, data: keys };
      const existing = out.findIndex((r) => r.kind === kind && nameOf(r) === String(gen.name));
      if (gen.behavior === 'replace' || gen.behavior === 'merge') {
        expect(
          existing,
          `${dir}: ${kind} ${String(gen.name)} to ${String(gen.behavior)} is not in the base`,
        ).toBeGreaterThanOrEqual(0);
        out[existing] = resource;
      } else {
        out.push(resource);
      }
    }
  };
  generated('ConfigMap', k.configMapGenerator);
  generated('Secret', k.secretGenerator);
  return out;
}

/** Files each kustomization's generators read, created with harmless dummy content in a copy. */
function copyWithDummySecrets(): string {
  const copy = join(scratch, 'k8s');
  cpSync(K8S_DIR, copy, { recursive: true });
  const overlay = asMap(readYaml(join(copy, 'overlays', 'example', 'kustomization.yaml')), 'overlay');
  for (const g of asList(overlay.secretGenerator, 'secretGenerator')) {
    for (const f of asList(asMap(g, 'generator').files, 'files')) {
      const file = String(f).split('=').pop()!;
      writeFileSync(join(copy, 'overlays', 'example', file), `dummy ${file} for a render test\n`);
    }
  }
  return copy;
}

function keysOf(r: Resource): string[] {
  return [
    ...Object.keys(asMap(r.data ?? {}, 'data')),
    ...Object.keys(asMap(r.stringData ?? {}, 'stringData')),
  ];
}

/** Finds a generated or plain ConfigMap/Secret by its base name (kustomize may append a hash). */
function findByBaseName(resources: Resource[], kind: string, name: string): Resource | undefined {
  return resources.find(
    (r) => r.kind === kind && (nameOf(r) === name || new RegExp(`^${name}-[a-z0-9]{10}$`).test(nameOf(r))),
  );
}

interface Container {
  name: string;
  args: string[];
  env: YamlMap[];
  ports: YamlMap[];
  volumeMounts: YamlMap[];
  raw: YamlMap;
}

function containersOf(podSpec: YamlMap): Container[] {
  return asList(podSpec.containers, 'containers').map((c) => {
    const m = asMap(c, 'container');
    return {
      name: String(m.name),
      args: asList(m.args ?? [], 'args').map(String),
      env: asList(m.env ?? [], 'env').map((e) => asMap(e, 'env')),
      ports: asList(m.ports ?? [], 'ports').map((p) => asMap(p, 'port')),
      volumeMounts: asList(m.volumeMounts ?? [], 'volumeMounts').map((v) => asMap(v, 'volumeMount')),
      raw: m,
    };
  });
}

function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** The ConfigMap/Secret key a container file path resolves to, through its volume mounts. */
function resolveMountedFile(
  path: string,
  container: Container,
  podSpec: YamlMap,
  resources: Resource[],
): { kind: string; name: string; key: string } {
  const mount = container.volumeMounts.find((m) => path.startsWith(`${String(m.mountPath)}/`));
  expect(mount, `${container.name}: ${path} is not under any volume mount`).toBeDefined();
  const volume = asList(podSpec.volumes, 'volumes')
    .map((v) => asMap(v, 'volume'))
    .find((v) => v.name === mount!.name);
  expect(volume, `${container.name}: volume ${String(mount!.name)} is not defined`).toBeDefined();
  const file = path.slice(String(mount!.mountPath).length + 1);
  const source = volume!.secret
    ? {
        kind: 'Secret',
        v: asMap(volume!.secret, 'secret'),
        name: String(asMap(volume!.secret, 'secret').secretName),
      }
    : {
        kind: 'ConfigMap',
        v: asMap(volume!.configMap, 'configMap'),
        name: String(asMap(volume!.configMap, 'configMap').name),
      };
  // With `items`, only the listed keys are projected, under their paths.
  const items = source.v.items ? asList(source.v.items, 'items').map((i) => asMap(i, 'item')) : undefined;
  const key = items ? String(items.find((i) => i.path === file)?.key) : file;
  expect(
    items === undefined || items.some((i) => i.path === file),
    `${path}: not among the projected items`,
  ).toBe(true);
  const target = findByBaseName(resources, source.kind, source.name);
  expect(target, `${source.kind} ${source.name} (mounted for ${path}) does not exist`).toBeDefined();
  expect(keysOf(target!), `${source.kind} ${source.name} has no key ${key} (for ${path})`).toContain(key);
  return { kind: source.kind, name: nameOf(target!), key };
}

/** Environment variables taken from Secrets name existing keys. */
function checkSecretKeyRefs(c: Container, resources: Resource[]): void {
  for (const e of c.env) {
    const ref = e.valueFrom ? asMap(asMap(e.valueFrom, 'valueFrom').secretKeyRef, 'secretKeyRef') : undefined;
    if (!ref) continue;
    const secret = findByBaseName(resources, 'Secret', String(ref.name));
    expect(secret, `${c.name}: Secret ${String(ref.name)}`).toBeDefined();
    expect(keysOf(secret!), `${c.name}: env ${String(e.name)}`).toContain(ref.key);
  }
}

/** The checks every rendering (raw or kustomize) of deploy/k8s must pass. */
function checkFederationResources(resources: Resource[], rendered: boolean): void {
  const byKind = (kind: string): Resource[] => resources.filter((r) => r.kind === kind);
  const [sts] = byKind('StatefulSet');
  expect(sts, 'a StatefulSet for the coordinator').toBeDefined();
  const spec = asMap(sts!.spec, 'StatefulSet spec');
  expect(spec.replicas, 'one writer for the embedded database').toBe(1);
  const template = asMap(spec.template, 'pod template');
  const podLabels = labelsOf(asMap(template.metadata, 'template metadata').labels);
  expect(selects(labelsOf(asMap(spec.selector, 'selector').matchLabels), podLabels)).toBe(true);
  const pod = asMap(template.spec, 'pod spec');
  const podSecurity = asMap(pod.securityContext, 'pod securityContext');
  expect(podSecurity.runAsNonRoot).toBe(true);
  // uid 1000 is the `node` user the Dockerfile switches to.
  expect(podSecurity.runAsUser).toBe(1000);
  expect(pod.automountServiceAccountToken).toBe(false);
  const [coordinator] = containersOf(pod);
  expect(coordinator!.args[0]).toBe('coordinator');
  checkSecretKeyRefs(coordinator!, resources);

  // Named ports and probes.
  const portNames = new Map(coordinator!.ports.map((p) => [String(p.name), Number(p.containerPort)]));
  expect(portNames.get('grpc')).toBe(Number(flagValue(coordinator!.args, '--grpc-port')));
  expect(portNames.get('http')).toBe(Number(flagValue(coordinator!.args, '--http-port')));
  const probe = (name: string): YamlMap =>
    asMap(asMap(coordinator!.raw[name], name).httpGet, `${name}.httpGet`);
  expect(probe('readinessProbe').path).toBe('/readyz');
  expect(probe('livenessProbe').path).toBe('/healthz');
  // With --tls-cert the HTTP port serves HTTPS (unless --http-insecure): probes must say so.
  const httpsServed =
    coordinator!.args.includes('--tls-cert') && !coordinator!.args.includes('--http-insecure');
  for (const p of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
    expect(portNames.has(String(probe(p).port)), `${p} port`).toBe(true);
    expect(probe(p).scheme ?? 'HTTP', `${p} scheme`).toBe(httpsServed ? 'HTTPS' : 'HTTP');
  }
  // Beyond loopback the coordinator serves plaintext only when told so explicitly.
  expect(flagValue(coordinator!.args, '--host')).toBe('0.0.0.0');
  expect(coordinator!.args.includes('--tls-cert') || coordinator!.args.includes('--insecure')).toBe(true);
  const res = asMap(coordinator!.raw.resources, 'resources');
  expect(Object.keys(asMap(res.requests, 'requests')).sort()).toEqual(['cpu', 'memory']);
  expect(asMap(res.limits, 'limits').memory).toBeDefined();
  const containerSecurity = asMap(coordinator!.raw.securityContext, 'container securityContext');
  expect(containerSecurity.allowPrivilegeEscalation).toBe(false);
  expect(containerSecurity.readOnlyRootFilesystem).toBe(true);
  // A read-only root needs a writable /tmp (SQLite's temporary files).
  expect(coordinator!.volumeMounts.map((m) => m.mountPath)).toContain('/tmp');

  // The data directory is the persistent volume claim.
  const claims = asList(spec.volumeClaimTemplates, 'volumeClaimTemplates').map((c) => asMap(c, 'claim'));
  const dataMount = coordinator!.volumeMounts.find(
    (m) => m.mountPath === flagValue(coordinator!.args, '--data'),
  );
  expect(dataMount, '--data is on a volume').toBeDefined();
  const claim = claims.find((c) => asMap(c.metadata, 'claim metadata').name === dataMount!.name);
  expect(claim, 'the data volume is a volumeClaimTemplate').toBeDefined();
  expect(asList(asMap(claim!.spec, 'claim spec').accessModes, 'accessModes')).toEqual(['ReadWriteOnce']);
  const volumeNames = new Set([
    ...asList(pod.volumes, 'volumes').map((v) => String(asMap(v, 'volume').name)),
    ...claims.map((c) => String(asMap(c.metadata, 'claim metadata').name)),
  ]);
  for (const m of coordinator!.volumeMounts)
    expect(volumeNames, `volume ${String(m.name)}`).toContain(m.name);

  // Every file the coordinator is told to read is a key of a mounted ConfigMap or Secret.
  const fileFlags = ['--config', '--tls-cert', '--tls-key', '--tls-client-ca'];
  for (const flag of fileFlags) {
    const path = flagValue(coordinator!.args, flag);
    if (path) resolveMountedFile(path, coordinator!, pod, resources);
  }
  const config = resolveMountedFile(flagValue(coordinator!.args, '--config')!, coordinator!, pod, resources);
  const configMap = findByBaseName(resources, 'ConfigMap', config.name)!;
  if (rendered) {
    // The JSON configuration the coordinator reads, and the secret files it names in turn.
    const json = JSON.parse(String(asMap(configMap.data, 'data')[config.key])) as {
      auth?: Record<string, unknown>;
    };
    for (const key of ['enrollmentSecretFile', 'operatorTokenFile']) {
      const path = json.auth?.[key];
      if (typeof path === 'string') resolveMountedFile(path, coordinator!, pod, resources);
    }
  }

  // Services: the governing headless Service and the client-facing one, both selecting the pod.
  const services = byKind('Service');
  const headless = services.find((s) => nameOf(s) === spec.serviceName);
  expect(headless, 'serviceName names a Service').toBeDefined();
  expect(asMap(headless!.spec, 'spec').clusterIP).toBe('None');
  for (const s of services) {
    const sspec = asMap(s.spec, 'Service spec');
    expect(selects(labelsOf(sspec.selector), podLabels), `Service ${nameOf(s)} selects the pod`).toBe(true);
    for (const p of asList(sspec.ports, 'ports')) {
      expect(portNames.has(String(asMap(p, 'port').targetPort)), `Service ${nameOf(s)} targetPort`).toBe(
        true,
      );
    }
  }

  // ServiceMonitor: scrapes exactly the client-facing Service, on its HTTP port, at /metrics; the
  // job label the operator derives (the Service's name) is the one the alert rules select.
  for (const sm of byKind('ServiceMonitor')) {
    const smSpec = asMap(sm.spec, 'ServiceMonitor spec');
    const chosen = services.filter((s) =>
      selects(labelsOf(asMap(smSpec.selector, 'selector').matchLabels), labelsOf(s.metadata.labels)),
    );
    expect(chosen.map(nameOf)).toEqual(['atomlens-coordinator']);
    const servicePorts = asList(asMap(chosen[0]!.spec, 'spec').ports, 'ports').map((p) => asMap(p, 'port'));
    for (const e of asList(smSpec.endpoints, 'endpoints')) {
      const endpoint = asMap(e, 'endpoint');
      expect(endpoint.path).toBe('/metrics');
      const port = servicePorts.find((p) => p.name === endpoint.port);
      expect(port, `ServiceMonitor port ${String(endpoint.port)}`).toBeDefined();
      expect(port!.targetPort).toBe('http');
      // Scraped over HTTPS when the coordinator serves it, verified against the Secret's CA under
      // the Service's DNS name.
      expect(endpoint.scheme ?? 'http').toBe(httpsServed ? 'https' : 'http');
      if (httpsServed) {
        const tls = asMap(endpoint.tlsConfig, 'tlsConfig');
        expect(tls.serverName).toBe(`${nameOf(chosen[0]!)}.${NAMESPACE}.svc`);
        const ref = asMap(asMap(tls.ca, 'tlsConfig.ca').secret, 'tlsConfig.ca.secret');
        const secret = findByBaseName(resources, 'Secret', String(ref.name));
        expect(secret, `Secret ${String(ref.name)}`).toBeDefined();
        expect(keysOf(secret!)).toContain(ref.key);
        expect(tls.insecureSkipVerify).toBeUndefined();
      }
    }
    const jobs = new Set(
      rulesOf(readYaml(RULES_FILE), 'rules').flatMap((r) =>
        [...r.expr.matchAll(/job="([^"]+)"/g)].map((m) => m[1]),
      ),
    );
    // Without jobLabel the Operator names the job after the Service.
    expect(smSpec.jobLabel, 'jobLabel would rename the job the rules select').toBeUndefined();
    expect([...jobs]).toEqual([nameOf(chosen[0]!)]);
  }

  // Client Job: dials the client-facing Service's gRPC port; its secret references resolve.
  for (const job of byKind('Job')) {
    const jobPod = asMap(asMap(asMap(job.spec, 'Job spec').template, 'template').spec, 'pod spec');
    expect(['OnFailure', 'Never']).toContain(jobPod.restartPolicy);
    for (const c of containersOf(jobPod)) {
      expect(c.args[0]).toBe('client');
      const address = flagValue(c.args, '--coordinator');
      const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(?:\.cluster\.local)?:(\d+)$/.exec(address ?? '');
      expect(m, `--coordinator ${address}: expected SERVICE.NAMESPACE.svc:PORT`).not.toBeNull();
      const target = services.find((s) => nameOf(s) === m![1]);
      expect(target, `Service ${m![1]}`).toBeDefined();
      expect(m![2]).toBe(NAMESPACE);
      const grpcPort = asList(asMap(target!.spec, 'spec').ports, 'ports')
        .map((p) => asMap(p, 'port'))
        .find((p) => p.name === 'grpc');
      expect(grpcPort?.port).toBe(Number(m![3]));
      checkSecretKeyRefs(c, resources);
      // $(NAME) in args is expanded by Kubernetes from the container's env.
      for (const m of c.args.join(' ').matchAll(/\$\(([A-Z0-9_]+)\)/g)) {
        expect(
          c.env.map((e) => e.name),
          `${c.name}: $(${m[1]}) is not in env`,
        ).toContain(m[1]);
      }
      const ca = flagValue(c.args, '--ca');
      if (ca) resolveMountedFile(ca, c, jobPod, resources);
      // Enrolling with the secret binds the id to the credential in --state-dir: it must be on
      // a claim that outlives the pod.
      if (c.args.includes('--enrollment-secret')) {
        const stateDir = flagValue(c.args, '--state-dir');
        expect(stateDir, `${c.name}: enrols with the secret but has no --state-dir`).toBeDefined();
        const mount = c.volumeMounts.find((m) => stateDir!.startsWith(`${String(m.mountPath)}/`));
        expect(mount, `${c.name}: --state-dir ${stateDir} is not on a volume`).toBeDefined();
        const volume = asList(jobPod.volumes, 'volumes')
          .map((v) => asMap(v, 'volume'))
          .find((v) => v.name === mount!.name);
        const claim = volume?.persistentVolumeClaim
          ? String(asMap(volume.persistentVolumeClaim, 'persistentVolumeClaim').claimName)
          : undefined;
        expect(claim, `${c.name}: --state-dir must be on a persistentVolumeClaim`).toBeDefined();
        expect(findByBaseName(resources, 'PersistentVolumeClaim', claim!), `claim ${claim}`).toBeDefined();
      }
    }
  }

  if (rendered) {
    for (const r of resources) {
      if (r.kind === 'Namespace') continue;
      expect(r.metadata.namespace, `${r.kind} ${nameOf(r)} namespace`).toBe(NAMESPACE);
    }
  }
}

describe('Kubernetes manifests (read directly)', () => {
  const all = readKustomizationRaw(join(K8S_DIR, 'overlays', 'example'));

  it('hold a StatefulSet, Services, ConfigMap, Secret, ServiceMonitor, PrometheusRule and a client Job', () => {
    const kinds = new Set(all.map((r) => r.kind));
    for (const k of [
      'Namespace',
      'StatefulSet',
      'Service',
      'ConfigMap',
      'Secret',
      'ServiceMonitor',
      'PrometheusRule',
      'Job',
    ]) {
      expect(kinds, k).toContain(k);
    }
  });

  it('reference one another consistently', () => {
    checkFederationResources(all, false);
  });

  it('ship no secret values: the base Secret is empty until an overlay fills it', () => {
    const secret = readKustomizationRaw(join(K8S_DIR, 'base')).find((r) => r.kind === 'Secret')!;
    const values = Object.values(asMap(secret.stringData ?? {}, 'stringData'));
    expect(values.length).toBeGreaterThan(0);
    for (const v of values) expect(v).toBe('');
    expect(secret.data).toBeUndefined();
    // The overlay's secret files are git-ignored.
    const ignore = readText(join(K8S_DIR, 'overlays', 'example', 'secrets', '.gitignore'));
    expect(ignore.split('\n')).toContain('*');
  });

  it('configure the coordinator with JSON its configuration loader accepts', async () => {
    const path = join(K8S_DIR, 'base', 'coordinator.json');
    expect(() => JSON.parse(readFileSync(path, 'utf8'))).not.toThrow();
    // Durable acknowledgements in a cluster: fsync per commit.
    const config = loadConfigFile(path);
    expect(config.storage.synchronous).toBe('full');
  });

  it('turn authentication on, with secrets read from the mounted Secret, in a form the auth module accepts', async () => {
    const raw = JSON.parse(readFileSync(join(K8S_DIR, 'base', 'coordinator.json'), 'utf8')) as {
      auth: Record<string, unknown>;
    };
    expect(raw.auth.enabled, 'a cluster deployment authenticates its clients').toBe(true);
    // Prometheus and the kubelet reach these without tokens.
    expect(raw.auth.metrics).toBe('open');
    expect(raw.auth.health).toBe('open');
    // The same section with the secret files pointing at stand-ins with valid content.
    const dir = mkdtempSync(join(scratch, 'auth-'));
    const section = { ...raw.auth };
    for (const key of ['enrollmentSecretFile', 'operatorTokenFile']) {
      const file = join(dir, posix.basename(String(section[key])));
      writeFileSync(file, `${key}-0123456789abcdef\n`);
      section[key] = file;
    }
    const resolved = resolveAuthConfig(section, {}, dir);
    expect(resolved.enabled).toBe(true);
    expect(resolved.enrollmentSecret).toBe('enrollmentSecretFile-0123456789abcdef');
    expect(resolved.operatorTokenDigests).toHaveLength(1);
    // And with the base's empty Secret the coordinator refuses to start, naming the problem.
    for (const key of ['enrollmentSecretFile']) writeFileSync(String(section[key]), '');
    expect(() => resolveAuthConfig(section, {}, dir)).toThrow(/at least 16 characters/);
  });

  it('pass only flags the atomlens commands accept', () => {
    for (const r of all) {
      if (r.kind !== 'StatefulSet' && r.kind !== 'Job') continue;
      const pod = asMap(asMap(asMap(r.spec, 'spec').template, 'template').spec, 'pod spec');
      for (const c of containersOf(pod)) {
        checkFlags(commandSpec(c.args[0]!), c.args.slice(1), `${r.kind} ${nameOf(r)}`);
      }
    }
  });
});

describe.skipIf(!hasKubectl)('Kubernetes manifests rendered by kustomize', () => {
  const copy = hasKubectl ? copyWithDummySecrets() : '';
  const render = (dir: string): Resource[] => {
    const r = run('kubectl', ['kustomize', join(copy, dir)]);
    expect(r.status, `kubectl kustomize deploy/k8s/${dir}: ${r.stderr}`).toBe(0);
    return parseYamlDocuments(r.stdout).map((d, i) => asResource(d, `${dir} rendered #${i}`));
  };

  it.each(KUSTOMIZATIONS)('%s renders', (dir) => {
    expect(render(dir).length).toBeGreaterThan(0);
  });

  it('the complete example renders into consistent resources in one namespace', () => {
    const resources = render('overlays/example');
    checkFederationResources(resources, true);
    // The overlay really replaced the empty Secret with the files' content.
    const secret = resources.find((r) => r.kind === 'Secret')!;
    const data = asMap(secret.data, 'Secret data');
    expect(Buffer.from(String(data['enrollment-secret']), 'base64').toString()).toContain('dummy');
  });

  it('the rendered PrometheusRule holds exactly the rules of the rule file', () => {
    const rule = render('monitoring').find((r) => r.kind === 'PrometheusRule')!;
    expect(asMap(rule.spec, 'spec').groups).toEqual(asMap(readYaml(RULES_FILE), 'rules').groups);
  });

  it('the base alone renders with the empty Secret and a hashed ConfigMap', () => {
    const resources = render('base');
    checkFederationResources(resources, true);
    expect(resources.find((r) => r.kind === 'ConfigMap')!.metadata.name).toMatch(
      /^atomlens-coordinator-config-[a-z0-9]{10}$/,
    );
  });

  it('kustomize fails loudly when the overlay secrets are missing (nothing renders half-configured)', () => {
    const bare = join(scratch, 'bare');
    cpSync(K8S_DIR, bare, { recursive: true });
    rmSync(join(bare, 'overlays', 'example', 'secrets'), { recursive: true, force: true });
    const r = run('kubectl', ['kustomize', join(bare, 'overlays', 'example')]);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/secrets\//);
  });
});

describe('the StatefulSet command line, run outside a cluster', () => {
  const hasOpenssl = spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0;
  if (!hasOpenssl)
    warnMissing('openssl', 'running the StatefulSet command with TLS', 'apt-get install openssl');
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  function get(url: URL, ca: Buffer): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = request(url, { ca }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
  }

  it.skipIf(!hasOpenssl)(
    'starts with the ConfigMap and Secret as mounted: TLS, authentication on, open probes and metrics',
    async () => {
      const resources = readKustomizationRaw(join(K8S_DIR, 'base'));
      const sts = resources.find((r) => r.kind === 'StatefulSet')!;
      const pod = asMap(asMap(asMap(sts.spec, 'spec').template, 'template').spec, 'pod spec');
      const [container] = containersOf(pod);
      // Stand-ins for the mounted volumes: the Secret's keys from make-certs.sh and openssl rand,
      // the ConfigMap's coordinator.json as it is in the repository.
      const root = mkdtempSync(join(scratch, 'mounts-'));
      const certs = join(root, 'certs');
      const made = spawnSync('bash', [join(REPO_ROOT, 'scripts', 'make-certs.sh'), certs], {
        encoding: 'utf8',
      });
      expect(made.status, made.stderr).toBe(0);
      const mountDirs = new Map<string, string>();
      for (const m of container!.volumeMounts) {
        const dir = join(root, String(m.name));
        mkdirSync(dir, { recursive: true });
        mountDirs.set(String(m.mountPath), dir);
      }
      const secretsDir = mountDirs.get('/etc/atomlens/secrets')!;
      cpSync(join(certs, 'server.pem'), join(secretsDir, 'tls.crt'));
      cpSync(join(certs, 'server-key.pem'), join(secretsDir, 'tls.key'));
      cpSync(join(certs, 'ca.pem'), join(secretsDir, 'ca.crt'));
      writeFileSync(join(secretsDir, 'enrollment-secret'), randomBytes(24).toString('hex'));
      const operatorToken = randomBytes(24).toString('hex');
      writeFileSync(join(secretsDir, 'operator-tokens'), `${operatorToken}\n`);
      const mapPath = (p: string): string => {
        for (const [mountPath, dir] of mountDirs)
          if (p.startsWith(`${mountPath}/`)) return join(dir, p.slice(mountPath.length + 1));
        return p;
      };
      const config = JSON.parse(readFileSync(join(K8S_DIR, 'base', 'coordinator.json'), 'utf8')) as {
        auth: Record<string, unknown>;
      };
      for (const key of ['enrollmentSecretFile', 'operatorTokenFile'])
        config.auth[key] = mapPath(String(config.auth[key]));
      writeFileSync(mapPath('/etc/atomlens/config/coordinator.json'), JSON.stringify(config));

      const args = container!.args.map((a) => (a.startsWith('/') ? mapPath(a) : a));
      const set = (flag: string, value: string): void => {
        args[args.indexOf(flag) + 1] = value;
      };
      set('--host', '127.0.0.1');
      set('--grpc-port', '0');
      set('--http-port', '0');
      // The image runs bin/atomlens.js (the compiled CLI); here the same CLI runs from the sources.
      child = spawn(process.execPath, atomlensArgv(args), {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ATOMLENS_ENROLLMENT_SECRET: '', ATOMLENS_OPERATOR_TOKEN: '' },
      });
      let output = '';
      const url = await new Promise<URL>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`coordinator did not start:\n${output}`)), 60_000);
        const onData = (d: Buffer): void => {
          output += d.toString();
          const m = /http listening on (https?:\/\/\S+:\d+)/.exec(output);
          if (m) {
            clearTimeout(timer);
            resolve(new URL(m[1]!));
          }
        };
        child!.stdout!.on('data', onData);
        child!.stderr!.on('data', onData);
        child!.once('exit', (code) => reject(new Error(`coordinator exited with ${code}:\n${output}`)));
      });
      expect(url.protocol).toBe('https:');
      const ca = readFileSync(join(secretsDir, 'ca.crt'));
      const at = (path: string): URL => new URL(path, `https://127.0.0.1:${url.port}`);
      // What the kubelet's probes and Prometheus' scrape ask for, without any token.
      const probes = asMap(container!.raw.readinessProbe, 'readinessProbe');
      expect(await get(at(String(asMap(probes.httpGet, 'httpGet').path)), ca)).toBe(200);
      expect(await get(at('/healthz'), ca)).toBe(200);
      expect(await get(at('/metrics'), ca)).toBe(200);
      // Reports need an operator token: authentication is really on.
      expect(await get(at('/reports'), ca)).toBe(401);
      expect(output).toMatch(/tokens on/);
    },
  );
});
