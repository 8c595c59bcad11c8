// The seam between the coordinator core and the level-1 analysis (probe → GW → segmentation →
// report). The core serves RunAnalysis / ListReports / GetReport and the HTTP report
// routes through this interface; without an implementation they answer UNIMPLEMENTED / 501.
import type { Logger } from '../../shared/log.js';
import type { ModelTemplate } from '../../shared/template.js';
import type { AnalysisStage } from '../../shared/wire-enums.js';
import type { CoordinatorConfig } from '../config.js';
import type { UploadEvent } from '../federation/federation.js';
import type { SessionRegistry } from '../federation/sessions.js';
import type { SimilarityIndex } from '../level0/similarity-index.js';
import type { CoordinatorMetrics } from '../metrics.js';
import type { ReportCursor, Storage } from '../storage/types.js';

export interface AnalysisModelRef {
  clientId: string;
  taskId: string;
}

export interface AnalysisRequestInput {
  /** Models to analyse; empty = every model with atoms. */
  models: AnalysisModelRef[];
  /** Free text recorded in the report (and, for operator requests, the trigger "operator"). */
  reason: string;
  /** How long to wait for probe answers (ms); absent = configured default. */
  probeDeadlineMs?: number;
  /** Probe set size override; absent = the template's. */
  probeSize?: number;
  /**
   * Aborts the analysis (the caller cancelled its RunAnalysis, or closed its HTTP request): a
   * waiting analysis leaves the line, a running one stops at its next step and no report is stored.
   */
  signal?: AbortSignal;
}

/** Mirrors proto RunAnalysisResponse. */
export interface AnalysisProgress {
  analysisId: string;
  stage: AnalysisStage;
  /** 0..1 within the whole analysis. */
  fraction: number;
  message: string;
  /** Set when stage = "done". */
  reportId?: string;
}

/** Mirrors proto ReportSummary. */
export interface ReportSummary {
  reportId: string;
  createdAtMs: number;
  trigger: string;
  models: number;
}

export interface AnalysisService {
  /**
   * Runs one analysis, reporting progress as it goes; resolves with the stored report's id.
   * Rejects with an AnalysisRequestError for requests that cannot start (unknown models, …).
   */
  request(
    req: AnalysisRequestInput,
    onProgress: (p: AnalysisProgress) => void,
  ): Promise<{ reportId: string }>;
  /** Newest first; with `before`, the reports that follow that one (see Storage.listReports). */
  listReports(limit: number, before?: ReportCursor): Promise<ReportSummary[]>;
  getReport(id: string): Promise<{ json: string; html: string } | undefined>;
  /** Called once when the coordinator stops (cancel timers, finish or abandon running work). */
  close?(): Promise<void>;
}

/** A request the service refuses; `code` picks the gRPC status / HTTP status. */
export class AnalysisRequestError extends Error {
  constructor(
    readonly code: 'invalid' | 'not_found' | 'unavailable' | 'busy' | 'cancelled' | 'timeout',
    message: string,
  ) {
    super(message);
    this.name = 'AnalysisRequestError';
  }
}

/** What an AnalysisService factory receives from the composition root. */
export interface AnalysisDeps {
  config: CoordinatorConfig;
  template: ModelTemplate;
  storage: Storage;
  sessions: SessionRegistry;
  similarity: SimilarityIndex;
  metrics: CoordinatorMetrics;
  logger: Logger;
  /** Subscribe to accepted uploads (level-0 results), e.g. to decide on escalation. */
  onUpload(listener: (event: UploadEvent) => void): () => void;
}

export type AnalysisFactory = (deps: AnalysisDeps) => AnalysisService;
