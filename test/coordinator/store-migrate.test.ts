// `atomlens store migrate --from DIR --to postgres://…`: a SQLite federation copied into PostgreSQL
// reads back the same through the Storage interface, with per-table counts and checksums; a
// database that already holds a federation is refused.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStorage } from '../../src/coordinator/storage/postgres.js';
import { SqliteStorage } from '../../src/coordinator/storage/sqlite.js';
import type { Storage } from '../../src/coordinator/storage/types.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../helpers/postgres-server.js';
import { upload } from './storage-contract.js';

const unavailable = postgresUnavailable();
if (unavailable) console.warn(unavailable);

async function fill(s: Storage): Promise<void> {
  await s.setMeta('template', '{"alphaFingerprint":"abc"}');
  await s.bindClientCredential('zed', 'a'.repeat(64), 5);
  await s.bindClientCredential('amy', 'b'.repeat(64), 6);
  for (const [i, id] of ['zed', 'amy', 'bob'].entries()) {
    await s.upsertClient(
      {
        clientId: id,
        alphaFingerprint: i === 1 ? 'f'.repeat(64) : '',
        fingerprintMatch: i !== 1,
        clientVersion: 'v',
        registeredAtMs: 10 + i,
      },
      [
        { taskId: 't', classes: [0, 1] },
        { taskId: `${id}-own`, classes: [i + 2] },
      ],
    );
    for (let r = 1; r <= 30; r++) await s.putAtoms(upload(id, r, r * (i + 1) + 0.1));
    await s.putAtoms(upload(id, 1, 7, `${id}-own`));
  }
  await s.putProbeSummary({
    requestId: 'req',
    clientId: 'amy',
    taskId: 't',
    round: 3,
    layer: 'conv1',
    n: 2,
    featureDim: 4,
    gram: Buffer.from(new Float32Array([1.5, 0.25, 0.25, 2]).buffer),
    receivedAtMs: 99,
  });
  await s.putAnalysis({
    analysisId: 'an',
    status: 'completed',
    trigger: 'operator',
    reason: 'é ✓',
    models: [{ clientId: 'amy', taskId: 't' }],
    createdAtMs: 100,
    startedAtMs: 101,
    finishedAtMs: 150,
    reportId: 'rep',
  });
  await s.putAnalysis({
    analysisId: 'an2',
    status: 'failed',
    trigger: 'drift',
    reason: '',
    models: [],
    createdAtMs: 200,
    message: 'gone',
  });
  await s.putReport({
    reportId: 'rep',
    createdAtMs: 150,
    trigger: 'operator',
    models: 1,
    analysisId: 'an',
    json: '{"x":[1,2]}',
    html: '<p>é</p>',
  });
}

async function everything(s: Storage): Promise<unknown> {
  const clients = await s.listClients();
  const rounds = [];
  for (const c of clients)
    for (const t of c.tasks) rounds.push(await s.listRounds(c.clientId, t.taskId, true));
  return {
    clients,
    rounds,
    uploads: await s.countUploads(),
    probes: await s.getProbeSummaries('req'),
    analyses: await s.listAnalyses(10),
    reports: await s.listReports(10),
    report: await s.getReport('rep'),
    template: await s.getMeta('template'),
    // Binding again with another digest answers the one stored.
    bindings: [
      await s.bindClientCredential('zed', 'c'.repeat(64), 7),
      await s.bindClientCredential('amy', 'c'.repeat(64), 7),
    ],
  };
}

describe.skipIf(unavailable !== undefined)('atomlens store migrate', () => {
  let server: PostgresServer;
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-migrate-'));
  beforeAll(async () => {
    server = await startPostgres();
  });
  afterAll(() => {
    server?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies a SQLite federation into PostgreSQL, verified, and refuses to copy into it twice', async () => {
    const sqlite = new SqliteStorage({ dataDir: dir });
    await fill(sqlite);
    const before = await everything(sqlite);
    await sqlite.close();

    const to = await server.createDatabase();
    const run = spawnSync(
      process.execPath,
      atomlensArgv(['store', 'migrate', '--from', dir, '--to', to, '--json']),
      {
        encoding: 'utf8',
      },
    );
    expect(run.status, run.stderr).toBe(0);
    const result = JSON.parse(run.stdout) as { tables: { table: string; rows: number; sha256: string }[] };
    expect(Object.fromEntries(result.tables.map((t) => [t.table, t.rows]))).toEqual({
      meta: 1,
      clients: 3,
      client_credentials: 2,
      tasks: 4,
      client_tasks: 6,
      atom_uploads: 93,
      probe_summaries: 1,
      analyses: 2,
      reports: 1,
    });
    expect(result.tables.every((t) => /^[0-9a-f]{64}$/.test(t.sha256))).toBe(true);

    const pg = await PostgresStorage.open({ connectionString: to });
    expect(await everything(pg)).toEqual(before);
    await pg.close();

    const again = spawnSync(process.execPath, atomlensArgv(['store', 'migrate', '--from', dir, '--to', to]), {
      encoding: 'utf8',
    });
    expect(again.status).toBe(1);
    expect(again.stderr).toMatch(/already holds a federation; migrate into an empty database/);
  });

  it('commits nothing when the copy does not read back identical', async () => {
    const to = await server.createDatabase();
    const target = await PostgresStorage.open({ connectionString: to });
    // A database that silently alters what it is given: one upload's loss changes on the way in.
    await target.pool.query(`CREATE FUNCTION tamper() RETURNS trigger AS $$
      BEGIN IF NEW.round = 17 AND NEW.client_id = 'bob' THEN NEW.loss := NEW.loss + 1e-9; END IF; RETURN NEW; END
      $$ LANGUAGE plpgsql`);
    await target.pool.query(
      'CREATE TRIGGER tamper BEFORE INSERT ON atom_uploads FOR EACH ROW EXECUTE FUNCTION tamper()',
    );
    const run = spawnSync(process.execPath, atomlensArgv(['store', 'migrate', '--from', dir, '--to', to]), {
      encoding: 'utf8',
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(
      /differs from the source in atom_uploads \(93 rows → 93\); nothing was committed/,
    );
    expect(await target.countUploads()).toBe(0);
    expect(await target.listClients()).toEqual([]);
    await target.close();
  });
});
