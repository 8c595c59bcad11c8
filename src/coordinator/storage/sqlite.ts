// Embedded storage: one SQLite file (better-sqlite3) under the data directory, in WAL mode.
//
// Durability: every write goes through a commit queue. Writes that arrive in the same event-loop
// turn are committed together in one transaction (group commit) and each promise resolves only
// after that COMMIT returned. With journal_mode=WAL and synchronous=FULL, SQLite fsyncs the WAL on
// every commit, so a resolved write survives a process kill *and* a power cut; group commit pays
// that fsync once per batch instead of once per upload, which is what makes thousands of acked
// uploads per second possible. synchronous=NORMAL (configurable) would skip the per-commit fsync:
// still safe against a killed process (the WAL is in the OS page cache) but the last commits can
// be lost on power failure — so it is not the default, because we promise "acknowledged = kept".
//
// Threads: the commits run on a storage writer thread with a connection of its own
// (sqlite-writer-thread.ts), so a commit waiting for its fsync never stalls the event loop that
// serves gRPC; batches that arrive while one commits join the next transaction. Reads use this
// thread's connection: WAL readers neither wait for nor block the writer, and see every commit
// that has returned. An in-memory database (one connection only) commits in this thread.
//
// Backpressure: writes from clients (uploads, registrations, probe summaries) are refused with
// StorageBusyError while maxQueuedWrites writes wait or commit, so a stalled disk bounds memory
// instead of growing the queue; the coordinator answers RESOURCE_EXHAUSTED with a retry hint.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MessagePort, Worker } from 'node:worker_threads';
import { MessageChannel } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { moduleUrl, startWorker } from '../../shared/runtime.js';
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
  type TaskRow,
  taskFromRow,
} from './rows.js';
import type { WriterReply, WriterRequest, WriterThreadData } from './sqlite-writer-thread.js';
import {
  outcomeError,
  packPayloads,
  SqliteWriter,
  type WriteOp,
  type WriteOutcome,
  type WriteResults,
} from './sqlite-writes.js';
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
  type StoredRound,
  type TaskRecord,
  type WriteQueueState,
} from './types.js';

export const DATABASE_FILE = 'atomlens.db';

export interface SqliteStorageOptions {
  /** Directory holding atomlens.db (created if missing). ':memory:' for tests that need no file. */
  dataDir: string;
  /** "full" (default) fsyncs every commit; "normal" trades power-loss durability for speed. */
  synchronous?: 'full' | 'normal';
  /** Upper bound on writes per group-commit transaction. */
  maxBatch?: number;
  /** Client writes waiting or committing beyond which new ones are refused (StorageBusyError). */
  maxQueuedWrites?: number;
}

interface QueuedWrite {
  op: WriteOp;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

const WRITER_ENTRY = moduleUrl('./sqlite-writer-thread.js', import.meta.url);

/** Commits batches of writes: on the writer thread, or in this thread for ':memory:'. */
interface Committer {
  commit(ops: WriteOp[]): Promise<WriteOutcome[]>;
  close(): Promise<void>;
}

/** Commits in the calling thread (an in-memory database cannot be shared with another thread). */
class InlineCommitter implements Committer {
  private readonly writer: SqliteWriter;
  constructor(
    db: Database.Database,
    private readonly observe: (seconds: number, writes: number) => void,
  ) {
    this.writer = new SqliteWriter(db);
  }
  async commit(ops: WriteOp[]): Promise<WriteOutcome[]> {
    const started = performance.now();
    const outcomes = this.writer.commit(ops);
    this.observe((performance.now() - started) / 1000, ops.length);
    return outcomes;
  }
  async close(): Promise<void> {}
}

/** Sends batches to the storage writer thread; each resolves when the thread has committed it. */
class ThreadCommitter implements Committer {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (o: WriteOutcome[]) => void; reject: (e: Error) => void }
  >();
  private failure: Error | undefined;
  private closed: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;

  constructor(
    data: Omit<WriterThreadData, 'port'>,
    private readonly observe: (seconds: number, writes: number) => void,
  ) {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = startWorker(WRITER_ENTRY, {
      workerData: { ...data, port: port2 } satisfies WriterThreadData,
      transferList: [port2],
    });
    this.port.on('message', (reply: WriterReply) => this.onReply(reply));
    this.worker.on('error', (err) =>
      this.fail(new Error(`the storage writer thread failed: ${err.message}`)),
    );
    this.worker.on('exit', (code) => {
      // After a clean close the 'closed' reply has come first (same port, after every commit).
      this.fail(new Error(`the storage writer thread exited (code ${code})`));
      this.resolveClosed?.();
    });
    this.idle();
  }

  /** Nothing to commit: the thread does not keep the process alive. */
  private idle(): void {
    this.worker.unref();
    this.port.unref();
  }

  private onReply(reply: WriterReply): void {
    if (reply.type === 'failed')
      this.fail(new Error(`cannot open the database for writing: ${reply.message}`));
    if (reply.type === 'closed') this.resolveClosed?.();
    if (reply.type !== 'committed') return;
    this.observe(reply.seconds, reply.writes);
    for (const r of reply.results) {
      const w = this.waiting.get(r.id);
      this.waiting.delete(r.id);
      w?.resolve(r.outcomes);
    }
    if (this.waiting.size === 0) this.idle();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiting.values()) w.reject(this.failure);
    this.waiting.clear();
  }

  commit(ops: WriteOp[]): Promise<WriteOutcome[]> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    const request: WriterRequest = { type: 'commit', id, ops };
    this.worker.ref();
    this.port.ref();
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.port.postMessage(request, packPayloads(ops));
    });
  }

  /** Resolves once every batch sent has committed and the thread has closed its connection. */
  close(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.resolveClosed = resolve;
      if (this.failure) {
        void this.worker.terminate();
        return;
      }
      this.worker.ref();
      this.port.postMessage({ type: 'close' } satisfies WriterRequest);
    });
    return this.closed;
  }
}

/**
 * Numbered schema steps. Step 1 is the schema from before versioned migrations (hence IF NOT
 * EXISTS: a store written then gets it recorded without change). Add steps; never edit one that
 * has shipped.
 * @internal exported for its tests
 */
export const SQLITE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'initial schema: registry, atom uploads, probe summaries, analyses, reports',
    sql: `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS clients (
  client_id TEXT PRIMARY KEY,
  alpha_fingerprint TEXT NOT NULL,
  fingerprint_match INTEGER NOT NULL,
  client_version TEXT NOT NULL,
  registered_at_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
  task_id TEXT PRIMARY KEY,
  classes TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS client_tasks (
  client_id TEXT NOT NULL REFERENCES clients(client_id),
  task_id TEXT NOT NULL REFERENCES tasks(task_id),
  position INTEGER NOT NULL,
  PRIMARY KEY (client_id, task_id)
);
CREATE TABLE IF NOT EXISTS atom_uploads (
  client_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  received_at_ms INTEGER NOT NULL,
  loss REAL NOT NULL,
  accuracy REAL NOT NULL,
  samples INTEGER NOT NULL,
  template_version INTEGER NOT NULL,
  atoms BLOB NOT NULL,
  PRIMARY KEY (client_id, task_id, round)
);
CREATE INDEX IF NOT EXISTS atom_uploads_by_round ON atom_uploads(round);
CREATE TABLE IF NOT EXISTS probe_summaries (
  request_id TEXT NOT NULL,
  client_id TEXT NOT NULL,
  task_id TEXT NOT NULL,
  round INTEGER NOT NULL,
  layer TEXT NOT NULL,
  n INTEGER NOT NULL,
  feature_dim INTEGER NOT NULL,
  gram BLOB NOT NULL,
  received_at_ms INTEGER NOT NULL,
  PRIMARY KEY (request_id, client_id, task_id, layer)
);
CREATE TABLE IF NOT EXISTS analyses (
  analysis_id TEXT PRIMARY KEY,
  status TEXT NOT NULL,
  trigger TEXT NOT NULL,
  reason TEXT NOT NULL,
  models TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  started_at_ms INTEGER,
  finished_at_ms INTEGER,
  message TEXT,
  report_id TEXT
);
CREATE TABLE IF NOT EXISTS reports (
  report_id TEXT PRIMARY KEY,
  created_at_ms INTEGER NOT NULL,
  trigger TEXT NOT NULL,
  models INTEGER NOT NULL,
  analysis_id TEXT,
  json TEXT NOT NULL,
  html TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reports_by_time ON reports(created_at_ms);
`,
  },
  {
    version: 2,
    name: 'client_credentials: the SHA-256 of the credential each client id is bound to',
    sql: `
CREATE TABLE client_credentials (
  client_id TEXT PRIMARY KEY,
  credential_sha256 TEXT NOT NULL,
  bound_at_ms INTEGER NOT NULL
);
`,
  },
  {
    version: 3,
    name: 'probe_summaries.factor_rank: a layer sent as an n × r factor of its Gram matrix (0 = the Gram)',
    sql: `
ALTER TABLE probe_summaries ADD COLUMN factor_rank INTEGER NOT NULL DEFAULT 0;
`,
  },
];

export class SqliteStorage implements Storage {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly maxBatch: number;
  private readonly maxQueuedWrites: number;
  private readonly synchronous: 'full' | 'normal';
  private queue: QueuedWrite[] = [];
  /** Writes queued or committing. */
  private pending = 0;
  /** Client writes refused because the queue was full. */
  private refused = 0;
  private flushScheduled = false;
  /** A batch is with the committer. */
  private committing = false;
  /** close() waiting for the last batch to commit. */
  private readonly drained: (() => void)[] = [];
  private closed = false;
  private observer: CommitObserver | undefined;
  private committer: Committer | undefined;
  private readonly statements: ReturnType<SqliteStorage['prepare']>;

  constructor(options: SqliteStorageOptions) {
    if (options.dataDir === ':memory:') {
      this.path = ':memory:';
    } else {
      mkdirSync(options.dataDir, { recursive: true });
      this.path = join(options.dataDir, DATABASE_FILE);
    }
    this.maxBatch = options.maxBatch ?? 4096;
    this.maxQueuedWrites = options.maxQueuedWrites ?? 10_000;
    this.synchronous = options.synchronous ?? 'full';
    try {
      this.db = new Database(this.path);
    } catch (err) {
      throw new Error(`cannot open the database ${this.path}: ${(err as Error).message}`);
    }
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.db.pragma('foreign_keys = ON');
    // Another coordinator on the same file would interleave writes; fail fast instead of waiting.
    this.db.pragma('busy_timeout = 2000');
    try {
      this.migrate();
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.statements = this.prepare();
  }

  /** The prepared reads; once close() has begun, a read is refused like a write. */
  private get stmt(): ReturnType<SqliteStorage['prepare']> {
    if (this.closed) throw new StorageClosedError();
    return this.statements;
  }

  private migrate(): void {
    const db = this.db;
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at_ms INTEGER NOT NULL)`);
    const applied = db.prepare('SELECT version FROM schema_migrations').pluck().all() as number[];
    // Stores from before the migrations table carry their version in meta instead.
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    const legacy = hasMeta
      ? (db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get() as
          | string
          | undefined)
      : undefined;
    const record = db.prepare(
      'INSERT OR IGNORE INTO schema_migrations(version, name, applied_at_ms) VALUES (?, ?, ?)',
    );
    if (legacy !== undefined && applied.length === 0) {
      const version = Number(legacy);
      pendingMigrations(SQLITE_MIGRATIONS, [version], this.path); // refuses a newer store
      for (const m of SQLITE_MIGRATIONS.slice(0, version)) record.run(m.version, m.name, Date.now());
      applied.push(...SQLITE_MIGRATIONS.slice(0, version).map((m) => m.version));
    }
    for (const m of pendingMigrations(SQLITE_MIGRATIONS, applied, this.path)) {
      db.transaction(() => {
        db.exec(m.sql);
        record.run(m.version, m.name, Date.now());
      })();
    }
    // Kept for atomlens versions before the migrations table, which refuse any other version.
    db.prepare(
      "INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    ).run(String(latestVersion(SQLITE_MIGRATIONS)));
  }

  private prepare() {
    const db = this.db;
    return {
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?').pluck(),
      getClient: db.prepare('SELECT * FROM clients WHERE client_id = ?'),
      listClients: db.prepare('SELECT * FROM clients ORDER BY registered_at_ms, client_id'),
      clientTasks: db.prepare(
        'SELECT t.task_id, t.classes FROM client_tasks ct JOIN tasks t ON t.task_id = ct.task_id WHERE ct.client_id = ? ORDER BY ct.position',
      ),
      allClientTasks: db.prepare(
        'SELECT ct.client_id, t.task_id, t.classes FROM client_tasks ct JOIN tasks t ON t.task_id = ct.task_id ORDER BY ct.client_id, ct.position',
      ),
      getTask: db.prepare('SELECT task_id, classes FROM tasks WHERE task_id = ?'),
      getRound: db.prepare(
        'SELECT round, received_at_ms, loss, accuracy, samples, atoms FROM atom_uploads WHERE client_id = ? AND task_id = ? AND round = ?',
      ),
      previousRound: db.prepare(
        'SELECT round, received_at_ms, loss, accuracy, samples, atoms FROM atom_uploads WHERE client_id = ? AND task_id = ? AND round < ? ORDER BY round DESC LIMIT 1',
      ),
      listRounds: db.prepare(
        'SELECT round, received_at_ms, loss, accuracy, samples FROM atom_uploads WHERE client_id = ? AND task_id = ? ORDER BY round',
      ),
      listRoundsAtoms: db.prepare(
        'SELECT round, received_at_ms, loss, accuracy, samples, atoms FROM atom_uploads WHERE client_id = ? AND task_id = ? ORDER BY round',
      ),
      lastRounds: db.prepare(
        'SELECT task_id, max(round) AS round FROM atom_uploads WHERE client_id = ? GROUP BY task_id',
      ),
      atomsAtRound: db.prepare(
        'SELECT client_id, task_id, atoms FROM atom_uploads WHERE round = ? ORDER BY client_id, task_id',
      ),
      recentRounds: db.prepare(`SELECT client_id, task_id, round, atoms FROM (
          SELECT client_id, task_id, round, atoms,
                 row_number() OVER (PARTITION BY client_id, task_id ORDER BY round DESC) AS rank
          FROM atom_uploads)
        WHERE rank <= ? ORDER BY client_id, task_id, round`),
      countUploads: db.prepare('SELECT count(*) FROM atom_uploads').pluck(),
      getProbes: db.prepare(
        'SELECT * FROM probe_summaries WHERE request_id = ? ORDER BY client_id, task_id, layer',
      ),
      getAnalysis: db.prepare('SELECT * FROM analyses WHERE analysis_id = ?'),
      listAnalyses: db.prepare(
        'SELECT * FROM analyses ORDER BY created_at_ms DESC, analysis_id DESC LIMIT ?',
      ),
      getReport: db.prepare('SELECT * FROM reports WHERE report_id = ?'),
      listReports: db.prepare(
        'SELECT report_id, created_at_ms, trigger, models, analysis_id FROM reports ORDER BY created_at_ms DESC, report_id DESC LIMIT ?',
      ),
      listReportsBefore: db.prepare(
        `SELECT report_id, created_at_ms, trigger, models, analysis_id FROM reports
          WHERE created_at_ms < ? OR (created_at_ms = ? AND report_id < ?)
          ORDER BY created_at_ms DESC, report_id DESC LIMIT ?`,
      ),
    };
  }

  onCommit(observer: CommitObserver): void {
    this.observer = observer;
  }

  // --- the write path ----------------------------------------------------------------------

  writeQueue(): WriteQueueState {
    return { queued: this.pending, limit: this.maxQueuedWrites, refused: this.refused };
  }

  private committerOf(): Committer {
    const observe = (seconds: number, writes: number) => this.observer?.(seconds, writes);
    this.committer ??=
      this.path === ':memory:'
        ? new InlineCommitter(this.db, observe)
        : new ThreadCommitter(
            { path: this.path, synchronous: this.synchronous, maxBatch: this.maxBatch },
            observe,
          );
    return this.committer;
  }

  /**
   * Queues a write; it runs inside the next group-commit transaction. `bounded` writes (those a
   * client causes) are refused while maxQueuedWrites writes are queued or committing.
   */
  private enqueue<K extends WriteOp['kind']>(
    op: Extract<WriteOp, { kind: K }>,
    bounded = false,
  ): Promise<WriteResults[K]> {
    if (this.closed) return Promise.reject(new StorageClosedError());
    if (bounded && this.pending >= this.maxQueuedWrites) {
      this.refused += 1;
      return Promise.reject(new StorageBusyError(this.pending, this.maxQueuedWrites));
    }
    this.pending += 1;
    return new Promise<WriteResults[K]>((resolve, reject) => {
      this.queue.push({ op, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate runs after the I/O callbacks of this turn, so every request that arrived
        // together lands in the same batch.
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * Hands the queue to the committer, one batch at a time: while a batch commits, later writes
   * gather here and go together as the next batch (group commit), so there is one message to the
   * writer thread per commit rather than one per event-loop turn.
   */
  private flush(): void {
    this.flushScheduled = false;
    if (this.committing || this.queue.length === 0) return;
    this.send(this.queue.splice(0, this.maxBatch));
  }

  private send(batch: QueuedWrite[]): void {
    this.committing = true;
    const settle = (w: QueuedWrite, outcome: WriteOutcome) => {
      this.pending -= 1;
      if (outcome.ok) w.resolve(outcome.value);
      else w.reject(outcomeError(outcome));
    };
    const done = () => {
      this.committing = false;
      this.flush();
      if (!this.committing) for (const resolve of this.drained.splice(0)) resolve();
    };
    this.committerOf()
      .commit(batch.map((w) => w.op))
      .then(
        (outcomes) => {
          for (const [i, w] of batch.entries()) settle(w, outcomes[i]!);
        },
        (err: Error) => {
          for (const w of batch) settle(w, { ok: false, name: err.name, message: err.message });
        },
      )
      .finally(done);
  }

  // --- meta --------------------------------------------------------------------------------

  async getMeta(key: string): Promise<string | undefined> {
    return this.stmt.getMeta.get(key) as string | undefined;
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.enqueue({ kind: 'setMeta', key, value });
  }

  // --- clients and tasks -------------------------------------------------------------------

  upsertClient(client: Omit<ClientRecord, 'tasks' | 'lastSeenMs'>, tasks: TaskRecord[]): Promise<void> {
    const { clientId, alphaFingerprint, fingerprintMatch, clientVersion, registeredAtMs } = client;
    return this.enqueue(
      {
        kind: 'upsertClient',
        client: { clientId, alphaFingerprint, fingerprintMatch, clientVersion, registeredAtMs },
        tasks: tasks.map((t) => ({ taskId: t.taskId, classes: [...t.classes] })),
      },
      true,
    );
  }

  async getClient(clientId: string): Promise<ClientRecord | undefined> {
    const row = this.stmt.getClient.get(clientId) as ClientRow | undefined;
    if (!row) return undefined;
    const tasks = (this.stmt.clientTasks.all(clientId) as TaskRow[]).map(taskFromRow);
    return clientFromRow(row, tasks);
  }

  async listClients(): Promise<ClientRecord[]> {
    const tasksByClient = new Map<string, TaskRecord[]>();
    for (const r of this.stmt.allClientTasks.all() as (TaskRow & { client_id: string })[]) {
      let list = tasksByClient.get(r.client_id);
      if (!list) {
        list = [];
        tasksByClient.set(r.client_id, list);
      }
      list.push(taskFromRow(r));
    }
    return (this.stmt.listClients.all() as ClientRow[]).map((row) =>
      clientFromRow(row, tasksByClient.get(row.client_id) ?? []),
    );
  }

  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    const row = this.stmt.getTask.get(taskId) as TaskRow | undefined;
    return row ? taskFromRow(row) : undefined;
  }

  // --- atom uploads ------------------------------------------------------------------------

  putAtoms(upload: AtomUpload): Promise<PutAtomsOutcome> {
    return this.enqueue(
      {
        kind: 'putAtoms',
        row: {
          clientId: upload.clientId,
          taskId: upload.taskId,
          round: upload.round,
          receivedAtMs: upload.receivedAtMs,
          loss: upload.stats.loss,
          accuracy: upload.stats.accuracy,
          samples: upload.stats.samples,
          templateVersion: upload.templateVersion,
          atoms: upload.atoms,
        },
      },
      true,
    );
  }

  async getRound(clientId: string, taskId: string, round: number): Promise<StoredRound | undefined> {
    const row = this.stmt.getRound.get(clientId, taskId, round) as RoundRow | undefined;
    return row ? roundFromRow(row) : undefined;
  }

  async getPreviousRound(clientId: string, taskId: string, round: number): Promise<StoredRound | undefined> {
    const row = this.stmt.previousRound.get(clientId, taskId, round) as RoundRow | undefined;
    return row ? roundFromRow(row) : undefined;
  }

  async listRounds(clientId: string, taskId: string, withAtoms: boolean): Promise<StoredRound[]> {
    const stmt = withAtoms ? this.stmt.listRoundsAtoms : this.stmt.listRounds;
    return (stmt.all(clientId, taskId) as RoundRow[]).map(roundFromRow);
  }

  async lastRounds(clientId: string): Promise<Map<string, number>> {
    const rows = this.stmt.lastRounds.all(clientId) as { task_id: string; round: number }[];
    return new Map(rows.map((r) => [r.task_id, r.round]));
  }

  async atomsAtRound(round: number): Promise<{ clientId: string; taskId: string; atoms: Buffer }[]> {
    return (this.stmt.atomsAtRound.all(round) as { client_id: string; task_id: string; atoms: Buffer }[]).map(
      (r) => ({ clientId: r.client_id, taskId: r.task_id, atoms: r.atoms }),
    );
  }

  async forEachRecentRound(
    fn: (clientId: string, taskId: string, round: number, atoms: Buffer) => void,
    perModel: number,
  ): Promise<void> {
    for (const row of this.stmt.recentRounds.iterate(perModel) as IterableIterator<{
      client_id: string;
      task_id: string;
      round: number;
      atoms: Buffer;
    }>) {
      fn(row.client_id, row.task_id, row.round, row.atoms);
    }
  }

  async countUploads(): Promise<number> {
    return this.stmt.countUploads.get() as number;
  }

  // --- probe summaries ---------------------------------------------------------------------

  putProbeSummary(summary: ProbeSummaryRecord): Promise<void> {
    return this.enqueue({ kind: 'putProbe', row: { ...summary, factorRank: summary.factorRank ?? 0 } }, true);
  }

  async getProbeSummaries(requestId: string): Promise<ProbeSummaryRecord[]> {
    return (this.stmt.getProbes.all(requestId) as ProbeRow[]).map(probeFromRow);
  }

  // --- retention ---------------------------------------------------------------------------

  prune(cutoffs: RetentionCutoffs): Promise<PrunedCounts> {
    return this.enqueue({ kind: 'prune', cutoffs: { ...cutoffs } });
  }

  removeClient(clientId: string): Promise<RemovedClient | undefined> {
    return this.enqueue({ kind: 'removeClient', clientId });
  }

  // --- client identity ---------------------------------------------------------------------

  bindClientCredential(clientId: string, credentialSha256: string, boundAtMs: number): Promise<string> {
    return this.enqueue({ kind: 'bindCredential', clientId, credentialSha256, boundAtMs }, true);
  }

  // --- analyses and reports ----------------------------------------------------------------

  putAnalysis(a: AnalysisRecord): Promise<void> {
    const row = {
      analysisId: a.analysisId,
      status: a.status,
      trigger: a.trigger,
      reason: a.reason,
      models: JSON.stringify(a.models),
      createdAtMs: a.createdAtMs,
      startedAtMs: a.startedAtMs ?? null,
      finishedAtMs: a.finishedAtMs ?? null,
      message: a.message ?? null,
      reportId: a.reportId ?? null,
    };
    return this.enqueue({ kind: 'putAnalysis', row });
  }

  async getAnalysis(analysisId: string): Promise<AnalysisRecord | undefined> {
    const row = this.stmt.getAnalysis.get(analysisId) as AnalysisRow | undefined;
    return row ? analysisFromRow(row) : undefined;
  }

  async listAnalyses(limit: number): Promise<AnalysisRecord[]> {
    return (this.stmt.listAnalyses.all(limit) as AnalysisRow[]).map(analysisFromRow);
  }

  putReport(r: ReportRecord): Promise<void> {
    const { reportId, createdAtMs, trigger, models, json, html } = r;
    return this.enqueue({
      kind: 'putReport',
      row: { reportId, createdAtMs, trigger, models, analysisId: r.analysisId ?? null, json, html },
    });
  }

  async getReport(reportId: string): Promise<ReportRecord | undefined> {
    const row = this.stmt.getReport.get(reportId) as ReportRow | undefined;
    return row ? { ...reportSummaryFromRow(row), json: row.json, html: row.html } : undefined;
  }

  async listReports(limit: number, before?: ReportCursor): Promise<ReportSummaryRecord[]> {
    const rows = before
      ? this.stmt.listReportsBefore.all(before.createdAtMs, before.createdAtMs, before.reportId, limit)
      : this.stmt.listReports.all(limit);
    return (rows as ReportRow[]).map(reportSummaryFromRow);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Everything queued is committed before the committer closes.
    this.flush();
    if (this.committing) await new Promise<void>((resolve) => this.drained.push(resolve));
    await this.committer?.close();
    this.db.close();
  }
}
