// The coordinator as a service: real server on loopback, real grpc-js clients. Numbers are
// checked against plain loops over the atoms the test sent; every bad input must leave storage
// unchanged; a killed coordinator restarted on the same data directory still has everything it
// acknowledged.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GetDivergenceResponse__Output } from '../../src/generated/atomlens/v1/GetDivergenceResponse.js';
import type { GetModelHistoryResponse__Output } from '../../src/generated/atomlens/v1/GetModelHistoryResponse.js';
import type { GetSimilarityResponse__Output } from '../../src/generated/atomlens/v1/GetSimilarityResponse.js';
import type { ListClientsResponse__Output } from '../../src/generated/atomlens/v1/ListClientsResponse.js';
import type { PushAtomsRequest } from '../../src/generated/atomlens/v1/PushAtomsRequest.js';
import type { PushAtomsResponse__Output } from '../../src/generated/atomlens/v1/PushAtomsResponse.js';
import type { RegisterRequest } from '../../src/generated/atomlens/v1/RegisterRequest.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import type { SimilarityMeasure } from '../../src/generated/atomlens/v1/SimilarityMeasure.js';
import { buildTemplate, templateFromWire } from '../../src/shared/template.js';
import { decodeFloat32 } from '../../src/shared/tensor.js';
import { cos, expectStatus, type Harness, pushRequest, randomAtoms, rpc, startHarness } from './helpers.js';

const template = buildTemplate();
const MAX_MESSAGE = 256 * 1024;

const meanCos = (a: Float32Array[], b: Float32Array[]) =>
  a.reduce((s, l, i) => s + cos(l, b[i]!), 0) / a.length;

/** Atoms of `base` recombined by a fixed invertible m×m matrix per layer: same spans, different basis. */
function recombined(base: Float32Array[]): Float32Array[] {
  return base.map((layer, li) => {
    const spec = template.layers[li]!;
    const kk = spec.k * spec.k;
    const out = new Float32Array(layer.length);
    for (let i = 0; i < spec.m; i++)
      for (let j = 0; j < spec.m; j++) {
        const g = i === j ? 2 : i === j + 1 ? 0.5 : 0; // lower bidiagonal, determinant 2^m
        for (let t = 0; t < kk; t++) out[i * kk + t]! += g * layer[j * kk + t]!;
      }
    return out;
  });
}

const TASKS = { '0-1': [0, 1], '2-3': [2, 3] } as const;
function register(
  h: Harness,
  clientId: string,
  tasks: (keyof typeof TASKS)[],
  fingerprint = '',
): Promise<RegisterResponse__Output> {
  const req: RegisterRequest = {
    clientId,
    tasks: tasks.map((t) => ({ taskId: t, classes: [...TASKS[t]] })),
    alphaFingerprint: fingerprint,
    clientVersion: 'test',
  };
  return rpc<RegisterResponse__Output>((cb) => h.fed.Register(req, cb));
}
const push = (h: Harness, req: PushAtomsRequest) =>
  rpc<PushAtomsResponse__Output>((cb) => h.fed.PushAtoms(req, cb));

describe('coordinator over gRPC', () => {
  let h: Harness;
  // model → atoms per round
  const sent = new Map<string, Float32Array[][]>();
  const key = (c: string, t: string) => `${c}/${t}`;

  beforeAll(async () => {
    h = await startHarness({ config: { limits: { maxMessageBytes: MAX_MESSAGE } } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('registers clients and hands out the template', async () => {
    const r = await register(h, 'alice', ['0-1']);
    expect(r.fingerprintMatch).toBe(true);
    expect(r.progress).toEqual([{ taskId: '0-1', lastRound: 0 }]);
    expect(r.heartbeatIntervalMs).toBe(5000);
    const wireTemplate = templateFromWire(r.template!);
    expect(wireTemplate.alphaFingerprint).toBe(template.alphaFingerprint);
    expect(Buffer.from(wireTemplate.alpha[2]!.buffer).equals(Buffer.from(template.alpha[2]!.buffer))).toBe(
      true,
    );
    await register(h, 'bob', ['0-1', '2-3']);
    await register(h, 'carol', ['2-3'], template.alphaFingerprint);
    const dave = await register(h, 'dave', ['0-1'], 'f'.repeat(64));
    expect(dave.fingerprintMatch).toBe(false);
  });

  it('acknowledges uploads with the drift to the previous round', async () => {
    const models: [string, string][] = [
      ['alice', '0-1'],
      ['bob', '0-1'],
      ['bob', '2-3'],
      ['carol', '2-3'],
      ['dave', '0-1'],
    ];
    let seed = 100;
    for (let round = 1; round <= 2; round++) {
      for (const [c, t] of models) {
        const atoms =
          c === 'dave'
            ? recombined(sent.get(key('alice', '0-1'))![round - 1]!)
            : randomAtoms(template, seed++);
        const res = await push(h, pushRequest(template, c, t, round, atoms));
        expect(res.duplicate).toBe(false);
        expect(Number(res.round)).toBe(round);
        const history = sent.get(key(c, t)) ?? [];
        if (round === 1) expect(res.hasDrift).toBe(false);
        else {
          expect(res.hasDrift).toBe(true);
          expect(res.drift).toBeCloseTo(1 - meanCos(atoms, history[0]!), 6);
        }
        history.push(atoms);
        sent.set(key(c, t), history);
      }
    }
    expect(await h.running.storage.countUploads()).toBe(10);
  });

  it('GetSimilarity: atom cosine between shared-α models, subspace for the mismatched one', async () => {
    const sim = await rpc<GetSimilarityResponse__Output>((cb) =>
      h.op.GetSimilarity({ round: 0, measure: 'SIMILARITY_MEASURE_ATOM_COSINE' }, cb),
    );
    const n = sim.models.length;
    expect(n).toBe(5);
    const latest = (i: number) => sent.get(key(sim.models[i]!.clientId, sim.models[i]!.taskId))![1]!;
    const isDave = (i: number) => sim.models[i]!.clientId === 'dave';
    const aliceIndex = sim.models.findIndex((m) => m.clientId === 'alice');
    const daveIndex = sim.models.findIndex((m) => m.clientId === 'dave');
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const measure = sim.pairMeasure[i * n + j];
        if (isDave(i) || isDave(j)) {
          expect(measure).toBe('SIMILARITY_MEASURE_SUBSPACE');
          expect(sim.values[i * n + j]).toBeGreaterThanOrEqual(0);
          expect(sim.values[i * n + j]).toBeLessThanOrEqual(1 + 1e-9);
        } else {
          expect(measure).toBe('SIMILARITY_MEASURE_ATOM_COSINE');
          expect(sim.values[i * n + j]).toBeCloseTo(meanCos(latest(i), latest(j)), 6);
          sim.layers.forEach((layer, l) => {
            expect(layer.layer).toBe(template.layers[l]!.name);
            expect(layer.values[i * n + j]).toBeCloseTo(cos(latest(i)[l]!, latest(j)[l]!), 6);
          });
        }
      }
    }
    // dave's atoms span the same subspaces as alice's: similarity 1 in every layer.
    expect(sim.values[aliceIndex * n + daveIndex]).toBeCloseTo(1, 6);

    const round1 = await rpc<GetSimilarityResponse__Output>((cb) =>
      h.op.GetSimilarity({ round: 1, measure: 'SIMILARITY_MEASURE_ATOM_COSINE', taskIds: ['2-3'] }, cb),
    );
    expect(round1.models.map((m) => m.clientId)).toEqual(['bob', 'carol']);
    expect(round1.values[1]).toBeCloseTo(
      meanCos(sent.get(key('bob', '2-3'))![0]!, sent.get(key('carol', '2-3'))![0]!),
      6,
    );
  });

  it('GetDivergence: 1 − cosine to the centroid of the same task, drift to the previous round', async () => {
    const res = await rpc<GetDivergenceResponse__Output>((cb) => h.op.GetDivergence({}, cb));
    const get = (c: string, t: string) =>
      res.models.find((m) => m.model!.clientId === c && m.model!.taskId === t)!;
    const latest = (c: string, t: string) => sent.get(key(c, t))![1]!;
    // 0-1 with shared α: alice and bob (dave is outside the cosine centroid); one peer each.
    expect(get('alice', '0-1').divergence).toBeCloseTo(
      1 - meanCos(latest('alice', '0-1'), latest('bob', '0-1')),
      6,
    );
    expect(get('carol', '2-3').divergence).toBeCloseTo(
      1 - meanCos(latest('carol', '2-3'), latest('bob', '2-3')),
      6,
    );
    const bob = get('bob', '2-3');
    expect(Number(bob.round)).toBe(2);
    expect(bob.drift).toBeCloseTo(1 - meanCos(latest('bob', '2-3'), sent.get(key('bob', '2-3'))![0]!), 6);
    expect(bob.layerDivergence).toHaveLength(template.layers.length);
    bob.layerDivergence.forEach((d, l) => {
      expect(d).toBeCloseTo(1 - cos(latest('bob', '2-3')[l]!, latest('carol', '2-3')[l]!), 6);
    });
  });

  it('GetModelHistory returns every round with stats, drift and the exact atoms', async () => {
    const res = await rpc<GetModelHistoryResponse__Output>((cb) =>
      h.op.GetModelHistory({ model: { clientId: 'bob', taskId: '0-1' }, includeAtoms: true }, cb),
    );
    expect(res.rounds.map((r) => Number(r.round))).toEqual([1, 2]);
    const atoms = sent.get(key('bob', '0-1'))!;
    expect(res.rounds[0]!.drift).toBe(0);
    expect(res.rounds[1]!.drift).toBeCloseTo(1 - meanCos(atoms[1]!, atoms[0]!), 6);
    expect(res.rounds[1]!.stats).toMatchObject({ loss: 0.5, accuracy: 0.9 });
    res.rounds[1]!.layers.forEach((l, i) => {
      expect(l.layer).toBe(template.layers[i]!.name);
      expect([...decodeFloat32(l.atoms!)]).toEqual([...atoms[1]![i]!]);
    });
  });

  it('ListClients shows tasks with their last acknowledged round', async () => {
    const res = await rpc<ListClientsResponse__Output>((cb) => h.op.ListClients({}, cb));
    const bob = res.clients.find((c) => c.clientId === 'bob')!;
    expect(bob.tasks.map((t) => [t.taskId, Number(t.lastRound)])).toEqual([
      ['0-1', 2],
      ['2-3', 2],
    ]);
    expect(bob.connected).toBe(false);
    expect(res.clients.find((c) => c.clientId === 'dave')!.fingerprintMatch).toBe(false);
  });

  it('re-sending an acknowledged round is idempotent; different atoms for it are ALREADY_EXISTS', async () => {
    const atoms = sent.get(key('alice', '0-1'))![1]!;
    const again = await push(h, pushRequest(template, 'alice', '0-1', 2, atoms));
    expect(again.duplicate).toBe(true);
    expect(again.drift).toBeCloseTo(1 - meanCos(atoms, sent.get(key('alice', '0-1'))![0]!), 6);
    await expectStatus(
      push(h, pushRequest(template, 'alice', '0-1', 2, randomAtoms(template, 999))),
      grpc.status.ALREADY_EXISTS,
      /already acknowledged.*last acknowledged round: 2/,
    );
    expect(await h.running.storage.countUploads()).toBe(10);
  });

  describe('bad input gets a precise error and changes nothing', () => {
    const good = () => pushRequest(template, 'alice', '0-1', 3, randomAtoms(template, 5));
    const withLayer = (mutate: (layers: NonNullable<PushAtomsRequest['layers']>) => void) => {
      const req = good();
      mutate(req.layers!);
      return req;
    };
    const nanAtoms = () => {
      const a = randomAtoms(template, 6);
      a[1]![4] = Number.NaN;
      return a;
    };
    const infAtoms = () => {
      const a = randomAtoms(template, 6);
      a[4]![0] = Number.POSITIVE_INFINITY;
      return a;
    };
    const cases: [string, () => PushAtomsRequest, grpc.status, RegExp][] = [
      [
        'unregistered client',
        () => ({ ...good(), clientId: 'mallory' }),
        grpc.status.FAILED_PRECONDITION,
        /not registered/,
      ],
      [
        'malformed client id',
        () => ({ ...good(), clientId: 'a b' }),
        grpc.status.INVALID_ARGUMENT,
        /client_id/,
      ],
      [
        'unknown task',
        () => ({ ...good(), taskId: '2-3' }),
        grpc.status.NOT_FOUND,
        /task '2-3' is not one of/,
      ],
      [
        'unknown layer',
        () => withLayer((l) => (l[0]!.layer = 'conv9')),
        grpc.status.NOT_FOUND,
        /unknown layer 'conv9'/,
      ],
      ['missing layer', () => withLayer((l) => l.pop()), grpc.status.INVALID_ARGUMENT, /conv5 .*missing/],
      [
        'wrong shape',
        () => withLayer((l) => (l[0]!.atoms = { shape: [9, 3, 2], data: l[0]!.atoms!.data })),
        grpc.status.INVALID_ARGUMENT,
        /shape \[9, 3, 2\], expected \[6, 3, 3\]/,
      ],
      [
        'byte count disagrees with shape',
        () => withLayer((l) => (l[0]!.atoms = { shape: [6, 3, 3], data: Buffer.alloc(10) })),
        grpc.status.INVALID_ARGUMENT,
        /10 bytes, expected 216/,
      ],
      [
        'NaN',
        () => pushRequest(template, 'alice', '0-1', 3, nanAtoms()),
        grpc.status.INVALID_ARGUMENT,
        /conv2.*NaN/,
      ],
      [
        'Infinity',
        () => pushRequest(template, 'alice', '0-1', 3, infAtoms()),
        grpc.status.INVALID_ARGUMENT,
        /conv5.*Infinity/,
      ],
      ['round 0', () => ({ ...good(), round: 0 }), grpc.status.INVALID_ARGUMENT, /round must be/],
      [
        'message above the size limit',
        () => withLayer((l) => (l[0]!.atoms = { shape: [6, 3, 3], data: Buffer.alloc(MAX_MESSAGE + 1024) })),
        grpc.status.RESOURCE_EXHAUSTED,
        /./,
      ],
    ];
    it.each(cases)('%s', async (_name, build, code, message) => {
      const uploads = await h.running.storage.countUploads();
      const rounds = h.running.similarity.list().map((m) => `${m.clientId}/${m.taskId}@${m.round}`);
      await expectStatus(push(h, build()), code, message);
      expect(await h.running.storage.countUploads()).toBe(uploads);
      expect(h.running.similarity.list().map((m) => `${m.clientId}/${m.taskId}@${m.round}`)).toEqual(rounds);
    });

    const registerCases: [string, RegisterRequest, grpc.status, RegExp][] = [
      [
        'bad client id',
        { clientId: '', tasks: [{ taskId: 't', classes: [1] }] },
        grpc.status.INVALID_ARGUMENT,
        /client_id/,
      ],
      ['no tasks', { clientId: 'erin', tasks: [] }, grpc.status.INVALID_ARGUMENT, /tasks is empty/],
      [
        'task declared twice',
        {
          clientId: 'erin',
          tasks: [
            { taskId: 'x', classes: [1] },
            { taskId: 'x', classes: [1] },
          ],
        },
        grpc.status.INVALID_ARGUMENT,
        /declared twice/,
      ],
      [
        'task id reused with other classes',
        { clientId: 'erin', tasks: [{ taskId: '0-1', classes: [0, 7] }] },
        grpc.status.FAILED_PRECONDITION,
        /already defined with classes \[0, 1\]/,
      ],
      [
        'malformed fingerprint',
        { clientId: 'erin', tasks: [{ taskId: '4-5', classes: [4, 5] }], alphaFingerprint: 'abc' },
        grpc.status.INVALID_ARGUMENT,
        /64 lowercase hex/,
      ],
    ];
    it.each(registerCases)('Register: %s', async (_name, req, code, message) => {
      const clients = (await h.running.storage.listClients()).length;
      await expectStatus(
        rpc((cb) => h.fed.Register(req, cb)),
        code,
        message,
      );
      expect((await h.running.storage.listClients()).length).toBe(clients);
      expect(await h.running.storage.getTask('4-5')).toBeUndefined();
    });

    it('operator queries', async () => {
      await expectStatus(
        // A value this version does not define (a newer client's measure) is refused, not guessed.
        rpc((cb) => h.op.GetSimilarity({ measure: 99 as unknown as SimilarityMeasure }, cb)),
        grpc.status.INVALID_ARGUMENT,
        /measure/,
      );
      await expectStatus(
        rpc((cb) => h.op.GetSimilarity({ taskIds: ['9-9'] }, cb)),
        grpc.status.NOT_FOUND,
        /task '9-9'/,
      );
      await expectStatus(
        rpc((cb) => h.op.GetModelHistory({ model: { clientId: 'alice', taskId: '2-3' } }, cb)),
        grpc.status.NOT_FOUND,
        /no task '2-3'/,
      );
      await expectStatus(
        rpc((cb) => h.op.ListReports({}, cb)),
        grpc.status.UNIMPLEMENTED,
        /analysis service/,
      );
    });
  });

  it('concurrent uploads from many clients are batched into few commits and all indexed', async () => {
    const ids = Array.from({ length: 12 }, (_, i) => `burst${i}`);
    for (const id of ids) await register(h, id, ['2-3']);
    const atoms = new Map<string, Float32Array[]>();
    const commitsBefore = (await h.running.metrics.storageCommit.get()).values.find((v) =>
      v.metricName?.endsWith('_count'),
    )!.value;
    const calls: Promise<PushAtomsResponse__Output>[] = [];
    ids.forEach((id, i) => {
      for (let round = 1; round <= 4; round++) {
        const a = randomAtoms(template, 5000 + i * 10 + round);
        atoms.set(`${id}@${round}`, a);
        calls.push(push(h, pushRequest(template, id, '2-3', round, a)));
      }
    });
    const results = await Promise.all(calls);
    expect(results.every((r) => !r.duplicate)).toBe(true);
    const commits =
      (await h.running.metrics.storageCommit.get()).values.find((v) => v.metricName?.endsWith('_count'))!
        .value - commitsBefore;
    expect(commits).toBeLessThan(calls.length);
    expect(await h.running.storage.countUploads()).toBe(10 + calls.length);
    for (const id of ids) {
      const m = h.running.similarity.model(id, '2-3')!;
      expect(m.round).toBe(4);
      expect(m.drift).toBeCloseTo(1 - meanCos(atoms.get(`${id}@4`)!, atoms.get(`${id}@3`)!), 6);
    }
    // Keep the later tests' view of the federation: these models leave the similarity checks alone.
    sent.set('burst', []);
  });

  it('a killed coordinator restarted on the same data directory has everything it acknowledged', async () => {
    const before = {
      similarity: await rpc<GetSimilarityResponse__Output>((cb) => h.op.GetSimilarity({}, cb)),
      divergence: await rpc<GetDivergenceResponse__Output>((cb) => h.op.GetDivergence({}, cb)),
      clients: await rpc<ListClientsResponse__Output>((cb) => h.op.ListClients({}, cb)),
    };
    await h.running.stop({ drain: false });
    await h.restart();
    const after = {
      similarity: await rpc<GetSimilarityResponse__Output>((cb) => h.op.GetSimilarity({}, cb)),
      divergence: await rpc<GetDivergenceResponse__Output>((cb) => h.op.GetDivergence({}, cb)),
      clients: await rpc<ListClientsResponse__Output>((cb) => h.op.ListClients({}, cb)),
    };
    expect(after.similarity).toEqual(before.similarity);
    expect(after.divergence).toEqual(before.divergence);
    expect(after.clients.clients.map((c) => ({ ...c, lastSeenMs: 0 }))).toEqual(
      before.clients.clients.map((c) => ({ ...c, lastSeenMs: 0 })),
    );
    expect(await h.running.storage.countUploads()).toBe(58);
    const again = await register(h, 'bob', ['0-1', '2-3']);
    expect(again.progress.map((p) => Number(p.lastRound))).toEqual([2, 2]);
    const resent = await push(
      h,
      pushRequest(template, 'carol', '2-3', 2, sent.get(key('carol', '2-3'))![1]!),
    );
    expect(resent.duplicate).toBe(true);
  });
});
