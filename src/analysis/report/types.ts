// The analysis report as stored and served (JSON; schema: schemas/report.schema.json).
// Matrices are row-major nested arrays; a value that is undefined (NaN in the computation, a
// model that did not answer) is null, since JSON has no NaN.
import type { BlockLabel, LabelThresholds } from '../labels.js';
import type { SegmentationCriterion } from '../segmentation.js';

/** Bumped on any incompatible change to the report's shape; readers check it. */
export const REPORT_SCHEMA_VERSION = 2;

export type Matrix = (number | null)[][];

import type { TriggerKind } from '../../shared/wire-enums.js';

export type { TriggerKind };

export interface ReportTrigger {
  kind: TriggerKind;
  /** Free text: the operator's reason, or what the escalation policy saw. */
  reason: string;
  /** The numbers that fired the trigger (e.g. divergence 0.41 over threshold 0.3), if any. */
  evidence: { name: string; value: number; threshold: number | null; clientId?: string; taskId?: string }[];
}

export interface ReportModel {
  clientId: string;
  taskId: string;
  /** Round whose atoms were analysed (and probed); null when the coordinator holds none. */
  round: number | null;
  fingerprintMatch: boolean;
  /** Probe summaries for every probe layer arrived (or were reused) in time. */
  answered: boolean;
  /** Summaries came from an earlier analysis at the same round (no new probe request). */
  reused: boolean;
  /** The probe request whose summaries were used; null when none. */
  requestId: string | null;
}

export interface ReportMissing {
  clientId: string;
  taskId: string;
  /** Why there is no probe data, e.g. "no answer before the deadline", "not connected". */
  reason: string;
}

export interface SegmentationJson {
  k: number;
  criterion: SegmentationCriterion;
  reason: string;
  costByK: number[];
  silhouetteByK: (number | null)[];
  blocks: {
    start: number;
    end: number;
    layers: string[];
    cohesion: number | null;
    separationLeft: number | null;
    separationRight: number | null;
  }[];
}

export interface ModelLayerGw {
  /** Index into `models`. */
  model: number;
  /** GW distance ½·√E between every pair of the model's probe layers (L×L). */
  gw: Matrix;
  /** The same at the identity coupling (probe inputs matched to themselves): an upper bound. */
  identity: Matrix;
  segmentation: SegmentationJson;
}

export interface CrossModelLayer {
  layer: string;
  /** GW distance between the answered models' versions of this layer (M'×M', order = crossModels). */
  gw: Matrix;
  identity: Matrix;
  /** Linear CKA between the same layers (1 on the diagonal). */
  cka: Matrix;
}

export interface CorrelationSummary {
  /** Number of (model pair, layer) points. */
  n: number;
  pearson: number | null;
  spearman: number | null;
  /** Seeded percentile bootstrap 95 % interval; null with fewer than 4 points. */
  pearsonCi: [number, number] | null;
  spearmanCi: [number, number] | null;
}

export interface CrossCheckPoint {
  /** Indices into `models`. */
  a: number;
  b: number;
  layer: string;
  atomCosine: number;
  cka: number;
}

export interface ReportBlock {
  index: number;
  start: number;
  end: number;
  layers: string[];
  label: BlockLabel;
  cohesion: number | null;
  separationLeft: number | null;
  separationRight: number | null;
  /** The view that decided the label: 'matched' (identity coupling) when probe inputs correspond. */
  decidedBy: 'matched' | 'gw';
  matched: ReportViewEvidence | null;
  gw: ReportViewEvidence;
  /** Whether GW alone gives the same label (false: same geometry, inputs assigned differently). */
  gwAgrees: boolean;
  atoms: ReportViewEvidence | null;
  atomsAgree: boolean | null;
  /** Fraction of probe resamples giving the same label and departing clients; null without a bootstrap. */
  labelConfidence: number | null;
  /** Fraction of probe resamples whose consensus has the boundary after this block; null for the last. */
  boundaryConfidence: number | null;
  perLayer: {
    layer: string;
    gwMax: number | null;
    gwMean: number | null;
    identityMax: number | null;
    identityMean: number | null;
    cosineMin: number | null;
    cosineMean: number | null;
  }[];
}

export interface ReportViewEvidence {
  label: BlockLabel;
  units: 'gw-distance' | 'identity-distance' | 'one-minus-cosine';
  /** The "same function" threshold used, in these units. */
  threshold: number;
  /** Order = crossModels. */
  pairs: Matrix;
  max: number | null;
  mean: number | null;
  withinTaskMean: number | null;
  withinTaskMax: number | null;
  acrossTaskMean: number | null;
  acrossTaskMin: number | null;
  pairsCompared: number;
  /** Pairs the chosen structure contradicts. */
  misfit: number;
  departing: { clientId: string; taskId: string; meanToTask: number; othersMean: number | null }[];
  explanation: string;
}

export interface AnalysisReport {
  schemaVersion: typeof REPORT_SCHEMA_VERSION;
  /** Plain sentences first: trigger, confirmation, labels and how sure, disagreements, next step. */
  verdict: string[];
  reportId: string;
  analysisId: string;
  /** ISO 8601. */
  createdAt: string;
  createdAtMs: number;
  trigger: ReportTrigger;
  template: {
    federationId: string;
    version: number;
    alphaFingerprint: string;
    probe: { source: string; size: number; seed: number; pooling: string };
    probeLayers: string[];
  };
  /** Every model the analysis was asked about. */
  models: ReportModel[];
  missing: ReportMissing[];
  /** Atom similarity between all models (mean over atom layers, and per layer). */
  atomSimilarity: {
    /** "cosine" where fingerprints match, "subspace" otherwise (row-major pairs). */
    measure: ('cosine' | 'subspace' | null)[][];
    mean: Matrix;
    perLayer: { layer: string; values: Matrix }[];
  };
  /** Indices into `models` of the models with probe data: the order of every cross-model matrix. */
  crossModels: number[];
  layerGw: ModelLayerGw[];
  crossModel: CrossModelLayer[];
  /** Segmentation of the mean of the answered models' layer matrices; blocks are labelled on it. */
  consensus: SegmentationJson | null;
  blocks: ReportBlock[];
  /** How the confidences in `blocks` were obtained. */
  bootstrap: { resamples: number; method: string };
  /** The thresholds the labels used; the rules say how each was set. */
  thresholds: LabelThresholds & {
    sharedMaxIdentity: number;
    sharedMaxGwRule: string;
    sharedMaxIdentityRule: string;
  };
  crossCheck: {
    points: CrossCheckPoint[];
    overall: CorrelationSummary;
    perLayer: ({ layer: string } & CorrelationSummary)[];
  };
  solver: {
    method: string;
    init: string;
    maxIterations: number | null;
    tolerance: number | null;
    /** The cost GW compared layers by: 'euclidean' or 'sqeuclidean' (absent in older reports: euclidean). */
    cost?: string;
  };
  timings: { probingSeconds: number; solvingSeconds: number; totalSeconds: number; gwSolves: number };
  notes: string[];
}
