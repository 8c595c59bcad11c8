// The Grafana dashboard: well-formed for Grafana's provisioning, showing what an operator needs,
// and referring only to metrics the coordinator exports — checked against the contract list and
// against what a real coordinator's /metrics declares.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exposedFamilies, startTestCoordinator, type TestCoordinator } from './coordinator-harness.js';
import {
  ALL_METRICS,
  COORDINATOR_METRICS,
  dashboardQueries,
  familyOf,
  QUEUE_METRICS,
  RULES_FILE,
  readDashboard,
  readYaml,
  rulesOf,
  usedAtomlensNames,
} from './deploy-files.js';

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string; datasource?: { uid: string } }[];
  fieldConfig?: { defaults?: { thresholds?: { steps: { value: number | null }[] } } };
}

const dashboard = readDashboard() as unknown as {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
};
const panels = dashboard.panels;
const dataPanels = panels.filter((p) => p.type !== 'row');
const queries = dashboardQueries();
const allExprs = queries.map((q) => q.expr).join('\n');
/** Grafana's reference to the dashboard's datasource variable (a literal, not a JS template). */
const DATASOURCE_REF = ['$', '{datasource}'].join('');

describe('Grafana dashboard', () => {
  it('has a stable uid, a title and unique panel ids', () => {
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.title.length).toBeGreaterThan(0);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('lays panels out on the 24-column grid without overlaps', () => {
    for (const p of panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      expect(p.gridPos.w * p.gridPos.h, p.title).toBeGreaterThan(0);
    }
    for (let i = 0; i < panels.length; i++) {
      for (let j = i + 1; j < panels.length; j++) {
        const a = panels[i]!.gridPos;
        const b = panels[j]!.gridPos;
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `"${panels[i]!.title}" overlaps "${panels[j]!.title}"`).toBe(false);
      }
    }
  });

  it('queries Prometheus through the datasource variable, with defined variables only', () => {
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    const ds = dashboard.templating.list.find((v) => v.name === 'datasource');
    expect(ds?.type).toBe('datasource');
    expect(ds?.query).toBe('prometheus');
    for (const p of dataPanels) {
      expect(p.datasource?.uid, p.title).toBe(DATASOURCE_REF);
      expect(p.targets?.length, `${p.title} has queries`).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, `${p.title} refIds`).toBe(refIds.length);
      for (const t of p.targets!) expect(t.datasource?.uid).toBe(DATASOURCE_REF);
    }
    for (const m of allExprs.matchAll(/\$\{?(\w+)\}?/g)) {
      if (m[1]!.startsWith('__')) continue; // Grafana's built-ins ($__rate_interval, …)
      expect(variables, `variable $${m[1]}`).toContain(m[1]);
    }
  });

  it('shows federation similarity, divergence and drift per model, escalations, analysis durations and gRPC rates and errors', () => {
    const titled = (re: RegExp): Panel[] => dataPanels.filter((p) => re.test(p.title));
    const exprsOf = (ps: Panel[]): string => ps.flatMap((p) => p.targets!.map((t) => t.expr)).join('\n');
    expect(exprsOf(titled(/similarity over time/i))).toMatch(/atomlens_federation_similarity\{/);
    expect(exprsOf(titled(/^divergence per model/i))).toMatch(
      /atomlens_model_divergence\{[^}]*client=~"\$client"/,
    );
    expect(exprsOf(titled(/^drift per model/i))).toMatch(/atomlens_model_drift\{[^}]*client=~"\$client"/);
    expect(exprsOf(titled(/escalations/i))).toMatch(/increase\(atomlens_escalations_total/);
    expect(exprsOf(titled(/analysis duration/i))).toMatch(
      /histogram_quantile\(0\.\d+, sum by \(le\) \(rate\(atomlens_analysis_duration_seconds_bucket/,
    );
    expect(exprsOf(titled(/gRPC requests/i))).toMatch(/rate\(atomlens_grpc_requests_total/);
    expect(exprsOf(titled(/gRPC errors/i))).toMatch(/atomlens_grpc_requests_total\{[^}]*code!="OK"/);
  });

  it('draws the same thresholds the alerts use', () => {
    const rules = new Map(rulesOf(readYaml(RULES_FILE), 'rules').map((r) => [r.name, r.expr]));
    const thresholdOf = (title: RegExp): number[] =>
      (dataPanels.find((p) => title.test(p.title))?.fieldConfig?.defaults?.thresholds?.steps ?? [])
        .map((s) => s.value)
        .filter((v): v is number => v !== null);
    const alertValue = (name: string): number =>
      Number(/>\s*([0-9.]+)\s*$/.exec(rules.get(name)!.trim())![1]);
    expect(thresholdOf(/^divergence per model/i)).toContain(alertValue('AtomlensModelDiverging'));
    expect(thresholdOf(/^drift per model/i)).toContain(alertValue('AtomlensModelDrifting'));
    expect(thresholdOf(/last seen/i)).toContain(alertValue('AtomlensClientSilent'));
  });
});

describe('metric names in the dashboard and the alert rules', () => {
  const used = usedAtomlensNames();

  it('are found (the extraction works)', () => {
    expect(used.size).toBeGreaterThanOrEqual(15);
    expect(used.get('atomlens_model_divergence')?.some((w) => w.startsWith('rule'))).toBe(true);
  });

  it('are all in the coordinator metric contract, with the right suffixes for histograms', () => {
    for (const [name, where] of used) {
      expect(familyOf(name, ALL_METRICS), `${name} (used by ${where.join(', ')})`).toBeDefined();
    }
  });

  it('use counters only through rate()/increase() and histograms only through their series', () => {
    for (const q of [
      ...queries.map((q) => q.expr),
      ...rulesOf(readYaml(RULES_FILE), 'rules').map((r) => r.expr),
    ]) {
      for (const m of q.matchAll(/\batomlens_[a-z0-9_]+/g)) {
        const name = m[0];
        const family = familyOf(name, ALL_METRICS)!;
        const type = ALL_METRICS[family];
        if (
          type === 'counter' ||
          (type === 'histogram' && name !== `${family}_sum` && name !== `${family}_count`)
        ) {
          // The metric must sit inside rate( or increase( (possibly after a label selector).
          const before = q.slice(0, m.index);
          expect(before, `${name} in: ${q}`).toMatch(/(rate|increase)\($/);
        } else if (type === 'gauge') {
          expect(q.slice(0, m.index), `${name} is a gauge: no rate() in ${q}`).not.toMatch(
            /(rate|increase)\($/,
          );
        }
      }
    }
  });
});

describe('against a real coordinator /metrics', () => {
  let coordinator: TestCoordinator;
  let families: Record<string, string>;

  beforeAll(async () => {
    coordinator = await startTestCoordinator();
    const res = await fetch(`http://127.0.0.1:${coordinator.httpPort}/metrics`);
    expect(res.status).toBe(200);
    families = exposedFamilies(await res.text());
  });
  afterAll(async () => {
    await coordinator?.stop();
  });

  it('declares every metric family of the contract with its type', () => {
    for (const [name, type] of Object.entries(COORDINATOR_METRICS)) {
      expect(families[name], `coordinator /metrics lacks ${name}`).toBe(type);
    }
  });

  it('declares every metric the dashboard and the rules use (process and Node.js ones included)', () => {
    const names = new Set<string>(usedAtomlensNames().keys());
    for (const q of queries) {
      for (const m of q.expr.matchAll(/\b(process|nodejs)_[a-z0-9_]+/g)) names.add(m[0]);
    }
    for (const name of names) {
      // The queue's metrics exist only with --store postgres://… (checked in gw-queue.test.ts).
      if (familyOf(name, QUEUE_METRICS)) continue;
      expect(familyOf(name, families), `${name} is not exported by the coordinator`).toBeDefined();
    }
  });
});
