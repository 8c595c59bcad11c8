// From probe summaries and atoms to the analysis report:
//   * per answered model, GW between every pair of its probe layers (the L×L matrix) and the
//     value at the identity coupling beside it;
//   * per probe layer, GW and linear CKA between the answered models' versions of that layer;
//   * segmentation of each model's layers, and of their mean (the consensus the blocks are
//     labelled on); labels with evidence;
//   * the cross-check of the cheap measure against the expensive one: Pearson and Spearman of
//     atom cosine vs CKA over all (model pair, layer) points, overall and per layer.
// GW solves go through an injected `solve` (the coordinator passes its worker pool), so this
// module has no threads and no I/O.

import { normaliseByMeanOffDiagonal } from '../../ot/index.js';
import type { ModelTemplate } from '../../shared/template.js';
import {
  DEFAULT_LABEL_SETTINGS,
  decidingView,
  type LabelThresholdSettings,
  type LabelThresholds,
  labelBlocks,
  resolveSharedMaxGw,
  typicalCrossModelDistance,
} from '../labels.js';
import { layerLayout, pairwiseSimilarity, unitModelVector } from '../pairwise.js';
import { bootstrapBlocks } from '../probeBootstrap.js';
import { gramToDistances, linearCkaFromGram } from '../representation.js';
import { meanMatrix, type Segmentation, type SegmentationOptions, segmentLayers } from '../segmentation.js';
import { correlationCi, pearson, spearman } from '../stats.js';
import {
  type AnalysisReport,
  type CorrelationSummary,
  type CrossCheckPoint,
  type Matrix,
  REPORT_SCHEMA_VERSION,
  type ReportMissing,
  type ReportModel,
  type ReportTrigger,
  type SegmentationJson,
} from './types.js';
import { reportVerdict } from './verdict.js';

/** What a GW solve must return (a subset of the engine's GwResult). */
export interface GwSolveResult {
  /** ½·√E at the solver's coupling. */
  distance: number;
  /** E at the identity coupling (null when the spaces differ in size). */
  identityValue: number | null;
}

/** One side of a GW problem: probe layer `layer` (index into template.probeLayers) of model `model`
 * (index into ReportInput.models). */
export interface SolveSide {
  model: number;
  layer: number;
}

/**
 * Solves one GW problem between metric spaces C1 and C2. `problem` says which layers of which
 * models they are, so that a solver elsewhere (a job queue) can rebuild C1 and C2 from the stored
 * probe summaries with probeMetricSpace instead of shipping them.
 */
export type SolveGw = (
  C1: Float64Array,
  C2: Float64Array,
  problem: { a: SolveSide; b: SolveSide },
) => Promise<GwSolveResult>;

/**
 * The metric-measure space of one probe layer: Euclidean distances from the Gram matrix K (n × n),
 * normalised by their mean off-diagonal entry. `constant` when every probe
 * input maps to the same point; the all-zero distance matrix is kept then (a valid metric space
 * whose GW to any other is still defined).
 */
export function probeMetricSpace(
  K: Float32Array | Float64Array,
  n: number,
): { C: Float64Array; constant: boolean } {
  const C = gramToDistances(K, n);
  try {
    return { C: normaliseByMeanOffDiagonal(C, n), constant: false };
  } catch {
    return { C, constant: true };
  }
}

export interface BuildProgress {
  stage: 'solving' | 'segmenting' | 'reporting';
  /** 0..1 within this build. */
  fraction: number;
  message: string;
}

export interface ReportInput {
  reportId: string;
  analysisId: string;
  createdAtMs: number;
  trigger: ReportTrigger;
  template: ModelTemplate;
  /** Probe set actually used (size may differ from the template's). */
  probe: ModelTemplate['probe'];
  models: ReportModel[];
  missing: ReportMissing[];
  /** Per model (same order as `models`): its atoms per template layer, or null when none are stored. */
  atoms: (Float32Array[] | null)[];
  /** Per answered model index: one Gram matrix (n×n) per probe layer, in template.probeLayers order. */
  grams: Map<number, Float32Array[]>;
  /** Label thresholds; sharedMaxGw defaults to 'auto'. */
  thresholds?: Partial<LabelThresholdSettings>;
  segmentation?: SegmentationOptions;
  solver: AnalysisReport['solver'];
  probingSeconds: number;
  /** Seed for the bootstrap intervals (default: fixed, so a report is reproducible). */
  bootstrapSeed?: number;
  /** Probe-input resamples for the confidence of boundaries and labels (0 = none). */
  bootstrapResamples?: number;
  notes?: string[];
}

/** Default probe-input resamples: ~0.05 s each for 12 models × 5 layers at n = 256. */
const DEFAULT_BOOTSTRAP_RESAMPLES = 40;

const toJsonNumber = (v: number): number | null => (Number.isFinite(v) ? v : null);

function squareToMatrix(values: ArrayLike<number>, size: number): Matrix {
  const out: Matrix = [];
  for (let i = 0; i < size; i++) {
    const row: (number | null)[] = [];
    for (let j = 0; j < size; j++) row.push(toJsonNumber(values[i * size + j]!));
    out.push(row);
  }
  return out;
}

function segmentationToJson(s: Segmentation, layers: string[]): SegmentationJson {
  return {
    k: s.k,
    criterion: s.criterion,
    reason: s.reason,
    costByK: s.costByK,
    silhouetteByK: s.silhouetteByK.map((v) => (v === null ? null : toJsonNumber(v))),
    blocks: s.blocks.map((b) => ({ ...b, layers: layers.slice(b.start, b.end + 1) })),
  };
}

function correlation(x: number[], y: number[], seed: number): CorrelationSummary {
  const n = x.length;
  const p = pearson(x, y);
  const s = n >= 2 ? spearman(x, y) : Number.NaN;
  const ci = (method: 'pearson' | 'spearman', estimate: number): [number, number] | null => {
    if (n < 4 || !Number.isFinite(estimate)) return null;
    const r = correlationCi(x, y, method, { seed, resamples: 1000 });
    return Number.isFinite(r.low) && Number.isFinite(r.high) ? [r.low, r.high] : null;
  };
  return {
    n,
    pearson: toJsonNumber(p),
    spearman: toJsonNumber(s),
    pearsonCi: ci('pearson', p),
    spearmanCi: ci('spearman', s),
  };
}

/** Splits a model's concatenated float32 atoms (template layer order) into per-layer arrays. */
export function splitAtoms(template: ModelTemplate, all: Float32Array): Float32Array[] {
  const layout = layerLayout(template.layers);
  const expected = layout.reduce((s, l) => s + l.size, 0);
  if (all.length !== expected) {
    throw new Error(`stored atoms have ${all.length} values, the template needs ${expected}`);
  }
  return layout.map((l) => all.slice(l.offset, l.offset + l.size));
}

/** Runs every GW solve, the segmentation, labels and cross-check; returns the report object. */
export async function buildReport(
  input: ReportInput,
  solve: SolveGw,
  onProgress: (p: BuildProgress) => void = () => {},
): Promise<AnalysisReport> {
  const started = performance.now();
  const { template } = input;
  const probeLayers = template.probeLayers;
  const L = probeLayers.length;
  const settings: LabelThresholdSettings = { ...DEFAULT_LABEL_SETTINGS, ...input.thresholds };
  const notes = [...(input.notes ?? [])];

  // --- atom similarity over every model with atoms ------------------------------------------
  const layout = layerLayout(template.layers);
  const M = input.models.length;
  const withAtoms = input.atoms.map((a, i) => (a ? i : -1)).filter((i) => i >= 0);
  const sim = pairwiseSimilarity(
    withAtoms.map((i) => ({
      clientId: input.models[i]!.clientId,
      taskId: input.models[i]!.taskId,
      unit: unitModelVector(input.atoms[i]!, layout),
      fingerprintMatch: input.models[i]!.fingerprintMatch,
    })),
    layout,
    { measure: 'cosine', perLayer: true },
  );
  const A = withAtoms.length;
  /** Full M×M matrices (NaN where a model has no atoms). */
  const atomMean = new Float64Array(M * M).fill(Number.NaN);
  const atomLayer = template.layers.map(() => new Float64Array(M * M).fill(Number.NaN));
  const measure: AnalysisReport['atomSimilarity']['measure'] = Array.from({ length: M }, () =>
    new Array(M).fill(null),
  );
  for (let a = 0; a < A; a++) {
    for (let b = 0; b < A; b++) {
      const i = withAtoms[a]!;
      const j = withAtoms[b]!;
      atomMean[i * M + j] = sim.mean[a * A + b]!;
      sim.layers!.forEach((layer, l) => {
        atomLayer[l]![i * M + j] = layer[a * A + b]!;
      });
      measure[i]![j] = sim.pairMeasure[a * A + b] === 0 ? 'cosine' : 'subspace';
    }
  }

  // --- representations of answered models ----------------------------------------------------
  const answered = [...input.grams.keys()].sort((a, b) => a - b);
  const n = input.probe.size;
  const spaces = new Map<number, Float64Array[]>();
  const grams64 = new Map<number, Float64Array[]>();
  for (const i of answered) {
    const g = input.grams.get(i)!;
    if (g.length !== L) throw new Error(`model ${i} has ${g.length} Gram matrices, expected ${L}`);
    const K = g.map((k) => {
      if (k.length !== n * n) throw new Error(`a Gram matrix has ${k.length} values, expected ${n}×${n}`);
      return Float64Array.from(k);
    });
    grams64.set(i, K);
    spaces.set(
      i,
      K.map((k, l) => {
        const space = probeMetricSpace(k, n);
        if (space.constant) {
          // E.g. a dead ReLU layer.
          notes.push(
            `${input.models[i]!.clientId}/${input.models[i]!.taskId} ${probeLayers[l]}: all probe inputs give the same output (distances all zero)`,
          );
        }
        return space.C;
      }),
    );
  }

  // --- every GW solve, concurrently (the pool bounds the parallelism) ---------------------------
  const P = answered.length;
  const jobs: { run: () => Promise<GwSolveResult>; store: (r: GwSolveResult) => void }[] = [];
  const layerGw = new Map<number, { gw: Float64Array; identity: Float64Array }>();
  for (const i of answered) {
    const gw = new Float64Array(L * L);
    const identity = new Float64Array(L * L);
    layerGw.set(i, { gw, identity });
    const C = spaces.get(i)!;
    for (let a = 0; a < L; a++) {
      for (let b = a + 1; b < L; b++) {
        jobs.push({
          run: () => solve(C[a]!, C[b]!, { a: { model: i, layer: a }, b: { model: i, layer: b } }),
          store: (r) => {
            const idv = r.identityValue === null ? Number.NaN : 0.5 * Math.sqrt(Math.max(0, r.identityValue));
            gw[a * L + b] = gw[b * L + a] = r.distance;
            identity[a * L + b] = identity[b * L + a] = idv;
          },
        });
      }
    }
  }
  const crossGw = probeLayers.map(() => new Float64Array(P * P));
  const crossIdentity = probeLayers.map(() => new Float64Array(P * P));
  const crossCka = probeLayers.map(() => new Float64Array(P * P).fill(Number.NaN));
  for (let l = 0; l < L; l++) {
    for (let a = 0; a < P; a++) {
      crossCka[l]![a * P + a] = 1;
      for (let b = a + 1; b < P; b++) {
        const Ca = spaces.get(answered[a]!)![l]!;
        const Cb = spaces.get(answered[b]!)![l]!;
        let cka = Number.NaN;
        try {
          cka = linearCkaFromGram(grams64.get(answered[a]!)![l]!, grams64.get(answered[b]!)![l]!, n);
        } catch {
          // Undefined for a constant representation; left null in the report.
        }
        crossCka[l]![a * P + b] = crossCka[l]![b * P + a] = cka;
        jobs.push({
          run: () =>
            solve(Ca, Cb, { a: { model: answered[a]!, layer: l }, b: { model: answered[b]!, layer: l } }),
          store: (r) => {
            const idv = r.identityValue === null ? Number.NaN : 0.5 * Math.sqrt(Math.max(0, r.identityValue));
            crossGw[l]![a * P + b] = crossGw[l]![b * P + a] = r.distance;
            crossIdentity[l]![a * P + b] = crossIdentity[l]![b * P + a] = idv;
          },
        });
      }
    }
  }
  let done = 0;
  const solveStarted = performance.now();
  onProgress({ stage: 'solving', fraction: 0, message: `${jobs.length} GW problems (n = ${n})` });
  await Promise.all(
    jobs.map(async (job) => {
      const r = await job.run();
      job.store(r);
      done++;
      onProgress({
        stage: 'solving',
        fraction: (0.9 * done) / jobs.length,
        message: `GW ${done}/${jobs.length}`,
      });
    }),
  );
  const solvingSeconds = (performance.now() - solveStarted) / 1000;

  // --- segmentation and labels ---------------------------------------------------------------
  onProgress({ stage: 'segmenting', fraction: 0.9, message: 'segmenting layers into blocks' });
  // How far apart two models' versions of one layer typically are: the scale of "the same
  // function" that lets segmentation call every layer a block of its own (segmentation.ts).
  const segmentation: SegmentationOptions = {
    ...(P >= 2 ? { sameFunctionScale: typicalCrossModelDistance(crossGw, P) } : {}),
    ...input.segmentation,
  };
  const perModel = answered.map((i) => {
    const { gw, identity } = layerGw.get(i)!;
    return { model: i, gw, identity, segmentation: segmentLayers(gw, L, segmentation) };
  });
  const shared = resolveSharedMaxGw(
    settings.sharedMaxGw,
    perModel.map((m) => ({ matrix: m.gw, blocks: m.segmentation.blocks })),
    L,
    'GW',
    P >= 2 ? typicalCrossModelDistance(crossGw, P) : undefined,
  );
  const sharedIdentity = resolveSharedMaxGw(
    settings.sharedMaxGw,
    perModel.map((m) => ({ matrix: m.identity, blocks: m.segmentation.blocks })),
    L,
    'identity-coupling',
    P >= 2 ? typicalCrossModelDistance(crossIdentity, P) : undefined,
  );
  const thresholds: LabelThresholds & { sharedMaxIdentity: number } = {
    ...settings,
    sharedMaxGw: shared.value,
    sharedMaxIdentity: sharedIdentity.value,
  };
  const consensus =
    P > 0
      ? segmentLayers(
          meanMatrix(
            perModel.map((m) => m.gw),
            L * L,
          ),
          L,
          segmentation,
        )
      : null;
  const atomIndexOfProbe = probeLayers.map((name) => template.layers.findIndex((l) => l.name === name));
  const crossCosine = probeLayers.map((_, l) => {
    const out = new Float64Array(P * P).fill(Number.NaN);
    const al = atomIndexOfProbe[l]!;
    if (al < 0) return out;
    for (let a = 0; a < P; a++) {
      for (let b = 0; b < P; b++) {
        const i = answered[a]!;
        const j = answered[b]!;
        // Only true atom cosine feeds the atom view; subspace values are a different scale.
        if (measure[i]![j] === 'cosine') out[a * P + b] = atomLayer[al]![i * M + j]!;
      }
    }
    return out;
  });
  const labelled =
    consensus && P >= 1
      ? labelBlocks(
          {
            models: answered.map((i) => input.models[i]!),
            layers: probeLayers,
            blocks: consensus.blocks,
            crossGw,
            crossIdentity,
            atomCosine: crossCosine,
          },
          thresholds,
        )
      : [];
  // Confidence by resampling the probe inputs (see probeBootstrap.ts); needs two models.
  const resamples = input.bootstrapResamples ?? DEFAULT_BOOTSTRAP_RESAMPLES;
  const confidence =
    consensus && P >= 2 && resamples > 0
      ? bootstrapBlocks({
          models: answered.map((i) => input.models[i]!),
          layers: probeLayers,
          n,
          spaces: answered.map((i) => spaces.get(i)!),
          layerGw: perModel.map((m) => m.gw),
          layerIdentity: perModel.map((m) => m.identity),
          crossGw,
          crossIdentity,
          blocks: consensus.blocks,
          labels: labelled.map((b) => ({
            label: b.label,
            departing: decidingView(b).departing.map((d) => `${d.clientId}/${d.taskId}`),
          })),
          settings,
          segmentation,
          resamples,
          seed: (input.bootstrapSeed ?? 20240611) + 17,
        })
      : null;

  // --- cross-check: atom cosine vs CKA --------------------------------------------------------
  onProgress({ stage: 'reporting', fraction: 0.95, message: 'cross-checking atom cosine against CKA' });
  const points: CrossCheckPoint[] = [];
  for (let l = 0; l < L; l++) {
    for (let a = 0; a < P; a++) {
      for (let b = a + 1; b < P; b++) {
        const cos = crossCosine[l]![a * P + b]!;
        const cka = crossCka[l]![a * P + b]!;
        if (Number.isFinite(cos) && Number.isFinite(cka)) {
          points.push({ a: answered[a]!, b: answered[b]!, layer: probeLayers[l]!, atomCosine: cos, cka });
        }
      }
    }
  }
  const seed = input.bootstrapSeed ?? 20240611;
  const overall = correlation(
    points.map((p) => p.atomCosine),
    points.map((p) => p.cka),
    seed,
  );
  const perLayer = probeLayers.map((layer) => {
    const ps = points.filter((p) => p.layer === layer);
    return {
      layer,
      ...correlation(
        ps.map((p) => p.atomCosine),
        ps.map((p) => p.cka),
        seed,
      ),
    };
  });
  if (points.length > 0) {
    notes.push(
      'Cross-check intervals resample (model pair, layer) points as if independent; points sharing a model are not, so the intervals are optimistic.',
    );
  }
  if (P < 2) notes.push('Fewer than two models returned probe data: no cross-model comparison or labels.');
  if (input.models.some((m) => !m.fingerprintMatch)) {
    notes.push(
      'Models whose α fingerprint does not match are compared by subspace similarity and left out of the atom view and the cross-check.',
    );
  }

  const totalSeconds = input.probingSeconds + (performance.now() - started) / 1000;
  const segByModel = new Map(perModel.map((m) => [m.model, m.segmentation]));
  const report: Omit<AnalysisReport, 'verdict'> = {
    schemaVersion: REPORT_SCHEMA_VERSION,
    reportId: input.reportId,
    analysisId: input.analysisId,
    createdAt: new Date(input.createdAtMs).toISOString(),
    createdAtMs: input.createdAtMs,
    trigger: input.trigger,
    template: {
      federationId: template.federationId,
      version: template.version,
      alphaFingerprint: template.alphaFingerprint,
      probe: { ...input.probe },
      probeLayers: [...probeLayers],
    },
    models: input.models,
    missing: input.missing,
    atomSimilarity: {
      measure,
      mean: squareToMatrix(atomMean, M),
      perLayer: template.layers.map((l, i) => ({ layer: l.name, values: squareToMatrix(atomLayer[i]!, M) })),
    },
    crossModels: answered,
    layerGw: perModel.map((m) => ({
      model: m.model,
      gw: squareToMatrix(m.gw, L),
      identity: squareToMatrix(m.identity, L),
      segmentation: segmentationToJson(segByModel.get(m.model)!, probeLayers),
    })),
    crossModel: probeLayers.map((layer, l) => ({
      layer,
      gw: squareToMatrix(crossGw[l]!, P),
      identity: squareToMatrix(crossIdentity[l]!, P),
      cka: squareToMatrix(crossCka[l]!, P),
    })),
    consensus: consensus ? segmentationToJson(consensus, probeLayers) : null,
    blocks: labelled.map((b, index) => {
      const seg = consensus!.blocks[index]!;
      return {
        index,
        start: b.start,
        end: b.end,
        layers: b.layers,
        label: b.label,
        cohesion: seg.cohesion,
        separationLeft: seg.separationLeft,
        separationRight: seg.separationRight,
        decidedBy: b.decidedBy,
        matched: b.matched,
        gw: b.gw,
        gwAgrees: b.gwAgrees,
        atoms: b.atoms,
        atomsAgree: b.atomsAgree,
        labelConfidence: confidence ? toJsonNumber(confidence.labelConfidence[index]!) : null,
        boundaryConfidence:
          confidence && index < labelled.length - 1
            ? toJsonNumber(confidence.boundaryConfidence[index]!)
            : null,
        perLayer: b.perLayer,
      };
    }),
    bootstrap: {
      resamples: confidence?.resamples ?? 0,
      method:
        'probe inputs resampled with replacement; identity-coupling distances recomputed exactly, GW rescaled by the change in the identity distance (not re-solved)',
    },
    thresholds: { ...thresholds, sharedMaxGwRule: shared.rule, sharedMaxIdentityRule: sharedIdentity.rule },
    crossCheck: { points, overall, perLayer },
    solver: input.solver,
    timings: {
      probingSeconds: input.probingSeconds,
      solvingSeconds,
      totalSeconds,
      gwSolves: jobs.length,
    },
    notes,
  };
  return { ...report, verdict: reportVerdict(report) };
}
