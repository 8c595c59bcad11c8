// The coordinator's storage, behind one narrow interface so a server database can replace the
// embedded SQLite file without touching the rest (registry, atom history, probe summaries,
// analyses, reports).
//
// Contract every implementation keeps (test/coordinator/storage-contract.ts checks it):
//   * Writes resolve only after the data is durably committed; an atom upload is acknowledged to
//     the client only then.
//   * Reads are asynchronous (a server database answers over the network) and see every resolved
//     write. Nothing on the per-upload path waits for a read: the accepted-upload path awaits only
//     putAtoms, the registry and the latest atoms live in memory (federation, similarity index),
//     and reads serve registration, operator queries, analyses and the rare late/duplicate upload.
//     So the embedded backend pays one microtask per read, and no cache has to be kept coherent
//     between several coordinators on one database.
//   * Nothing here knows about gRPC, metrics or the similarity index.

export interface TaskRecord {
  taskId: string;
  classes: number[];
}

export interface ClientRecord {
  clientId: string;
  /** Tasks in the order the client declared them. */
  tasks: TaskRecord[];
  /** Hex SHA-256 of the client's α as it last registered (empty = uses the template's). */
  alphaFingerprint: string;
  fingerprintMatch: boolean;
  clientVersion: string;
  registeredAtMs: number;
  /** Last register or accepted upload, as stored (live heartbeats are tracked in memory). */
  lastSeenMs: number;
}

export interface TrainingStatsRecord {
  loss: number;
  accuracy: number;
  samples: number;
}

export interface AtomUpload {
  clientId: string;
  taskId: string;
  round: number;
  /** Every layer's atoms, float32 little-endian, concatenated in template layer order. */
  atoms: Buffer;
  stats: TrainingStatsRecord;
  receivedAtMs: number;
  /** Template version the atoms were validated against. */
  templateVersion: number;
}

export type PutAtomsOutcome = 'accepted' | 'duplicate' | 'conflict';

export interface StoredRound {
  round: number;
  receivedAtMs: number;
  stats: TrainingStatsRecord;
  atoms: Buffer;
}

export interface ProbeSummaryRecord {
  requestId: string;
  clientId: string;
  taskId: string;
  round: number;
  layer: string;
  n: number;
  featureDim: number;
  /**
   * float32 little-endian, row-major: K = X Xᵀ (n × n) when factorRank is 0, else a factor F
   * (n × factorRank) with the same centred Gram (proto PushProbeSummaryRequest.factor_rank).
   */
  gram: Buffer;
  /** 0 or absent: `gram` is the Gram matrix; r ≥ 1: it is an n × r factor. */
  factorRank?: number;
  receivedAtMs: number;
}

export type AnalysisStatus = 'queued' | 'running' | 'completed' | 'failed' | 'timeout';

export interface AnalysisRecord {
  analysisId: string;
  status: AnalysisStatus;
  /** What started it: "operator", "divergence", "drift", "fingerprint", "schedule", … */
  trigger: string;
  reason: string;
  models: { clientId: string; taskId: string }[];
  createdAtMs: number;
  startedAtMs?: number;
  finishedAtMs?: number;
  message?: string;
  reportId?: string;
}

export interface ReportRecord {
  reportId: string;
  createdAtMs: number;
  trigger: string;
  /** Number of models the report covers. */
  models: number;
  analysisId?: string;
  json: string;
  html: string;
}

export type ReportSummaryRecord = Omit<ReportRecord, 'json' | 'html'>;

export interface WriteQueueState {
  queued: number;
  limit: number;
  refused: number;
}

/** Called after every commit of the write path (for the commit-latency histogram). */
export type CommitObserver = (seconds: number, writes: number) => void;

/** Where a page of reports ends: the last report's created time and id. */
export interface ReportCursor {
  createdAtMs: number;
  reportId: string;
}

export interface RetentionCutoffs {
  probeSummariesBeforeMs?: number;
  reportsBeforeMs?: number;
}

export interface RemovedClient {
  uploads: number;
  probeSummaries: number;
}

export interface PrunedCounts {
  probeSummaries: number;
  reports: number;
}

export interface Storage {
  // --- clients and tasks -------------------------------------------------------------------
  /**
   * Creates or updates a client. Tasks are merged: tasks already known to the client stay,
   * new ones are appended. Task ids are global: a task id always names the same classes.
   */
  upsertClient(client: Omit<ClientRecord, 'tasks' | 'lastSeenMs'>, tasks: TaskRecord[]): Promise<void>;
  getClient(clientId: string): Promise<ClientRecord | undefined>;
  listClients(): Promise<ClientRecord[]>;
  /** The classes a task id was first declared with, or undefined. */
  getTask(taskId: string): Promise<TaskRecord | undefined>;

  // --- atom uploads ------------------------------------------------------------------------
  /**
   * Stores one upload. 'duplicate' when the same (client, task, round) is already stored with
   * identical atoms, 'conflict' when it is stored with different atoms (nothing changes then).
   * Uploads arriving together may be committed in one transaction (group commit); each promise
   * resolves after the transaction that holds it has committed.
   */
  putAtoms(upload: AtomUpload): Promise<PutAtomsOutcome>;
  getRound(clientId: string, taskId: string, round: number): Promise<StoredRound | undefined>;
  /** Highest stored round below `round` (for drift of a re-sent round), or undefined. */
  getPreviousRound(clientId: string, taskId: string, round: number): Promise<StoredRound | undefined>;
  /** Every stored round of one model, ascending. */
  listRounds(clientId: string, taskId: string, withAtoms: boolean): Promise<StoredRound[]>;
  /** Highest acknowledged round per task of a client. */
  lastRounds(clientId: string): Promise<Map<string, number>>;
  /** The atoms of every model at exactly `round`. */
  atomsAtRound(round: number): Promise<{ clientId: string; taskId: string; atoms: Buffer }[]>;
  /** Calls fn for the two highest rounds of every model, lower round first (index warm-up). */
  forEachRecentRound(
    fn: (clientId: string, taskId: string, round: number, atoms: Buffer) => void,
    perModel: number,
  ): Promise<void>;
  countUploads(): Promise<number>;

  // --- probe summaries ---------------------------------------------------------------------
  putProbeSummary(summary: ProbeSummaryRecord): Promise<void>;
  getProbeSummaries(requestId: string): Promise<ProbeSummaryRecord[]>;

  // --- analyses and reports ----------------------------------------------------------------
  putAnalysis(analysis: AnalysisRecord): Promise<void>;
  getAnalysis(analysisId: string): Promise<AnalysisRecord | undefined>;
  listAnalyses(limit: number): Promise<AnalysisRecord[]>;
  putReport(report: ReportRecord): Promise<void>;
  getReport(reportId: string): Promise<ReportRecord | undefined>;
  /**
   * Newest first (by created time, then report id, both descending); with `before`, only the
   * reports that sort after that one (the next page).
   */
  listReports(limit: number, before?: ReportCursor): Promise<ReportSummaryRecord[]>;

  // --- retention ---------------------------------------------------------------------------
  /**
   * Deletes probe summaries received before `probeSummariesBeforeMs` and reports created before
   * `reportsBeforeMs` (an absent cut-off deletes nothing of that kind); resolves with how many
   * rows of each kind went.
   */
  prune(cutoffs: RetentionCutoffs): Promise<PrunedCounts>;
  /**
   * Deletes a client with its task list, every atom upload and every probe summary of it, and
   * releases its credential binding; undefined when neither a client nor a binding is stored
   * under that id. Task ids (shared by clients) stay.
   */
  removeClient(clientId: string): Promise<RemovedClient | undefined>;

  // --- client identity ---------------------------------------------------------------------
  /**
   * Binds clientId to a credential digest unless it is bound already, atomically (two first
   * enrolments racing, also from two coordinators on one database, end with one binding);
   * resolves, once durable, with the digest the id is bound to — `credentialSha256` when this
   * call bound it or it was bound to the same digest before, the other one otherwise.
   */
  bindClientCredential(clientId: string, credentialSha256: string, boundAtMs: number): Promise<string>;

  // --- metadata ----------------------------------------------------------------------------
  /** Small key/value facts about the store itself (e.g. the template fingerprint it holds). */
  getMeta(key: string): Promise<string | undefined>;
  setMeta(key: string, value: string): Promise<void>;

  /**
   * The write queue right now: writes waiting or committing, the limit beyond which client writes
   * are refused with StorageBusyError, and how many have been refused so far.
   */
  writeQueue(): WriteQueueState;

  /** Registers the commit observer (one; replaces any previous). */
  onCommit(observer: CommitObserver): void;
  /** Commits anything queued, then closes. Further writes reject. */
  close(): Promise<void>;
}

/** Thrown by storage when its data contradicts a request (e.g. a task id reused with other classes). */
export class StorageConflictError extends Error {}

/**
 * Thrown by storage when too many writes are waiting to commit (the disk is behind): the write
 * was not queued, so nothing of it is stored, and the caller may retry it later.
 */
export class StorageBusyError extends Error {
  constructor(
    readonly queued: number,
    readonly limit: number,
  ) {
    super(`${queued} writes are waiting to commit (the limit is ${limit})`);
    this.name = 'StorageBusyError';
  }
}

/**
 * Thrown by storage once close() has begun (the coordinator is stopping): nothing of the call was
 * stored; the caller may retry it against the coordinator that comes back.
 */
export class StorageClosedError extends Error {
  constructor() {
    super('storage is closed: the coordinator is stopping');
    this.name = 'StorageClosedError';
  }
}
