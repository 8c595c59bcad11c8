// Copies a federation from the embedded SQLite file into PostgreSQL (`atomlens store migrate`), in
// one transaction, and verifies the copy table by table before committing it: row counts and a
// SHA-256 over every row in primary-key order, computed independently on both sides (values in one
// canonical spelling: booleans as 0/1, bytes as hex, numbers as JavaScript reads them).
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type pg from 'pg';
import { PostgresStorage } from './postgres.js';
import { DATABASE_FILE, SqliteStorage } from './sqlite.js';

interface TableSpec {
  name: string;
  /** Every column, primary key first. */
  columns: string[];
  key: string[];
  /** Stored as 0/1 in SQLite, BOOLEAN in PostgreSQL. */
  booleans?: string[];
}

/** The federation's tables (not the migration bookkeeping), parents before children. */
const TABLES: TableSpec[] = [
  { name: 'meta', columns: ['key', 'value'], key: ['key'] },
  {
    name: 'clients',
    columns: [
      'client_id',
      'alpha_fingerprint',
      'fingerprint_match',
      'client_version',
      'registered_at_ms',
      'last_seen_ms',
    ],
    key: ['client_id'],
    booleans: ['fingerprint_match'],
  },
  {
    name: 'client_credentials',
    columns: ['client_id', 'credential_sha256', 'bound_at_ms'],
    key: ['client_id'],
  },
  { name: 'tasks', columns: ['task_id', 'classes'], key: ['task_id'] },
  { name: 'client_tasks', columns: ['client_id', 'task_id', 'position'], key: ['client_id', 'task_id'] },
  {
    name: 'atom_uploads',
    columns: [
      'client_id',
      'task_id',
      'round',
      'received_at_ms',
      'loss',
      'accuracy',
      'samples',
      'template_version',
      'atoms',
    ],
    key: ['client_id', 'task_id', 'round'],
  },
  {
    name: 'probe_summaries',
    columns: [
      'request_id',
      'client_id',
      'task_id',
      'layer',
      'round',
      'n',
      'feature_dim',
      'gram',
      'factor_rank',
      'received_at_ms',
    ],
    key: ['request_id', 'client_id', 'task_id', 'layer'],
  },
  {
    name: 'analyses',
    columns: [
      'analysis_id',
      'status',
      'trigger',
      'reason',
      'models',
      'created_at_ms',
      'started_at_ms',
      'finished_at_ms',
      'message',
      'report_id',
    ],
    key: ['analysis_id'],
  },
  {
    name: 'reports',
    columns: ['report_id', 'created_at_ms', 'trigger', 'models', 'analysis_id', 'json', 'html'],
    key: ['report_id'],
  },
];

/** Bookkeeping each side keeps for itself (its own schema version). */
const SKIPPED_META = "key <> 'schema_version'";

export interface TableCheck {
  table: string;
  rows: number;
  sha256: string;
}

export interface CopyResult {
  tables: TableCheck[];
  seconds: number;
}

/** A value in the one spelling both databases agree on. */
function canonical(v: unknown, boolean: boolean): unknown {
  if (v === null || v === undefined) return null;
  if (boolean) return v === true || v === 1 ? 1 : 0;
  if (Buffer.isBuffer(v)) return { hex: v.toString('hex') };
  if (typeof v === 'bigint') return Number(v);
  return v;
}

function hashRow(hash: Hash, spec: TableSpec, row: Record<string, unknown>): void {
  const values = spec.columns.map((c) => canonical(row[c], spec.booleans?.includes(c) ?? false));
  hash.update(JSON.stringify(values));
  hash.update('\n');
}

function whereClause(spec: TableSpec): string {
  return spec.name === 'meta' ? `WHERE ${SKIPPED_META}` : '';
}

function sqliteChecks(db: Database.Database): TableCheck[] {
  return TABLES.map((spec) => {
    const hash = createHash('sha256');
    let rows = 0;
    const stmt = db.prepare(
      `SELECT ${spec.columns.join(', ')} FROM ${spec.name} ${whereClause(spec)} ORDER BY ${spec.key.join(', ')}`,
    );
    for (const row of stmt.iterate() as IterableIterator<Record<string, unknown>>) {
      hashRow(hash, spec, row);
      rows++;
    }
    return { table: spec.name, rows, sha256: hash.digest('hex') };
  });
}

async function postgresChecks(db: pg.PoolClient): Promise<TableCheck[]> {
  const out: TableCheck[] = [];
  for (const spec of TABLES) {
    const hash = createHash('sha256');
    let rows = 0;
    // Pages in key order (text keys are COLLATE "C": byte order, as SQLite's BINARY).
    for (let offset = 0; ; offset += 2000) {
      const page = await db.query(
        `SELECT ${spec.columns.join(', ')} FROM ${spec.name} ${whereClause(spec)}
         ORDER BY ${spec.key.join(', ')} LIMIT 2000 OFFSET ${offset}`,
      );
      for (const row of page.rows as Record<string, unknown>[]) hashRow(hash, spec, row);
      rows += page.rows.length;
      if (page.rows.length < 2000) break;
    }
    out.push({ table: spec.name, rows, sha256: hash.digest('hex') });
  }
  return out;
}

/**
 * Copies every table of the SQLite federation in `fromDir` into the PostgreSQL database `to` (which
 * must hold no federation yet), then compares counts and checksums. Throws on any difference.
 */
export async function copySqliteToPostgres(
  fromDir: string,
  to: string,
  onTable: (table: string, rows: number) => void = () => {},
): Promise<CopyResult> {
  const started = performance.now();
  // Opening through SqliteStorage first brings an older file up to the current schema.
  await new SqliteStorage({ dataDir: fromDir }).close();
  const source = new Database(join(fromDir, DATABASE_FILE), { readonly: true, fileMustExist: true });
  const target = await PostgresStorage.open({ connectionString: to });
  try {
    const existing = await target.pool.query<{ n: number }>(
      'SELECT (SELECT count(*) FROM clients) + (SELECT count(*) FROM atom_uploads) + (SELECT count(*) FROM reports) AS n',
    );
    if (existing.rows[0]!.n > 0) {
      throw new Error(`${target.where} already holds a federation; migrate into an empty database`);
    }
    const client = await target.pool.connect();
    try {
      await client.query('BEGIN');
      for (const spec of TABLES) {
        const rows = await copyTable(source, client, spec);
        onTable(spec.name, rows);
      }
      const expected = sqliteChecks(source);
      const got = await postgresChecks(client);
      const differing = expected
        .map((e, i) => ({ e, g: got[i]! }))
        .filter(({ e, g }) => e.rows !== g.rows || e.sha256 !== g.sha256);
      if (differing.length > 0) {
        throw new Error(
          `the copy differs from the source in ${differing.map(({ e, g }) => `${e.table} (${e.rows} rows → ${g.rows})`).join(', ')}; nothing was committed`,
        );
      }
      await client.query('COMMIT');
      return { tables: got, seconds: (performance.now() - started) / 1000 };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      client.release();
    }
  } finally {
    source.close();
    await target.close();
  }
}

async function copyTable(source: Database.Database, client: pg.PoolClient, spec: TableSpec): Promise<number> {
  // The target's own schema_version stays; everything else is copied as stored.
  const select = source.prepare(`SELECT ${spec.columns.join(', ')} FROM ${spec.name} ${whereClause(spec)}`);
  const perRow = spec.columns.length;
  const batchRows = Math.floor(30_000 / perRow);
  let batch: unknown[][] = [];
  let total = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const params: unknown[] = [];
    const tuples = batch.map((row) => {
      const marks = row.map((v) => {
        params.push(v);
        return `$${params.length}`;
      });
      return `(${marks.join(', ')})`;
    });
    await client.query(
      `INSERT INTO ${spec.name} (${spec.columns.join(', ')}) VALUES ${tuples.join(', ')}`,
      params,
    );
    total += batch.length;
    batch = [];
  };
  for (const row of select.iterate() as IterableIterator<Record<string, unknown>>) {
    batch.push(spec.columns.map((c) => (spec.booleans?.includes(c) ? row[c] === 1 : (row[c] ?? null))));
    if (batch.length >= batchRows) await flush();
  }
  await flush();
  return total;
}
