// An operator's analysis on a loopback coordinator, as the end-to-end tests run it: open an
// operator client, run the analysis to its end, fetch the JSON report.
import * as grpc from '@grpc/grpc-js';
import { expect } from 'vitest';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import type { RunAnalysisRequest } from '../../src/generated/atomlens/v1/RunAnalysisRequest.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { rpc, runAnalysis } from '../coordinator/helpers.js';

/** Runs an analysis at `address` (host:port), asserts it finished, and returns its report. */
export async function analysisReport(address: string, request: RunAnalysisRequest): Promise<AnalysisReport> {
  const proto = loadAtomlensProto();
  const operator = new proto.atomlens.v1.OperatorService(
    address,
    grpc.credentials.createInsecure(),
  ) as unknown as OperatorServiceClient;
  try {
    const progress = await runAnalysis(operator, request);
    expect(progress.at(-1)?.stage).toBe('ANALYSIS_STAGE_DONE');
    const got = await rpc<{ json: string }>((cb) =>
      operator.GetReport({ reportId: progress.at(-1)!.reportId, includeHtml: false }, cb),
    );
    return JSON.parse(got.json) as AnalysisReport;
  } finally {
    operator.close();
  }
}
