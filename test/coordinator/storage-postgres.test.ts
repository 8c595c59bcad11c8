// PostgreSQL storage: the storage contract against a real, throwaway server (Debian's postgresql
// package), plus what only a server database has: migrations shared by processes that start
// together, and writes failing cleanly — and recovering — when the server goes away.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS, PostgresStorage } from '../../src/coordinator/storage/postgres.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../helpers/postgres-server.js';
import { storageContract, upload, withClients } from './storage-contract.js';

const unavailable = postgresUnavailable();
if (unavailable) console.warn(unavailable);

describe.skipIf(unavailable !== undefined)('PostgreSQL storage', () => {
  let server: PostgresServer;
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(() => server?.destroy());

  storageContract('postgres', async () => {
    const connectionString = await server.createDatabase();
    return { open: (options = {}) => PostgresStorage.open({ connectionString, ...options }) };
  });

  describe('PostgresStorage', () => {
    it('applies each numbered migration once, even when several processes open the database together', async () => {
      const connectionString = await server.createDatabase();
      const opened = await Promise.all(
        Array.from({ length: 4 }, () => PostgresStorage.open({ connectionString })),
      );
      const steps = await opened[0]!.pool.query<{ version: number; name: string }>(
        'SELECT version, name FROM schema_migrations ORDER BY version',
      );
      expect(steps.rows).toEqual(POSTGRES_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      await Promise.all(opened.map((s) => s.close()));
    });

    it('refuses a database migrated by a newer atomlens, naming both versions', async () => {
      const connectionString = await server.createDatabase();
      const s = await PostgresStorage.open({ connectionString });
      await s.pool.query("INSERT INTO schema_migrations VALUES (99, 'future', 0)");
      await s.close();
      await expect(PostgresStorage.open({ connectionString })).rejects.toThrow(
        new RegExp(`schema version 99; this atomlens understands up to ${POSTGRES_MIGRATIONS.length}`),
      );
    });

    it('names the database without its password when it cannot connect', async () => {
      await expect(
        PostgresStorage.open({ connectionString: `postgres://postgres:secret@127.0.0.1:1/none` }),
      ).rejects.toThrow(/cannot open the database postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/none/);
    });

    it('rejects writes while the server is down, and accepts them again once it is back', async () => {
      const connectionString = await server.createDatabase();
      const s = await PostgresStorage.open({ connectionString });
      await withClients(s, ['a']);
      expect(await s.putAtoms(upload('a', 1, 1))).toBe('accepted');
      server.stop();
      try {
        await expect(s.putAtoms(upload('a', 2, 2))).rejects.toThrow(/database unavailable/);
      } finally {
        server.start();
      }
      expect(await s.putAtoms(upload('a', 2, 2))).toBe('accepted');
      expect((await s.listRounds('a', 't', false)).map((r) => r.round)).toEqual([1, 2]);
      await s.close();
    });
  });
});
