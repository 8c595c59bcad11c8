// The storage contract: what every backend of the Storage interface must do, written once and run
// against each backend (storage-sqlite.test.ts, storage-postgres.test.ts). A backend's own test
// file adds only what is specific to it (file format, pragmas, server restarts).
import { describe, expect, it } from 'vitest';
import {
  type AnalysisRecord,
  type AtomUpload,
  type ProbeSummaryRecord,
  type Storage,
  StorageBusyError,
  StorageConflictError,
} from '../../src/coordinator/storage/types.js';

/**
 * One empty place to keep a federation (a directory, a database). `open` may be called again after
 * the previous storage was closed and must see everything that storage committed.
 */
export interface StorageLocation {
  open(options?: { maxQueuedWrites?: number }): Promise<Storage>;
}

export type MakeStorageLocation = () => Promise<StorageLocation>;

export function upload(clientId: string, round: number, fill: number, taskId = 't'): AtomUpload {
  return {
    clientId,
    taskId,
    round,
    atoms: Buffer.from(new Float32Array(8).fill(fill).buffer),
    // 1/round and 0.1 are not exact in binary: they check that reals round-trip bit for bit.
    stats: { loss: 1 / round, accuracy: 0.1, samples: 10 * round },
    receivedAtMs: 1000 + round,
    templateVersion: 1,
  };
}

export async function withClients(s: Storage, ids: string[], taskId = 't'): Promise<void> {
  for (const id of ids) {
    await s.upsertClient(
      { clientId: id, alphaFingerprint: '', fingerprintMatch: true, clientVersion: 'v', registeredAtMs: 1 },
      [{ taskId, classes: [0, 1] }],
    );
  }
}

function probe(requestId: string, clientId: string, layer: string, fill: number): ProbeSummaryRecord {
  return {
    requestId,
    clientId,
    taskId: 't',
    round: 2,
    layer,
    n: 2,
    featureDim: 3,
    gram: Buffer.from(new Float32Array([fill, 2, 2, 5]).buffer),
    factorRank: 0,
    receivedAtMs: 5,
  };
}

function analysis(id: string, createdAtMs: number): AnalysisRecord {
  return {
    analysisId: id,
    status: 'queued',
    trigger: 'operator',
    reason: 'why',
    models: [
      { clientId: 'a', taskId: 't' },
      { clientId: 'b', taskId: 'u' },
    ],
    createdAtMs,
  };
}

function firstFloat(b: Buffer): number {
  return new Float32Array(new Uint8Array(b).buffer)[0]!;
}

/** Registers the contract tests for one backend. */
export function storageContract(name: string, makeLocation: MakeStorageLocation): void {
  async function fresh(): Promise<{ s: Storage; location: StorageLocation }> {
    const location = await makeLocation();
    return { s: await location.open(), location };
  }

  describe(`storage contract: ${name}`, () => {
    describe('clients and tasks', () => {
      it('creates a client with its tasks in declared order, and finds its tasks by id', async () => {
        const { s } = await fresh();
        await s.upsertClient(
          {
            clientId: 'a',
            alphaFingerprint: 'f'.repeat(64),
            fingerprintMatch: false,
            clientVersion: '1.2',
            registeredAtMs: 7,
          },
          [
            { taskId: 'z', classes: [8, 9] },
            { taskId: 'm', classes: [3] },
          ],
        );
        expect(await s.getClient('a')).toEqual({
          clientId: 'a',
          tasks: [
            { taskId: 'z', classes: [8, 9] },
            { taskId: 'm', classes: [3] },
          ],
          alphaFingerprint: 'f'.repeat(64),
          fingerprintMatch: false,
          clientVersion: '1.2',
          registeredAtMs: 7,
          lastSeenMs: 7,
        });
        expect(await s.getTask('m')).toEqual({ taskId: 'm', classes: [3] });
        expect(await s.getTask('nope')).toBeUndefined();
        expect(await s.getClient('nope')).toBeUndefined();
        await s.close();
      });

      it('merges tasks on re-registration, keeps the first registration time, updates the rest', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        await s.upsertClient(
          {
            clientId: 'a',
            alphaFingerprint: 'f',
            fingerprintMatch: false,
            clientVersion: 'v2',
            registeredAtMs: 99,
          },
          [
            { taskId: 'u', classes: [2, 3] },
            { taskId: 't', classes: [0, 1] },
          ],
        );
        const a = (await s.getClient('a'))!;
        expect(a.tasks).toEqual([
          { taskId: 't', classes: [0, 1] },
          { taskId: 'u', classes: [2, 3] },
        ]);
        expect(a).toMatchObject({
          alphaFingerprint: 'f',
          fingerprintMatch: false,
          clientVersion: 'v2',
          registeredAtMs: 1,
          lastSeenMs: 99,
        });
        await s.close();
      });

      it('refuses a task id reused with other classes and writes nothing of that registration', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        const refused = s.upsertClient(
          {
            clientId: 'b',
            alphaFingerprint: '',
            fingerprintMatch: true,
            clientVersion: 'v',
            registeredAtMs: 1,
          },
          [
            { taskId: 'new', classes: [9] },
            { taskId: 't', classes: [5] },
          ],
        );
        await expect(refused).rejects.toBeInstanceOf(StorageConflictError);
        await expect(refused).rejects.toThrow(/task 't' is already defined with classes \[0, 1\]/);
        expect(await s.getClient('b')).toBeUndefined();
        expect(await s.getTask('new')).toBeUndefined();
        expect((await s.listClients()).map((c) => c.clientId)).toEqual(['a']);
        await s.close();
      });

      it('lists clients in registration order with their tasks', async () => {
        const { s } = await fresh();
        for (const [id, at] of [
          ['late', 30],
          ['early', 10],
          ['mid', 20],
        ] as const) {
          await s.upsertClient(
            {
              clientId: id,
              alphaFingerprint: '',
              fingerprintMatch: true,
              clientVersion: 'v',
              registeredAtMs: at,
            },
            [
              { taskId: `${id}-1`, classes: [1] },
              { taskId: 'shared', classes: [0] },
            ],
          );
        }
        const clients = await s.listClients();
        expect(clients.map((c) => c.clientId)).toEqual(['early', 'mid', 'late']);
        expect(clients.map((c) => c.tasks.map((t) => t.taskId))).toEqual([
          ['early-1', 'shared'],
          ['mid-1', 'shared'],
          ['late-1', 'shared'],
        ]);
        await s.close();
        const empty = await fresh();
        expect(await empty.s.listClients()).toEqual([]);
        await empty.s.close();
      });
    });

    describe('atom uploads', () => {
      it('accepts a new round, calls a resend with the same atoms a duplicate and with others a conflict', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        expect(await s.putAtoms(upload('a', 1, 1))).toBe('accepted');
        expect(await s.putAtoms(upload('a', 1, 1))).toBe('duplicate');
        expect(await s.putAtoms({ ...upload('a', 1, 2), receivedAtMs: 5000 })).toBe('conflict');
        const stored = (await s.getRound('a', 't', 1))!;
        expect(firstFloat(stored.atoms)).toBe(1);
        expect(stored.receivedAtMs).toBe(1001);
        expect(await s.countUploads()).toBe(1);
        await s.close();
      });

      it('settles uploads that arrive together each with its own outcome, and counts every write committed', async () => {
        const { s } = await fresh();
        await withClients(s, ['a', 'b']);
        const commits: number[] = [];
        s.onCommit((seconds, writes) => {
          expect(seconds).toBeGreaterThanOrEqual(0);
          commits.push(writes);
        });
        const outcomes = await Promise.all([
          ...Array.from({ length: 50 }, (_, i) => s.putAtoms(upload('a', i + 1, i))),
          s.putAtoms(upload('b', 1, 7)),
          s.putAtoms(upload('b', 1, 7)), // same round, same atoms, same moment
          s.putAtoms(upload('b', 1, 8)), // same round, different atoms
        ]);
        expect(outcomes.slice(0, 51).every((o) => o === 'accepted')).toBe(true);
        expect(outcomes.slice(51)).toEqual(['duplicate', 'conflict']);
        expect(commits.reduce((x, y) => x + y, 0)).toBe(53);
        expect(await s.countUploads()).toBe(51);
        expect((await s.lastRounds('a')).get('t')).toBe(50);
        // An accepted upload counts as the client being seen.
        expect((await s.getClient('a'))!.lastSeenMs).toBe(1050);
        await s.close();
      });

      it('keeps last-seen time monotonic when an older upload arrives late', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        await s.putAtoms(upload('a', 5, 5));
        await s.putAtoms(upload('a', 2, 2));
        expect((await s.getClient('a'))!.lastSeenMs).toBe(1005);
        await s.close();
      });

      it('returns a stored round with its stats bit for bit, and nothing for a missing one', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        await s.putAtoms(upload('a', 3, 0.3));
        const r = (await s.getRound('a', 't', 3))!;
        expect(r).toEqual({
          round: 3,
          receivedAtMs: 1003,
          stats: { loss: 1 / 3, accuracy: 0.1, samples: 30 },
          atoms: upload('a', 3, 0.3).atoms,
        });
        expect(Buffer.isBuffer(r.atoms)).toBe(true);
        expect(await s.getRound('a', 't', 4)).toBeUndefined();
        expect(await s.getRound('a', 'other', 3)).toBeUndefined();
        await s.close();
      });

      it('finds the highest round below a given one', async () => {
        const { s } = await fresh();
        await withClients(s, ['a', 'b']);
        for (const r of [1, 4, 6]) await s.putAtoms(upload('a', r, r));
        await s.putAtoms(upload('b', 5, 50));
        expect((await s.getPreviousRound('a', 't', 6))!.round).toBe(4);
        expect(firstFloat((await s.getPreviousRound('a', 't', 5))!.atoms)).toBe(4);
        expect((await s.getPreviousRound('a', 't', 100))!.round).toBe(6);
        expect(await s.getPreviousRound('a', 't', 1)).toBeUndefined();
        expect(await s.getPreviousRound('b', 't', 5)).toBeUndefined();
        await s.close();
      });

      it('lists the rounds of one model in ascending order, with or without atoms', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        await s.upsertClient(
          {
            clientId: 'a',
            alphaFingerprint: '',
            fingerprintMatch: true,
            clientVersion: 'v',
            registeredAtMs: 1,
          },
          [{ taskId: 'u', classes: [4] }],
        );
        for (const r of [3, 1, 2]) await s.putAtoms(upload('a', r, r));
        await s.putAtoms(upload('a', 9, 9, 'u'));
        const bare = await s.listRounds('a', 't', false);
        expect(bare.map((r) => [r.round, r.stats.samples, r.receivedAtMs])).toEqual([
          [1, 10, 1001],
          [2, 20, 1002],
          [3, 30, 1003],
        ]);
        expect(bare.every((r) => r.atoms.byteLength === 0)).toBe(true);
        const full = await s.listRounds('a', 't', true);
        expect(full.map((r) => firstFloat(r.atoms))).toEqual([1, 2, 3]);
        expect(await s.listRounds('a', 'none', true)).toEqual([]);
        await s.close();
      });

      it('reports the highest acknowledged round per task of a client', async () => {
        const { s } = await fresh();
        await withClients(s, ['a', 'b']);
        await s.upsertClient(
          {
            clientId: 'a',
            alphaFingerprint: '',
            fingerprintMatch: true,
            clientVersion: 'v',
            registeredAtMs: 1,
          },
          [{ taskId: 'u', classes: [4] }],
        );
        for (const r of [1, 7, 3]) await s.putAtoms(upload('a', r, r));
        await s.putAtoms(upload('a', 2, 2, 'u'));
        await s.putAtoms(upload('b', 11, 1));
        expect(await s.lastRounds('a')).toEqual(
          new Map([
            ['t', 7],
            ['u', 2],
          ]),
        );
        expect(await s.lastRounds('nobody')).toEqual(new Map());
        await s.close();
      });

      it('returns the atoms of every model at exactly one round, ordered by client then task', async () => {
        const { s } = await fresh();
        await withClients(s, ['b', 'a', 'c']);
        await s.upsertClient(
          {
            clientId: 'a',
            alphaFingerprint: '',
            fingerprintMatch: true,
            clientVersion: 'v',
            registeredAtMs: 1,
          },
          [{ taskId: 'a-task', classes: [4] }],
        );
        await s.putAtoms(upload('b', 2, 20));
        await s.putAtoms(upload('a', 2, 10));
        await s.putAtoms(upload('a', 2, 11, 'a-task'));
        await s.putAtoms(upload('c', 3, 30));
        const at2 = await s.atomsAtRound(2);
        expect(at2.map((r) => [r.clientId, r.taskId, firstFloat(r.atoms)])).toEqual([
          ['a', 'a-task', 11],
          ['a', 't', 10],
          ['b', 't', 20],
        ]);
        expect(await s.atomsAtRound(1)).toEqual([]);
        await s.close();
      });

      it('visits the most recent rounds of every model, lower round first', async () => {
        const { s } = await fresh();
        await withClients(s, ['a', 'b']);
        for (const r of [1, 2, 3, 4]) await s.putAtoms(upload('a', r, r));
        await s.putAtoms(upload('b', 8, 8));
        const seen: [string, string, number, number][] = [];
        await s.forEachRecentRound((clientId, taskId, round, atoms) => {
          seen.push([clientId, taskId, round, firstFloat(atoms)]);
        }, 2);
        expect(seen).toEqual([
          ['a', 't', 3, 3],
          ['a', 't', 4, 4],
          ['b', 't', 8, 8],
        ]);
        const one: number[] = [];
        await s.forEachRecentRound((_c, _t, round) => one.push(round), 1);
        expect(one).toEqual([4, 8]);
        await s.close();
      });
    });

    describe('probe summaries', () => {
      it('stores Gram matrices per (request, client, task, layer); a resent layer replaces the old one', async () => {
        const { s } = await fresh();
        await withClients(s, ['a', 'b']);
        await s.putProbeSummary(probe('r', 'b', 'conv1', 1));
        await s.putProbeSummary(probe('r', 'a', 'conv2', 2));
        await s.putProbeSummary(probe('r', 'a', 'conv1', 3));
        await s.putProbeSummary(probe('other', 'a', 'conv1', 4));
        await s.putProbeSummary({ ...probe('r', 'b', 'conv1', 9), round: 3, receivedAtMs: 6 });
        const rows = await s.getProbeSummaries('r');
        expect(rows.map((r) => [r.clientId, r.layer, firstFloat(r.gram)])).toEqual([
          ['a', 'conv1', 3],
          ['a', 'conv2', 2],
          ['b', 'conv1', 9],
        ]);
        expect(rows[2]).toEqual({ ...probe('r', 'b', 'conv1', 9), round: 3, receivedAtMs: 6 });
        expect(await s.getProbeSummaries('missing')).toEqual([]);
        await s.close();
      });

      it('stores a layer sent as a factor with its rank; a resent layer may change form', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        const factor = Buffer.from(new Float32Array([1, -1, 0.5, 2, -2, 0.25]).buffer);
        await s.putProbeSummary({
          ...probe('r', 'a', 'conv1', 1),
          n: 3,
          featureDim: 2,
          gram: factor,
          factorRank: 2,
        });
        // A record written without factorRank (what callers from before factors pass) is a Gram.
        const { factorRank: _omitted, ...gramOnly } = probe('r', 'a', 'conv2', 4);
        await s.putProbeSummary(gramOnly);
        const rows = await s.getProbeSummaries('r');
        expect(rows.map((r) => [r.layer, r.n, r.factorRank, r.gram.byteLength])).toEqual([
          ['conv1', 3, 2, 24],
          ['conv2', 2, 0, 16],
        ]);
        expect(Buffer.compare(rows[0]!.gram, factor)).toBe(0);
        await s.putProbeSummary(probe('r', 'a', 'conv1', 7));
        const again = await s.getProbeSummaries('r');
        expect(again[0]).toEqual(probe('r', 'a', 'conv1', 7));
        await s.close();
      });
    });

    describe('retention', () => {
      it('prunes probe summaries and reports older than their cut-offs, and says how many went', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        await s.putProbeSummary({ ...probe('old', 'a', 'conv1', 1), receivedAtMs: 100 });
        await s.putProbeSummary({ ...probe('old', 'a', 'conv2', 1), receivedAtMs: 100 });
        await s.putProbeSummary({ ...probe('new', 'a', 'conv1', 1), receivedAtMs: 300 });
        for (const [reportId, createdAtMs] of [
          ['r1', 100],
          ['r2', 250],
          ['r3', 400],
        ] as const) {
          await s.putReport({ reportId, createdAtMs, trigger: 'operator', models: 1, json: '{}', html: '' });
        }
        expect(await s.prune({})).toEqual({ probeSummaries: 0, reports: 0 });
        expect(await s.prune({ probeSummariesBeforeMs: 200, reportsBeforeMs: 300 })).toEqual({
          probeSummaries: 2,
          reports: 2,
        });
        expect(await s.getProbeSummaries('old')).toEqual([]);
        expect((await s.getProbeSummaries('new')).length).toBe(1);
        expect((await s.listReports(10)).map((r) => r.reportId)).toEqual(['r3']);
        expect(await s.prune({ probeSummariesBeforeMs: 200, reportsBeforeMs: 300 })).toEqual({
          probeSummaries: 0,
          reports: 0,
        });
        await s.close();
      });
    });

    describe('removing a client', () => {
      it('deletes the client, its uploads and probe summaries; others and shared task ids stay', async () => {
        const { s } = await fresh();
        await withClients(s, ['a', 'b']);
        for (const r of [1, 2, 3]) await s.putAtoms(upload('a', r, r));
        await s.putAtoms(upload('b', 1, 7));
        await s.putProbeSummary(probe('r', 'a', 'conv1', 1));
        await s.putProbeSummary(probe('r', 'b', 'conv1', 2));
        expect(await s.removeClient('a')).toEqual({ uploads: 3, probeSummaries: 1 });
        expect(await s.getClient('a')).toBeUndefined();
        expect((await s.listClients()).map((c) => c.clientId)).toEqual(['b']);
        expect(await s.listRounds('a', 't', false)).toEqual([]);
        expect((await s.getProbeSummaries('r')).map((p) => p.clientId)).toEqual(['b']);
        expect(await s.countUploads()).toBe(1);
        expect(await s.getTask('t')).toBeDefined();
        expect(await s.removeClient('a')).toBeUndefined();
        await withClients(s, ['a']); // the id can be registered afresh
        expect((await s.getClient('a'))?.tasks.map((t) => t.taskId)).toEqual(['t']);
        await s.close();
      });
    });

    describe('client credential bindings', () => {
      it('binds an id to the first digest only, durably; removing the client releases it', async () => {
        const { s, location } = await fresh();
        const [first, second] = ['1'.repeat(64), '2'.repeat(64)];
        expect(await s.bindClientCredential('a', first, 10)).toBe(first);
        expect(await s.bindClientCredential('a', first, 11)).toBe(first);
        expect(await s.bindClientCredential('a', second, 12)).toBe(first);
        // Two first bindings arriving together: one wins, both answer the winner.
        const racing = await Promise.all([
          s.bindClientCredential('b', first, 13),
          s.bindClientCredential('b', second, 13),
        ]);
        expect(racing[0]).toBe(racing[1]);
        await s.close();
        const reopened = await location.open();
        expect(await reopened.bindClientCredential('a', second, 14)).toBe(first);
        // A binding without a registration (its Register failed afterwards) is released too.
        expect(await reopened.removeClient('a')).toEqual({ uploads: 0, probeSummaries: 0 });
        expect(await reopened.removeClient('a')).toBeUndefined();
        expect(await reopened.bindClientCredential('a', second, 15)).toBe(second);
        await withClients(reopened, ['b']);
        await reopened.removeClient('b');
        expect(await reopened.bindClientCredential('b', second, 16)).toBe(second);
        await reopened.close();
      });
    });

    describe('analyses and reports', () => {
      it('writes an analysis and updates it through its lifecycle; optional fields stay absent until set', async () => {
        const { s } = await fresh();
        await s.putAnalysis(analysis('an', 10));
        expect(await s.getAnalysis('an')).toEqual(analysis('an', 10));
        await s.putAnalysis({ ...analysis('an', 10), status: 'running', startedAtMs: 11 });
        await s.putAnalysis({
          ...(await s.getAnalysis('an'))!,
          status: 'failed',
          finishedAtMs: 20,
          message: 'client gone',
        });
        expect(await s.getAnalysis('an')).toEqual({
          ...analysis('an', 10),
          status: 'failed',
          startedAtMs: 11,
          finishedAtMs: 20,
          message: 'client gone',
        });
        expect(await s.getAnalysis('missing')).toBeUndefined();
        await s.close();
      });

      it('lists analyses newest first, up to a limit', async () => {
        const { s } = await fresh();
        await s.putAnalysis(analysis('x', 10));
        await s.putAnalysis(analysis('y', 30));
        await s.putAnalysis(analysis('z', 20));
        await s.putAnalysis(analysis('w', 30));
        expect((await s.listAnalyses(10)).map((a) => a.analysisId)).toEqual(['y', 'w', 'z', 'x']);
        expect((await s.listAnalyses(2)).map((a) => a.analysisId)).toEqual(['y', 'w']);
        await s.close();
      });

      it('stores reports whole, lists their summaries newest first up to a limit', async () => {
        const { s } = await fresh();
        await s.putReport({
          reportId: 'old',
          createdAtMs: 1,
          trigger: 'schedule',
          models: 1,
          json: '{}',
          html: '<p>',
        });
        const html = `<h1>${'é✓'.repeat(20_000)}</h1>`;
        await s.putReport({
          reportId: 'rep',
          createdAtMs: 21,
          trigger: 'operator',
          models: 3,
          analysisId: 'an',
          json: '{"a":1}',
          html,
        });
        await s.putReport({
          reportId: 'mid',
          createdAtMs: 5,
          trigger: 'drift',
          models: 2,
          json: '[]',
          html: '',
        });
        expect(await s.getReport('rep')).toEqual({
          reportId: 'rep',
          createdAtMs: 21,
          trigger: 'operator',
          models: 3,
          analysisId: 'an',
          json: '{"a":1}',
          html,
        });
        expect(await s.getReport('missing')).toBeUndefined();
        expect(await s.listReports(10)).toEqual([
          { reportId: 'rep', createdAtMs: 21, trigger: 'operator', models: 3, analysisId: 'an' },
          { reportId: 'mid', createdAtMs: 5, trigger: 'drift', models: 2 },
          { reportId: 'old', createdAtMs: 1, trigger: 'schedule', models: 1 },
        ]);
        expect((await s.listReports(1)).map((r) => r.reportId)).toEqual(['rep']);
        // Re-writing a report replaces it.
        await s.putReport({
          reportId: 'old',
          createdAtMs: 50,
          trigger: 'schedule',
          models: 4,
          json: '{}',
          html: '',
        });
        expect((await s.listReports(1))[0]).toEqual({
          reportId: 'old',
          createdAtMs: 50,
          trigger: 'schedule',
          models: 4,
        });
        await s.close();
      });

      it('lists the reports after a cursor (created time, then id, both descending)', async () => {
        const { s } = await fresh();
        // Two reports share a created time: the id breaks the tie, so no page repeats or skips one.
        for (const [reportId, createdAtMs] of [
          ['a', 10],
          ['b', 20],
          ['c', 20],
          ['d', 30],
        ] as const) {
          await s.putReport({ reportId, createdAtMs, trigger: 'drift', models: 1, json: '{}', html: '' });
        }
        const ids = async (limit: number, before?: { createdAtMs: number; reportId: string }) =>
          (await s.listReports(limit, before)).map((r) => r.reportId);
        expect(await ids(10)).toEqual(['d', 'c', 'b', 'a']);
        expect(await ids(10, { createdAtMs: 30, reportId: 'd' })).toEqual(['c', 'b', 'a']);
        expect(await ids(1, { createdAtMs: 20, reportId: 'c' })).toEqual(['b']);
        expect(await ids(10, { createdAtMs: 20, reportId: 'b' })).toEqual(['a']);
        expect(await ids(10, { createdAtMs: 10, reportId: 'a' })).toEqual([]);
        // A cursor naming a report that no longer exists still cuts at its place in the order.
        expect(await ids(10, { createdAtMs: 25, reportId: 'zzz' })).toEqual(['c', 'b', 'a']);
        await s.close();
      });
    });

    describe('metadata', () => {
      it('keeps key/value facts and overwrites them', async () => {
        const { s } = await fresh();
        expect(await s.getMeta('template')).toBeUndefined();
        await s.setMeta('template', 'one');
        await s.setMeta('template', 'two');
        await s.setMeta('other', '');
        expect(await s.getMeta('template')).toBe('two');
        expect(await s.getMeta('other')).toBe('');
        await s.close();
      });
    });

    describe('durability and lifecycle', () => {
      it('acknowledges a write only once it is committed: everything resolved survives reopening', async () => {
        const { s, location } = await fresh();
        await withClients(s, ['a']);
        await s.putAtoms(upload('a', 1, 1));
        await s.putAtoms(upload('a', 2, 2));
        await s.putProbeSummary(probe('r', 'a', 'conv1', 1));
        await s.putAnalysis({ ...analysis('an', 10), status: 'completed', reportId: 'rep' });
        await s.putReport({
          reportId: 'rep',
          createdAtMs: 21,
          trigger: 'operator',
          models: 1,
          json: '{}',
          html: '',
        });
        // Written while the queue is still open, committed by close().
        const pending = s.setMeta('k', 'v');
        await s.close();
        await pending;

        const again = await location.open();
        expect(await again.getMeta('k')).toBe('v');
        expect((await again.listClients()).map((c) => [c.clientId, c.lastSeenMs])).toEqual([['a', 1002]]);
        expect((await again.listRounds('a', 't', false)).map((r) => r.round)).toEqual([1, 2]);
        expect(await again.countUploads()).toBe(2);
        expect(await again.getProbeSummaries('r')).toHaveLength(1);
        expect((await again.getAnalysis('an'))!.status).toBe('completed');
        expect((await again.getReport('rep'))!.json).toBe('{}');
        // Storage opened again keeps recognising what it stored.
        expect(await again.putAtoms(upload('a', 2, 2))).toBe('duplicate');
        await again.close();
      });

      it('rejects writes after close, and closing twice is harmless', async () => {
        const { s } = await fresh();
        await s.close();
        await expect(s.putAtoms(upload('a', 3, 3))).rejects.toThrow(/closed/);
        await expect(s.setMeta('k', 'v')).rejects.toThrow(/closed/);
        await s.close();
      });

      it('fails one bad write alone when it arrives together with good ones', async () => {
        const { s } = await fresh();
        await withClients(s, ['a']);
        const [bad, good, meta] = await Promise.allSettled([
          s.upsertClient(
            {
              clientId: 'x',
              alphaFingerprint: '',
              fingerprintMatch: true,
              clientVersion: 'v',
              registeredAtMs: 1,
            },
            [{ taskId: 't', classes: [4] }],
          ),
          s.putAtoms(upload('a', 1, 1)),
          s.setMeta('k', 'v'),
        ]);
        expect(bad.status).toBe('rejected');
        expect(good).toEqual({ status: 'fulfilled', value: 'accepted' });
        expect(meta.status).toBe('fulfilled');
        expect(await s.countUploads()).toBe(1);
        expect(await s.getClient('x')).toBeUndefined();
        expect(await s.getMeta('k')).toBe('v');
        await s.close();
      });

      it('refuses client writes beyond maxQueuedWrites, stores none of them, and takes writes again once drained', async () => {
        const location = await makeLocation();
        const s = await location.open({ maxQueuedWrites: 3 });
        await withClients(s, ['a']);
        expect(s.writeQueue()).toEqual({ queued: 0, limit: 3, refused: 0 });
        const settled = await Promise.allSettled([
          ...Array.from({ length: 5 }, (_, i) => s.putAtoms(upload('a', i + 1, i + 1))),
          s.upsertClient(
            {
              clientId: 'b',
              alphaFingerprint: '',
              fingerprintMatch: true,
              clientVersion: 'v',
              registeredAtMs: 1,
            },
            [{ taskId: 't', classes: [0, 1] }],
          ),
          s.putProbeSummary(probe('r', 'a', 'conv1', 1)),
          // The coordinator's own writes are not refused: the queue bound is for what clients cause.
          s.setMeta('k', 'v'),
        ]);
        expect(settled.map((r) => r.status)).toEqual([
          'fulfilled',
          'fulfilled',
          'fulfilled',
          'rejected',
          'rejected',
          'rejected',
          'rejected',
          'fulfilled',
        ]);
        for (const r of settled.filter((r) => r.status === 'rejected')) {
          expect((r as PromiseRejectedResult).reason).toBeInstanceOf(StorageBusyError);
        }
        expect(s.writeQueue()).toEqual({ queued: 0, limit: 3, refused: 4 });
        expect((await s.listRounds('a', 't', false)).map((r) => r.round)).toEqual([1, 2, 3]);
        expect(await s.getClient('b')).toBeUndefined();
        expect(await s.getProbeSummaries('r')).toEqual([]);
        expect(await s.putAtoms(upload('a', 4, 4))).toBe('accepted');
        await s.close();
      });
    });
  });
}
