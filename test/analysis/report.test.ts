import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { renderReportHtml } from '../../src/analysis/report/html.js';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import { DEFAULT_PROBE_COST, linearCka, PROBE_COSTS } from '../../src/analysis/representation.js';
import { pearson } from '../../src/analysis/stats.js';
import { buildSyntheticReport, N, syntheticSetup } from './synthetic-report.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/report.schema.json', import.meta.url), 'utf8'));

function validator() {
  const ajv = new Ajv({ allErrors: true, strict: true });
  return ajv.compile(schema);
}

describe('a report built from synthetic clients with the real GW solver', () => {
  let report: AnalysisReport;
  let json: string;
  const setup = syntheticSetup();
  beforeAll(async () => {
    report = await buildSyntheticReport(setup);
    json = JSON.stringify(report);
  });

  it('validates against schemas/report.schema.json and survives a JSON round trip', () => {
    const validate = validator();
    const parsed = JSON.parse(json);
    const ok = validate(parsed);
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    expect(parsed.schemaVersion).toBe(2);
    expect(json).not.toMatch(/NaN|Infinity/);
  });

  it('records the GW cost; the schema takes either cost choice and nothing else', () => {
    const validate = validator();
    expect(report.solver.cost).toBe(DEFAULT_PROBE_COST);
    for (const cost of PROBE_COSTS) {
      const other = JSON.parse(json);
      other.solver.cost = cost;
      expect(validate(other), JSON.stringify(validate.errors)).toBe(true);
    }
    const older = JSON.parse(json);
    delete older.solver.cost;
    expect(validate(older)).toBe(true);
    const unknown = JSON.parse(json);
    unknown.solver.cost = 'cosine';
    expect(validate(unknown)).toBe(false);
  });

  it('the schema rejects a report with a wrong label or a missing section', () => {
    const validate = validator();
    const bad = JSON.parse(json);
    bad.blocks[0].label = 'mostly-shared';
    expect(validate(bad)).toBe(false);
    const missing = JSON.parse(json);
    delete missing.crossCheck;
    expect(validate(missing)).toBe(false);
    const version = JSON.parse(json);
    version.schemaVersion = 1;
    expect(validate(version)).toBe(false);
  });

  it('finds the three blocks and labels them', () => {
    expect(report.consensus?.blocks.map((b) => [b.start, b.end])).toEqual([
      [0, 2],
      [3, 5],
      [6, 7],
    ]);
    expect(report.blocks.map((b) => b.label)).toEqual(['shared', 'shared', 'client-specific']);
    const last = report.blocks[2]!;
    // bob departs from alice (same task); carol (other task) computes alice's function, so bob
    // is the one who moved: the only model at odds with both others.
    expect(last.decidedBy).toBe('matched');
    expect(last.matched!.departing.map((d) => d.clientId)).toEqual(['bob']);
    expect(last.gw.departing.map((d) => d.clientId)).toEqual(['bob']);
    // Confidence from probe resamples: a fraction per label and per boundary (none after the last).
    for (const b of report.blocks) {
      expect(b.labelConfidence).toBeGreaterThanOrEqual(0.5);
      expect(b.labelConfidence).toBeLessThanOrEqual(1);
    }
    expect(report.blocks.map((b) => b.boundaryConfidence === null)).toEqual([false, false, true]);
    expect(report.bootstrap.resamples).toBeGreaterThan(0);
    expect(last.layers).toEqual(['c7', 'c8']);
    for (const m of report.layerGw) {
      expect(m.segmentation.blocks.map((b) => [b.start, b.end])).toEqual([
        [0, 2],
        [3, 5],
        [6, 7],
      ]);
    }
  });

  it('opens with a verdict: trigger, confirmation for the named model, labels and how sure, next step', () => {
    const v = report.verdict;
    expect(v[0]).toMatch(
      /^Triggered by the divergence signal: bob\/0-1 diverged from its task \(divergence 0\.410 against a threshold of 0\.3 for bob\/0-1\)\.$/,
    );
    expect(v[1]).toMatch(
      /^The probe analysis confirms it: bob\/0-1 computes c7–c8 \(\d+ % of probe resamples\) differently/,
    );
    expect(v.find((x) => x.startsWith('Layers — '))).toMatch(
      /shared: c1–c3 .*; c4–c6 .* · client-specific: c7–c8, departing: bob\/0-1/,
    );
    expect(v[v.length - 1]).toMatch(/^Next step: look at bob\/0-1/);
  });

  it('GW never exceeds the identity-coupling value, and both are symmetric with a zero diagonal', () => {
    for (const m of report.layerGw) {
      m.gw.forEach((row, i) => {
        row.forEach((v, j) => {
          expect(v).not.toBeNull();
          expect(v).toBeCloseTo(m.gw[j]![i]!, 12);
          if (i === j) expect(v).toBe(0);
          else expect(v!).toBeLessThanOrEqual(m.identity[i]![j]! + 1e-9);
        });
      });
    }
  });

  it('names the model that did not answer and leaves it out of the GW analysis', () => {
    expect(report.missing).toEqual([
      { clientId: 'dave', taskId: '2-3', reason: 'no answer before the deadline (1500 ms)' },
    ]);
    expect(report.crossModels).toEqual([0, 1, 2]);
    expect(report.layerGw.map((m) => m.model)).toEqual([0, 1, 2]);
    // Atom similarity still covers all four models.
    expect(report.atomSimilarity.mean).toHaveLength(4);
    expect(report.atomSimilarity.mean[3]![3]).toBeCloseTo(1, 6);
  });

  it('CKA in the report equals CKA computed from the activations', () => {
    // Independent route: CKA straight from the activations X (float64), not the float32 Grams.
    for (const [l, layer] of ['c2', 'c7'].entries()) {
      const row = report.crossModel.find((x) => x.layer === layer)!;
      const li = l === 0 ? 1 : 6;
      for (const [a, b] of [
        [0, 1],
        [0, 2],
        [1, 2],
      ] as const) {
        const Xa = setup.stacks.get(a)![li]!;
        const Xb = setup.stacks.get(b)![li]!;
        expect(row.cka[a]![b]!).toBeCloseTo(linearCka(Xa.X, Xb.X, N, Xa.d, Xb.d), 5);
      }
      expect(row.cka[0]![0]).toBe(1);
    }
    // In the last block bob (index 1) computes another function than alice and carol.
    const c7 = report.crossModel.find((x) => x.layer === 'c7')!;
    expect(c7.cka[0]![1]!).toBeLessThan(c7.cka[0]![2]!);
  });

  it('cross-checks atom cosine against CKA over every answered pair and layer', () => {
    const { points, overall, perLayer } = report.crossCheck;
    expect(points).toHaveLength(3 * 8);
    expect(overall.n).toBe(24);
    expect(overall.pearson).toBeCloseTo(
      pearson(
        points.map((p) => p.atomCosine),
        points.map((p) => p.cka),
      ),
      12,
    );
    // bob's last-block atoms and function both differ: the cheap and expensive measures agree.
    expect(overall.pearson!).toBeGreaterThan(0.5);
    expect(overall.pearsonCi![0]).toBeLessThanOrEqual(overall.pearson!);
    expect(perLayer.map((l) => l.layer)).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8']);
    expect(perLayer.every((l) => l.n === 3)).toBe(true);
  });

  it('renders a self-contained HTML page with the figures and the block table', () => {
    const html = renderReportHtml(report);
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).not.toMatch(/<script|<link|<img|@import|url\(http|src=/i);
    // Only the SVG namespace mentions http.
    expect(html.replaceAll('xmlns="http://www.w3.org/2000/svg"', '')).not.toMatch(/https?:/);
    expect(html.match(/class="heatmap" data-kind="gw-layers"/g)).toHaveLength(3);
    // Verdict first (before the trigger section); one colour scale for every distance heatmap.
    expect(html.indexOf('id="verdict"')).toBeGreaterThan(0);
    expect(html.indexOf('id="verdict"')).toBeLessThan(html.indexOf('id="trigger"'));
    const scales = [
      ...html.matchAll(
        /data-kind="(gw-layers|gw-layers-identity|cross-gw)" data-min="0" data-max="([^"]+)"/g,
      ),
    ];
    expect(scales.length).toBe(3 + 3 + 8);
    expect(new Set(scales.map((m) => m[2])).size).toBe(1);
    expect(html.match(/class="heatmap" data-kind="atom-similarity"/g)).toHaveLength(1);
    expect(html.match(/class="block-row"/g)).toHaveLength(3);
    expect(html.match(/class="block-boundary"/g)!.length).toBeGreaterThanOrEqual(3 * 3);
    expect(html).toContain('dave/2-3');
    expect(html).toContain('bob/0-1 diverged from its task');
    expect(html).toContain('class="scatter" data-kind="atom-vs-cka" data-points="24"');
  });

  it('escapes text that came from clients and operators', () => {
    const evil: AnalysisReport = {
      ...report,
      trigger: { ...report.trigger, reason: '<script>alert(1)</script>' },
      missing: [{ clientId: 'x"><img src=x>', taskId: 't', reason: 'gone' }],
    };
    const html = renderReportHtml(evil);
    expect(html).not.toContain('<script>alert');
    expect(html).not.toContain('<img src=x>');
    expect(html).toContain('&lt;script&gt;');
  });
});
