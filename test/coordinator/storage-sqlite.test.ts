// SQLite storage: the storage contract, plus what only the embedded file has (one group-commit
// transaction per event-loop turn, WAL mode, refusing a file from another schema version).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { DATABASE_FILE, SQLITE_MIGRATIONS, SqliteStorage } from '../../src/coordinator/storage/sqlite.js';
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
  return { open: async (options = {}) => new SqliteStorage({ dataDir, ...options }) };
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

  it('commits on its writer thread: the event loop runs on while a batch commits', async () => {
    const order: string[] = [];
    for (const dataDir of [freshDir(), ':memory:']) {
      const s = new SqliteStorage({ dataDir });
      await s.setMeta('warm', 'up');
      const write = s
        .setMeta('k', 'v')
        .then(() => order.push(`${dataDir === ':memory:' ? 'memory' : 'file'}: committed`));
      // Queued after the storage's flush: it runs before the commit returns only when the
      // commit is off this thread.
      setImmediate(() => order.push(`${dataDir === ':memory:' ? 'memory' : 'file'}: next turn`));
      await write;
      await new Promise((resolve) => setImmediate(resolve));
      await s.close();
    }
    // An in-memory database has one connection, so it commits in this thread.
    expect(order).toEqual(['file: next turn', 'file: committed', 'memory: committed', 'memory: next turn']);
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

describe('SqliteStorage migrations', () => {
  function appliedSteps(dir: string): { version: number; name: string }[] {
    const raw = new Database(join(dir, DATABASE_FILE), { readonly: true });
    try {
      return raw.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as {
        version: number;
        name: string;
      }[];
    } finally {
      raw.close();
    }
  }

  it('records every numbered step once, and opening again applies nothing twice', async () => {
    const dir = freshDir();
    await new SqliteStorage({ dataDir: dir }).close();
    const steps = SQLITE_MIGRATIONS.map((m) => ({ version: m.version, name: m.name }));
    expect(appliedSteps(dir)).toEqual(steps);
    await new SqliteStorage({ dataDir: dir }).close();
    expect(appliedSteps(dir)).toEqual(steps);
  });

  it('adopts a store written before the migrations table, keeping its data', async () => {
    const dir = freshDir();
    // What an older atomlens left: the first schema, its version only in meta, no
    // schema_migrations table, and a probe summary from before factors (a Gram matrix).
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.exec(SQLITE_MIGRATIONS[0]!.sql);
    raw.prepare("INSERT INTO meta(key, value) VALUES ('schema_version', '1')").run();
    raw.prepare("INSERT INTO clients VALUES ('a', 'fp', 1, 'v', 1, 1)").run();
    raw.prepare("INSERT INTO tasks VALUES ('t', '[0,1]')").run();
    raw.prepare("INSERT INTO client_tasks VALUES ('a', 't', 0)").run();
    raw.prepare("INSERT INTO atom_uploads VALUES ('a', 't', 1, 1, 0.5, 0.9, 10, 1, x'0000803f')").run();
    const gram = Buffer.from(new Float32Array([1.5, 0.25, 0.25, 2]).buffer);
    raw.prepare("INSERT INTO probe_summaries VALUES ('r', 'a', 't', 1, 'conv1', 2, 3, ?, 7)").run(gram);
    raw.close();
    const again = new SqliteStorage({ dataDir: dir });
    expect(await again.countUploads()).toBe(1);
    const [summary] = await again.getProbeSummaries('r');
    expect(summary).toMatchObject({ layer: 'conv1', n: 2, featureDim: 3, factorRank: 0 });
    expect(Buffer.compare(summary!.gram, gram)).toBe(0);
    await again.close();
    expect(appliedSteps(dir).map((m) => m.version)).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
  });

  it('refuses a store written by a newer atomlens, naming both versions', async () => {
    const dir = freshDir();
    await new SqliteStorage({ dataDir: dir }).close();
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.prepare("INSERT INTO schema_migrations(version, name, applied_at_ms) VALUES (99, 'future', 0)").run();
    raw.close();
    expect(() => new SqliteStorage({ dataDir: dir })).toThrow(
      new RegExp(`schema version 99; this atomlens understands up to ${SQLITE_MIGRATIONS.length}`),
    );
  });
});
