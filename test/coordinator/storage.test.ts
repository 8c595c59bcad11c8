// SQLite storage: group commit, idempotent uploads, conflicts, reopening, and the records the
// analysis side keeps (probe summaries, analyses, reports).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { DATABASE_FILE, SqliteStorage } from '../../src/coordinator/storage/sqlite.js';
import { type AtomUpload, StorageConflictError } from '../../src/coordinator/storage/types.js';

const dirs: string[] = [];
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'atomlens-storage-test-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function upload(clientId: string, round: number, fill: number): AtomUpload {
  return {
    clientId,
    taskId: 't',
    round,
    atoms: Buffer.from(new Float32Array(8).fill(fill).buffer),
    stats: { loss: 1 / round, accuracy: 0.5, samples: 10 * round },
    receivedAtMs: 1000 + round,
    templateVersion: 1,
  };
}

async function withClients(s: SqliteStorage, ids: string[]): Promise<void> {
  for (const id of ids) {
    await s.upsertClient(
      { clientId: id, alphaFingerprint: '', fingerprintMatch: true, clientVersion: 'v', registeredAtMs: 1 },
      [{ taskId: 't', classes: [0, 1] }],
    );
  }
}

describe('SqliteStorage', () => {
  it('commits uploads that arrive together in one transaction and acknowledges each after it', async () => {
    const s = new SqliteStorage({ dataDir: freshDir() });
    await withClients(s, ['a', 'b']);
    const commits: number[] = [];
    s.onCommit((_seconds, writes) => commits.push(writes));
    const outcomes = await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => s.putAtoms(upload('a', i + 1, i))),
      s.putAtoms(upload('b', 1, 7)),
      s.putAtoms(upload('b', 1, 7)), // same round, same atoms, same batch
      s.putAtoms(upload('b', 1, 8)), // same round, different atoms
    ]);
    expect(commits).toEqual([53]);
    expect(outcomes.slice(0, 51).every((o) => o === 'accepted')).toBe(true);
    expect(outcomes.slice(51)).toEqual(['duplicate', 'conflict']);
    expect(s.countUploads()).toBe(51);
    expect(s.lastRounds('a').get('t')).toBe(50);
    expect(s.getClient('a')!.lastSeenMs).toBe(1050);
    await s.close();
  });

  it('keeps everything across close and reopen, with WAL and synchronous=FULL', async () => {
    const dir = freshDir();
    const s = new SqliteStorage({ dataDir: dir });
    await withClients(s, ['a']);
    await s.putAtoms(upload('a', 1, 1));
    await s.putAtoms(upload('a', 2, 2));
    await s.putProbeSummary({
      requestId: 'r',
      clientId: 'a',
      taskId: 't',
      round: 2,
      layer: 'conv1',
      n: 2,
      featureDim: 3,
      gram: Buffer.from(new Float32Array([1, 2, 2, 5]).buffer),
      receivedAtMs: 5,
    });
    await s.putAnalysis({
      analysisId: 'an',
      status: 'running',
      trigger: 'operator',
      reason: 'why',
      models: [{ clientId: 'a', taskId: 't' }],
      createdAtMs: 10,
      startedAtMs: 11,
    });
    await s.putAnalysis({ ...s.getAnalysis('an')!, status: 'completed', finishedAtMs: 20, reportId: 'rep' });
    await s.putReport({
      reportId: 'old',
      createdAtMs: 1,
      trigger: 'schedule',
      models: 1,
      json: '{}',
      html: '<p>',
    });
    await s.putReport({
      reportId: 'rep',
      createdAtMs: 21,
      trigger: 'operator',
      models: 1,
      analysisId: 'an',
      json: '{"a":1}',
      html: '<h1>',
    });
    // Written while the queue is still open, committed by close().
    const pending = s.setMeta('k', 'v');
    await s.close();
    await pending;
    await expect(s.putAtoms(upload('a', 3, 3))).rejects.toThrow(/closed/);

    const raw = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();

    const again = new SqliteStorage({ dataDir: dir });
    expect(again.getMeta('k')).toBe('v');
    expect(again.listClients()).toEqual([
      {
        clientId: 'a',
        tasks: [{ taskId: 't', classes: [0, 1] }],
        alphaFingerprint: '',
        fingerprintMatch: true,
        clientVersion: 'v',
        registeredAtMs: 1,
        lastSeenMs: 1002,
      },
    ]);
    expect(again.listRounds('a', 't', false).map((r) => [r.round, r.stats.samples])).toEqual([
      [1, 10],
      [2, 20],
    ]);
    expect(new Float32Array(new Uint8Array(again.getRound('a', 't', 2)!.atoms).buffer)[0]).toBe(2);
    expect(again.getPreviousRound('a', 't', 2)!.round).toBe(1);
    const recent: number[] = [];
    again.forEachRecentRound((_c, _t, round) => recent.push(round), 2);
    expect(recent).toEqual([1, 2]);
    expect(again.getProbeSummaries('r')[0]).toMatchObject({ layer: 'conv1', n: 2, featureDim: 3 });
    expect(again.getAnalysis('an')).toMatchObject({
      status: 'completed',
      finishedAtMs: 20,
      reportId: 'rep',
      startedAtMs: 11,
    });
    expect(again.listReports(10).map((r) => r.reportId)).toEqual(['rep', 'old']);
    expect(again.getReport('rep')).toMatchObject({ json: '{"a":1}', html: '<h1>', analysisId: 'an' });
    expect(again.atomsAtRound(1).map((r) => r.clientId)).toEqual(['a']);
    await again.close();
  });

  it('merges tasks on re-registration and refuses a task id reused with other classes', async () => {
    const s = new SqliteStorage({ dataDir: freshDir() });
    await withClients(s, ['a']);
    await s.upsertClient(
      {
        clientId: 'a',
        alphaFingerprint: 'f',
        fingerprintMatch: false,
        clientVersion: 'v2',
        registeredAtMs: 99,
      },
      [{ taskId: 'u', classes: [2, 3] }],
    );
    const a = s.getClient('a')!;
    expect(a.tasks.map((t) => t.taskId)).toEqual(['t', 'u']);
    expect(a).toMatchObject({ fingerprintMatch: false, clientVersion: 'v2', registeredAtMs: 1 });
    const refused = s.upsertClient(
      { clientId: 'b', alphaFingerprint: '', fingerprintMatch: true, clientVersion: 'v', registeredAtMs: 1 },
      [
        { taskId: 'new', classes: [9] },
        { taskId: 't', classes: [5] },
      ],
    );
    await expect(refused).rejects.toBeInstanceOf(StorageConflictError);
    await expect(refused).rejects.toThrow(/task 't' is already defined with classes \[0, 1\]/);
    // Nothing of the refused registration was written.
    expect(s.getClient('b')).toBeUndefined();
    expect(s.getTask('new')).toBeUndefined();
    await s.close();
  });

  it('a failing write in a batch fails alone', async () => {
    const s = new SqliteStorage({ dataDir: freshDir() });
    await withClients(s, ['a']);
    const [bad, good] = await Promise.allSettled([
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
    ]);
    expect(bad.status).toBe('rejected');
    expect(good).toEqual({ status: 'fulfilled', value: 'accepted' });
    expect(s.countUploads()).toBe(1);
    await s.close();
  });
});
