// The Prometheus side of deploy/: the real promtool checks the scrape config, the rules and the
// rules' unit tests, and parses every PromQL query of the Grafana dashboard; the PrometheusRule
// for the Operator must carry exactly the same rules.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { renderPrometheusRule } from '../../deploy/k8s/monitoring/gen-prometheusrule.mjs';
import {
  asList,
  asMap,
  canRun,
  dashboardQueries,
  grafanaToPromql,
  K8S_DIR,
  PROMETHEUS_CONFIG,
  RULES_FILE,
  RULES_TEST_FILE,
  readText,
  readYaml,
  rulesOf,
  run,
  warnMissing,
} from './deploy-files.js';

const hasPromtool = canRun('promtool', ['--version']);
if (!hasPromtool)
  warnMissing('promtool', 'promtool checks of deploy/prometheus', 'apt-get install prometheus');

const scratch = mkdtempSync(join(tmpdir(), 'atomlens-promtool-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('promtool', () => {
  it.skipIf(!hasPromtool)('accepts the scrape configuration and the rule files it loads', () => {
    const r = run('promtool', ['check', 'config', PROMETHEUS_CONFIG]);
    expect(r.stderr + r.stdout).toContain('SUCCESS');
    expect(r.status, r.stderr + r.stdout).toBe(0);
    // The config must really load our rules (a wrong rule_files glob loads nothing, silently).
    expect(r.stdout).toMatch(/SUCCESS: [1-9]\d* rule files found/);
    expect(r.stdout).toContain('atomlens.rules.yml');
  });

  it.skipIf(!hasPromtool)('accepts the alert rules', () => {
    const r = run('promtool', ['check', 'rules', RULES_FILE]);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    const count = rulesOf(readYaml(RULES_FILE), 'rules').length;
    expect(r.stdout).toContain(`SUCCESS: ${count} rules found`);
  });

  it.skipIf(!hasPromtool)('passes the rules unit tests (promtool test rules)', () => {
    const r = run('promtool', ['test', 'rules', RULES_TEST_FILE]);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toContain('SUCCESS');
  });

  it.skipIf(!hasPromtool)('rejects a broken rule, so the checks above can fail', () => {
    const broken = join(scratch, 'broken.rules.yml');
    writeFileSync(
      broken,
      readText(RULES_FILE).replace(
        'expr: atomlens_model_divergence > 0.35',
        'expr: atomlens_model_divergence > > 0.35',
      ),
    );
    const r = run('promtool', ['check', 'rules', broken]);
    expect(r.status).not.toBe(0);
  });

  it.skipIf(!hasPromtool)('parses every dashboard query as PromQL', () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(10);
    // label_values(...) is Grafana's, not PromQL: check the selector inside it.
    const exprs = queries.map((q) => {
      const m = /^label_values\((.*),\s*\w+\)$/.exec(q.expr);
      return { ...q, promql: grafanaToPromql(m ? m[1]! : q.expr) };
    });
    const file = join(scratch, 'dashboard.rules.yml');
    const lines = ['groups:', '  - name: dashboard', '    rules:'];
    exprs.forEach((q, i) => {
      lines.push(`      - record: dashboard:query_${i}`, `        expr: ${JSON.stringify(q.promql)}`);
    });
    writeFileSync(file, `${lines.join('\n')}\n`);
    const r = run('promtool', ['check', 'rules', file]);
    expect(
      r.status,
      `${r.stderr}${r.stdout}\n(queries in rule order: ${exprs.map((q) => q.panel).join(' | ')})`,
    ).toBe(0);
  });
});

describe('PrometheusRule for the Prometheus Operator', () => {
  const resourcePath = join(K8S_DIR, 'monitoring', 'prometheusrule.yaml');

  it('is generated from the current rule file', () => {
    expect(
      readText(resourcePath),
      'deploy/k8s/monitoring/prometheusrule.yaml is stale: run node deploy/k8s/monitoring/gen-prometheusrule.mjs',
    ).toBe(renderPrometheusRule(readText(RULES_FILE)));
  });

  it('carries exactly the rules of deploy/prometheus/rules/atomlens.rules.yml', () => {
    const resource = asMap(readYaml(resourcePath), 'PrometheusRule');
    expect(resource.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(resource.kind).toBe('PrometheusRule');
    expect(asMap(resource.spec, 'spec').groups).toEqual(asMap(readYaml(RULES_FILE), 'rules').groups);
    expect(asList(asMap(resource.spec, 'spec').groups, 'groups').length).toBeGreaterThan(0);
  });
});

describe('alert rules', () => {
  const rules = rulesOf(readYaml(RULES_FILE), 'rules');
  const alerts = asList(asMap(readYaml(RULES_FILE), 'rules').groups, 'groups').flatMap((g) =>
    asList(asMap(g, 'group').rules, 'rules').map((r) => asMap(r, 'rule')),
  );

  it('cover what the operators asked for', () => {
    const byName = new Map(rules.map((r) => [r.name, r.expr]));
    // A model diverging beyond a threshold for N minutes.
    expect(byName.get('AtomlensModelDiverging')).toMatch(/atomlens_model_divergence\s*>\s*[0-9.]+/);
    // A registered client silent for N minutes.
    expect(byName.get('AtomlensClientSilent')).toMatch(
      /time\(\)\s*-\s*atomlens_client_last_seen_timestamp_seconds\s*>\s*\d+/,
    );
    // Analyses failing or timing out.
    expect(byName.get('AtomlensAnalysesFailing')).toContain('outcome=~"failed|timeout"');
    // Coordinator down, and absent altogether.
    expect(byName.get('AtomlensCoordinatorDown')).toContain('up{job="atomlens-coordinator"}');
    expect(byName.get('AtomlensCoordinatorAbsent')).toContain('absent(up{job="atomlens-coordinator"})');
  });

  it('each have a duration, a severity and a summary and description', () => {
    for (const a of alerts) {
      expect(String(a.for), `${String(a.alert)}: for`).toMatch(/^\d+[smh]$/);
      expect(['critical', 'warning', 'info']).toContain(asMap(a.labels, 'labels').severity);
      const annotations = asMap(a.annotations, `${String(a.alert)} annotations`);
      expect(String(annotations.summary).length).toBeGreaterThan(10);
      expect(String(annotations.description).length).toBeGreaterThan(20);
    }
  });

  it('select the job name the scrape configuration defines', () => {
    const config = asMap(readYaml(PROMETHEUS_CONFIG), 'prometheus.yml');
    const jobs = asList(config.scrape_configs, 'scrape_configs').map((s) => asMap(s, 'job').job_name);
    for (const r of rules) {
      for (const m of r.expr.matchAll(/job="([^"]+)"/g)) expect(jobs).toContain(m[1]);
    }
  });

  it('are each exercised by the promtool unit tests', () => {
    const tests = asMap(readYaml(RULES_TEST_FILE), 'rule tests');
    const tested = new Set<string>();
    for (const t of asList(tests.tests, 'tests')) {
      for (const a of asList(asMap(t, 'test').alert_rule_test, 'alert_rule_test')) {
        const art = asMap(a, 'alert_rule_test');
        if (asList(art.exp_alerts, 'exp_alerts').length > 0) tested.add(String(art.alertname));
      }
    }
    for (const a of alerts)
      expect(tested, `${String(a.alert)} has no firing test`).toContain(String(a.alert));
  });
});
