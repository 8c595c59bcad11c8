// Session streams and probe requests over real gRPC: a fake client (plain grpc-js, no TensorFlow)
// heartbeats, answers probe requests by streaming Gram-matrix chunks, fails them, or goes silent.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeError, type ProbeParams } from '../../src/coordinator/federation/sessions.js';
import type { ListClientsResponse__Output } from '../../src/generated/atomlens/v1/ListClientsResponse.js';
import type { ProbeRequest__Output } from '../../src/generated/atomlens/v1/ProbeRequest.js';
import type { PushProbeSummaryRequest } from '../../src/generated/atomlens/v1/PushProbeSummaryRequest.js';
import type { PushProbeSummaryResponse__Output } from '../../src/generated/atomlens/v1/PushProbeSummaryResponse.js';
import type { SessionRequest } from '../../src/generated/atomlens/v1/SessionRequest.js';
import type { SessionResponse__Output } from '../../src/generated/atomlens/v1/SessionResponse.js';
import { expectStatus, type Harness, rpc, startHarness, waitFor } from './helpers.js';

const HEARTBEAT_MS = 50;
const TIMEOUT_MS = 300;
const N = 8;

interface FakeSession {
  stream: grpc.ClientDuplexStream<SessionRequest, SessionResponse__Output>;
  received: SessionResponse__Output[];
  ended: Promise<grpc.ServiceError | undefined>;
  startHeartbeats(): void;
  stopHeartbeats(): void;
}

function openSession(
  h: Harness,
  clientId: string,
  onProbe?: (p: ProbeRequest__Output, s: FakeSession) => void,
): FakeSession {
  const stream = h.fed.Session();
  const received: SessionResponse__Output[] = [];
  let timer: NodeJS.Timeout | undefined;
  const session: FakeSession = {
    stream,
    received,
    ended: new Promise((resolve) => {
      stream.on('error', (err: grpc.ServiceError) => resolve(err));
      stream.on('end', () => resolve(undefined));
    }),
    startHeartbeats() {
      timer = setInterval(() => stream.write({ heartbeat: { sentAtMs: Date.now() } }), HEARTBEAT_MS);
    },
    stopHeartbeats() {
      clearInterval(timer);
    },
  };
  void session.ended.then(() => clearInterval(timer));
  stream.on('data', (m: SessionResponse__Output) => {
    received.push(m);
    if (m.kind === 'probeRequest' && onProbe) onProbe(m.probeRequest!, session);
  });
  stream.write({ hello: { clientId } });
  return session;
}

/**
 * A heartbeating session of `clientId` that has been sent a probe request and not answered it:
 * the request as the client received it, and the coordinator's answer still waiting (the
 * deadline counts from the request, as in probe()).
 */
async function awaitingProbe(h: Harness, clientId: string, over: Partial<ProbeParams>) {
  let request: ProbeRequest__Output | undefined;
  const session = openSession(h, clientId, (p) => {
    request = p;
  });
  session.startHeartbeats();
  await waitFor(() => h.running.sessions.isConnected(clientId));
  const answer = h.running.sessions.requestProbe(clientId, probe(over));
  await waitFor(() => request !== undefined);
  return { session, request: request!, answer };
}

/** The Gram matrix a fake client answers with for a layer: K_ij = (i+1)(j+1) + layer index. */
function gram(layerIndex: number, n = N): Float32Array {
  const k = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) k[i * n + j] = (i + 1) * (j + 1) + layerIndex;
  return k;
}

function chunksFor(
  p: Pick<ProbeRequest__Output, 'requestId' | 'taskId' | 'layers'>,
  clientId: string,
  chunkBytes = 100,
): PushProbeSummaryRequest[] {
  const out: PushProbeSummaryRequest[] = [];
  p.layers.forEach((layer, li) => {
    const bytes = Buffer.from(gram(li).buffer);
    for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes) {
      out.push({
        requestId: p.requestId,
        clientId,
        taskId: p.taskId,
        round: 4,
        layer,
        n: N,
        featureDim: 16,
        offset,
        data: bytes.subarray(offset, offset + chunkBytes),
      });
    }
  });
  return out;
}

function pushChunks(
  h: Harness,
  chunks: PushProbeSummaryRequest[],
): Promise<PushProbeSummaryResponse__Output> {
  return new Promise((resolve, reject) => {
    const call = h.fed.PushProbeSummary((err, res) => (err ? reject(err) : resolve(res!)));
    for (const c of chunks) call.write(c);
    call.end();
  });
}

const probe = (over: Partial<ProbeParams> = {}): ProbeParams => ({
  taskId: '0-1',
  layers: ['conv1', 'conv3'],
  probe: { source: 'noise', size: N, seed: 1, pooling: 'gap' },
  deadlineMs: Date.now() + 5_000,
  ...over,
});

describe('sessions and probe requests', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({
      config: { sessions: { heartbeatIntervalMs: HEARTBEAT_MS, timeoutMs: TIMEOUT_MS } },
    });
    for (const id of ['alice', 'bob', 'carol', 'dave', 'erin']) {
      await rpc((cb) => h.fed.Register({ clientId: id, tasks: [{ taskId: '0-1', classes: [0, 1] }] }, cb));
    }
  });
  afterAll(async () => {
    await h?.close();
  });

  it('welcomes a registered client, keeps it while it heartbeats, marks it gone when it stops', async () => {
    const s = openSession(h, 'alice');
    s.startHeartbeats();
    await waitFor(() => s.received.some((m) => m.kind === 'welcome'), 5_000, 'welcome');
    expect(s.received[0]!.welcome!.heartbeatIntervalMs).toBe(HEARTBEAT_MS);
    expect(h.running.sessions.isConnected('alice')).toBe(true);
    const clients = await rpc<ListClientsResponse__Output>((cb) => h.op.ListClients({}, cb));
    expect(clients.clients.find((c) => c.clientId === 'alice')!.connected).toBe(true);
    const gone = (await h.running.metrics.sessionsGone.get()).values[0]!.value;
    // Alive for several timeouts' worth of heartbeats; the coordinator pings meanwhile.
    await new Promise((r) => setTimeout(r, TIMEOUT_MS * 2));
    expect(h.running.sessions.isConnected('alice')).toBe(true);
    expect(s.received.some((m) => m.kind === 'ping')).toBe(true);
    s.stopHeartbeats();
    const err = await s.ended;
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(err?.details).toMatch(/no heartbeat/);
    expect(h.running.sessions.isConnected('alice')).toBe(false);
    expect((await h.running.metrics.sessionsGone.get()).values[0]!.value).toBe(gone + 1);
  });

  it('refuses a session without hello or from an unregistered client', async () => {
    const stranger = openSession(h, 'mallory');
    expect((await stranger.ended)?.code).toBe(grpc.status.FAILED_PRECONDITION);
    const rude = h.fed.Session();
    const ended = new Promise<grpc.ServiceError>((resolve) => rude.on('error', resolve));
    rude.on('data', () => {});
    rude.write({ heartbeat: { sentAtMs: 1 } });
    expect((await ended).details).toMatch(/first Session message must be a hello/);
  });

  it('requestProbe: the client streams Gram chunks, the answer resolves with every layer stored', async () => {
    const s = openSession(h, 'bob', (p) => {
      void pushChunks(h, chunksFor(p, 'bob'));
    });
    s.startHeartbeats();
    await waitFor(() => h.running.sessions.isConnected('bob'));
    const answer = await h.running.sessions.requestProbe('bob', probe({ requestId: 'req-1' }));
    expect(answer.requestId).toBe('req-1');
    expect([...answer.layers.keys()].sort()).toEqual(['conv1', 'conv3']);
    const conv3 = answer.layers.get('conv3')!;
    expect(conv3).toMatchObject({ n: N, featureDim: 16, round: 4 });
    expect([...conv3.gram]).toEqual([...gram(1)]);
    const stored = await h.running.storage.getProbeSummaries('req-1');
    expect(stored.map((r) => r.layer)).toEqual(['conv1', 'conv3']);
    expect(Buffer.compare(stored[0]!.gram, Buffer.from(gram(0).buffer))).toBe(0);
    const request = s.received.find((m) => m.kind === 'probeRequest')!.probeRequest!;
    expect(request).toMatchObject({ requestId: 'req-1', taskId: '0-1', layers: ['conv1', 'conv3'] });
    expect(request.probe).toMatchObject({
      source: 'PROBE_SOURCE_NOISE',
      size: N,
      pooling: 'POOLING_GLOBAL_AVERAGE',
    });
    s.stream.end();
  });

  it('requestProbe rejects with failed, timeout, and gone', async () => {
    const s = openSession(h, 'carol', (p, self) => {
      if (p.requestId === 'will-fail')
        self.stream.write({ probeFailure: { requestId: p.requestId, message: 'out of memory' } });
      if (p.requestId === 'cut') self.stream.cancel();
    });
    s.startHeartbeats();
    await waitFor(() => h.running.sessions.isConnected('carol'));
    const failed = await h.running.sessions
      .requestProbe('carol', probe({ requestId: 'will-fail' }))
      .catch((e) => e);
    expect(failed).toBeInstanceOf(ProbeError);
    expect(failed).toMatchObject({ outcome: 'failed', clientId: 'carol' });
    expect(failed.message).toMatch(/out of memory/);

    const started = Date.now();
    const late = await h.running.sessions
      .requestProbe('carol', probe({ requestId: 'ignored', deadlineMs: Date.now() + 150 }))
      .catch((e) => e);
    expect(late).toMatchObject({ outcome: 'timeout' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    // An answer after the deadline is refused and not stored.
    await expectStatus(
      pushChunks(h, chunksFor({ ...probe(), requestId: 'ignored' }, 'carol')),
      grpc.status.NOT_FOUND,
      /unknown, already answered, failed or past its deadline/,
    );
    expect(await h.running.storage.getProbeSummaries('ignored')).toEqual([]);

    const cut = await h.running.sessions.requestProbe('carol', probe({ requestId: 'cut' })).catch((e) => e);
    expect(cut).toMatchObject({ outcome: 'gone', clientId: 'carol' });

    const nobody = await h.running.sessions.requestProbe('dave', probe()).catch((e) => e);
    expect(nobody).toMatchObject({ outcome: 'gone' });
    expect(nobody.message).toMatch(/no live session/);

    const counts = Object.fromEntries(
      (await h.running.metrics.probeRequests.get()).values.map((v) => [v.labels.outcome, v.value]),
    );
    expect(counts).toMatchObject({ answered: 1, failed: 1, timeout: 1, gone: 2 });
  });

  it('PushProbeSummary refuses malformed chunk streams and stores nothing for them', async () => {
    const {
      session: s,
      request,
      answer,
    } = await awaitingProbe(h, 'erin', { requestId: 'strict', layers: ['conv2'] });
    const good = chunksFor(request, 'erin');
    await expectStatus(
      pushChunks(h, [{ ...good[0]!, requestId: 'nope' }]),
      grpc.status.NOT_FOUND,
      /probe request 'nope'/,
    );
    await expectStatus(
      pushChunks(h, [good[0]!, { ...good[2]! }]),
      grpc.status.INVALID_ARGUMENT,
      /chunk offset 200, expected 100/,
    );
    await expectStatus(
      pushChunks(
        h,
        good.map((c) => ({ ...c, n: N + 1 })),
      ),
      grpc.status.INVALID_ARGUMENT,
      /n is 9 but probe 'strict' uses 8/,
    );
    await expectStatus(
      pushChunks(h, good.slice(0, -1)),
      grpc.status.INVALID_ARGUMENT,
      /stream ended in the middle of layer 'conv2'/,
    );
    await expectStatus(
      pushChunks(
        h,
        good.map((c) => ({ ...c, layer: 'conv4' })),
      ),
      grpc.status.INVALID_ARGUMENT,
      /layer 'conv4' was not requested/,
    );
    await expectStatus(
      pushChunks(
        h,
        good.map((c) => ({ ...c, clientId: 'bob' })),
      ),
      grpc.status.INVALID_ARGUMENT,
      /was sent to client 'erin'/,
    );
    const nan = gram(0);
    nan[5] = Number.NaN;
    const nanBytes = Buffer.from(nan.buffer);
    await expectStatus(
      pushChunks(h, [{ ...good[0]!, offset: 0, data: nanBytes }]),
      grpc.status.INVALID_ARGUMENT,
      /Gram entry \[0, 5\] is NaN/,
    );
    expect(await h.running.storage.getProbeSummaries('strict')).toEqual([]);
    // The request is still waiting and a correct upload completes it.
    await pushChunks(h, good);
    expect((await answer).layers.get('conv2')!.gram[N + 1]).toBe(2 * 2);
    s.stream.end();
  });

  it('PushProbeSummary takes a layer as an n × r factor (factor_rank), checks it, and stores its rank', async () => {
    const { session: s, request, answer } = await awaitingProbe(h, 'alice', { requestId: 'factored' });
    // conv1 as a rank-2 factor (N × 2, 64 bytes, in chunks of 24); conv3 as its Gram matrix.
    const factor = Float32Array.from({ length: N * 2 }, (_, e) => (e % 2 === 0 ? e / 2 : 1 - e / 4));
    const bytes = Buffer.from(factor.buffer);
    const factorChunks: PushProbeSummaryRequest[] = [];
    for (let offset = 0; offset < bytes.byteLength; offset += 24) {
      factorChunks.push({
        requestId: 'factored',
        clientId: 'alice',
        taskId: '0-1',
        round: 4,
        layer: 'conv1',
        n: N,
        featureDim: 2,
        factorRank: 2,
        offset,
        data: bytes.subarray(offset, offset + 24),
      });
    }
    await expectStatus(
      pushChunks(h, [{ ...factorChunks[0]!, factorRank: N + 1 }]),
      grpc.status.INVALID_ARGUMENT,
      /factor_rank 9 exceeds n = 8/,
    );
    await expectStatus(
      pushChunks(h, [factorChunks[0]!, { ...factorChunks[1]!, factorRank: 3 }]),
      grpc.status.INVALID_ARGUMENT,
      /disagree on n, feature_dim, factor_rank or round/,
    );
    await expectStatus(
      pushChunks(h, [factorChunks[0]!, { ...factorChunks[1]!, data: Buffer.alloc(48) }]),
      grpc.status.INVALID_ARGUMENT,
      /exceed the 64 bytes of a 8×2 float32 matrix/,
    );
    const nan = Float32Array.from(factor);
    nan[3] = Number.NaN;
    await expectStatus(
      pushChunks(h, [{ ...factorChunks[0]!, data: Buffer.from(nan.buffer) }]),
      grpc.status.INVALID_ARGUMENT,
      /factor entry \[1, 1\] is NaN/,
    );
    const gramChunks = chunksFor(request, 'alice').filter((c) => c.layer === 'conv3');
    await pushChunks(h, [...factorChunks, ...gramChunks]);
    const got = await answer;
    expect(got.layers.get('conv1')).toMatchObject({ n: N, featureDim: 2, factorRank: 2 });
    expect([...got.layers.get('conv1')!.gram]).toEqual([...factor]);
    expect(got.layers.get('conv3')).toMatchObject({ factorRank: 0 });
    const stored = await h.running.storage.getProbeSummaries('factored');
    expect(stored.map((r) => [r.layer, r.factorRank, r.gram.byteLength])).toEqual([
      ['conv1', 2, N * 2 * 4],
      ['conv3', 0, N * N * 4],
    ]);
    s.stream.end();
  });
});
