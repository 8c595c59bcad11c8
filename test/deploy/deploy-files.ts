// Shared by the deploy tests: where the deploy files are, which metric names they use (read from
// the files themselves, the one place the names live), the coordinator's metric contract, and
// detection of the system tools some tests need.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEPLOY_DIR = join(REPO_ROOT, 'deploy');
export const PROMETHEUS_CONFIG = join(DEPLOY_DIR, 'prometheus', 'prometheus.yml');
export const RULES_FILE = join(DEPLOY_DIR, 'prometheus', 'rules', 'atomlens.rules.yml');
export const RULES_TEST_FILE = join(DEPLOY_DIR, 'prometheus', 'rules', 'atomlens.rules.test.yml');
const DASHBOARD_FILE = join(DEPLOY_DIR, 'grafana', 'dashboards', 'atomlens.json');
export const K8S_DIR = join(DEPLOY_DIR, 'k8s');

/**
 * The coordinator's metric contract: name → type. The deploy files may only use these (plus
 * prom-client defaults and Prometheus' own `up`); dashboard.test.ts also checks them against a
 * real coordinator's /metrics.
 */
export const COORDINATOR_METRICS: Readonly<Record<string, 'gauge' | 'counter' | 'histogram'>> = {
  atomlens_build_info: 'gauge',
  atomlens_clients_registered: 'gauge',
  atomlens_clients_connected: 'gauge',
  atomlens_client_last_seen_timestamp_seconds: 'gauge',
  atomlens_sessions_gone_total: 'counter',
  atomlens_atom_uploads_total: 'counter',
  atomlens_model_divergence: 'gauge',
  atomlens_model_drift: 'gauge',
  atomlens_model_round: 'gauge',
  atomlens_federation_similarity: 'gauge',
  atomlens_federation_similarity_mean: 'gauge',
  atomlens_escalations_total: 'counter',
  atomlens_analyses_total: 'counter',
  atomlens_analysis_duration_seconds: 'histogram',
  atomlens_analysis_in_progress: 'gauge',
  atomlens_analysis_progress_ratio: 'gauge',
  atomlens_probe_requests_total: 'counter',
  atomlens_grpc_requests_total: 'counter',
  atomlens_grpc_request_duration_seconds: 'histogram',
  atomlens_storage_commit_duration_seconds: 'histogram',
  atomlens_storage_queued_writes: 'gauge',
  atomlens_storage_writes_refused_total: 'counter',
  atomlens_retention_pruned_total: 'counter',
};

/**
 * The GW job queue's metrics: only with --store postgres://…, exported by the coordinator and by
 * every `atomlens worker --metrics-port` (test/analysis/gw-queue.test.ts checks both).
 */
export const QUEUE_METRICS: Readonly<Record<string, 'gauge' | 'counter' | 'histogram'>> = {
  atomlens_gw_queue_depth: 'gauge',
  atomlens_gw_queue_active_jobs: 'gauge',
  atomlens_gw_workers_live: 'gauge',
  atomlens_gw_job_duration_seconds: 'histogram',
  atomlens_gw_job_retries_total: 'counter',
};

/** Every metric the dashboard and the alert rules may use. */
export const ALL_METRICS = { ...COORDINATOR_METRICS, ...QUEUE_METRICS };

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;

/** Maps a sample name used in a query to its family in `families` (name → type), if any. */
export function familyOf(sample: string, families: Readonly<Record<string, string>>): string | undefined {
  if (families[sample] !== undefined && families[sample] !== 'histogram') return sample;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (sample.endsWith(suffix)) {
      const base = sample.slice(0, -suffix.length);
      if (families[base] === 'histogram') return base;
    }
  }
  return undefined;
}

export function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

/** A YAML value as plain JSON data (the deploy files use no anchors, tags or binary). */
export type YamlValue = null | boolean | number | string | YamlValue[] | { [key: string]: YamlValue };
export type YamlMap = { [key: string]: YamlValue };

/**
 * Every document of a YAML stream as plain data, empty documents dropped (as kubectl does).
 * Read strictly with the YAML 1.2 core schema: duplicate keys, aliases and any parser warning
 * are errors, so a file cannot mean something other than what the tests see.
 */
export function parseYamlDocuments(source: string, version: '1.1' | '1.2' = '1.2'): YamlValue[] {
  const documents = parseAllDocuments(source, {
    version,
    uniqueKeys: true,
    strict: true,
    prettyErrors: true,
  });
  const list = Array.isArray(documents) ? documents : [];
  const out: YamlValue[] = [];
  for (const doc of list) {
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem) throw problem;
    const value = doc.toJS({ maxAliasCount: 0 }) as YamlValue | undefined;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

/** Parses a single-document YAML file. */
function parseYaml(source: string): YamlValue {
  const docs = parseYamlDocuments(source);
  if (docs.length !== 1) throw new Error(`expected one YAML document, found ${docs.length}`);
  return docs[0]!;
}

export function readYaml(path: string): YamlValue {
  return parseYaml(readText(path));
}

export function readYamlDocuments(path: string): YamlValue[] {
  return parseYamlDocuments(readText(path));
}

export function asMap(value: YamlValue | undefined, what: string): YamlMap {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) {
    throw new Error(`${what} is not a mapping`);
  }
  return value;
}

export function asList(value: YamlValue | undefined, what: string): YamlValue[] {
  if (!Array.isArray(value)) throw new Error(`${what} is not a sequence`);
  return value;
}

/** Every file under dir (recursively) whose name matches. Paths are absolute. */
export function filesUnder(dir: string, pattern: RegExp): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) out.push(...filesUnder(path, pattern));
    else if (pattern.test(entry)) out.push(path);
  }
  return out.sort();
}

export function repoRelative(path: string): string {
  return relative(REPO_ROOT, path);
}

// ---------------------------------------------------------------------------
// Queries used by the deploy files
// ---------------------------------------------------------------------------

export interface DashboardQuery {
  panel: string;
  expr: string;
}

interface GrafanaPanel {
  title?: string;
  type?: string;
  targets?: { expr?: string }[];
  panels?: GrafanaPanel[];
}

export interface GrafanaDashboard {
  uid: string;
  title: string;
  panels: GrafanaPanel[];
  templating: { list: { name: string; type: string; query?: unknown; definition?: string }[] };
}

export function readDashboard(): GrafanaDashboard {
  return JSON.parse(readText(DASHBOARD_FILE)) as GrafanaDashboard;
}

/** Every PromQL expression of every panel (rows' nested panels included) and template variable. */
export function dashboardQueries(dashboard: GrafanaDashboard = readDashboard()): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  const walk = (panels: GrafanaPanel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr) out.push({ panel: p.title ?? '(untitled)', expr: t.expr });
      if (p.panels) walk(p.panels);
    }
  };
  walk(dashboard.panels);
  for (const v of dashboard.templating.list) {
    if (v.type === 'query' && v.definition) out.push({ panel: `variable ${v.name}`, expr: v.definition });
  }
  return out;
}

/** Grafana's variables replaced by values PromQL accepts (all clients, tasks, instances). */
export function grafanaToPromql(expr: string): string {
  return expr
    .replaceAll('$__rate_interval', '1m')
    .replaceAll('$__interval', '15s')
    .replaceAll('$__range', '1h')
    .replace(/\$\{?(instance|client|task)\}?/g, '.*');
}

export interface RuleEntry {
  group: string;
  name: string;
  expr: string;
}

/** Alerting and recording rules of a Prometheus rule file (or PrometheusRule spec). */
export function rulesOf(groupsHolder: YamlValue, what: string): RuleEntry[] {
  const out: RuleEntry[] = [];
  for (const g of asList(asMap(groupsHolder, what).groups, `${what}.groups`)) {
    const group = asMap(g, `${what} group`);
    for (const r of asList(group.rules, `${what} group ${String(group.name)} rules`)) {
      const rule = asMap(r, `${what} rule`);
      out.push({
        group: String(group.name),
        name: String(rule.alert ?? rule.record),
        expr: String(rule.expr),
      });
    }
  }
  return out;
}

/** Metric names (atomlens_*) an expression refers to; recording-rule names (with ':') excluded. */
function atomlensNamesIn(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\batomlens_[A-Za-z0-9_]+/g)].map((m) => m[0]))];
}

/** Every atomlens_* sample name the dashboard and the alert rules use, with where it is used. */
export function usedAtomlensNames(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const note = (name: string, where: string): void => {
    used.set(name, [...(used.get(name) ?? []), where]);
  };
  for (const q of dashboardQueries()) {
    for (const n of atomlensNamesIn(q.expr)) note(n, `dashboard panel "${q.panel}"`);
  }
  for (const r of rulesOf(readYaml(RULES_FILE), repoRelative(RULES_FILE))) {
    for (const n of atomlensNamesIn(r.expr)) note(n, `rule ${r.name}`);
  }
  return used;
}

// ---------------------------------------------------------------------------
// System tools
// ---------------------------------------------------------------------------

/** True when `cmd args…` can be run (exit status 0). */
export function canRun(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 20_000 });
  return r.error === undefined && r.status === 0;
}

export function run(
  cmd: string,
  args: string[],
  options: { cwd?: string; input?: string } = {},
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, {
    cwd: options.cwd ?? REPO_ROOT,
    input: options.input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Logs why a group of tests is skipped (vitest's skip reason is easy to miss). */
export function warnMissing(tool: string, why: string, install: string): void {
  console.warn(`[deploy tests] ${tool} not found: skipping ${why}. To run them: ${install}.`);
}
