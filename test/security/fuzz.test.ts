// Fuzz: random and mutated protobuf bytes to every RPC of both services, malformed probe-summary
// streams (wrong offsets, oversized, truncated, abrupt cancel) and oversized messages, against a
// real coordinator. The server must stay up, answer every call with a status (never INTERNAL,
// UNKNOWN, or a hang), and store nothing it did not acknowledge.
// Deterministic: FUZZ_SEED (default 1) and FUZZ_ITERATIONS per method (default 2,000: a few thousand
// messages per RPC, counting every message of a stream, in about a minute on two busy cores).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/coordinator/auth/authenticator.js';
import type { AuthConfig } from '../../src/coordinator/auth/config.js';
import { grpcAuthHooks } from '../../src/coordinator/auth/hooks.js';
import { tokenDigest } from '../../src/coordinator/auth/tokens.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { PushAtomsRequest__Output } from '../../src/generated/atomlens/v1/PushAtomsRequest.js';
import type { RegisterRequest__Output } from '../../src/generated/atomlens/v1/RegisterRequest.js';
import { createLogger } from '../../src/shared/log.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { atomsRequest, codeOf, federationClient, rpc } from './helpers.js';
import {
  callRaw,
  mutate,
  mutateFields,
  type RawMethod,
  type RawOutcome,
  rawClient,
  rawMethods,
} from './raw-grpc.js';

const SEED = Number(process.env.FUZZ_SEED ?? 1);
const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 2000);
const MAX_MESSAGE_BYTES = 1024 * 1024;
const TASKS = [{ taskId: '0-1', classes: [0, 1] }];

/**
 * True when an outcome means the server crashed, hung or a handler threw unexpectedly. grpc-js
 * itself answers bytes that are not a valid protobuf of the request type with INTERNAL "Error
 * deserializing request" before any handler runs; that is a refusal, not a failure.
 */
function isBad(o: RawOutcome): boolean {
  switch (o.code) {
    case grpc.status.INTERNAL:
      return !o.details.startsWith('Error deserializing request');
    case grpc.status.UNAVAILABLE:
      // A newer session of the same client supersedes an older one: an answer, not an outage.
      return !o.details.startsWith('session closed by the coordinator');
    case grpc.status.UNKNOWN:
    case grpc.status.DEADLINE_EXCEEDED:
      return true;
    default:
      return false;
  }
}

function seedsFor(method: RawMethod): Buffer[] {
  const e = (v: object) => method.encode(v);
  switch (method.name) {
    case 'Register':
      return [e({ clientId: 'fuzz', tasks: TASKS, clientVersion: 'f' }), e({ clientId: 'x', tasks: [] })];
    case 'PushAtoms':
      return [e(atomsRequest('fuzz', '0-1', 1)), e(atomsRequest('fuzz', '0-1', 2))];
    case 'Session':
      return [
        e({ hello: { clientId: 'fuzz' } }),
        e({ heartbeat: { sentAtMs: 1 } }),
        e({ probeFailure: { requestId: 'r', message: 'm' } }),
      ];
    case 'PushProbeSummary':
      return [
        e({
          requestId: 'r1',
          clientId: 'fuzz',
          taskId: '0-1',
          round: 1,
          layer: 'conv1',
          n: 2,
          featureDim: 8,
          offset: 0,
          data: Buffer.alloc(16),
        }),
      ];
    case 'GetSimilarity':
      return [
        e({ round: 0, measure: 'SIMILARITY_MEASURE_ATOM_COSINE', taskIds: ['0-1'] }),
        e({ measure: 'SIMILARITY_MEASURE_SUBSPACE' }),
      ];
    case 'GetModelHistory':
      return [e({ model: { clientId: 'fuzz', taskId: '0-1' }, includeAtoms: true })];
    case 'RunAnalysis':
      return [e({ models: [{ clientId: 'fuzz', taskId: '0-1' }], reason: 'fuzz', probeDeadlineMs: 50 })];
    case 'ListReports':
      return [e({ pageSize: 5 }), e({ pageSize: 1, pageToken: 'not-a-token' })];
    case 'GetReport':
      return [e({ reportId: 'nope', includeHtml: true })];
    case 'RemoveClient':
      return [e({ clientId: 'nobody' }), e({ clientId: 'x'.repeat(65) })];
    default:
      return [e({})];
  }
}

/** Random bytes, or a byte- or field-level mutation of a valid seed; 1–3 messages for client streams. */
function inputsFor(method: RawMethod, rand: () => number): Buffer[] {
  const seeds = seedsFor(method);
  const one = () => {
    const seed = seeds[Math.floor(rand() * seeds.length)]!;
    const r = rand();
    if (r < 0.2)
      return Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)));
    return r < 0.5 ? mutate(seed, rand) : mutateFields(method, seed, rand);
  };
  if (!method.requestStream) return [one()];
  return Array.from({ length: 1 + Math.floor(rand() * 3) }, one);
}

interface Fuzzed {
  running: RunningCoordinator;
  address: string;
  dataDir: string;
}

async function start(auth?: AuthConfig): Promise<Fuzzed> {
  const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-fuzz-'));
  const running = await startCoordinator({
    dataDir,
    grpcPort: 0,
    httpPort: 0,
    logger: createLogger('fuzz', 'silent'),
    // The real analysis service, so RunAnalysis/ListReports/GetReport validate real input.
    analysis: createAnalysisService(),
    config: {
      limits: { maxMessageBytes: MAX_MESSAGE_BYTES },
      sessions: { heartbeatIntervalMs: 200, timeoutMs: 1000 },
    },
    ...(auth ? grpcAuthHooks(new Authenticator(auth, { key: Buffer.alloc(32, 3) })) : {}),
  });
  return { running, address: `127.0.0.1:${running.grpcPort}`, dataDir };
}

async function stillServing(f: Fuzzed): Promise<void> {
  const fed = federationClient(f.address);
  try {
    await rpc((cb) =>
      fed.register(
        { clientId: 'health-check', tasks: TASKS, clientVersion: 'check' },
        { deadline: Date.now() + 5000 },
        cb,
      ),
    );
  } finally {
    fed.close();
  }
}

describe('fuzzing every RPC (authentication off: validation is the only guard)', () => {
  let f: Fuzzed;
  let raw: grpc.Client;
  const proto = loadAtomlensProto().atomlens.v1;
  /** (client, task, round) of every PushAtoms the server acknowledged. */
  const ackedUploads = new Set<string>();
  const registered = new Set<string>(['fuzz', 'health-check']);

  beforeAll(async () => {
    f = await start();
    raw = rawClient(f.address);
    const fed = federationClient(f.address);
    await rpc((cb) => fed.register({ clientId: 'fuzz', tasks: TASKS, clientVersion: 'seed' }, cb));
    fed.close();
  });
  afterAll(async () => {
    raw?.close();
    await f?.running.stop({ drain: false });
    if (f) rmSync(f.dataDir, { recursive: true, force: true });
  });

  for (const method of rawMethods()) {
    it(`${method.service}/${method.name}: random and mutated bytes get a status, never a crash`, async () => {
      const rand = mulberry32(SEED * 1000 + method.name.length * 31 + method.name.charCodeAt(0));
      const codes = new Map<string, number>();
      const bad: string[] = [];
      const batch = method.requestStream || method.responseStream ? 50 : 100;
      for (let i = 0; i < ITERATIONS; i += batch) {
        const inputs = Array.from({ length: Math.min(batch, ITERATIONS - i) }, () => inputsFor(method, rand));
        const outcomes: RawOutcome[] = await Promise.all(
          inputs.map((msgs) => callRaw(raw, method, msgs, { deadlineMs: 10_000, holdMs: 200 })),
        );
        outcomes.forEach((o, j) => {
          const name = grpc.status[o.code] ?? String(o.code);
          codes.set(name, (codes.get(name) ?? 0) + 1);
          if (isBad(o)) bad.push(`${name}: ${o.details}`);
          if (o.code !== grpc.status.OK) return;
          // Record what an accepted call may legitimately have stored.
          const msg = inputs[j]![0]!;
          if (method.name === 'PushAtoms') {
            const req = proto.FederationService.service.PushAtoms.requestDeserialize(
              msg,
            ) as PushAtomsRequest__Output;
            ackedUploads.add(`${req.clientId}/${req.taskId}/${req.round}`);
          }
          if (method.name === 'Register') {
            const req = proto.FederationService.service.Register.requestDeserialize(
              msg,
            ) as RegisterRequest__Output;
            registered.add(req.clientId);
          }
        });
      }
      if (process.env.FUZZ_VERBOSE) console.log(method.name, Object.fromEntries(codes));
      expect(bad, `calls that crashed or hung: ${bad.slice(0, 5).join(' | ')}`).toEqual([]);
      await stillServing(f);
    });
  }

  it('stored only what it acknowledged', async () => {
    const storage = f.running.storage;
    for (const c of await storage.listClients()) {
      expect(registered.has(c.clientId), `client '${c.clientId}' stored without an OK Register`).toBe(true);
      for (const t of c.tasks) {
        for (const r of await storage.listRounds(c.clientId, t.taskId, true)) {
          expect(ackedUploads.has(`${c.clientId}/${t.taskId}/${r.round}`)).toBe(true);
          const values = new Float32Array(
            r.atoms.buffer.slice(r.atoms.byteOffset, r.atoms.byteOffset + r.atoms.byteLength),
          );
          expect(values.every(Number.isFinite)).toBe(true);
        }
      }
    }
  });

  it('refuses a message above the size limit with RESOURCE_EXHAUSTED and keeps serving', async () => {
    const push = rawMethods().find((m) => m.name === 'PushAtoms')!;
    const oversized = push.encode({
      ...atomsRequest('fuzz', '0-1', 99),
      taskId: 'x'.repeat(MAX_MESSAGE_BYTES + 10),
    });
    const before = await f.running.storage.countUploads();
    const out = await callRaw(raw, push, [oversized]);
    expect(out.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(await f.running.storage.countUploads()).toBe(before);
    await stillServing(f);
  });

  it('malformed probe-summary streams are refused and store nothing; a correct answer still works', async () => {
    const fed: FederationServiceClient = federationClient(f.address);
    // Fuzzed RemoveClient calls may have removed 'fuzz' (its id is one of the odd strings).
    await rpc((cb) => fed.register({ clientId: 'fuzz', tasks: TASKS, clientVersion: 'seed' }, cb));
    const session = fed.session();
    const requests: string[] = [];
    session.on('data', (m: { kind: string; probeRequest?: { requestId: string } }) => {
      if (m.kind === 'probeRequest') requests.push(m.probeRequest!.requestId);
    });
    session.on('error', () => undefined);
    session.write({ hello: { clientId: 'fuzz' } });
    const beat = setInterval(() => session.write({ heartbeat: { sentAtMs: Date.now() } }), 100);
    try {
      const until = Date.now() + 5000;
      while (f.running.sessions.connectedCount() === 0 && Date.now() < until)
        await new Promise((r) => setTimeout(r, 20));
      const n = 4;
      const answer = f.running.sessions.requestProbe('fuzz', {
        taskId: '0-1',
        layers: ['conv1', 'conv2'],
        probe: { source: 'noise', size: n, seed: 1, pooling: 'gap' },
        deadlineMs: Date.now() + 30_000,
      });
      answer.catch(() => undefined);
      while (requests.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      const requestId = requests[0]!;
      const layerBytes = n * n * 4;
      const chunk = (layer: string, offset: number, data: Buffer, over: object = {}) => ({
        requestId,
        clientId: 'fuzz',
        taskId: '0-1',
        round: 1,
        layer,
        n,
        featureDim: 8,
        offset,
        data,
        ...over,
      });
      const ones = (bytes: number) => Buffer.from(new Float32Array(bytes / 4).fill(1).buffer);
      const stream = (chunks: object[], cancelAfterMs?: number) =>
        rpc<{ layers: string[] }>((cb) => {
          const call = fed.pushProbeSummary(cb);
          for (const c of chunks) call.write(c);
          if (cancelAfterMs === undefined) call.end();
          else setTimeout(() => call.cancel(), cancelAfterMs);
        });
      const half = layerBytes / 2;
      const cases: [string, object[], grpc.status][] = [
        ['first chunk not at offset 0', [chunk('conv1', 8, ones(8))], grpc.status.INVALID_ARGUMENT],
        [
          'gap between chunks',
          [chunk('conv1', 0, ones(half)), chunk('conv1', half + 4, ones(half - 4))],
          grpc.status.INVALID_ARGUMENT,
        ],
        ['more bytes than n×n×4', [chunk('conv1', 0, ones(layerBytes + 4))], grpc.status.INVALID_ARGUMENT],
        ['stream ends mid-layer', [chunk('conv1', 0, ones(half))], grpc.status.INVALID_ARGUMENT],
        ['wrong n', [chunk('conv1', 0, ones(layerBytes), { n: 5 })], grpc.status.INVALID_ARGUMENT],
        ['layer not requested', [chunk('conv3', 0, ones(layerBytes))], grpc.status.INVALID_ARGUMENT],
        [
          'unknown request',
          [chunk('conv1', 0, ones(layerBytes), { requestId: 'nope' })],
          grpc.status.NOT_FOUND,
        ],
        [
          'NaN in the matrix',
          [chunk('conv1', 0, Buffer.from(new Float32Array(n * n).fill(Number.NaN).buffer))],
          grpc.status.INVALID_ARGUMENT,
        ],
        [
          'chunk above the message limit',
          [chunk('conv1', 0, Buffer.alloc(MAX_MESSAGE_BYTES + 64))],
          grpc.status.RESOURCE_EXHAUSTED,
        ],
      ];
      for (const [what, chunks, expected] of cases) {
        expect(await codeOf(stream(chunks)), what).toBe(expected);
      }
      // Abrupt cancel after half a layer.
      expect(await codeOf(stream([chunk('conv1', 0, ones(half))], 50))).toBe(grpc.status.CANCELLED);
      expect(await f.running.storage.getProbeSummaries(requestId)).toHaveLength(0);

      // The request is still open and a correct answer (two layers, chunked) completes it.
      const done = await stream([
        chunk('conv1', 0, ones(half)),
        chunk('conv1', half, ones(half)),
        chunk('conv2', 0, ones(layerBytes)),
      ]);
      expect(done.layers).toEqual(['conv1', 'conv2']);
      expect((await answer).layers.size).toBe(2);
      expect(await f.running.storage.getProbeSummaries(requestId)).toHaveLength(2);
    } finally {
      clearInterval(beat);
      session.cancel();
      fed.close();
    }
  });
});

describe('fuzzing with authentication on: nothing gets in without credentials', () => {
  let f: Fuzzed;
  let raw: grpc.Client;
  beforeAll(async () => {
    f = await start({
      enabled: true,
      enrollmentSecret: 'fuzz-enrolment-secret-123456',
      mtlsEnrollment: false,
      tokenTtlSeconds: 60,
      operatorTokenDigests: [tokenDigest('fuzz-operator-token-123456')],
      http: { metrics: 'open', health: 'open' },
    });
    raw = rawClient(f.address);
  });
  afterAll(async () => {
    raw?.close();
    await f?.running.stop({ drain: false });
    if (f) rmSync(f.dataDir, { recursive: true, force: true });
  });

  it('every method answers with an error and nothing is stored', async () => {
    const rand = mulberry32(SEED + 77);
    const bad: string[] = [];
    const ok: string[] = [];
    for (const method of rawMethods()) {
      // In batches below limits.maxStreamsPerConnection: calls beyond it wait on the client's
      // side, and a waiting stream would look held open. Refused calls end at once, so the
      // generous hold costs nothing unless a stream really is held open; a short one mistook a
      // refusal delayed by a busy machine for an accepted session.
      const outcomes: RawOutcome[] = [];
      const total = Math.max(10, ITERATIONS / 4);
      for (let i = 0; i < total; i += 50) {
        outcomes.push(
          ...(await Promise.all(
            Array.from({ length: Math.min(50, total - i) }, () =>
              callRaw(raw, method, inputsFor(method, rand), { holdMs: 3_000 }),
            ),
          )),
        );
      }
      for (const o of outcomes) {
        if (isBad(o)) bad.push(`${method.name} ${grpc.status[o.code]}: ${o.details}`);
        // A held-open Session means a hello was accepted without credentials.
        if (o.code === grpc.status.OK) ok.push(`${method.name}: ${o.details}`);
      }
    }
    expect(bad).toEqual([]);
    expect(ok).toEqual([]);
    expect(await f.running.storage.listClients()).toEqual([]);
    expect(await f.running.storage.countUploads()).toBe(0);
  });
});
