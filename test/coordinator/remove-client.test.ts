// An operator removes a client and its data: RemoveClient (and `atomlens status --remove-client`)
// deletes its registration, stored rounds and probe summaries, drops its models from the
// similarity index and ends its open session; other clients are untouched.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ListClientsResponse__Output } from '../../src/generated/atomlens/v1/ListClientsResponse.js';
import type { RemoveClientResponse__Output } from '../../src/generated/atomlens/v1/RemoveClientResponse.js';
import { buildTemplate } from '../../src/shared/template.js';
import { runAtomlens } from '../helpers/cli.js';
import {
  expectStatus,
  type Harness,
  pushRequest,
  randomAtoms,
  rpc,
  startHarness,
  waitFor,
} from './helpers.js';

const template = buildTemplate();

describe('removing a client', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness();
    for (const clientId of ['a', 'b', 'c']) {
      await rpc((cb) => h.fed.Register({ clientId, tasks: [{ taskId: 't', classes: [1] }] }, cb));
      for (const round of [1, 2]) {
        await rpc((cb) =>
          h.fed.PushAtoms(pushRequest(template, clientId, 't', round, randomAtoms(template, round)), cb),
        );
      }
    }
  });
  afterAll(async () => {
    await h?.close();
  });

  it('deletes its data, forgets its models and ends its session', async () => {
    const session = h.fed.Session();
    const ended = new Promise<grpc.ServiceError>((resolve) => session.on('error', resolve));
    session.on('data', () => undefined);
    session.write({ hello: { clientId: 'a' } });
    await waitFor(() => h.running.sessions.isConnected('a'), 5_000, 'the session');

    const res = await rpc<RemoveClientResponse__Output>((cb) => h.op.RemoveClient({ clientId: 'a' }, cb));
    expect(Number(res.uploadsRemoved)).toBe(2);
    expect((await ended).code).toBe(grpc.status.UNAVAILABLE);
    expect(h.running.sessions.isConnected('a')).toBe(false);
    expect(await h.running.storage.getClient('a')).toBeUndefined();
    expect(await h.running.storage.countUploads()).toBe(4);
    expect(h.running.similarity.list().map((m) => m.clientId)).toEqual(['b', 'c']);
    const list = await rpc<ListClientsResponse__Output>((cb) => h.op.ListClients({}, cb));
    expect(list.clients.map((c) => c.clientId)).toEqual(['b', 'c']);
    await expectStatus(
      rpc((cb) => h.op.RemoveClient({ clientId: 'a' }, cb)),
      grpc.status.NOT_FOUND,
      /atomlens status/,
    );
  });

  it('atomlens status --remove-client does the same', async () => {
    const out = await runAtomlens([
      'status',
      '--coordinator',
      `127.0.0.1:${h.running.grpcPort}`,
      '--remove-client',
      'b',
    ]);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toMatch(/removed client b: 2 stored round\(s\), 0 probe summaries/);
    expect(await h.running.storage.getClient('b')).toBeUndefined();
  }, 60_000);
});
