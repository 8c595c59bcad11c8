// Analyses are bounded: the waiting line admits exactly its documented length even when requests
// arrive together, one analysis covers at most analysis.maxModels models, a cancelled RunAnalysis
// or a closed HTTP request stops its analysis, and analysis.timeoutMs ends one with outcome
// `timeout`.
import { request as httpRequest } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import { AnalysisRequestError } from '../../src/coordinator/level1/types.js';
import type { SessionRequest } from '../../src/generated/atomlens/v1/SessionRequest.js';
import type { SessionResponse__Output } from '../../src/generated/atomlens/v1/SessionResponse.js';
import { buildTemplate } from '../../src/shared/template.js';
import { type Harness, pushRequest, randomAtoms, rpc, startHarness, waitFor } from './helpers.js';

const template = buildTemplate();

async function outcomes(h: Harness): Promise<Record<string, number>> {
  const metric = await h.running.metrics.analyses.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.outcome), v.value]));
}

describe('analysis limits, cancellation and timeout', () => {
  let h: Harness;
  const sessions: grpc.ClientDuplexStream<SessionRequest, SessionResponse__Output>[] = [];
  const probesAsked = new Map<string, string[]>();
  const asked = (clientId: string) => probesAsked.get(clientId)?.length ?? 0;

  /** A connected client that never answers a probe request: its analyses wait for it. */
  async function connect(clientId: string): Promise<void> {
    const session = h.fed.Session();
    probesAsked.set(clientId, []);
    session.on('data', (m: SessionResponse__Output) => {
      if (m.probeRequest) probesAsked.get(clientId)!.push(m.probeRequest.requestId);
    });
    session.on('error', () => undefined);
    session.write({ hello: { clientId } });
    sessions.push(session);
    await waitFor(() => h.running.sessions.isConnected(clientId), 5_000, `session of ${clientId}`);
  }

  beforeAll(async () => {
    h = await startHarness({
      config: { analysis: { maxWaiting: 4, maxModels: 2, timeoutMs: 1_500, probeDeadlineMs: 60_000 } },
      analysis: createAnalysisService({ workers: 1 }),
    });
    for (const clientId of ['a', 'b', 'c', 'd', 'e', 'f']) {
      await rpc((cb) => h.fed.Register({ clientId, tasks: [{ taskId: 't', classes: [1] }] }, cb));
      await rpc((cb) =>
        h.fed.PushAtoms(pushRequest(template, clientId, 't', 1, randomAtoms(template, 3)), cb),
      );
    }
    for (const clientId of ['a', 'd', 'e', 'f']) await connect(clientId);
  });
  afterAll(async () => {
    for (const session of sessions) session.cancel();
    await h?.close();
  });

  it('admits exactly analysis.maxWaiting + 1 of 20 simultaneous requests; the rest are busy', async () => {
    const service = h.running.analysis!;
    const settled = await Promise.allSettled(
      Array.from({ length: 20 }, () =>
        service.request(
          { models: [{ clientId: 'b', taskId: 't' }], reason: 'burst', probeDeadlineMs: 10 },
          () => {},
        ),
      ),
    );
    const busy = settled.filter(
      (r) => r.status === 'rejected' && r.reason instanceof AnalysisRequestError && r.reason.code === 'busy',
    );
    const done = settled.filter((r) => r.status === 'fulfilled');
    expect(busy).toHaveLength(15);
    expect(done).toHaveLength(5);
  });

  it('refuses more models than analysis.maxModels, naming the flag and the key', async () => {
    const err = await h.running.analysis!.request({ models: [], reason: 'all' }, () => {}).catch((e) => e);
    expect(err).toBeInstanceOf(AnalysisRequestError);
    expect((err as AnalysisRequestError).code).toBe('invalid');
    expect((err as Error).message).toMatch(/analysis\.maxModels/);
    expect((err as Error).message).toMatch(/--models/);
  });

  it('a cancelled RunAnalysis stops its analysis: no report, outcome cancelled', async () => {
    const before = await outcomes(h);
    const reportsBefore = (await h.running.storage.listReports(100)).length;
    const call = h.op.RunAnalysis({ models: [{ clientId: 'a', taskId: 't' }], reason: 'cancel me' });
    call.on('error', () => undefined);
    call.on('data', () => undefined);
    await waitFor(() => asked('a') > 0, 5_000, 'the probe request');
    call.cancel();
    await expect
      .poll(async () => (await outcomes(h)).cancelled, { timeout: 1_000 })
      .toBe((before.cancelled ?? 0) + 1);
    // The outcome is counted before the analysis record is written, the in-progress gauge after.
    await expect
      .poll(() => h.running.metrics.analysisInProgress.get().then((m) => m.values[0]?.value), {
        timeout: 5_000,
      })
      .toBe(0);
    expect((await h.running.storage.listReports(100)).length).toBe(reportsBefore);
  });

  it('a closed HTTP request stops its analysis', async () => {
    const before = await outcomes(h);
    const req = httpRequest({
      host: '127.0.0.1',
      port: h.running.httpPort,
      method: 'POST',
      path: '/analyses',
      headers: { 'content-type': 'application/json' },
    });
    req.on('error', () => undefined);
    req.on('response', (res) => res.on('data', () => undefined));
    req.end(JSON.stringify({ models: [{ clientId: 'd', taskId: 't' }], reason: 'http cancel' }));
    await waitFor(() => asked('d') > 0, 5_000, 'the probe request');
    req.destroy();
    await expect
      .poll(async () => (await outcomes(h)).cancelled, { timeout: 1_000 })
      .toBe((before.cancelled ?? 0) + 1);
  });

  it('an internal failure mid-analysis reaches the caller only as a correlation id', async () => {
    const storage = h.running.storage;
    const original = storage.putReport.bind(storage);
    storage.putReport = async () => {
      throw new Error('SQLITE_FULL at /var/lib/secret-place/atomlens.db');
    };
    try {
      const messages: string[] = [];
      const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
        const call = h.op.RunAnalysis({
          models: [{ clientId: 'b', taskId: 't' }],
          reason: 'storage breaks',
          probeDeadlineMs: 10,
        });
        call.on('data', (p: { message: string }) => messages.push(p.message));
        call.on('error', resolve);
        call.on('end', () => reject(new Error('the analysis should have failed')));
      });
      expect(err.code).toBe(grpc.status.INTERNAL);
      expect([err.details, ...messages].join('\n')).not.toMatch(/SQLITE|secret-place/);
      expect(messages.at(-1)).toMatch(/^the analysis failed \(correlation id [0-9a-f]{12}\)/);
    } finally {
      storage.putReport = original;
    }
  });

  it('an analysis running past analysis.timeoutMs ends with outcome timeout', async () => {
    const before = await outcomes(h);
    const started = Date.now();
    const err = await h.running
      .analysis!.request({ models: [{ clientId: 'e', taskId: 't' }], reason: 'slow' }, () => {})
      .catch((e) => e);
    expect((err as AnalysisRequestError).code, JSON.stringify(err)).toBe('timeout');
    expect((err as Error).message).toMatch(/analysis\.timeoutMs/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect((await outcomes(h)).timeout).toBe((before.timeout ?? 0) + 1);
    const status = await rpcStatus(h);
    expect(status).toBe(grpc.status.DEADLINE_EXCEEDED);
  });
});

/** The gRPC status of a RunAnalysis that times out. */
function rpcStatus(h: Harness): Promise<grpc.status> {
  return new Promise((resolve) => {
    const call = h.op.RunAnalysis({ models: [{ clientId: 'f', taskId: 't' }], reason: 'slow (gRPC)' });
    call.on('data', () => undefined);
    call.on('error', (e: grpc.ServiceError) => resolve(e.code));
    call.on('end', () => resolve(grpc.status.OK));
  });
}
