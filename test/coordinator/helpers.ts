// Shared by the coordinator integration tests: a real coordinator on loopback with a fresh data
// directory, real grpc-js clients, and small promise wrappers.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { expect } from 'vitest';
import type { CoordinatorConfig, DeepPartial } from '../../src/coordinator/config.js';
import {
  type CoordinatorOptions,
  type RunningCoordinator,
  startCoordinator,
} from '../../src/coordinator/coordinator.js';
import type { AnalysisFactory } from '../../src/coordinator/level1/types.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import type { PushAtomsRequest } from '../../src/generated/atomlens/v1/PushAtomsRequest.js';
import type { RunAnalysisRequest } from '../../src/generated/atomlens/v1/RunAnalysisRequest.js';
import type { RunAnalysisResponse__Output } from '../../src/generated/atomlens/v1/RunAnalysisResponse.js';
import { createLogger } from '../../src/shared/log.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import type { ModelTemplate } from '../../src/shared/template.js';
import { encodeFloat32 } from '../../src/shared/tensor.js';

export interface Harness {
  running: RunningCoordinator;
  dataDir: string;
  fed: FederationServiceClient;
  op: OperatorServiceClient;
  /** Restart on the same data directory (after running.stop). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(
  options: {
    config?: DeepPartial<CoordinatorConfig>;
    analysis?: AnalysisFactory;
    dataDir?: string;
    extra?: Partial<CoordinatorOptions>;
  } = {},
): Promise<Harness> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'atomlens-coord-test-'));
  const start = () =>
    startCoordinator({
      dataDir,
      grpcHost: '127.0.0.1',
      grpcPort: 0,
      httpPort: 0,
      logger: createLogger('test', 'silent'),
      ...(options.config ? { config: options.config } : {}),
      ...(options.analysis ? { analysis: options.analysis } : {}),
      ...options.extra,
    });
  const proto = loadAtomlensProto();
  const clientsFor = (port: number) => ({
    fed: new proto.atomlens.v1.FederationService(
      `127.0.0.1:${port}`,
      grpc.credentials.createInsecure(),
    ) as FederationServiceClient,
    op: new proto.atomlens.v1.OperatorService(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    }) as OperatorServiceClient,
  });
  const running = await start();
  const h: Harness = {
    running,
    dataDir,
    ...clientsFor(running.grpcPort),
    async restart() {
      h.fed.close();
      h.op.close();
      h.running = await start();
      Object.assign(h, clientsFor(h.running.grpcPort));
    },
    async close() {
      h.fed.close();
      h.op.close();
      await h.running.stop({ drain: false });
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

/** Calls a unary method: `rpc((cb) => client.Method(req, cb))`. */
export function rpc<T>(fn: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, value) => (err ? reject(err) : resolve(value as T)));
  });
}

/** Runs an operator analysis and collects its progress messages until the stream ends. */
export function runAnalysis(
  operator: OperatorServiceClient,
  request: RunAnalysisRequest,
  options: grpc.CallOptions = {},
): Promise<RunAnalysisResponse__Output[]> {
  return new Promise((resolve, reject) => {
    const seen: RunAnalysisResponse__Output[] = [];
    const call = operator.RunAnalysis(request, options);
    call.on('data', (p: RunAnalysisResponse__Output) => seen.push(p));
    call.on('error', reject);
    call.on('end', () => resolve(seen));
  });
}

/** Asserts that a call fails with a status code and (optionally) a message pattern. */
export async function expectStatus(
  call: Promise<unknown>,
  code: grpc.status,
  message?: RegExp,
): Promise<void> {
  const err = (await call.then(
    () => undefined,
    (e: unknown) => e,
  )) as grpc.ServiceError | undefined;
  expect(err, `expected ${grpc.status[code]}`).toBeDefined();
  expect(grpc.status[err!.code], err!.details).toBe(grpc.status[code]);
  if (message) expect(err!.details).toMatch(message);
}

/** Cosine of two vectors, written out here so tests check the coordinator against it. */
export function cos(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
}

/** Deterministic random atoms for every template layer. */
export function randomAtoms(template: ModelTemplate, seed: number): Float32Array[] {
  const normal = normalSampler(mulberry32(seed));
  return template.layers.map((l) => Float32Array.from({ length: l.m * l.k * l.k }, () => normal()));
}

export function pushRequest(
  template: ModelTemplate,
  clientId: string,
  taskId: string,
  round: number,
  atoms: Float32Array[],
): PushAtomsRequest {
  return {
    clientId,
    taskId,
    round,
    layers: template.layers.map((l, i) => ({
      layer: l.name,
      atoms: encodeFloat32(atoms[i]!, [l.m, l.k, l.k]),
    })),
    stats: { loss: 0.5, accuracy: 0.9, samples: 1000 },
  };
}

/** Polls until check() is true (or fails after timeoutMs). */
export async function waitFor(check: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
