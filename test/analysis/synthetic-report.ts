// A real report built from synthetic clients with known structure, with the real GW engine:
// alice and bob learn task "0-1", carol learns "2-3"; all share the first two blocks of layers
// (maps "linear" then "folded"), bob's last block computes a different function ("classes2"),
// and dave never answered the probe request.

import { buildReport, type ReportInput } from '../../src/analysis/report/build.js';
import type { AnalysisReport, ReportModel } from '../../src/analysis/report/types.js';
import { gromovWasserstein } from '../../src/ot/index.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import type { ModelTemplate } from '../../src/shared/template.js';
import {
  type Activations,
  gram,
  type LayerMap,
  layerStack,
  noiseProbeTemplate,
  probeInputs,
} from './synthetic.js';

export const N = 32;
const LAYER_NAMES = ['c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8'];

export function eightLayerTemplate(): ModelTemplate {
  return noiseProbeTemplate({
    federationId: 'synthetic',
    layers: LAYER_NAMES,
    channels: 4,
    m: 4,
    n: N,
    probeSeed: 3,
  });
}

/** Atoms per layer: one shared base per layer, plus a per-model twist on the layers in `own`. */
function atoms(template: ModelTemplate, seed: number, own: Set<number>, ownSeed: number): Float32Array[] {
  return template.layers.map((l, i) => {
    const size = l.m * l.k * l.k;
    const base = normalSampler(mulberry32(1000 + i));
    const noise = normalSampler(mulberry32(seed * 31 + i));
    const other = normalSampler(mulberry32(ownSeed * 77 + i));
    return Float32Array.from({ length: size }, () => {
      const b = base();
      const e = 0.1 * noise();
      return own.has(i) ? 0.3 * b + other() + e : b + e;
    });
  });
}

export interface SyntheticSetup {
  template: ModelTemplate;
  input: ReportInput;
  /** Activations per answered model index, per layer (what the Gram matrices were made from). */
  stacks: Map<number, Activations[]>;
}

export function syntheticSetup(): SyntheticSetup {
  const template = eightLayerTemplate();
  const inputs = probeInputs(N, 8, 4);
  const shared: LayerMap[] = ['linear', 'linear', 'linear', 'folded', 'folded', 'folded'];
  const specs: { clientId: string; taskId: string; last: LayerMap; answered: boolean }[] = [
    { clientId: 'alice', taskId: '0-1', last: 'classes', answered: true },
    { clientId: 'bob', taskId: '0-1', last: 'classes2', answered: true },
    { clientId: 'carol', taskId: '2-3', last: 'classes', answered: true },
    { clientId: 'dave', taskId: '2-3', last: 'classes', answered: false },
  ];
  const models: ReportModel[] = specs.map((s, i) => ({
    clientId: s.clientId,
    taskId: s.taskId,
    round: 3,
    fingerprintMatch: true,
    answered: s.answered,
    reused: false,
    requestId: s.answered ? `req-${i}` : null,
  }));
  const grams = new Map<number, Float32Array[]>();
  const stacks = new Map<number, Activations[]>();
  specs.forEach((s, i) => {
    if (!s.answered) return;
    const stack = layerStack([...shared, s.last, s.last], inputs, N, 8, {
      mapSeed: 9,
      noiseSeed: 50 + i,
      noise: 0.1,
    });
    stacks.set(i, stack);
    grams.set(i, stack.map(gram));
  });
  const lastBlock = new Set([6, 7]);
  const input: ReportInput = {
    reportId: 'rep-synthetic-1',
    analysisId: 'ana-synthetic-1',
    createdAtMs: Date.UTC(2025, 0, 2, 3, 4, 5),
    trigger: {
      kind: 'divergence',
      reason: 'bob/0-1 diverged from its task',
      evidence: [{ name: 'divergence', value: 0.41, threshold: 0.3, clientId: 'bob', taskId: '0-1' }],
    },
    template,
    probe: template.probe,
    models,
    missing: [{ clientId: 'dave', taskId: '2-3', reason: 'no answer before the deadline (1500 ms)' }],
    atoms: specs.map((s, i) => atoms(template, i + 1, s.last === 'classes2' ? lastBlock : new Set(), 5)),
    grams,
    solver: { method: 'cg', init: 'best', maxIterations: 1000, tolerance: 1e-9 },
    probingSeconds: 0.25,
  };
  return { template, input, stacks };
}

/** Builds the report with the real CG solver (synchronously, wrapped as the pool would be). */
export async function buildSyntheticReport(
  setup: SyntheticSetup = syntheticSetup(),
): Promise<AnalysisReport> {
  return buildReport(setup.input, async (C1, C2) =>
    gromovWasserstein(C1, C2, { solver: 'cg', init: 'best' }),
  );
}
