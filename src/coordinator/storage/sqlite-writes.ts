// The SQLite write path as data: every write the storage makes is a WriteOp (plain, cloneable
// values), applied by a SqliteWriter that owns one connection and its prepared statements. The
// same writer runs on the storage writer thread (sqlite-writer-thread.ts), where fsync'd commits
// cannot stall the coordinator's event loop, and in the calling thread for an in-memory database
// (which another thread cannot open).
import type Database from 'better-sqlite3';
import { sameClasses, type TaskRow, taskFromRow } from './rows.js';
import {
  type ClientRecord,
  type ProbeSummaryRecord,
  type PrunedCounts,
  type PutAtomsOutcome,
  type RemovedClient,
  type RetentionCutoffs,
  StorageConflictError,
  type TaskRecord,
} from './types.js';

/** Atom upload as the writer stores it. */
export interface AtomsRow {
  clientId: string;
  taskId: string;
  round: number;
  receivedAtMs: number;
  loss: number;
  accuracy: number;
  samples: number;
  templateVersion: number;
  atoms: Uint8Array;
}

/** A probe summary as the writer stores it: any byte array (it may cross a thread), rank explicit. */
export type ProbeRowInput = Omit<ProbeSummaryRecord, 'gram' | 'factorRank'> & {
  gram: Uint8Array;
  /** 0: `gram` is the Gram matrix; r ≥ 1: an n × r factor of it. */
  factorRank: number;
};

export interface AnalysisRowInput {
  analysisId: string;
  status: string;
  trigger: string;
  reason: string;
  models: string;
  createdAtMs: number;
  startedAtMs: number | null;
  finishedAtMs: number | null;
  message: string | null;
  reportId: string | null;
}

export interface ReportRowInput {
  reportId: string;
  createdAtMs: number;
  trigger: string;
  models: number;
  analysisId: string | null;
  json: string;
  html: string;
}

export type WriteOp =
  | { kind: 'setMeta'; key: string; value: string }
  | { kind: 'upsertClient'; client: Omit<ClientRecord, 'tasks' | 'lastSeenMs'>; tasks: TaskRecord[] }
  | { kind: 'putAtoms'; row: AtomsRow }
  | { kind: 'putProbe'; row: ProbeRowInput }
  | { kind: 'putAnalysis'; row: AnalysisRowInput }
  | { kind: 'putReport'; row: ReportRowInput }
  | { kind: 'prune'; cutoffs: RetentionCutoffs }
  | { kind: 'removeClient'; clientId: string }
  | { kind: 'bindCredential'; clientId: string; credentialSha256: string; boundAtMs: number };

/** What each kind of write resolves with. */
export interface WriteResults {
  setMeta: undefined;
  upsertClient: undefined;
  putAtoms: PutAtomsOutcome;
  putProbe: undefined;
  putAnalysis: undefined;
  putReport: undefined;
  prune: PrunedCounts;
  removeClient: RemovedClient | undefined;
  /** The digest the client id is bound to (the given one unless it was bound before). */
  bindCredential: string;
}

/** One write's outcome, as it crosses threads (errors by name and message). */
export type WriteOutcome = { ok: true; value: unknown } | { ok: false; name: string; message: string };

/**
 * Copies the bytes a batch carries (atoms, Gram matrices) into one ArrayBuffer and points the ops
 * at views of it (in place), so the batch crosses to the writer thread as one transfer: no copy
 * per write, and no per-write buffer to allocate. Returns the transfer list.
 */
export function packPayloads(ops: WriteOp[]): ArrayBuffer[] {
  let total = 0;
  for (const op of ops) {
    if (op.kind === 'putAtoms') total += op.row.atoms.byteLength;
    else if (op.kind === 'putProbe') total += op.row.gram.byteLength;
  }
  if (total === 0) return [];
  const buffer = new ArrayBuffer(total);
  let at = 0;
  const place = (bytes: Uint8Array): Uint8Array => {
    const view = new Uint8Array(buffer, at, bytes.byteLength);
    view.set(bytes);
    at += bytes.byteLength;
    return view;
  };
  for (const op of ops) {
    if (op.kind === 'putAtoms') op.row.atoms = place(op.row.atoms);
    else if (op.kind === 'putProbe') op.row.gram = place(op.row.gram);
  }
  return [buffer];
}

/** The error a failed write is rejected with on the caller's side. */
export function outcomeError(outcome: { name: string; message: string }): Error {
  if (outcome.name === 'StorageConflictError') return new StorageConflictError(outcome.message);
  const err = new Error(outcome.message);
  err.name = outcome.name;
  return err;
}

const asBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

export class SqliteWriter {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      setMeta: db.prepare(
        'INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value',
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
      putProbe:
        db.prepare(`INSERT INTO probe_summaries(request_id, client_id, task_id, round, layer, n, feature_dim, gram, factor_rank, received_at_ms)
        VALUES (@requestId, @clientId, @taskId, @round, @layer, @n, @featureDim, @gram, @factorRank, @receivedAtMs)
        ON CONFLICT(request_id, client_id, task_id, layer) DO UPDATE SET round = excluded.round, n = excluded.n,
          feature_dim = excluded.feature_dim, gram = excluded.gram, factor_rank = excluded.factor_rank,
          received_at_ms = excluded.received_at_ms`),
      putAnalysis:
        db.prepare(`INSERT INTO analyses(analysis_id, status, trigger, reason, models, created_at_ms, started_at_ms, finished_at_ms, message, report_id)
        VALUES (@analysisId, @status, @trigger, @reason, @models, @createdAtMs, @startedAtMs, @finishedAtMs, @message, @reportId)
        ON CONFLICT(analysis_id) DO UPDATE SET status = excluded.status, trigger = excluded.trigger, reason = excluded.reason,
          models = excluded.models, started_at_ms = excluded.started_at_ms, finished_at_ms = excluded.finished_at_ms,
          message = excluded.message, report_id = excluded.report_id`),
      putReport:
        db.prepare(`INSERT INTO reports(report_id, created_at_ms, trigger, models, analysis_id, json, html)
        VALUES (@reportId, @createdAtMs, @trigger, @models, @analysisId, @json, @html)
        ON CONFLICT(report_id) DO UPDATE SET created_at_ms = excluded.created_at_ms, trigger = excluded.trigger,
          models = excluded.models, analysis_id = excluded.analysis_id, json = excluded.json, html = excluded.html`),
      pruneProbes: db.prepare('DELETE FROM probe_summaries WHERE received_at_ms < ?'),
      pruneReports: db.prepare('DELETE FROM reports WHERE created_at_ms < ?'),
      clientExists: db.prepare('SELECT 1 FROM clients WHERE client_id = ?'),
      deleteUploads: db.prepare('DELETE FROM atom_uploads WHERE client_id = ?'),
      deleteProbes: db.prepare('DELETE FROM probe_summaries WHERE client_id = ?'),
      deleteClientTasks: db.prepare('DELETE FROM client_tasks WHERE client_id = ?'),
      deleteClient: db.prepare('DELETE FROM clients WHERE client_id = ?'),
      deleteCredential: db.prepare('DELETE FROM client_credentials WHERE client_id = ?'),
      bindCredential: db.prepare(
        'INSERT OR IGNORE INTO client_credentials(client_id, credential_sha256, bound_at_ms) VALUES (?, ?, ?)',
      ),
      boundCredential: db
        .prepare('SELECT credential_sha256 FROM client_credentials WHERE client_id = ?')
        .pluck(),
    };
  }

  /** Applies one write inside the caller's transaction. */
  apply(op: WriteOp): unknown {
    const s = this.stmt;
    switch (op.kind) {
      case 'setMeta':
        s.setMeta.run(op.key, op.value);
        return undefined;
      case 'upsertClient':
        return this.upsertClient(op.client, op.tasks);
      case 'putAtoms': {
        const row = op.row;
        const atoms = asBuffer(row.atoms);
        const existing = s.getAtoms.get(row.clientId, row.taskId, row.round) as Buffer | undefined;
        if (existing) return existing.equals(atoms) ? 'duplicate' : 'conflict';
        s.insertAtoms.run({ ...row, atoms });
        s.touchClient.run(row.receivedAtMs, row.clientId);
        return 'accepted';
      }
      case 'putProbe':
        s.putProbe.run({ ...op.row, gram: asBuffer(op.row.gram) });
        return undefined;
      case 'putAnalysis':
        s.putAnalysis.run(op.row);
        return undefined;
      case 'putReport':
        s.putReport.run(op.row);
        return undefined;
      case 'prune':
        return {
          probeSummaries:
            op.cutoffs.probeSummariesBeforeMs === undefined
              ? 0
              : s.pruneProbes.run(op.cutoffs.probeSummariesBeforeMs).changes,
          reports:
            op.cutoffs.reportsBeforeMs === undefined
              ? 0
              : s.pruneReports.run(op.cutoffs.reportsBeforeMs).changes,
        } satisfies PrunedCounts;
      case 'removeClient': {
        // The binding goes too, also one left by a Register that failed after binding.
        const released = s.deleteCredential.run(op.clientId).changes > 0;
        if (!s.clientExists.get(op.clientId))
          return released ? ({ uploads: 0, probeSummaries: 0 } satisfies RemovedClient) : undefined;
        const uploads = s.deleteUploads.run(op.clientId).changes;
        const probeSummaries = s.deleteProbes.run(op.clientId).changes;
        s.deleteClientTasks.run(op.clientId);
        s.deleteClient.run(op.clientId);
        return { uploads, probeSummaries } satisfies RemovedClient;
      }
      case 'bindCredential':
        s.bindCredential.run(op.clientId, op.credentialSha256, op.boundAtMs);
        return s.boundCredential.get(op.clientId) as string;
    }
  }

  private upsertClient(client: Omit<ClientRecord, 'tasks' | 'lastSeenMs'>, tasks: TaskRecord[]): undefined {
    const s = this.stmt;
    for (const t of tasks) {
      const row = s.getTask.get(t.taskId) as TaskRow | undefined;
      const existing = row ? taskFromRow(row) : undefined;
      if (existing && !sameClasses(existing.classes, t.classes)) {
        throw new StorageConflictError(
          `task '${t.taskId}' is already defined with classes [${existing.classes.join(', ')}], ` +
            `not [${t.classes.join(', ')}]; use another task id for a different class set`,
        );
      }
    }
    s.upsertClient.run({
      clientId: client.clientId,
      alphaFingerprint: client.alphaFingerprint,
      fingerprintMatch: client.fingerprintMatch ? 1 : 0,
      clientVersion: client.clientVersion,
      registeredAtMs: client.registeredAtMs,
    });
    let position = (s.maxPosition.get(client.clientId) as number) + 1;
    for (const t of tasks) {
      s.insertTask.run(t.taskId, JSON.stringify(t.classes));
      if (s.insertClientTask.run(client.clientId, t.taskId, position).changes > 0) position++;
    }
    return undefined;
  }

  /**
   * Commits a batch in one transaction (group commit). When one write fails, the batch rolls
   * back and each write is committed on its own, so only the failing one fails.
   */
  commit(ops: readonly WriteOp[]): WriteOutcome[] {
    const results: unknown[] = [];
    try {
      this.db.transaction(() => {
        for (const op of ops) results.push(this.apply(op));
      })();
      return results.map((value) => ({ ok: true, value }));
    } catch {
      return ops.map((op): WriteOutcome => {
        try {
          return { ok: true, value: this.db.transaction(() => this.apply(op))() };
        } catch (err) {
          const e = err instanceof Error ? err : new Error(String(err));
          const name = e instanceof StorageConflictError ? 'StorageConflictError' : e.name;
          return { ok: false, name, message: e.message };
        }
      });
    }
  }
}
