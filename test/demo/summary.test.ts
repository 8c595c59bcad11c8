// The demo's closing summary: labels per layer, who diverged (GW departures, told apart by how
// many models their task has; atom divergence as the fallback), and what the report lacks.
import { describe, expect, it } from 'vitest';
import type { BlockLabel } from '../../src/analysis/labels.js';
import type { AnalysisReport, ReportBlock, ReportViewEvidence } from '../../src/analysis/report/types.js';
import type { FederationSnapshot } from '../../src/demo/operator.js';
import { summariseDemo } from '../../src/demo/summary.js';
import { meanOffDiagonal } from '../../src/operator/connection.js';

type Model = [client: string, task: string];

function evidence(label: BlockLabel, departing: Model[]): ReportViewEvidence {
  return {
    label,
    units: 'gw-distance',
    threshold: 0.05,
    pairs: [],
    pairsCompared: 15,
    misfit: 0,
    max: 0.2,
    mean: 0.1,
    withinTaskMean: null,
    withinTaskMax: null,
    acrossTaskMean: null,
    acrossTaskMin: null,
    departing: departing.map(([clientId, taskId]) => ({
      clientId,
      taskId,
      meanToTask: 0.2,
      othersMean: 0.05,
    })),
    explanation: `evidence for ${label}`,
  };
}

function block(layers: string[], label: BlockLabel, departing: Model[] = []): ReportBlock {
  return {
    index: 0,
    start: 0,
    end: layers.length - 1,
    layers,
    label,
    cohesion: 0.1,
    separationLeft: null,
    separationRight: null,
    decidedBy: 'gw',
    matched: null,
    gw: evidence(label, departing),
    gwAgrees: true,
    atoms: evidence(label, []),
    atomsAgree: true,
    labelConfidence: null,
    boundaryConfidence: null,
    perLayer: [],
  };
}

function report(models: Model[], blocks: ReportBlock[], missing: Model[] = []): AnalysisReport {
  return {
    schemaVersion: 2,
    verdict: ['test verdict.'],
    reportId: 'rep-test',
    analysisId: 'ana-test',
    createdAt: new Date(0).toISOString(),
    createdAtMs: 0,
    trigger: { kind: 'operator', reason: 'test', evidence: [] },
    template: {
      federationId: 'demo',
      version: 1,
      alphaFingerprint: 'f',
      probe: { source: 'mnist', size: 32, seed: 1, pooling: 'gap' },
      probeLayers: ['conv1', 'conv2', 'conv3'],
    },
    models: models.map(([clientId, taskId]) => ({
      clientId,
      taskId,
      round: 2,
      fingerprintMatch: true,
      answered: !missing.some(([c, t]) => c === clientId && t === taskId),
      reused: false,
      requestId: 'r',
    })),
    missing: missing.map(([clientId, taskId]) => ({ clientId, taskId, reason: 'not connected' })),
    atomSimilarity: { measure: [], mean: [], perLayer: [] },
    crossModels: [],
    layerGw: [],
    crossModel: [],
    consensus:
      blocks.length > 0
        ? {
            k: blocks.length,
            criterion: 'silhouette',
            reason: 'test criterion',
            costByK: [],
            silhouetteByK: [],
            blocks: [],
          }
        : null,
    blocks,
    thresholds: {
      sharedMaxGw: 0.05,
      sharedMaxIdentity: 0.05,
      maxMisfit: 0.2,
      sharedMinCosine: 0.9,
      sharedMaxGwRule: 'test',
      sharedMaxIdentityRule: 'test',
    },
    bootstrap: { resamples: 0, method: 'test' },
    crossCheck: {
      points: [],
      overall: { n: 12, pearson: 0.5, spearman: 0.6, pearsonCi: null, spearmanCi: null },
      perLayer: [],
    },
    solver: { method: 'cg', init: 'both', maxIterations: null, tolerance: null },
    timings: { probingSeconds: 0, solvingSeconds: 0, totalSeconds: 0, gwSolves: 0 },
    notes: [],
  } as AnalysisReport;
}

const snapshot = (rows: [string, string, number][]): FederationSnapshot => ({
  similarity: 0.9,
  models: rows.map(([clientId, taskId, divergence]) => ({
    clientId,
    taskId,
    round: 2,
    divergence,
    drift: 0,
  })),
});

const MODELS: Model[] = [
  ['a', '0-1'],
  ['b', '0-1'],
  ['c', '0-1'],
  ['d', '0-1'],
  ['a', '2-3'],
  ['b', '2-3'],
];

describe('summariseDemo', () => {
  it('names the odd one out of a task with three or more models as diverged', () => {
    const r = report(MODELS, [
      block(['conv1', 'conv2'], 'shared'),
      block(['conv3'], 'client-specific', [
        ['a', '2-3'],
        ['d', '0-1'],
      ]),
    ]);
    // The snapshot's most divergent model (x/9-9) is not in the report: it is not named.
    const s = summariseDemo(
      r,
      snapshot([
        ['x', '9-9', 0.9],
        ['c', '0-1', 0.2],
      ]),
      { d: 'skewed share' },
    );
    expect(s.diverged).toBe('d/0-1');
    expect(s.departing).toEqual(['d/0-1', 'a/2-3']);
    expect(s.layersByLabel).toEqual({ shared: ['conv1', 'conv2'], 'client-specific': ['conv3'] });
    // The report's verdict comes right after the headline.
    expect(s.lines[1]).toBe('  test verdict.');
    const text = s.lines.join('\n');
    expect(text).toContain('in short — shared: conv1, conv2 · client-specific: conv3');
    expect(text).toContain('diverged (probe view): d/0-1 (skewed share)');
    expect(text).toContain('differ (probe view): a/2-3 — a task with two models');
    expect(text).toContain('most divergent (atom view): c/0-1, divergence 0.200');
  });

  it('falls back to the atom view when the GW view names nobody unambiguously', () => {
    const r = report(MODELS, [block(['conv1', 'conv2', 'conv3'], 'task-specific', [['b', '2-3']])]);
    const s = summariseDemo(
      r,
      snapshot([
        ['d', '0-1', Number.NaN],
        ['c', '0-1', 0.31],
        ['a', '0-1', 0.1],
      ]),
    );
    expect(s.diverged).toBe('c/0-1');
    expect(s.mostDivergent).toEqual({ model: 'c/0-1', divergence: 0.31 });
    expect(s.lines.join('\n')).toContain('diverged most (atom view): c/0-1, divergence 0.310');
  });

  it('says so when there are no blocks, no divergence and missing models', () => {
    const r = report(MODELS, [], [['b', '2-3']]);
    const s = summariseDemo(r, snapshot([['a', '0-1', Number.NaN]]));
    expect(s.diverged).toBeNull();
    const text = s.lines.join('\n');
    expect(text).toContain('6 models, 5 with probe data (n = 32 probe inputs)');
    expect(text).toContain('no blocks');
    expect(text).toContain('no probe data from b/2-3: not connected');
    expect(text).toContain('divergence is undefined');
  });
});

describe('meanOffDiagonal', () => {
  it('averages the off-diagonal entries, skipping non-finite ones', () => {
    expect(meanOffDiagonal([1, 0.5, 0.5, 1], 2)).toBe(0.5);
    expect(meanOffDiagonal([1, 0.2, 0.4, 0.2, 1, Number.NaN, 0.4, Number.NaN, 1], 3)).toBeCloseTo(0.3, 12);
    expect(meanOffDiagonal([1], 1)).toBeNull();
  });
});
