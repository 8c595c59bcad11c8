// The demo's view of the coordinator through the Operator service (the same calls an operator's
// tools make): divergence and similarity for the progress display, analyses and reports at the end.
import type * as grpc from '@grpc/grpc-js';
import type { GetDivergenceResponse__Output } from '../generated/atomlens/v1/GetDivergenceResponse.js';
import type { GetReportResponse__Output } from '../generated/atomlens/v1/GetReportResponse.js';
import type { GetSimilarityResponse__Output } from '../generated/atomlens/v1/GetSimilarityResponse.js';
import type { ListReportsResponse__Output } from '../generated/atomlens/v1/ListReportsResponse.js';
import type { OperatorServiceClient } from '../generated/atomlens/v1/OperatorService.js';
import type { ReportSummary__Output } from '../generated/atomlens/v1/ReportSummary.js';
import type { RunAnalysisResponse__Output } from '../generated/atomlens/v1/RunAnalysisResponse.js';
import {
  byDivergenceDesc,
  connectOperator,
  latestAtomCosine,
  type ModelDivergenceView,
  meanOffDiagonal,
  modelDivergenceView,
  unary,
} from '../operator/connection.js';
import { ANALYSIS_STAGE } from '../shared/wire-enums.js';

export type { ModelDivergenceView };

export interface FederationSnapshot {
  /** Mean pairwise atom similarity of the latest models; null with fewer than two. */
  similarity: number | null;
  /** Every model, most divergent first. */
  models: ModelDivergenceView[];
}

export interface AnalysisOutcome {
  reportId: string;
  analysisId: string;
}

export class DemoOperator {
  private readonly client: OperatorServiceClient;

  constructor(
    readonly address: string,
    private readonly callTimeoutMs = 10_000,
  ) {
    this.client = connectOperator(address).client;
  }

  private deadline(ms = this.callTimeoutMs): grpc.CallOptions {
    return { deadline: Date.now() + ms };
  }

  /** Federation similarity and every model's divergence (level 0, from the coordinator's index). */
  async snapshot(): Promise<FederationSnapshot> {
    const [divergence, similarity] = await Promise.all([
      unary<GetDivergenceResponse__Output>((cb) => this.client.GetDivergence({}, this.deadline(), cb)),
      unary<GetSimilarityResponse__Output>((cb) =>
        this.client.GetSimilarity(latestAtomCosine(), this.deadline(), cb),
      ),
    ]);
    const models = divergence.models.map(modelDivergenceView).sort(byDivergenceDesc);
    return { similarity: meanOffDiagonal(similarity.values, similarity.models.length), models };
  }

  /** Starts an analysis of every model and follows its progress to the stored report. */
  requestAnalysis(
    request: { reason: string; probeSize: number; probeDeadlineMs: number },
    onProgress: (p: RunAnalysisResponse__Output) => void,
    timeoutMs: number,
  ): Promise<AnalysisOutcome> {
    return new Promise((resolve, reject) => {
      let outcome: AnalysisOutcome | undefined;
      let failure = '';
      const call = this.client.RunAnalysis(
        {
          models: [],
          reason: request.reason,
          probeSize: request.probeSize,
          probeDeadlineMs: request.probeDeadlineMs,
        },
        this.deadline(timeoutMs),
      );
      call.on('data', (p: RunAnalysisResponse__Output) => {
        onProgress(p);
        const stage = ANALYSIS_STAGE.fromWire(p.stage);
        if (stage === 'done' && p.reportId) outcome = { reportId: p.reportId, analysisId: p.analysisId };
        if (stage === 'failed') failure = p.message;
      });
      call.on('error', (err: grpc.ServiceError) => reject(err));
      call.on('end', () => {
        if (outcome) resolve(outcome);
        else reject(new Error(`the analysis produced no report${failure ? `: ${failure}` : ''}`));
      });
    });
  }

  async listReports(limit = 50): Promise<ReportSummary__Output[]> {
    const res = await unary<ListReportsResponse__Output>((cb) =>
      this.client.ListReports({ pageSize: limit }, this.deadline(), cb),
    );
    return res.reports;
  }

  getReport(reportId: string): Promise<GetReportResponse__Output> {
    return unary<GetReportResponse__Output>((cb) =>
      this.client.GetReport({ reportId, includeHtml: true }, this.deadline(), cb),
    );
  }

  close(): void {
    this.client.close();
  }
}
