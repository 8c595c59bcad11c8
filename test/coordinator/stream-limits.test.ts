// What one peer can hold open is bounded: a Session or PushProbeSummary stream that sends
// nothing is ended after limits.firstMessageMs, one connection carries at most
// limits.maxStreamsPerConnection calls at a time, and a connection without calls is closed after
// limits.idleConnectionMs.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { type Harness, rpc, startHarness, waitFor } from './helpers.js';

describe('stream and connection limits', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness({
      config: { limits: { firstMessageMs: 300, maxStreamsPerConnection: 2, idleConnectionMs: 400 } },
    });
    for (const clientId of ['a', 'b', 'c']) {
      await rpc((cb) => h.fed.Register({ clientId, tasks: [{ taskId: 't', classes: [1] }] }, cb));
    }
  });
  afterAll(async () => {
    await h?.close();
  });

  it('ends a Session that sends no hello with DEADLINE_EXCEEDED', async () => {
    const started = Date.now();
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      const call = h.fed.Session();
      call.on('data', () => undefined);
      call.on('error', resolve);
    });
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(err.details).toMatch(/limits\.firstMessageMs/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('ends a PushProbeSummary that sends no chunk with DEADLINE_EXCEEDED', async () => {
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      h.fed.PushProbeSummary((e) => e && resolve(e));
    });
    expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it('runs at most limits.maxStreamsPerConnection calls on one connection', async () => {
    const proto = loadAtomlensProto();
    const fed = new proto.atomlens.v1.FederationService(
      `127.0.0.1:${h.running.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as FederationServiceClient;
    const calls = ['a', 'b', 'c'].map((clientId) => {
      const call = fed.Session();
      call.on('data', () => undefined);
      call.on('error', () => undefined);
      call.write({ hello: { clientId } });
      return call;
    });
    await waitFor(() => h.running.sessions.connectedCount() === 2, 5_000, 'two sessions');
    await new Promise((r) => setTimeout(r, 200));
    expect(h.running.sessions.connectedCount()).toBe(2);
    // One ends: the waiting stream starts.
    const first = ['a', 'b', 'c'].findIndex((id) => h.running.sessions.isConnected(id));
    calls[first]!.end();
    await waitFor(
      () =>
        ['a', 'b', 'c'].filter((id) => h.running.sessions.isConnected(id)).length === 2 &&
        !h.running.sessions.isConnected(['a', 'b', 'c'][first]!),
      5_000,
      'the third session',
    );
    for (const call of calls) call.cancel();
    fed.close();
  });

  it('closes a connection that has had no call for limits.idleConnectionMs', async () => {
    const proto = loadAtomlensProto();
    const fed = new proto.atomlens.v1.FederationService(
      `127.0.0.1:${h.running.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as FederationServiceClient;
    await rpc((cb) => fed.Register({ clientId: 'a', tasks: [{ taskId: 't', classes: [1] }] }, cb));
    expect(fed.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);
    await waitFor(
      () => fed.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY,
      5_000,
      'the server to close the idle connection',
    );
    fed.close();
  });
});
