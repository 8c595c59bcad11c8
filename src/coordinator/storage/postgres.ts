// PostgreSQL storage (node-postgres): the system of record once a federation outgrows one machine.
//
// Durability: writes go through a commit queue like the SQLite backend's. While one transaction is
// committing, new writes queue up; the next transaction takes all of them (group commit), and each
// promise resolves only after that COMMIT returned — PostgreSQL has then flushed the WAL
// (synchronous_commit=on, the server default), so an acknowledged upload survives a crash of either
// side. One batch runs at a time, so writes commit in the order they were made.
//
// A write that fails (a refused registration, a lost connection) rolls its batch back; the batch is
// then replayed one write per transaction, so only the failing write fails. During a database
// outage every write rejects at once (the coordinator answers UNAVAILABLE and clients retry); the
// pool opens fresh connections when the server is back.
//
// One coordinator per database: the duplicate/conflict decision of putAtoms relies on being the
// only writer of atom_uploads.
import pg from 'pg';
import { latestVersion, type Migration, pendingMigrations } from './migrations.js';
import {
  type AnalysisRow,
  analysisFromRow,
  type ClientRow,
  clientFromRow,
  type ProbeRow,
  probeFromRow,
  type ReportRow,
  type RoundRow,
  reportSummaryFromRow,
  roundFromRow,
  sameClasses,
  type TaskRow,
  taskFromRow,
} from './rows.js';
import {
  type AnalysisRecord,
  type AtomUpload,
  type ClientRecord,
  type CommitObserver,
  type ProbeSummaryRecord,
  type PrunedCounts,
  type PutAtomsOutcome,
  type RemovedClient,
  type ReportCursor,
  type ReportRecord,
  type ReportSummaryRecord,
  type RetentionCutoffs,
  type Storage,
  StorageBusyError,
  StorageClosedError,
  StorageConflictError,
  type StoredRound,
  type TaskRecord,
  type WriteQueueState,
} from './types.js';

export interface PostgresStorageOptions {
  /** postgres://user:password@host:port/database (libpq-style parameters such as sslmode work). */
  connectionString: string;
  /** Upper bound on writes per group-commit transaction. */
  maxBatch?: number;
  /** Client writes waiting or committing beyond which new ones are refused (StorageBusyError). */
  maxQueuedWrites?: number;
  /** Connections in the pool (reads run beside the single writing connection). */
  poolSize?: number;
}

// Identifiers compare byte-wise (COLLATE "C") so that ordering matches the SQLite backend and does
// not depend on the server's locale.
/** @internal exported for its tests */
export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema: registry, atom uploads, probe summaries, analyses, reports',
    sql: `
CREATE TABLE meta (
  key TEXT COLLATE "C" PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE clients (
  client_id TEXT COLLATE "C" PRIMARY KEY,
  alpha_fingerprint TEXT NOT NULL,
  fingerprint_match BOOLEAN NOT NULL,
  client_version TEXT NOT NULL,
  registered_at_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL
);
CREATE TABLE tasks (
  task_id TEXT COLLATE "C" PRIMARY KEY,
  classes TEXT NOT NULL
);
CREATE TABLE client_tasks (
  client_id TEXT COLLATE "C" NOT NULL REFERENCES clients(client_id),
  task_id TEXT COLLATE "C" NOT NULL REFERENCES tasks(task_id),
  position INTEGER NOT NULL,
  PRIMARY KEY (client_id, task_id)
);
CREATE TABLE atom_uploads (
  client_id TEXT COLLATE "C" NOT NULL,
  task_id TEXT COLLATE "C" NOT NULL,
  round INTEGER NOT NULL,
  received_at_ms BIGINT NOT NULL,
  loss DOUBLE PRECISION NOT NULL,
  accuracy DOUBLE PRECISION NOT NULL,
  samples INTEGER NOT NULL,
  template_version INTEGER NOT NULL,
  atoms BYTEA NOT NULL,
  PRIMARY KEY (client_id, task_id, round)
);
CREATE INDEX atom_uploads_by_round ON atom_uploads(round);
CREATE TABLE probe_summaries (
  request_id TEXT COLLATE "C" NOT NULL,
  client_id TEXT COLLATE "C" NOT NULL,
  task_id TEXT COLLATE "C" NOT NULL,
  round INTEGER NOT NULL,
  layer TEXT COLLATE "C" NOT NULL,
  n INTEGER NOT NULL,
  feature_dim INTEGER NOT NULL,
  gram BYTEA NOT NULL,
  received_at_ms BIGINT NOT NULL,
  PRIMARY KEY (request_id, client_id, task_id, layer)
);
CREATE TABLE analyses (
  analysis_id TEXT COLLATE "C" PRIMARY KEY,
  status TEXT NOT NULL,
  trigger TEXT NOT NULL,
  reason TEXT NOT NULL,
  models TEXT NOT NULL,
  created_at_ms BIGINT NOT NULL,
  started_at_ms BIGINT,
  finished_at_ms BIGINT,
  message TEXT,
  report_id TEXT
);
CREATE INDEX analyses_by_time ON analyses(created_at_ms);
CREATE TABLE reports (
  report_id TEXT COLLATE "C" PRIMARY KEY,
  created_at_ms BIGINT NOT NULL,
  trigger TEXT NOT NULL,
  models INTEGER NOT NULL,
  analysis_id TEXT,
  json TEXT NOT NULL,
  html TEXT NOT NULL
);
CREATE INDEX reports_by_time ON reports(created_at_ms);
`,
  },
  {
    version: 2,
    name: 'analysis_solves: GW results written by queue workers, one per (analysis, side a, side b)',
    sql: `
CREATE TABLE analysis_solves (
  analysis_id TEXT COLLATE "C" NOT NULL,
  side_a TEXT COLLATE "C" NOT NULL,
  side_b TEXT COLLATE "C" NOT NULL,
  distance DOUBLE PRECISION,
  identity_value DOUBLE PRECISION,
  error TEXT,
  worker TEXT NOT NULL,
  seconds DOUBLE PRECISION NOT NULL,
  solved_at_ms BIGINT NOT NULL,
  seq BIGSERIAL NOT NULL,
  PRIMARY KEY (analysis_id, side_a, side_b)
);
CREATE INDEX analysis_solves_by_seq ON analysis_solves(analysis_id, seq);
`,
  },
  {
    version: 3,
    name: 'gw_workers: every GW worker reports here, for the live-workers metric',
    sql: `
CREATE TABLE gw_workers (
  name TEXT COLLATE "C" PRIMARY KEY,
  threads INTEGER NOT NULL,
  started_at_ms BIGINT NOT NULL,
  last_seen_ms BIGINT NOT NULL
);
`,
  },
  {
    version: 4,
    name: 'client_credentials: the SHA-256 of the credential each client id is bound to',
    sql: `
CREATE TABLE client_credentials (
  client_id TEXT COLLATE "C" PRIMARY KEY,
  credential_sha256 TEXT NOT NULL,
  bound_at_ms BIGINT NOT NULL
);
`,
  },
  {
    version: 5,
    name: 'probe_summaries.factor_rank: a layer sent as an n × r factor of its Gram matrix (0 = the Gram)',
    sql: `
ALTER TABLE probe_summaries ADD COLUMN factor_rank INTEGER NOT NULL DEFAULT 0;
`,
  },
];

/** Any number that fits: ms timestamps and counts are BIGINT, which node-postgres returns as text. */
const INT8_OID = 20;
const typeParsers = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    // biome-ignore lint/suspicious/noExplicitAny: node-postgres' own overloads
    return (pg.types.getTypeParser as any)(oid, format);
  },
};

/** Serialises migrations of processes that start together (coordinator and workers). */
const MIGRATION_LOCK = 0x61746f6d; // "atom"

interface QueuedWrite {
  apply: (c: pg.PoolClient) => Promise<unknown>;
  /** Set for putAtoms: consecutive uploads in a batch go to the server in one statement. */
  upload?: AtomUpload;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

export class PostgresStorage implements Storage {
  readonly pool: pg.Pool;
  /** The connection string with any password removed, for messages. */
  readonly where: string;
  private readonly maxBatch: number;
  private readonly maxQueuedWrites: number;
  private queue: QueuedWrite[] = [];
  /** Writes queued or committing, and client writes refused because there were too many. */
  private pending = 0;
  private refused = 0;
  private scheduled = false;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private observer: CommitObserver | undefined;

  private constructor(options: PostgresStorageOptions) {
    this.where = redact(options.connectionString);
    this.maxBatch = options.maxBatch ?? 4096;
    this.maxQueuedWrites = options.maxQueuedWrites ?? 10_000;
    this.pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.poolSize ?? 8,
      types: typeParsers,
      connectionTimeoutMillis: 5000,
    });
    // An idle connection the server dropped (restart, failover) is discarded by the pool; without a
    // listener node-postgres would raise it as an uncaught error.
    this.pool.on('error', () => {});
  }

  /** Connects, brings the schema up to date, and returns the storage. */
  static async open(options: PostgresStorageOptions): Promise<PostgresStorage> {
    const s = new PostgresStorage(options);
    try {
      await s.migrate();
    } catch (err) {
      await s.pool.end().catch(() => {});
      throw new Error(`cannot open the database ${s.where}: ${(err as Error).message}`);
    }
    return s;
  }

  private async migrate(): Promise<void> {
    const c = await this.pool.connect();
    let broken: Error | undefined;
    const onError = (err: Error) => {
      broken = err;
    };
    c.on('error', onError);
    try {
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)`);
      const applied = (await c.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map(
        (r) => r.version,
      );
      for (const m of pendingMigrations(POSTGRES_MIGRATIONS, applied, this.where)) {
        await c.query(m.sql);
        await c.query('INSERT INTO schema_migrations(version, name, applied_at_ms) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          Date.now(),
        ]);
      }
      await c.query(
        `INSERT INTO meta(key, value) VALUES ('schema_version', $1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
        [String(latestVersion(POSTGRES_MIGRATIONS))],
      );
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    } finally {
      c.off('error', onError);
      c.release(broken);
    }
  }

  onCommit(observer: CommitObserver): void {
    this.observer = observer;
  }

  // --- the write path ----------------------------------------------------------------------

  writeQueue(): WriteQueueState {
    return { queued: this.pending, limit: this.maxQueuedWrites, refused: this.refused };
  }

  /**
   * Queues a write for the next group commit. `bounded` writes (those a client causes: uploads,
   * registrations, probe summaries) are refused while maxQueuedWrites writes wait or commit.
   */
  private enqueue<T>(
    apply: (c: pg.PoolClient) => Promise<T>,
    upload?: AtomUpload,
    bounded = upload !== undefined,
  ): Promise<T> {
    if (this.closed) return Promise.reject(new StorageClosedError());
    if (bounded && this.pending >= this.maxQueuedWrites) {
      this.refused += 1;
      return Promise.reject(new StorageBusyError(this.pending, this.maxQueuedWrites));
    }
    this.pending += 1;
    return new Promise<T>((resolve, reject) => {
      this.queue.push({
        apply,
        ...(upload ? { upload } : {}),
        resolve: (v: unknown) => {
          this.pending -= 1;
          resolve(v as T);
        },
        reject: (err: unknown) => {
          this.pending -= 1;
          reject(err);
        },
      });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    // After this turn's I/O callbacks, so requests that arrived together share a transaction.
    setImmediate(() => {
      this.scheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.queue.length > 0) this.schedule();
      });
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      await this.commitBatch(batch);
    }
  }

  private async commitBatch(batch: QueuedWrite[]): Promise<void> {
    const started = performance.now();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      for (const w of batch) w.reject(unavailable(err));
      return;
    }
    let broken: Error | undefined;
    // A checked-out connection the server drops between queries reports it as an 'error' event;
    // remember it so that the connection is discarded rather than returned to the pool.
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      const results: unknown[] = [];
      try {
        await client.query('BEGIN');
        for (let i = 0; i < batch.length; ) {
          // A run of uploads is one round trip (putAtomsBulk) instead of one per upload: the
          // transaction's length, not the server's work, is what bounds acknowledged uploads/s.
          let end = i;
          while (end < batch.length && batch[end]!.upload) end++;
          if (end - i >= 2) {
            results.push(
              ...(await putAtomsBulk(
                client,
                batch.slice(i, end).map((w) => w.upload!),
              )),
            );
            i = end;
          } else {
            results.push(await batch[i]!.apply(client));
            i++;
          }
        }
        await client.query('COMMIT');
      } catch {
        await client.query('ROLLBACK').catch(() => {});
        // Replay one write per transaction so that only the failing one fails.
        for (const w of batch) {
          try {
            await client.query('BEGIN');
            const result = await w.apply(client);
            await client.query('COMMIT');
            w.resolve(result);
          } catch (err) {
            await client.query('ROLLBACK').catch((e: Error) => {
              broken = e;
            });
            w.reject(err instanceof StorageConflictError ? err : unavailable(err));
          }
        }
        this.observer?.((performance.now() - started) / 1000, batch.length);
        return;
      }
      this.observer?.((performance.now() - started) / 1000, batch.length);
      batch.forEach((w, i) => {
        w.resolve(results[i]);
      });
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  // --- meta --------------------------------------------------------------------------------

  async getMeta(key: string): Promise<string | undefined> {
    const r = await this.pool.query<{ value: string }>('SELECT value FROM meta WHERE key = $1', [key]);
    return r.rows[0]?.value;
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.enqueue(async (c) => {
      await c.query(
        'INSERT INTO meta(key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
        [key, value],
      );
    });
  }

  // --- clients and tasks -------------------------------------------------------------------

  upsertClient(client: Omit<ClientRecord, 'tasks' | 'lastSeenMs'>, tasks: TaskRecord[]): Promise<void> {
    return this.enqueue(
      async (c) => {
        const ids = tasks.map((t) => t.taskId);
        const known = await c.query<TaskRow>('SELECT task_id, classes FROM tasks WHERE task_id = ANY($1)', [
          ids,
        ]);
        const byId = new Map(known.rows.map((r) => [r.task_id, taskFromRow(r)]));
        for (const t of tasks) {
          const existing = byId.get(t.taskId);
          if (existing && !sameClasses(existing.classes, t.classes)) {
            throw new StorageConflictError(
              `task '${t.taskId}' is already defined with classes [${existing.classes.join(', ')}], ` +
                `not [${t.classes.join(', ')}]; use another task id for a different class set`,
            );
          }
        }
        await c.query(
          `INSERT INTO clients(client_id, alpha_fingerprint, fingerprint_match, client_version, registered_at_ms, last_seen_ms)
         VALUES ($1, $2, $3, $4, $5, $5)
         ON CONFLICT (client_id) DO UPDATE SET alpha_fingerprint = excluded.alpha_fingerprint,
           fingerprint_match = excluded.fingerprint_match, client_version = excluded.client_version,
           last_seen_ms = greatest(clients.last_seen_ms, excluded.last_seen_ms)`,
          [
            client.clientId,
            client.alphaFingerprint,
            client.fingerprintMatch,
            client.clientVersion,
            client.registeredAtMs,
          ],
        );
        if (tasks.length === 0) return;
        await c.query(
          'INSERT INTO tasks(task_id, classes) SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING',
          [ids, tasks.map((t) => JSON.stringify(t.classes))],
        );
        // New tasks go after the client's existing ones, in declared order.
        await c.query(
          `INSERT INTO client_tasks(client_id, task_id, position)
         SELECT $1, t.task_id,
                (SELECT coalesce(max(position), -1) FROM client_tasks WHERE client_id = $1)
                  + row_number() OVER (ORDER BY t.ord)
         FROM unnest($2::text[]) WITH ORDINALITY AS t(task_id, ord)
         WHERE NOT EXISTS (SELECT 1 FROM client_tasks ct WHERE ct.client_id = $1 AND ct.task_id = t.task_id)`,
          [client.clientId, [...new Set(ids)]],
        );
      },
      undefined,
      true,
    );
  }

  async getClient(clientId: string): Promise<ClientRecord | undefined> {
    const row = (await this.pool.query<ClientRow>('SELECT * FROM clients WHERE client_id = $1', [clientId]))
      .rows[0];
    if (!row) return undefined;
    const tasks = await this.pool.query<TaskRow>(
      `SELECT t.task_id, t.classes FROM client_tasks ct JOIN tasks t ON t.task_id = ct.task_id
       WHERE ct.client_id = $1 ORDER BY ct.position`,
      [clientId],
    );
    return clientFromRow(row, tasks.rows.map(taskFromRow));
  }

  async listClients(): Promise<ClientRecord[]> {
    const [clients, tasks] = await Promise.all([
      this.pool.query<ClientRow>('SELECT * FROM clients ORDER BY registered_at_ms, client_id'),
      this.pool.query<TaskRow & { client_id: string }>(
        `SELECT ct.client_id, t.task_id, t.classes FROM client_tasks ct JOIN tasks t ON t.task_id = ct.task_id
         ORDER BY ct.client_id, ct.position`,
      ),
    ]);
    const byClient = new Map<string, TaskRecord[]>();
    for (const r of tasks.rows) {
      const list = byClient.get(r.client_id) ?? [];
      list.push(taskFromRow(r));
      byClient.set(r.client_id, list);
    }
    return clients.rows.map((row) => clientFromRow(row, byClient.get(row.client_id) ?? []));
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    const row = (
      await this.pool.query<TaskRow>('SELECT task_id, classes FROM tasks WHERE task_id = $1', [taskId])
    ).rows[0];
    return row ? taskFromRow(row) : undefined;
  }

  // --- atom uploads ------------------------------------------------------------------------

  putAtoms(u: AtomUpload): Promise<PutAtomsOutcome> {
    return this.enqueue(async (c): Promise<PutAtomsOutcome> => (await putAtomsBulk(c, [u]))[0]!, u);
  }

  async getRound(clientId: string, taskId: string, round: number): Promise<StoredRound | undefined> {
    const r = await this.pool.query<RoundRow>(
      `SELECT round, received_at_ms, loss, accuracy, samples, atoms FROM atom_uploads
       WHERE client_id = $1 AND task_id = $2 AND round = $3`,
      [clientId, taskId, round],
    );
    return r.rows[0] ? roundFromRow(r.rows[0]) : undefined;
  }

  async getPreviousRound(clientId: string, taskId: string, round: number): Promise<StoredRound | undefined> {
    const r = await this.pool.query<RoundRow>(
      `SELECT round, received_at_ms, loss, accuracy, samples, atoms FROM atom_uploads
       WHERE client_id = $1 AND task_id = $2 AND round < $3 ORDER BY round DESC LIMIT 1`,
      [clientId, taskId, round],
    );
    return r.rows[0] ? roundFromRow(r.rows[0]) : undefined;
  }

  async listRounds(clientId: string, taskId: string, withAtoms: boolean): Promise<StoredRound[]> {
    const r = await this.pool.query<RoundRow>(
      `SELECT round, received_at_ms, loss, accuracy, samples${withAtoms ? ', atoms' : ''} FROM atom_uploads
       WHERE client_id = $1 AND task_id = $2 ORDER BY round`,
      [clientId, taskId],
    );
    return r.rows.map(roundFromRow);
  }

  async lastRounds(clientId: string): Promise<Map<string, number>> {
    const r = await this.pool.query<{ task_id: string; round: number }>(
      'SELECT task_id, max(round) AS round FROM atom_uploads WHERE client_id = $1 GROUP BY task_id',
      [clientId],
    );
    return new Map(r.rows.map((row) => [row.task_id, row.round]));
  }

  async atomsAtRound(round: number): Promise<{ clientId: string; taskId: string; atoms: Buffer }[]> {
    const r = await this.pool.query<{ client_id: string; task_id: string; atoms: Buffer }>(
      'SELECT client_id, task_id, atoms FROM atom_uploads WHERE round = $1 ORDER BY client_id, task_id',
      [round],
    );
    return r.rows.map((row) => ({ clientId: row.client_id, taskId: row.task_id, atoms: row.atoms }));
  }

  async forEachRecentRound(
    fn: (clientId: string, taskId: string, round: number, atoms: Buffer) => void,
    perModel: number,
  ): Promise<void> {
    const r = await this.pool.query<{ client_id: string; task_id: string; round: number; atoms: Buffer }>(
      `SELECT client_id, task_id, round, atoms FROM (
         SELECT client_id, task_id, round, atoms,
                row_number() OVER (PARTITION BY client_id, task_id ORDER BY round DESC) AS rank
         FROM atom_uploads) recent
       WHERE rank <= $1 ORDER BY client_id, task_id, round`,
      [perModel],
    );
    for (const row of r.rows) fn(row.client_id, row.task_id, row.round, row.atoms);
  }

  async countUploads(): Promise<number> {
    const r = await this.pool.query<{ n: number }>('SELECT count(*) AS n FROM atom_uploads');
    return r.rows[0]!.n;
  }

  // --- probe summaries ---------------------------------------------------------------------

  putProbeSummary(p: ProbeSummaryRecord): Promise<void> {
    return this.enqueue(
      async (c) => {
        await c.query(
          `INSERT INTO probe_summaries(request_id, client_id, task_id, round, layer, n, feature_dim, gram, factor_rank, received_at_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           ON CONFLICT (request_id, client_id, task_id, layer) DO UPDATE SET round = excluded.round, n = excluded.n,
             feature_dim = excluded.feature_dim, gram = excluded.gram, factor_rank = excluded.factor_rank,
             received_at_ms = excluded.received_at_ms`,
          [
            p.requestId,
            p.clientId,
            p.taskId,
            p.round,
            p.layer,
            p.n,
            p.featureDim,
            p.gram,
            p.factorRank ?? 0,
            p.receivedAtMs,
          ],
        );
      },
      undefined,
      true,
    );
  }

  async getProbeSummaries(requestId: string): Promise<ProbeSummaryRecord[]> {
    const r = await this.pool.query<ProbeRow>(
      'SELECT * FROM probe_summaries WHERE request_id = $1 ORDER BY client_id, task_id, layer',
      [requestId],
    );
    return r.rows.map(probeFromRow);
  }

  // --- retention ---------------------------------------------------------------------------

  prune(cutoffs: RetentionCutoffs): Promise<PrunedCounts> {
    return this.enqueue(async (c) => {
      const probeSummaries =
        cutoffs.probeSummariesBeforeMs === undefined
          ? 0
          : ((
              await c.query('DELETE FROM probe_summaries WHERE received_at_ms < $1', [
                cutoffs.probeSummariesBeforeMs,
              ])
            ).rowCount ?? 0);
      const reports =
        cutoffs.reportsBeforeMs === undefined
          ? 0
          : ((await c.query('DELETE FROM reports WHERE created_at_ms < $1', [cutoffs.reportsBeforeMs]))
              .rowCount ?? 0);
      return { probeSummaries, reports };
    });
  }

  removeClient(clientId: string): Promise<RemovedClient | undefined> {
    return this.enqueue(async (c) => {
      const released =
        ((await c.query('DELETE FROM client_credentials WHERE client_id = $1', [clientId])).rowCount ?? 0) >
        0;
      const found = await c.query('SELECT 1 FROM clients WHERE client_id = $1', [clientId]);
      if (found.rowCount === 0) return released ? { uploads: 0, probeSummaries: 0 } : undefined;
      const uploads =
        (await c.query('DELETE FROM atom_uploads WHERE client_id = $1', [clientId])).rowCount ?? 0;
      const probeSummaries =
        (await c.query('DELETE FROM probe_summaries WHERE client_id = $1', [clientId])).rowCount ?? 0;
      await c.query('DELETE FROM client_tasks WHERE client_id = $1', [clientId]);
      await c.query('DELETE FROM clients WHERE client_id = $1', [clientId]);
      return { uploads, probeSummaries };
    });
  }

  // --- client identity ---------------------------------------------------------------------

  bindClientCredential(clientId: string, credentialSha256: string, boundAtMs: number): Promise<string> {
    return this.enqueue(
      async (c) => {
        // ON CONFLICT DO NOTHING waits for a concurrent first binding to commit, so the SELECT
        // in the same transaction sees whichever binding won.
        await c.query(
          `INSERT INTO client_credentials(client_id, credential_sha256, bound_at_ms) VALUES ($1, $2, $3)
         ON CONFLICT (client_id) DO NOTHING`,
          [clientId, credentialSha256, boundAtMs],
        );
        const r = await c.query<{ credential_sha256: string }>(
          'SELECT credential_sha256 FROM client_credentials WHERE client_id = $1',
          [clientId],
        );
        return r.rows[0]!.credential_sha256;
      },
      undefined,
      true,
    );
  }

  // --- analyses and reports ----------------------------------------------------------------

  putAnalysis(a: AnalysisRecord): Promise<void> {
    const values = [
      a.analysisId,
      a.status,
      a.trigger,
      a.reason,
      JSON.stringify(a.models),
      a.createdAtMs,
      a.startedAtMs ?? null,
      a.finishedAtMs ?? null,
      a.message ?? null,
      a.reportId ?? null,
    ];
    return this.enqueue(async (c) => {
      await c.query(
        `INSERT INTO analyses(analysis_id, status, trigger, reason, models, created_at_ms, started_at_ms, finished_at_ms, message, report_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (analysis_id) DO UPDATE SET status = excluded.status, trigger = excluded.trigger,
           reason = excluded.reason, models = excluded.models, started_at_ms = excluded.started_at_ms,
           finished_at_ms = excluded.finished_at_ms, message = excluded.message, report_id = excluded.report_id`,
        values,
      );
    });
  }

  async getAnalysis(analysisId: string): Promise<AnalysisRecord | undefined> {
    const r = await this.pool.query<AnalysisRow>('SELECT * FROM analyses WHERE analysis_id = $1', [
      analysisId,
    ]);
    return r.rows[0] ? analysisFromRow(r.rows[0]) : undefined;
  }

  async listAnalyses(limit: number): Promise<AnalysisRecord[]> {
    const r = await this.pool.query<AnalysisRow>(
      'SELECT * FROM analyses ORDER BY created_at_ms DESC, analysis_id DESC LIMIT $1',
      [limit],
    );
    return r.rows.map(analysisFromRow);
  }

  putReport(r: ReportRecord): Promise<void> {
    return this.enqueue(async (c) => {
      await c.query(
        `INSERT INTO reports(report_id, created_at_ms, trigger, models, analysis_id, json, html)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (report_id) DO UPDATE SET created_at_ms = excluded.created_at_ms, trigger = excluded.trigger,
           models = excluded.models, analysis_id = excluded.analysis_id, json = excluded.json, html = excluded.html`,
        [r.reportId, r.createdAtMs, r.trigger, r.models, r.analysisId ?? null, r.json, r.html],
      );
    });
  }

  async getReport(reportId: string): Promise<ReportRecord | undefined> {
    const row = (await this.pool.query<ReportRow>('SELECT * FROM reports WHERE report_id = $1', [reportId]))
      .rows[0];
    return row ? { ...reportSummaryFromRow(row), json: row.json, html: row.html } : undefined;
  }

  async listReports(limit: number, before?: ReportCursor): Promise<ReportSummaryRecord[]> {
    const r = before
      ? await this.pool.query<ReportRow>(
          `SELECT report_id, created_at_ms, trigger, models, analysis_id FROM reports
           WHERE (created_at_ms, report_id) < ($2, $3)
           ORDER BY created_at_ms DESC, report_id DESC LIMIT $1`,
          [limit, before.createdAtMs, before.reportId],
        )
      : await this.pool.query<ReportRow>(
          `SELECT report_id, created_at_ms, trigger, models, analysis_id FROM reports
           ORDER BY created_at_ms DESC, report_id DESC LIMIT $1`,
          [limit],
        );
    return r.rows.map(reportSummaryFromRow);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Commit whatever is queued or committing, then let the connections go.
    while (this.flushing || this.scheduled || this.queue.length > 0) {
      if (this.flushing) await this.flushing;
      else await new Promise((r) => setImmediate(r));
    }
    await this.pool.end();
  }
}

/**
 * Stores uploads in one statement, in order, with putAtoms' outcome for each: the first upload of a
 * (client, task, round) not yet stored is inserted ('accepted'); any other is compared with the
 * stored atoms — stored before this statement, or by an earlier upload in it — 'duplicate' when
 * equal, 'conflict' otherwise. Clients whose uploads were inserted are marked seen.
 */
async function putAtomsBulk(c: pg.PoolClient, uploads: AtomUpload[]): Promise<PutAtomsOutcome[]> {
  const column = <T>(f: (u: AtomUpload) => T) => uploads.map(f);
  const r = await c.query<{ ord: number; inserted: boolean; existing: Buffer | null }>(
    `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[], $5::float8[], $6::float8[],
                            $7::int[], $8::int[], $9::bytea[])
         WITH ORDINALITY AS u(client_id, task_id, round, received_at_ms, loss, accuracy, samples,
                              template_version, atoms, ord)),
     firsts AS (
       SELECT DISTINCT ON (client_id, task_id, round) * FROM input ORDER BY client_id, task_id, round, ord),
     ins AS (
       INSERT INTO atom_uploads(client_id, task_id, round, received_at_ms, loss, accuracy, samples, template_version, atoms)
       SELECT client_id, task_id, round, received_at_ms, loss, accuracy, samples, template_version, atoms FROM firsts
       ON CONFLICT DO NOTHING
       RETURNING client_id, task_id, round, received_at_ms),
     touch AS (
       UPDATE clients c SET last_seen_ms = greatest(c.last_seen_ms, m.seen)
       FROM (SELECT client_id, max(received_at_ms) AS seen FROM ins GROUP BY client_id) m
       WHERE c.client_id = m.client_id)
     SELECT i.ord,
            EXISTS (SELECT 1 FROM firsts f JOIN ins x
                      ON x.client_id = f.client_id AND x.task_id = f.task_id AND x.round = f.round
                    WHERE f.ord = i.ord) AS inserted,
            a.atoms AS existing
     FROM input i
     LEFT JOIN atom_uploads a ON a.client_id = i.client_id AND a.task_id = i.task_id AND a.round = i.round
     ORDER BY i.ord`,
    [
      column((u) => u.clientId),
      column((u) => u.taskId),
      column((u) => u.round),
      column((u) => u.receivedAtMs),
      column((u) => u.stats.loss),
      column((u) => u.stats.accuracy),
      column((u) => u.stats.samples),
      column((u) => u.templateVersion),
      column((u) => u.atoms),
    ],
  );
  // The first upload of each key in this statement, for later ones that repeat it.
  const firstOf = new Map<string, AtomUpload>();
  return r.rows.map((row, i): PutAtomsOutcome => {
    const u = uploads[i]!;
    const key = `${u.clientId}\n${u.taskId}\n${u.round}`;
    if (row.inserted) {
      firstOf.set(key, u);
      return 'accepted';
    }
    // The row as it was before this statement (the snapshot); else the earlier upload in it.
    const stored = row.existing ?? firstOf.get(key)?.atoms;
    return stored?.equals(u.atoms) ? 'duplicate' : 'conflict';
  });
}

/** A database error seen by a writer: the caller maps it to UNAVAILABLE ("retry later"). */
function unavailable(err: unknown): Error {
  const e = err as Error & { code?: string };
  return new Error(`database unavailable: ${e.message}${e.code ? ` (${e.code})` : ''}`, { cause: err });
}

/** Hides the password of a connection string. */
function redact(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the PostgreSQL database';
  }
}
