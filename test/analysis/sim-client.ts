// Clients that speak the atomlens wire protocol without TensorFlow, for the analysis tests:
// Register, one round of PushAtoms, a Session with heartbeats, and answers to probe requests with
// the Gram matrices of synthetic layer activations (see synthetic.ts), in 1 KiB chunks.
import * as grpc from '@grpc/grpc-js';
import { centredActivations } from '../../src/analysis/representation.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { PushProbeSummaryRequest } from '../../src/generated/atomlens/v1/PushProbeSummaryRequest.js';
import type { SessionRequest } from '../../src/generated/atomlens/v1/SessionRequest.js';
import type { SessionResponse__Output } from '../../src/generated/atomlens/v1/SessionResponse.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import type { ModelTemplate, TemplateConfig } from '../../src/shared/template.js';
import { encodeFloat32 } from '../../src/shared/tensor.js';
import { type Activations, gram, type LayerMap, layerStack, probeInputs } from './synthetic.js';
import { eightLayerTemplate, N } from './synthetic-report.js';

export function templateConfig(): TemplateConfig {
  const { alpha: _a, alphaFingerprint: _f, ...config } = eightLayerTemplate();
  return config;
}

export interface SimClient {
  id: string;
  task: string;
  stack: Activations[];
  probeRequests: number;
  /** Uploads another round: the same atoms, or (scrambled) fresh random ones — a large drift. */
  push(round: number, scrambled: boolean): Promise<unknown>;
  close(): void;
}

export function unary<T>(fn: (cb: (err: grpc.ServiceError | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

/**
 * A client speaking the protocol: registers, uploads one round of atoms, keeps a session with
 * heartbeats and (unless `silent`) answers every probe request with the Gram matrices of its
 * activations, in 1 KiB chunks.
 */
export async function startClient(
  address: string,
  id: string,
  task: string,
  last: LayerMap,
  options: {
    silent?: boolean;
    noSession?: boolean;
    seed: number;
    template?: ModelTemplate;
    /** Layer activations to answer with (N probe inputs each) instead of the synthetic stack. */
    stack?: Activations[];
    /** Answer with each layer's centred activations (a factor of rank d) instead of its Gram matrix. */
    factors?: boolean;
  },
): Promise<SimClient> {
  const proto = loadAtomlensProto();
  const fed = new proto.atomlens.v1.FederationService(
    address,
    grpc.credentials.createInsecure(),
  ) as unknown as FederationServiceClient;
  const template = options.template ?? eightLayerTemplate();
  await unary((cb) =>
    fed.Register(
      {
        clientId: id,
        tasks: [{ taskId: task, classes: task.split('-').map(Number) }],
        alphaFingerprint: template.alphaFingerprint,
        clientVersion: 'e2e',
      },
      cb,
    ),
  );
  const normal = normalSampler(mulberry32(options.seed));
  const layers = template.layers.map((l, i) => {
    const base = normalSampler(mulberry32(500 + i));
    const values = Float32Array.from({ length: l.m * l.k * l.k }, () => {
      const b = base();
      return (last === 'classes2' && i >= 6 ? normal() : b) + 0.05 * normal();
    });
    return { layer: l.name, atoms: encodeFloat32(values, [l.m, l.k, l.k]) };
  });
  const scramble = normalSampler(mulberry32(options.seed + 7777));
  const push = (round: number, scrambled: boolean) =>
    unary((cb) =>
      fed.PushAtoms(
        {
          clientId: id,
          taskId: task,
          round,
          layers: scrambled
            ? template.layers.map((l) => ({
                layer: l.name,
                atoms: encodeFloat32(
                  Float32Array.from({ length: l.m * l.k * l.k }, () => scramble()),
                  [l.m, l.k, l.k],
                ),
              }))
            : layers,
          stats: { loss: 1, accuracy: 0.5, samples: 10 },
        },
        cb,
      ),
    );
  await push(1, false);

  const inputs = probeInputs(N, 8, 4);
  const stack =
    options.stack ??
    layerStack(['linear', 'linear', 'linear', 'folded', 'folded', 'folded', last, last], inputs, N, 8, {
      mapSeed: 9,
      noiseSeed: options.seed,
      noise: 0.1,
    });
  const client: SimClient = { id, task, stack, probeRequests: 0, push, close: () => fed.close() };
  if (options.noSession) return client;
  const session = fed.Session();
  session.on('error', () => {});
  session.write({ hello: { clientId: id } } satisfies SessionRequest);
  const beat = setInterval(() => session.write({ heartbeat: { sentAtMs: Date.now() } }), 200);
  session.on('data', (msg: SessionResponse__Output) => {
    if (msg.kind !== 'probeRequest' || !msg.probeRequest) return;
    client.probeRequests++;
    if (options.silent) return;
    const req = msg.probeRequest;
    const names = template.layers.map((l) => l.name);
    const upload = fed.PushProbeSummary(() => {});
    for (const layer of req.layers) {
      const a = stack[names.indexOf(layer)]!;
      const bytes = options.factors
        ? encodeFloat32(Float32Array.from(centredActivations(a.X, N, a.d)), [N, a.d]).data
        : encodeFloat32(gram(a), [N, N]).data;
      for (let offset = 0; offset < bytes.length; offset += 1024) {
        upload.write({
          requestId: req.requestId,
          clientId: id,
          taskId: req.taskId,
          round: req.round || 1,
          layer,
          n: N,
          featureDim: stack[0]!.d,
          ...(options.factors ? { factorRank: a.d } : {}),
          offset,
          data: bytes.subarray(offset, offset + 1024),
        } satisfies PushProbeSummaryRequest);
      }
    }
    upload.end();
  });
  client.close = () => {
    clearInterval(beat);
    session.end();
    fed.close();
  };
  return client;
}
