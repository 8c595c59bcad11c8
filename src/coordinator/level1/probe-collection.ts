// Probe collection for an analysis (level 1): ask every involved client, over
// its live session, for the Gram matrices of the template's probe layers; wait until each has
// answered or the deadline has passed; proceed with who answered and say why the others did not.
//
// Reuse: the request id is derived from (client, task, round, probe set, layers), so a repeated
// analysis at the same round finds the stored summaries under that id and asks nothing — also
// after a coordinator restart. Storage upserts per (request, layer), so re-asking after a
// partial answer is safe.
import { createHash } from 'node:crypto';
import type { ProbeLayerData } from '../../analysis/representation.js';
import type { ProbeSetSpec } from '../../shared/template.js';
import { ProbeError, type SessionRegistry } from '../federation/sessions.js';
import type { ProbeSummaryRecord, Storage } from '../storage/types.js';

export interface ProbeTarget {
  clientId: string;
  taskId: string;
  /** The round to probe (the coordinator's latest acknowledged one); 0 = the client's latest. */
  round: number;
}

export interface CollectedProbe {
  target: ProbeTarget;
  requestId: string;
  /** Round the client reported for its activations. */
  round: number;
  /** One summary per requested layer, in request order: its n×n Gram matrix or a factor of it. */
  grams: ProbeLayerData[];
  /** True when stored summaries were reused and nothing was asked. */
  reused: boolean;
}

export interface ProbeMiss {
  target: ProbeTarget;
  requestId: string;
  reason: string;
  outcome: 'gone' | 'failed' | 'timeout' | 'invalid';
}

export interface ProbeCollection {
  answered: CollectedProbe[];
  missing: ProbeMiss[];
  seconds: number;
}

export interface ProbeCollectorDeps {
  sessions: Pick<SessionRegistry, 'requestProbe'>;
  storage: Pick<Storage, 'getProbeSummaries'>;
  now?: () => number;
}

/**
 * Deterministic request id for one model's probe at a round (same inputs → same id).
 * @internal exported for its tests
 */
export function probeRequestId(target: ProbeTarget, probe: ProbeSetSpec, layers: readonly string[]): string {
  const hash = createHash('sha256')
    .update(
      JSON.stringify([
        target.clientId,
        target.taskId,
        target.round,
        probe.source,
        probe.size,
        probe.seed,
        probe.pooling,
        layers,
      ]),
    )
    .digest('hex');
  return `probe-${hash.slice(0, 32)}`;
}

/** A stored probe layer as the analysis takes it: the Gram matrix, or the factor with its rank. */
export function decodeProbeLayer(
  record: Pick<ProbeSummaryRecord, 'layer' | 'n' | 'gram' | 'factorRank'>,
): ProbeLayerData {
  const rank = record.factorRank ?? 0;
  const values = new Float32Array(record.n * (rank > 0 ? rank : record.n));
  if (record.gram.byteLength !== values.byteLength) {
    throw new Error(
      `stored ${rank > 0 ? 'Gram factor' : 'Gram'} for ${record.layer} has ${record.gram.byteLength} bytes, expected ${values.byteLength}`,
    );
  }
  new Uint8Array(values.buffer).set(record.gram);
  return rank > 0 ? { n: record.n, rank, values } : values;
}

/** Stored summaries covering every layer at the probe size, or undefined. */
async function storedAnswer(
  storage: ProbeCollectorDeps['storage'],
  requestId: string,
  target: ProbeTarget,
  layers: readonly string[],
  n: number,
): Promise<CollectedProbe | undefined> {
  const rows = (await storage.getProbeSummaries(requestId)).filter(
    (r) => r.clientId === target.clientId && r.taskId === target.taskId && r.n === n,
  );
  const byLayer = new Map(rows.map((r) => [r.layer, r]));
  if (!layers.every((l) => byLayer.has(l))) return undefined;
  const records = layers.map((l) => byLayer.get(l)!);
  return {
    target,
    requestId,
    round: records[0]!.round,
    grams: records.map(decodeProbeLayer),
    reused: true,
  };
}

/**
 * Collects probe answers from every target. Resolves once each target has answered, failed, is
 * known to be gone, or the deadline has passed — never later than the deadline (plus timer
 * latency). `onAnswer` reports each target as it settles.
 */
export async function collectProbes(
  deps: ProbeCollectorDeps,
  targets: readonly ProbeTarget[],
  request: { layers: readonly string[]; probe: ProbeSetSpec; deadlineMs: number },
  onAnswer: (settled: number, total: number, target: ProbeTarget, ok: boolean) => void = () => {},
): Promise<ProbeCollection> {
  const now = deps.now ?? Date.now;
  const started = now();
  const n = request.probe.size;
  let settled = 0;
  const results = await Promise.all(
    targets.map(async (target): Promise<CollectedProbe | ProbeMiss> => {
      const requestId = probeRequestId(target, request.probe, request.layers);
      const done = <T extends CollectedProbe | ProbeMiss>(r: T): T => {
        settled++;
        onAnswer(settled, targets.length, target, 'grams' in r);
        return r;
      };
      const reused = await storedAnswer(deps.storage, requestId, target, request.layers, n);
      if (reused) return done(reused);
      try {
        const answer = await deps.sessions.requestProbe(target.clientId, {
          requestId,
          taskId: target.taskId,
          round: target.round,
          layers: [...request.layers],
          probe: request.probe,
          deadlineMs: request.deadlineMs,
        });
        const grams: ProbeLayerData[] = [];
        let round = target.round;
        for (const layer of request.layers) {
          const s = answer.layers.get(layer);
          if (!s) throw new ProbeError('failed', target.clientId, `the answer has no layer '${layer}'`);
          if (s.n !== n) {
            return done({
              target,
              requestId,
              outcome: 'invalid',
              reason: `answered with n = ${s.n} probe inputs, expected ${n}`,
            } satisfies ProbeMiss);
          }
          grams.push(s.factorRank > 0 ? { n: s.n, rank: s.factorRank, values: s.gram } : s.gram);
          round = s.round;
        }
        return done({ target, requestId, round, grams, reused: false } satisfies CollectedProbe);
      } catch (err) {
        const outcome = err instanceof ProbeError ? err.outcome : 'failed';
        const why =
          outcome === 'timeout'
            ? `no answer before the deadline (${Math.max(0, request.deadlineMs - started)} ms)`
            : outcome === 'gone'
              ? `not reachable: ${(err as Error).message}`
              : `probe failed: ${(err as Error).message}`;
        return done({ target, requestId, outcome, reason: why } satisfies ProbeMiss);
      }
    }),
  );
  return {
    answered: results.filter((r): r is CollectedProbe => 'grams' in r),
    missing: results.filter((r): r is ProbeMiss => !('grams' in r)),
    seconds: (now() - started) / 1000,
  };
}
