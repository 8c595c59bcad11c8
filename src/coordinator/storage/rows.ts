// Both backends keep the same tables and column names (see their migrations), so a row reads
// into a record the same way in each: one set of row shapes and mappers serves SQLite and
// PostgreSQL. The one difference the drivers leave is how a boolean comes back (SQLite 0/1,
// PostgreSQL true/false).
import type {
  AnalysisRecord,
  ClientRecord,
  ProbeSummaryRecord,
  ReportSummaryRecord,
  StoredRound,
  TaskRecord,
} from './types.js';

export interface ClientRow {
  client_id: string;
  alpha_fingerprint: string;
  /** SQLite answers 0/1, PostgreSQL a boolean. */
  fingerprint_match: boolean | number;
  client_version: string;
  registered_at_ms: number;
  last_seen_ms: number;
}

export interface TaskRow {
  task_id: string;
  classes: string;
}

export interface RoundRow {
  round: number;
  received_at_ms: number;
  loss: number;
  accuracy: number;
  samples: number;
  atoms?: Buffer;
}

export interface ProbeRow {
  request_id: string;
  client_id: string;
  task_id: string;
  round: number;
  layer: string;
  n: number;
  feature_dim: number;
  gram: Buffer;
  received_at_ms: number;
  factor_rank: number;
}

export interface AnalysisRow {
  analysis_id: string;
  status: AnalysisRecord['status'];
  trigger: string;
  reason: string;
  models: string;
  created_at_ms: number;
  started_at_ms: number | null;
  finished_at_ms: number | null;
  message: string | null;
  report_id: string | null;
}

export interface ReportRow {
  report_id: string;
  created_at_ms: number;
  trigger: string;
  models: number;
  analysis_id: string | null;
  json: string;
  html: string;
}

export function clientFromRow(row: ClientRow, tasks: TaskRecord[]): ClientRecord {
  return {
    clientId: row.client_id,
    tasks,
    alphaFingerprint: row.alpha_fingerprint,
    fingerprintMatch: row.fingerprint_match === true || row.fingerprint_match === 1,
    clientVersion: row.client_version,
    registeredAtMs: row.registered_at_ms,
    lastSeenMs: row.last_seen_ms,
  };
}

export function taskFromRow(row: TaskRow): TaskRecord {
  return { taskId: row.task_id, classes: JSON.parse(row.classes) as number[] };
}

export function roundFromRow(row: RoundRow): StoredRound {
  return {
    round: row.round,
    receivedAtMs: row.received_at_ms,
    stats: { loss: row.loss, accuracy: row.accuracy, samples: row.samples },
    atoms: row.atoms ?? Buffer.alloc(0),
  };
}

export function probeFromRow(row: ProbeRow): ProbeSummaryRecord {
  return {
    requestId: row.request_id,
    clientId: row.client_id,
    taskId: row.task_id,
    round: row.round,
    layer: row.layer,
    n: row.n,
    featureDim: row.feature_dim,
    gram: row.gram,
    factorRank: row.factor_rank,
    receivedAtMs: row.received_at_ms,
  };
}

export function analysisFromRow(r: AnalysisRow): AnalysisRecord {
  return {
    analysisId: r.analysis_id,
    status: r.status,
    trigger: r.trigger,
    reason: r.reason,
    models: JSON.parse(r.models) as AnalysisRecord['models'],
    createdAtMs: r.created_at_ms,
    ...(r.started_at_ms !== null ? { startedAtMs: r.started_at_ms } : {}),
    ...(r.finished_at_ms !== null ? { finishedAtMs: r.finished_at_ms } : {}),
    ...(r.message !== null ? { message: r.message } : {}),
    ...(r.report_id !== null ? { reportId: r.report_id } : {}),
  };
}

export function reportSummaryFromRow(row: ReportRow): ReportSummaryRecord {
  return {
    reportId: row.report_id,
    createdAtMs: row.created_at_ms,
    trigger: row.trigger,
    models: row.models,
    ...(row.analysis_id !== null ? { analysisId: row.analysis_id } : {}),
  };
}

export function sameClasses(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
