// A large analysis must not starve the coordinator's event loop: while 16 models × 3 probe layers
// at n = 256 are analysed (CKA between every two models, Gram → distance conversion, the probe
// bootstrap, the cross-check intervals, 408 GW solves), timers keep firing and the gRPC health
// service keeps answering; and a cancelled analysis stops its work on the worker threads. The
// probe summaries are stored beforehand under the ids the analysis looks for, so the analysis
// reuses them and needs no live client.
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import { probeRequestId } from '../../src/coordinator/level1/probe-collection.js';
import { AnalysisRequestError } from '../../src/coordinator/level1/types.js';
import { GwPool } from '../../src/ot/index.js';
import { buildTemplate, DEFAULT_TEMPLATE_CONFIG } from '../../src/shared/template.js';
import { gram, type LayerMap, layerStack, probeInputs } from '../analysis/synthetic.js';
import { type Harness, pushRequest, randomAtoms, rpc, startHarness } from './helpers.js';

const MODELS = 16;
const N = 256;
const template = buildTemplate({ ...DEFAULT_TEMPLATE_CONFIG, probeLayers: ['conv1', 'conv2', 'conv3'] });

const HealthClient = grpc.makeGenericClientConstructor(
  healthService as unknown as grpc.ServiceDefinition,
  'Health',
);

/** Longest gap between the ticks of a 5 ms interval timer while `work` runs. */
async function longestTimerGap<T>(work: Promise<T>): Promise<{ value: T; gapMs: number }> {
  let gapMs = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    gapMs = Math.max(gapMs, now - last);
    last = now;
  }, 5);
  try {
    const value = await work;
    gapMs = Math.max(gapMs, performance.now() - last);
    return { value, gapMs };
  } finally {
    clearInterval(timer);
  }
}

describe('a large analysis and the event loop', () => {
  let h: Harness;
  const pool = new GwPool({ workers: 2 });

  beforeAll(async () => {
    h = await startHarness({
      extra: { template },
      config: { analysis: { maxModels: 200, timeoutMs: 600_000 } },
      // One CG step from the identity coupling: the GW solves stay cheap, the rest is full size.
      analysis: createAnalysisService({ pool, gw: { init: 'identity', maxIter: 1 } }),
    });
    const inputs = probeInputs(N, 8, 4);
    const probe = { ...template.probe };
    for (let i = 0; i < MODELS; i++) {
      const clientId = `client${String(i).padStart(2, '0')}`;
      await rpc((cb) => h.fed.Register({ clientId, tasks: [{ taskId: 't', classes: [1] }] }, cb));
      await rpc((cb) =>
        h.fed.PushAtoms(pushRequest(template, clientId, 't', 1, randomAtoms(template, i)), cb),
      );
      const last: LayerMap = i % 2 === 0 ? 'classes' : 'classes2';
      const grams = layerStack(['linear', 'folded', last], inputs, N, 8, {
        mapSeed: 9,
        noiseSeed: 50 + i,
        noise: 0.1,
      }).map(gram);
      const target = { clientId, taskId: 't', round: 1 };
      const requestId = probeRequestId(target, probe, template.probeLayers);
      for (const [l, layer] of template.probeLayers.entries()) {
        const g = grams[l]!;
        await h.running.storage.putProbeSummary({
          requestId,
          clientId,
          taskId: 't',
          round: 1,
          layer,
          n: N,
          featureDim: 16,
          gram: Buffer.from(g.buffer, g.byteOffset, g.byteLength),
          receivedAtMs: Date.now(),
        });
      }
    }
  }, 120_000);
  afterAll(async () => {
    await h?.close();
    await pool.close();
  });

  it('timers keep firing and health checks keep answering while the analysis runs', async () => {
    const health = new HealthClient(`127.0.0.1:${h.running.grpcPort}`, grpc.credentials.createInsecure());
    let slowestHealthMs = 0;
    let healthChecks = 0;
    let analysing = true;
    const checking = (async () => {
      while (analysing) {
        const t0 = performance.now();
        await rpc((cb) =>
          (
            health as unknown as { check: (r: object, cb: (e: grpc.ServiceError | null) => void) => void }
          ).check({ service: '' }, cb),
        );
        slowestHealthMs = Math.max(slowestHealthMs, performance.now() - t0);
        healthChecks++;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    const started = performance.now();
    const { value, gapMs } = await longestTimerGap(
      h.running.analysis!.request({ models: [], reason: 'event loop' }, () => {}),
    );
    const seconds = (performance.now() - started) / 1000;
    analysing = false;
    await checking;
    health.close();

    const stored = await h.running.analysis!.getReport(value.reportId);
    const report = JSON.parse(stored!.json) as { crossModel: { cka: (number | null)[][] }[] };
    expect(report.crossModel).toHaveLength(3);
    expect(report.crossModel[0]!.cka).toHaveLength(MODELS);
    expect(report.crossModel[0]!.cka.flat().every((v) => v !== null && v > 0)).toBe(true);
    // Before the heavy parts moved to worker threads the loop stood still for seconds at a time.
    // The bounds are generous: the machine running the tests may be busy.
    const detail = `longest timer gap ${gapMs.toFixed(0)} ms, slowest health check ${slowestHealthMs.toFixed(0)} ms, ${healthChecks} checks in ${seconds.toFixed(1)} s`;
    expect(gapMs, detail).toBeLessThan(1_000);
    expect(slowestHealthMs, detail).toBeLessThan(1_500);
    expect(healthChecks, detail).toBeGreaterThan(seconds * 5);
  }, 180_000);

  it('a cancelled analysis stops its tasks on the worker threads', async () => {
    const caller = new AbortController();
    const stages: string[] = [];
    const analysis = h.running.analysis!.request(
      { models: [], reason: 'cancel me', signal: caller.signal },
      (p) => {
        stages.push(p.stage);
      },
    );
    const outcome = analysis.catch((err: unknown) => err);
    await expect.poll(() => stages.includes('solving') && pool.pending > 0, { timeout: 60_000 }).toBe(true);
    caller.abort();
    const err = await outcome;
    expect(err).toBeInstanceOf(AnalysisRequestError);
    expect((err as AnalysisRequestError).code).toBe('cancelled');
    // Queued solves and tasks are dropped and running ones stopped, not left to run out.
    await expect.poll(() => pool.pending, { timeout: 5_000 }).toBe(0);
    expect(stages).not.toContain('done');
  }, 120_000);
});
