// Runs a planted federation through the real analysis path: Gram matrices as clients upload them,
// buildReport with the real CG GW solver, consensus segmentation, labels — and compares the
// result with the planted truth.
import { buildReport, type ReportInput } from '../../src/analysis/report/build.js';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import type { ProbeCost, ProbeLayerData } from '../../src/analysis/representation.js';
import { gromovWasserstein } from '../../src/ot/index.js';
import {
  gramOf,
  type PlantedFederation,
  type PlantedOptions,
  type PlantedTruth,
  plantedActivations,
  plantedTruth,
} from './planted.js';
import { noiseProbeTemplate } from './synthetic.js';

function plantedTemplate(L: number, n: number, federationId = 'planted') {
  const layers = Array.from({ length: L }, (_, i) => `l${i + 1}`);
  return noiseProbeTemplate({ federationId, layers, channels: 2, m: 2, n, probeSeed: 1 });
}

/**
 * An operator analysis of a planted federation whose every model answered its probe at round 1:
 * the input buildReport receives, with the probe answers given per model (Gram matrices or factors).
 */
export function plantedReportInput(
  fed: PlantedFederation,
  n: number,
  answers: ProbeLayerData[][],
  options: { reason: string; bootstrapResamples?: number; cost?: ProbeCost; federationId?: string },
): ReportInput {
  const template = plantedTemplate(answers[0]?.length ?? 0, n, options.federationId);
  return {
    reportId: 'planted',
    analysisId: 'planted',
    createdAtMs: 0,
    trigger: { kind: 'operator', reason: options.reason, evidence: [] },
    template,
    probe: template.probe,
    models: fed.models.map((m, i) => ({
      ...m,
      round: 1,
      fingerprintMatch: true,
      answered: true,
      reused: false,
      requestId: `r${i}`,
    })),
    missing: [],
    atoms: fed.models.map(() => null),
    grams: new Map(answers.map((layers, i) => [i, layers])),
    solver: { method: 'cg', init: 'best', maxIterations: 1000, tolerance: 1e-9 },
    probingSeconds: 0,
    bootstrapResamples: options.bootstrapResamples ?? 0,
    ...(options.cost ? { cost: options.cost } : {}),
  };
}

export async function analysePlanted(
  fed: PlantedFederation,
  options: PlantedOptions,
  bootstrapResamples = 0,
  cost?: ProbeCost,
): Promise<AnalysisReport> {
  const grams = plantedActivations(fed, options).map((layers) =>
    layers.map((X) => gramOf(X, options.n, options.dim)),
  );
  return buildReport(
    plantedReportInput(fed, options.n, grams, {
      reason: 'planted structure',
      bootstrapResamples,
      ...(cost ? { cost } : {}),
    }),
    async (C1, C2) => gromovWasserstein(C1, C2, { solver: 'cg', init: 'best' }),
  );
}

export interface Recovery {
  boundaries: boolean;
  /** Per planted block: label (and departing clients) recovered, given the boundaries are. */
  labels: boolean[];
  found: PlantedTruth;
}

/** What the report found, in the planted truth's terms. */
export function recovery(fed: PlantedFederation, report: AnalysisReport): Recovery {
  const truth = plantedTruth(fed);
  const found: PlantedTruth = {
    boundaries: report.blocks.slice(0, -1).map((b) => b.end),
    labels: report.blocks.map((b) => {
      const view = b.decidedBy === 'matched' && b.matched ? b.matched : b.gw;
      return {
        label: b.label as PlantedTruth['labels'][number]['label'],
        departing: view.departing.map((d) => d.clientId).sort(),
      };
    }),
  };
  const boundaries = found.boundaries.join() === truth.boundaries.join();
  // Labels are judged per planted block on the report's block covering the same layers.
  let start = 0;
  const labels = fed.blocks.map((b, i) => {
    const end = start + b.size - 1;
    const match = report.blocks.findIndex((x) => x.start === start && x.end === end);
    start = end + 1;
    if (match < 0) return false;
    const want = truth.labels[i]!;
    const got = found.labels[match]!;
    return got.label === want.label && got.departing.join() === want.departing.join();
  });
  return { boundaries, labels, found };
}
