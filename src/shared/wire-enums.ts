// The contract's enums (proto/atomlens/v1/atomlens.proto) against the short names the code uses.
// The generated types carry enum values as their proto names (gen:proto runs with
// --enums=String), so each side translates at its edge and internal types stay plain words.
import type { Activation__Output } from '../generated/atomlens/v1/Activation.js';
import type { AnalysisStage__Output } from '../generated/atomlens/v1/AnalysisStage.js';
import type { AnalysisTrigger__Output } from '../generated/atomlens/v1/AnalysisTrigger.js';
import type { Padding__Output } from '../generated/atomlens/v1/Padding.js';
import type { Pooling__Output } from '../generated/atomlens/v1/Pooling.js';
import type { ProbeSource__Output } from '../generated/atomlens/v1/ProbeSource.js';
import type { SimilarityMeasure__Output } from '../generated/atomlens/v1/SimilarityMeasure.js';

/** One enum's translation both ways. */
export interface WireEnum<Name extends string, Wire extends string> {
  toWire(name: Name): Wire;
  /** Whether a stored or configured string is one of the internal names. */
  isName(value: string): value is Name;
  /**
   * The internal name of a received value; undefined for the _UNSPECIFIED zero value and for
   * numbers a newer peer may send (proto3 enums are open).
   */
  fromWire(value: string | number | null | undefined): Name | undefined;
}

function wireEnum<Name extends string, Wire extends string>(
  table: Record<Name, Exclude<Wire, `${string}_UNSPECIFIED`>>,
): WireEnum<Name, Wire> {
  const names = Object.keys(table) as Name[];
  const byWire = new Map<string, Name>(names.map((n) => [table[n], n]));
  return {
    toWire: (name) => table[name],
    isName: (value): value is Name => Object.hasOwn(table, value),
    fromWire: (value) => (typeof value === 'string' ? byWire.get(value) : undefined),
  };
}

export type Padding = 'same' | 'valid';
export const PADDING = wireEnum<Padding, Padding__Output>({ same: 'PADDING_SAME', valid: 'PADDING_VALID' });

export type Activation = 'relu' | 'linear';
export const ACTIVATION = wireEnum<Activation, Activation__Output>({
  relu: 'ACTIVATION_RELU',
  linear: 'ACTIVATION_LINEAR',
});

/** 'operator' = inputs the operator supplied (coordinator --probe-set), fetched by clients. */
export type ProbeSource = 'mnist' | 'noise' | 'operator';
export const PROBE_SOURCE = wireEnum<ProbeSource, ProbeSource__Output>({
  mnist: 'PROBE_SOURCE_MNIST',
  noise: 'PROBE_SOURCE_NOISE',
  operator: 'PROBE_SOURCE_OPERATOR',
});

/** 'gap' = global average pooling over height and width. */
export type Pooling = 'gap' | 'flatten';
export const POOLING = wireEnum<Pooling, Pooling__Output>({
  gap: 'POOLING_GLOBAL_AVERAGE',
  flatten: 'POOLING_FLATTEN',
});

/** 'cosine' = atom cosine (needs a shared α); 'subspace' = mean cos² of principal angles. */
export type SimilarityMeasure = 'cosine' | 'subspace';
export const SIMILARITY_MEASURE = wireEnum<SimilarityMeasure, SimilarityMeasure__Output>({
  cosine: 'SIMILARITY_MEASURE_ATOM_COSINE',
  subspace: 'SIMILARITY_MEASURE_SUBSPACE',
});

export type AnalysisStage = 'queued' | 'probing' | 'solving' | 'segmenting' | 'reporting' | 'done' | 'failed';
export const ANALYSIS_STAGE = wireEnum<AnalysisStage, AnalysisStage__Output>({
  queued: 'ANALYSIS_STAGE_QUEUED',
  probing: 'ANALYSIS_STAGE_PROBING',
  solving: 'ANALYSIS_STAGE_SOLVING',
  segmenting: 'ANALYSIS_STAGE_SEGMENTING',
  reporting: 'ANALYSIS_STAGE_REPORTING',
  done: 'ANALYSIS_STAGE_DONE',
  failed: 'ANALYSIS_STAGE_FAILED',
});

/** What started an analysis: the operator, or one of the escalation policy's triggers. */
export type TriggerKind =
  | 'operator'
  | 'divergence'
  | 'drift'
  | 'fingerprint'
  | 'similarity-change'
  | 'schedule';
export const ANALYSIS_TRIGGER = wireEnum<TriggerKind, AnalysisTrigger__Output>({
  operator: 'ANALYSIS_TRIGGER_OPERATOR',
  divergence: 'ANALYSIS_TRIGGER_DIVERGENCE',
  drift: 'ANALYSIS_TRIGGER_DRIFT',
  fingerprint: 'ANALYSIS_TRIGGER_FINGERPRINT',
  'similarity-change': 'ANALYSIS_TRIGGER_SIMILARITY_CHANGE',
  schedule: 'ANALYSIS_TRIGGER_SCHEDULE',
});
