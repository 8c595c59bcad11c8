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
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
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
  StorageConflictError,
  type StoredRound,
  type TaskRecord,
} from './types.js';

export const DATABASE_FILE = 'atomlens.db';

export interface SqliteStorageOptions {
  /** Directory holding atomlens.db (created if missing). ':memory:' for tests that need no file. */
  dataDir: string;
  /** "full" (default) fsyncs every commit; "normal" trades power-loss durability for speed. */
  synchronous?: 'full' | 'normal';
  /** Upper bound on writes per group-commit transaction. */
  maxBatch?: number;
}

interface QueuedWrite {
  apply: () => unknown;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
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
];

export class SqliteStorage implements Storage {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly maxBatch: number;
  private queue: QueuedWrite[] = [];
  private flushScheduled = false;
  private closed = false;
  private observer: CommitObserver | undefined;
  private readonly stmt: ReturnType<SqliteStorage['prepare']>;

  constructor(options: SqliteStorageOptions) {
    if (options.dataDir === ':memory:') {
      this.path = ':memory:';
    } else {
      mkdirSync(options.dataDir, { recursive: true });
      this.path = join(options.dataDir, DATABASE_FILE);
    }
    this.maxBatch = options.maxBatch ?? 4096;
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
    this.stmt = this.prepare();
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
      setMeta: db.prepare(
        'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
      ),
      getClient: db.prepare('SELECT * FROM clients WHERE client_id = ?'),
      listClients: db.prepare('SELECT * FROM clients ORDER BY registered_at_ms, client_id'),
      clientTasks: db.prepare(
        'SELECT t.task_id, t.classes FROM client_tasks ct JOIN tasks t ON t.task_id = ct.task_id WHERE ct.client_id = ? ORDER BY ct.position',
      ),
      allClientTasks: db.prepare(
        'SELECT ct.client_id, t.task_id, t.classes FROM client_tasks ct JOIN tasks t ON t.task_id = ct.task_id ORDER BY ct.client_id, ct.position',
      ),
      upsertClient:
        db.prepare(`INSERT INTO clients(client_id, alpha_fingerprint, fingerprint_match, client_version, registered_at_ms, last_seen_ms)
        VALUES (@clientId, @alphaFingerprint, @fingerprintMatch, @clientVersion, @registeredAtMs, @registeredAtMs)
        ON CONFLICT(client_id) DO UPDATE SET alpha_fingerprint = excluded.alpha_fingerprint,
          fingerprint_match = excluded.fingerprint_match, client_version = excluded.client_version,
          last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)`),
      getTask: db.prepare('SELECT task_id, classes FROM tasks WHERE task_id = ?'),
      insertTask: db.prepare('INSERT OR IGNORE INTO tasks(task_id, classes) VALUES (?, ?)'),
      maxPosition: db
        .prepare('SELECT coalesce(max(position), -1) FROM client_tasks WHERE client_id = ?')
        .pluck(),
      insertClientTask: db.prepare(
        'INSERT OR IGNORE INTO client_tasks(client_id, task_id, position) VALUES (?, ?, ?)',
      ),
      touchClient: db.prepare('UPDATE clients SET last_seen_ms = max(last_seen_ms, ?) WHERE client_id = ?'),
      getAtoms: db
        .prepare('SELECT atoms FROM atom_uploads WHERE client_id = ? AND task_id = ? AND round = ?')
        .pluck(),
      insertAtoms:
        db.prepare(`INSERT INTO atom_uploads(client_id, task_id, round, received_at_ms, loss, accuracy, samples, template_version, atoms)
        VALUES (@clientId, @taskId, @round, @receivedAtMs, @loss, @accuracy, @samples, @templateVersion, @atoms)`),
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
      putProbe:
        db.prepare(`INSERT INTO probe_summaries(request_id, client_id, task_id, round, layer, n, feature_dim, gram, received_at_ms)
        VALUES (@requestId, @clientId, @taskId, @round, @layer, @n, @featureDim, @gram, @receivedAtMs)
        ON CONFLICT(request_id, client_id, task_id, layer) DO UPDATE SET round = excluded.round, n = excluded.n,
          feature_dim = excluded.feature_dim, gram = excluded.gram, received_at_ms = excluded.received_at_ms`),
      getProbes: db.prepare(
        'SELECT * FROM probe_summaries WHERE request_id = ? ORDER BY client_id, task_id, layer',
      ),
      putAnalysis:
        db.prepare(`INSERT INTO analyses(analysis_id, status, trigger, reason, models, created_at_ms, started_at_ms, finished_at_ms, message, report_id)
        VALUES (@analysisId, @status, @trigger, @reason, @models, @createdAtMs, @startedAtMs, @finishedAtMs, @message, @reportId)
        ON CONFLICT(analysis_id) DO UPDATE SET status = excluded.status, trigger = excluded.trigger, reason = excluded.reason,
          models = excluded.models, started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms,
          message = excluded.message, report_id = excluded.report_id`),
      getAnalysis: db.prepare('SELECT * FROM analyses WHERE analysis_id = ?'),
      listAnalyses: db.prepare(
        'SELECT * FROM analyses ORDER BY created_at_ms DESC, analysis_id DESC LIMIT ?',
      ),
      putReport:
        db.prepare(`INSERT INTO reports(report_id, created_at_ms, trigger, models, analysis_id, json, html)
        VALUES (@reportId, @createdAtMs, @trigger, @models, @analysisId, @json, @html)
        ON CONFLICT(report_id) DO UPDATE SET created_at_ms = excluded.created_at_ms, trigger = excluded.trigger,
          models = excluded.models, analysis_id = excluded.analysis_id, json = excluded.json, html = excluded.html`),
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

  /** Queues a write; it runs inside the next group-commit transaction. */
  private enqueue<T>(apply: () => T): Promise<T> {
    if (this.closed) return Promise.reject(new Error('storage is closed'));
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ apply, resolve: resolve as (v: unknown) => void, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // setImmediate runs after the I/O callbacks of this turn, so every request that arrived
        // together lands in the same batch.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.commitBatch(batch);
    }
  }

  private commitBatch(batch: QueuedWrite[]): void {
    const started = performance.now();
    const results: unknown[] = [];
    try {
      this.db.transaction(() => {
        for (const w of batch) results.push(w.apply());
      })();
    } catch {
      // One write failed and rolled the batch back: commit each on its own so only it fails.
      for (const w of batch) {
        try {
          const result = this.db.transaction(w.apply)();
          w.resolve(result);
        } catch (err) {
          w.reject(err);
        }
      }
      this.observer?.((performance.now() - started) / 1000, batch.length);
      return;
    }
    this.observer?.((performance.now() - started) / 1000, batch.length);
    batch.forEach((w, i) => {
      w.resolve(results[i]);
    });
  }

  // --- meta --------------------------------------------------------------------------------

  async getMeta(key: string): Promise<string | undefined> {
    return this.stmt.getMeta.get(key) as string | undefined;
  }

  setMeta(key: string, value: string): Promise<void> {
    return this.enqueue(() => {
      this.stmt.setMeta.run(key, value);
    });
  }

  // --- clients and tasks -------------------------------------------------------------------

  upsertClient(client: Omit<ClientRecord, 'tasks' | 'lastSeenMs'>, tasks: TaskRecord[]): Promise<void> {
    return this.enqueue(() => {
      for (const t of tasks) {
        const row = this.stmt.getTask.get(t.taskId) as TaskRow | undefined;
        const existing = row ? taskFromRow(row) : undefined;
        if (existing && !sameClasses(existing.classes, t.classes)) {
          throw new StorageConflictError(
            `task '${t.taskId}' is already defined with classes [${existing.classes.join(', ')}], ` +
              `not [${t.classes.join(', ')}]; use another task id for a different class set`,
          );
        }
      }
      this.stmt.upsertClient.run({
        clientId: client.clientId,
        alphaFingerprint: client.alphaFingerprint,
        fingerprintMatch: client.fingerprintMatch ? 1 : 0,
        clientVersion: client.clientVersion,
        registeredAtMs: client.registeredAtMs,
      });
      let position = (this.stmt.maxPosition.get(client.clientId) as number) + 1;
      for (const t of tasks) {
        this.stmt.insertTask.run(t.taskId, JSON.stringify(t.classes));
        if (this.stmt.insertClientTask.run(client.clientId, t.taskId, position).changes > 0) position++;
      }
    });
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
    return this.enqueue((): PutAtomsOutcome => {
      const existing = this.stmt.getAtoms.get(upload.clientId, upload.taskId, upload.round) as
        | Buffer
        | undefined;
      if (existing) return existing.equals(upload.atoms) ? 'duplicate' : 'conflict';
      this.stmt.insertAtoms.run({
        clientId: upload.clientId,
        taskId: upload.taskId,
        round: upload.round,
        receivedAtMs: upload.receivedAtMs,
        loss: upload.stats.loss,
        accuracy: upload.stats.accuracy,
        samples: upload.stats.samples,
        templateVersion: upload.templateVersion,
        atoms: upload.atoms,
      });
      this.stmt.touchClient.run(upload.receivedAtMs, upload.clientId);
      return 'accepted';
    });
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
    return this.enqueue(() => {
      this.stmt.putProbe.run({ ...summary });
    });
  }

  async getProbeSummaries(requestId: string): Promise<ProbeSummaryRecord[]> {
    return (this.stmt.getProbes.all(requestId) as ProbeRow[]).map(probeFromRow);
  }

  // --- retention ---------------------------------------------------------------------------

  prune(cutoffs: RetentionCutoffs): Promise<PrunedCounts> {
    return this.enqueue(() => ({
      probeSummaries:
        cutoffs.probeSummariesBeforeMs === undefined
          ? 0
          : this.db
              .prepare('DELETE FROM probe_summaries WHERE received_at_ms < ?')
              .run(cutoffs.probeSummariesBeforeMs).changes,
      reports:
        cutoffs.reportsBeforeMs === undefined
          ? 0
          : this.db.prepare('DELETE FROM reports WHERE created_at_ms < ?').run(cutoffs.reportsBeforeMs)
              .changes,
    }));
  }

  removeClient(clientId: string): Promise<RemovedClient | undefined> {
    return this.enqueue(() => {
      if (!this.db.prepare('SELECT 1 FROM clients WHERE client_id = ?').get(clientId)) return undefined;
      const uploads = this.db.prepare('DELETE FROM atom_uploads WHERE client_id = ?').run(clientId).changes;
      const probeSummaries = this.db
        .prepare('DELETE FROM probe_summaries WHERE client_id = ?')
        .run(clientId).changes;
      this.db.prepare('DELETE FROM client_tasks WHERE client_id = ?').run(clientId);
      this.db.prepare('DELETE FROM clients WHERE client_id = ?').run(clientId);
      return { uploads, probeSummaries };
    });
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
    return this.enqueue(() => {
      this.stmt.putAnalysis.run(row);
    });
  }

  async getAnalysis(analysisId: string): Promise<AnalysisRecord | undefined> {
    const row = this.stmt.getAnalysis.get(analysisId) as AnalysisRow | undefined;
    return row ? analysisFromRow(row) : undefined;
  }

  async listAnalyses(limit: number): Promise<AnalysisRecord[]> {
    return (this.stmt.listAnalyses.all(limit) as AnalysisRow[]).map(analysisFromRow);
  }

  putReport(r: ReportRecord): Promise<void> {
    const row = { ...r, analysisId: r.analysisId ?? null };
    return this.enqueue(() => {
      this.stmt.putReport.run(row);
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
    this.flush();
    this.db.close();
  }
}
