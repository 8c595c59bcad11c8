// Pagination of the list RPCs (ListClients, GetModelHistory, ListReports): page sizes, opaque
// page tokens cut by key (items added between two calls neither repeat nor go missing), and
// INVALID_ARGUMENT for tokens the RPC did not issue.
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchStatus } from '../../src/cli/commands/status.js';
import { decodePageToken, encodePageToken, pageOf, pageSize } from '../../src/coordinator/api/page-token.js';
import { RpcError } from '../../src/coordinator/calls.js';
import type { AnalysisFactory } from '../../src/coordinator/level1/types.js';
import type { GetModelHistoryResponse__Output } from '../../src/generated/atomlens/v1/GetModelHistoryResponse.js';
import type { ListClientsResponse__Output } from '../../src/generated/atomlens/v1/ListClientsResponse.js';
import type { ListReportsResponse__Output } from '../../src/generated/atomlens/v1/ListReportsResponse.js';
import { connectOperator } from '../../src/operator/connection.js';
import { buildTemplate } from '../../src/shared/template.js';
import { expectStatus, type Harness, pushRequest, randomAtoms, rpc, startHarness } from './helpers.js';

const template = buildTemplate();
const limits = { defaultSize: 3, maxSize: 5 };

describe('page tokens', () => {
  it('page_size: 0 is the default, large sizes are cut to the maximum, negative ones refused', () => {
    expect(pageSize(0, limits)).toBe(3);
    expect(pageSize(4, limits)).toBe(4);
    expect(pageSize(1000, limits)).toBe(5);
    expect(() => pageSize(-1, limits)).toThrow(RpcError);
  });

  it('round-trips a key and refuses tokens another RPC issued, garbled ones and wrong key shapes', () => {
    const token = encodePageToken('ListClients', [12, 'bob']);
    expect(token).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodePageToken('ListClients', token, ['number', 'string'])).toEqual([12, 'bob']);
    expect(decodePageToken('ListClients', '', ['number', 'string'])).toBeUndefined();
    const refused = (rpcName: string, t: string, shape: ('number' | 'string')[]) => {
      try {
        decodePageToken(rpcName, t, shape);
      } catch (err) {
        return (err as RpcError).code;
      }
      return 'accepted';
    };
    expect(refused('ListReports', token, ['number', 'string'])).toBe(grpc.status.INVALID_ARGUMENT);
    expect(refused('ListClients', token, ['number'])).toBe(grpc.status.INVALID_ARGUMENT);
    expect(refused('ListClients', token, ['string', 'string'])).toBe(grpc.status.INVALID_ARGUMENT);
    expect(refused('ListClients', 'not a token!', ['number', 'string'])).toBe(grpc.status.INVALID_ARGUMENT);
    expect(refused('ListClients', 'bm90IGpzb24', ['number', 'string'])).toBe(grpc.status.INVALID_ARGUMENT);
    const noKey = Buffer.from(JSON.stringify({ rpc: 'ListClients' })).toString('base64url');
    expect(refused('ListClients', noKey, ['number', 'string'])).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('pages by key: an item added before the cut does not shift the next page', () => {
    const items = [1, 3, 5, 7, 9];
    const request = (pageToken: string) => ({ pageSize: 2, pageToken });
    const first = pageOf('R', items, (v) => [v], ['number'], request(''), limits);
    expect(first.items).toEqual([1, 3]);
    // 2 is added before the cut; an offset-based page would repeat 3.
    const grown = [1, 2, 3, 5, 7, 9];
    const second = pageOf('R', grown, (v) => [v], ['number'], request(first.nextPageToken), limits);
    expect(second.items).toEqual([5, 7]);
    const third = pageOf('R', grown, (v) => [v], ['number'], request(second.nextPageToken), limits);
    expect(third).toEqual({ items: [9], nextPageToken: '' });
    // An exactly full last page has no next token either.
    expect(pageOf('R', [1, 2], (v) => [v], ['number'], request(''), limits).nextPageToken).toBe('');
  });
});

describe('list RPCs over gRPC', () => {
  let h: Harness;
  const analysis: AnalysisFactory = (deps) => ({
    request: () => Promise.reject(new Error('not used')),
    listReports: (limit, before) => deps.storage.listReports(limit, before),
    getReport: (id) => deps.storage.getReport(id),
  });

  beforeAll(async () => {
    h = await startHarness({ analysis });
  });
  afterAll(async () => {
    await h?.close();
  });

  const register = (clientId: string) =>
    rpc((cb) =>
      h.fed.Register({ clientId, tasks: [{ taskId: '0-1', classes: [0, 1] }], clientVersion: 'test' }, cb),
    );
  const listClients = (pageSize: number, pageToken = '') =>
    rpc<ListClientsResponse__Output>((cb) => h.op.ListClients({ pageSize, pageToken }, cb));

  it('ListClients: pages in client-id order, whatever the registration order; a client registered meanwhile appears where its id sorts, once', async () => {
    for (const id of ['c4', 'c1', 'c5', 'c3', 'c2']) await register(id);
    const all = await listClients(0);
    expect(all.clients.map((c) => c.clientId)).toEqual(['c1', 'c2', 'c3', 'c4', 'c5']);
    expect(all.nextPageToken).toBe('');

    const first = await listClients(2);
    expect(first.clients.map((c) => c.clientId)).toEqual(['c1', 'c2']);
    expect(first.nextPageToken).not.toBe('');
    await register('a0'); // sorts before the cut: not on a later page
    await register('c35'); // sorts after the cut: on the next page
    const second = await listClients(2, first.nextPageToken);
    expect(second.clients.map((c) => c.clientId)).toEqual(['c3', 'c35']);
    const third = await listClients(2, second.nextPageToken);
    expect(third.clients.map((c) => c.clientId)).toEqual(['c4', 'c5']);
    expect(third.nextPageToken).toBe('');
  });

  it('refuses a garbled token, another RPC’s token and a negative page_size with INVALID_ARGUMENT', async () => {
    await expectStatus(listClients(2, 'garbage'), grpc.status.INVALID_ARGUMENT, /page_token/);
    const reportsToken = encodePageToken('ListReports', [1, 'r']);
    await expectStatus(listClients(2, reportsToken), grpc.status.INVALID_ARGUMENT, /page_token/);
    await expectStatus(listClients(-1), grpc.status.INVALID_ARGUMENT, /page_size/);
  });

  it('GetModelHistory: pages of rounds keep each round’s drift to its predecessor', async () => {
    for (let round = 1; round <= 5; round++) {
      await rpc((cb) =>
        h.fed.PushAtoms(pushRequest(template, 'c1', '0-1', round, randomAtoms(template, round)), cb),
      );
    }
    const history = (pageSize: number, pageToken = '') =>
      rpc<GetModelHistoryResponse__Output>((cb) =>
        h.op.GetModelHistory({ model: { clientId: 'c1', taskId: '0-1' }, pageSize, pageToken }, cb),
      );
    const whole = await history(0);
    expect(whole.rounds.map((r) => r.round)).toEqual([1, 2, 3, 4, 5]);
    const pages: GetModelHistoryResponse__Output[] = [await history(2)];
    while (pages.at(-1)!.nextPageToken) pages.push(await history(2, pages.at(-1)!.nextPageToken));
    expect(pages.map((p) => p.rounds.map((r) => r.round))).toEqual([[1, 2], [3, 4], [5]]);
    expect(pages.flatMap((p) => p.rounds)).toEqual(whole.rounds);
    expect(pages[1]!.rounds[0]!.drift).toBeGreaterThan(0);
    await expectStatus(history(2, encodePageToken('ListClients', [0, 'c1'])), grpc.status.INVALID_ARGUMENT);
  });

  it('atomlens status follows the pages: every client, past the default page of 100', async () => {
    const before = (await listClients(1_000)).clients.length;
    for (let i = 0; i < 101; i++) await register(`p${String(i).padStart(3, '0')}`);
    const connection = connectOperator(`127.0.0.1:${h.running.grpcPort}`);
    try {
      const status = await fetchStatus(connection, { timeoutMs: 10_000, top: 3 });
      expect(status.clients).toHaveLength(before + 101);
      expect(status.clients.map((c) => c.clientId)).toEqual(
        (await listClients(1_000)).clients.map((c) => c.clientId),
      );
    } finally {
      connection.close();
    }
    expect((await listClients(0)).clients).toHaveLength(100);
  });

  it('ListReports: newest first across pages, ties on created time broken by id; triggers as enum values', async () => {
    const triggers = [
      'operator',
      'divergence',
      'drift',
      'fingerprint',
      'similarity-change',
      'schedule',
      'gone',
    ];
    for (const [i, trigger] of triggers.entries()) {
      await h.running.storage.putReport({
        reportId: `r${i}`,
        createdAtMs: 1_000 + Math.floor(i / 2), // pairs share a created time
        trigger,
        models: i,
        json: '{}',
        html: '',
      });
    }
    const list = (pageSize: number, pageToken = '') =>
      rpc<ListReportsResponse__Output>((cb) => h.op.ListReports({ pageSize, pageToken }, cb));
    const seen: ListReportsResponse__Output['reports'] = [];
    let token = '';
    let pages = 0;
    do {
      const page = await list(3, token);
      expect(page.reports.length).toBeLessThanOrEqual(3);
      seen.push(...page.reports);
      token = page.nextPageToken;
      pages++;
    } while (token);
    expect(pages).toBe(3);
    expect(seen.map((r) => r.reportId)).toEqual(['r6', 'r5', 'r4', 'r3', 'r2', 'r1', 'r0']);
    expect(Object.fromEntries(seen.map((r) => [r.reportId, r.trigger]))).toEqual({
      r0: 'ANALYSIS_TRIGGER_OPERATOR',
      r1: 'ANALYSIS_TRIGGER_DIVERGENCE',
      r2: 'ANALYSIS_TRIGGER_DRIFT',
      r3: 'ANALYSIS_TRIGGER_FINGERPRINT',
      r4: 'ANALYSIS_TRIGGER_SIMILARITY_CHANGE',
      r5: 'ANALYSIS_TRIGGER_SCHEDULE',
      // A stored trigger this version does not name is the zero value, not an error.
      r6: 'ANALYSIS_TRIGGER_UNSPECIFIED',
    });
    expect((await list(0)).reports).toHaveLength(7);
    // page_size 0 is 50 reports; a size above the maximum (1,000) is cut, not refused.
    for (let i = 7; i < 60; i++) {
      await h.running.storage.putReport({
        reportId: `r${i}`,
        createdAtMs: 2_000 + i,
        trigger: 'drift',
        models: 1,
        json: '{}',
        html: '',
      });
    }
    const byDefault = await list(0);
    expect(byDefault.reports).toHaveLength(50);
    expect(byDefault.nextPageToken).not.toBe('');
    expect((await list(5_000)).reports).toHaveLength(60);
    await expectStatus(list(3, encodePageToken('ListClients', [0, 'x'])), grpc.status.INVALID_ARGUMENT);
  });
});
