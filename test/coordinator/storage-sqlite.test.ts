// SQLite storage: the storage contract, plus what only the embedded file has (one group-commit
// transaction per event-loop turn, WAL mode, refusing a file from another schema version).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DATABASE_FILE, SqliteStorage } from '../../src/coordinator/storage/sqlite.js';
import { storageContract, upload, withClients } from './storage-contract.js';

const dirs: string[] = [];
function freshDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'atomlens-storage-test-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

storageContract('sqlite', async () => {
  const dataDir = freshDir();
  return { open: async () => new SqliteStorage({ dataDir }) };
});

describe('SqliteStorage', () => {
  it('commits uploads that arrive in the same event-loop turn in one transaction', async () => {
    const s = new SqliteStorage({ dataDir: freshDir() });
    await withClients(s, ['a', 'b']);
    const commits: number[] = [];
    s.onCommit((_seconds, writes) => commits.push(writes));
    await Promise.all([
      ...Array.from({ length: 50 }, (_, i) => s.putAtoms(upload('a', i + 1, i))),
      s.putAtoms(upload('b', 1, 7)),
      s.putAtoms(upload('b', 1, 7)),
      s.putAtoms(upload('b', 1, 8)),
    ]);
    expect(commits).toEqual([53]);
    await s.close();
  });

  it('writes a WAL-mode file under the data directory', async () => {
    const dir = freshDir();
    const s = new SqliteStorage({ dataDir: dir });
    await s.setMeta('k', 'v');
    await s.close();
    const raw = new Database(join(dir, DATABASE_FILE), { readonly: true });
    expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
    raw.close();
  });
});
