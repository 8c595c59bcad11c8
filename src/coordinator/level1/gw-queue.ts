// GW solves as jobs on a queue in the federation's PostgreSQL (pg-boss), so that `atomlens worker`
// processes on any number of machines share an analysis.
//
// Why pg-boss: it keeps the queue in the database that is already the system of record (no broker
// to run), takes jobs with SELECT … FOR UPDATE SKIP LOCKED, retries failed and expired jobs
// (a killed worker's job expires and is taken again), and is the maintained standard for this on
// Node. The 10.x line is used because it is the last one supporting Node 20.
//
// A job names its problem instead of carrying it: the analysis id and, per side, the stored probe
// summary (request, client, task, layer). The worker rebuilds each metric space from the Gram
// matrix or factor with the same function the in-process path uses (probeGwCost) and solves it with the
// same pool and options, so the numbers are identical. Results go to analysis_solves keyed by
// (analysis, side a, side b) — models and layers — with ON CONFLICT DO NOTHING: a job run twice
// (retried after a worker died mid-solve) writes once. The coordinator polls that table and
// assembles the report when every result is in. Cancellation goes through the store too: a worker
// skips the jobs of an analysis that is no longer queued or running.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import pg from 'pg';
import PgBoss from 'pg-boss';
import type { GwSolveResult, SolveGw } from '../../analysis/report/build.js';
import { DEFAULT_PROBE_COST, type ProbeCost, probeGwCost } from '../../analysis/representation.js';
import type { GwCost, GwOptions, GwPool } from '../../ot/index.js';
import type { Logger } from '../../shared/log.js';
import { PostgresStorage } from '../storage/postgres.js';
import type { QueueCounts } from './gw-queue-metrics.js';
import { decodeProbeLayer } from './probe-collection.js';

/** @internal exported for its tests */
export const GW_QUEUE = 'atomlens-gw-solve';

/** A stored probe summary: one probe layer of one model. */
export interface GramRef {
  requestId: string;
  clientId: string;
  taskId: string;
  layer: string;
}

export type QueueGwOptions = Pick<GwOptions, 'solver' | 'init' | 'epsilon' | 'maxIter' | 'tol'>;

export interface GwJobData {
  analysisId: string;
  n: number;
  a: GramRef;
  b: GramRef;
  gw: QueueGwOptions;
  /** The cost of both metric spaces (absent in jobs queued before costs were chosen: euclidean). */
  cost?: ProbeCost;
}

export interface GwQueueOptions {
  /** postgres://… of the federation's database. */
  connectionString: string;
  /** A job not finished this long after a worker took it is given to another (default 600 s). */
  expireInSeconds?: number;
  /** Attempts after the first (default 3). */
  retryLimit?: number;
  /** How often pg-boss checks for expired jobs (default 10 s). */
  maintenanceIntervalSeconds?: number;
  /** How often the coordinator looks for new results (default 100 ms). */
  pollMs?: number;
  /** An analysis fails when no result arrives for this long (default 10 min): no workers running? */
  stallMs?: number;
  logger?: Logger;
}

/** Jobs waiting and held, and workers seen within the last 30 s. */
async function queueCounts(boss: PgBoss, db: pg.Pool): Promise<QueueCounts> {
  const [waiting, notDone, live] = await Promise.all([
    boss.getQueueSize(GW_QUEUE, { before: 'active' }),
    boss.getQueueSize(GW_QUEUE, { before: 'completed' }),
    db.query<{ n: string }>('SELECT count(*) AS n FROM gw_workers WHERE last_seen_ms > $1', [
      Date.now() - 30_000,
    ]),
  ]);
  return { waiting, active: notDone - waiting, liveWorkers: Number(live.rows[0]!.n) };
}

/** Result key of one side: the model and the layer, e.g. "alice/0-1@conv2". */
function sideKey(ref: GramRef): string {
  return `${ref.clientId}/${ref.taskId}@${ref.layer}`;
}

/**
 * A pg-boss instance on the federation's database (its tables live in the `pgboss` schema), after
 * bringing atomlens' own tables up to date (a worker may start before any coordinator).
 */
async function startBoss(options: GwQueueOptions, supervise = true): Promise<PgBoss> {
  await (await PostgresStorage.open({ connectionString: options.connectionString, poolSize: 1 })).close();
  const boss = new PgBoss({
    connectionString: options.connectionString,
    max: 4,
    supervise,
    maintenanceIntervalSeconds: options.maintenanceIntervalSeconds ?? 10,
    // The queue is a work list, not an archive: finished jobs go after a day.
    deleteAfterDays: 1,
  });
  boss.on('error', (err: Error) => options.logger?.warn('job queue error', { error: err.message }));
  await boss.start();
  await boss.createQueue(GW_QUEUE, {
    name: GW_QUEUE,
    retryLimit: options.retryLimit ?? 3,
    retryDelay: 1,
    expireInSeconds: options.expireInSeconds ?? 600,
  });
  return boss;
}

interface Waiting {
  resolve: (r: GwSolveResult) => void;
  reject: (err: Error) => void;
}

/**
 * The coordinator's side: hands out SolveGw functions that turn each solve into a job and resolve
 * when its result row appears.
 */
export class GwQueue {
  private constructor(
    private readonly boss: PgBoss,
    private readonly db: pg.Pool,
    private readonly options: GwQueueOptions,
  ) {}

  static async open(options: GwQueueOptions): Promise<GwQueue> {
    const boss = await startBoss(options);
    const db = new pg.Pool({ connectionString: options.connectionString, max: 2 });
    db.on('error', () => {});
    return new GwQueue(boss, db, options);
  }

  counts(): Promise<QueueCounts> {
    return queueCounts(this.boss, this.db);
  }

  /**
   * A solver for one analysis. `refOf` names the stored probe summary behind each side. Call
   * `finish` when the analysis ends: it stops polling and cancels jobs nobody needs any more.
   */
  solverFor(
    analysisId: string,
    n: number,
    gw: QueueGwOptions,
    refOf: (model: number, layer: number) => GramRef,
    cost: ProbeCost = DEFAULT_PROBE_COST,
  ): { solve: SolveGw; finish: () => Promise<void> } {
    const waiting = new Map<string, Waiting>();
    const jobIds: string[] = [];
    let pendingInsert: PgBoss.JobInsert<GwJobData>[] = [];
    let insertScheduled = false;
    let lastSeq = 0;
    let lastProgress = Date.now();
    let timer: NodeJS.Timeout | undefined;
    let finished = false;
    const stallMs = this.options.stallMs ?? 10 * 60_000;

    const failAll = (err: Error) => {
      for (const w of waiting.values()) w.reject(err);
      waiting.clear();
    };
    const poll = async () => {
      timer = undefined;
      if (finished) return;
      try {
        const rows = await this.db.query<{
          seq: string;
          side_a: string;
          side_b: string;
          distance: number | null;
          identity_value: number | null;
          error: string | null;
        }>(
          `SELECT seq, side_a, side_b, distance, identity_value, error FROM analysis_solves
           WHERE analysis_id = $1 AND seq > $2 ORDER BY seq`,
          [analysisId, lastSeq],
        );
        for (const r of rows.rows) {
          lastSeq = Math.max(lastSeq, Number(r.seq));
          const key = `${r.side_a}|${r.side_b}`;
          const w = waiting.get(key);
          if (!w) continue;
          waiting.delete(key);
          lastProgress = Date.now();
          if (r.error !== null) w.reject(new Error(`GW solve ${r.side_a} vs ${r.side_b} failed: ${r.error}`));
          else w.resolve({ distance: r.distance!, identityValue: r.identity_value });
        }
        if (waiting.size > 0 && Date.now() - lastProgress > stallMs) {
          failAll(
            new Error(
              `no GW solve finished in ${Math.round(stallMs / 1000)} s (${waiting.size} waiting): ` +
                'are `atomlens worker --store …` processes running?',
            ),
          );
        }
      } catch (err) {
        // The database is away: keep waiting (the stall limit still applies).
        this.options.logger?.warn('polling GW results failed', { error: (err as Error).message });
      }
      if (!finished && waiting.size > 0) timer = setTimeout(poll, this.options.pollMs ?? 100);
    };
    const insert = async () => {
      insertScheduled = false;
      const jobs = pendingInsert;
      pendingInsert = [];
      try {
        await this.boss.insert(jobs);
      } catch (err) {
        failAll(new Error(`could not queue GW jobs: ${(err as Error).message}`));
        return;
      }
      lastProgress = Date.now();
      if (!timer) timer = setTimeout(poll, this.options.pollMs ?? 100);
    };

    const solve: SolveGw = (_C1, _C2, problem) => {
      const a = refOf(problem.a.model, problem.a.layer);
      const b = refOf(problem.b.model, problem.b.layer);
      const key = `${sideKey(a)}|${sideKey(b)}`;
      return new Promise<GwSolveResult>((resolve, reject) => {
        if (finished) {
          reject(new Error('the analysis has ended'));
          return;
        }
        waiting.set(key, { resolve, reject });
        const id = randomUUID();
        jobIds.push(id);
        pendingInsert.push({
          id,
          name: GW_QUEUE,
          data: { analysisId, n, a, b, gw, cost },
          retryLimit: this.options.retryLimit ?? 3,
          retryDelay: 1,
          expireInSeconds: this.options.expireInSeconds ?? 600,
        });
        // buildReport asks for every solve at once: one INSERT for all of them.
        if (!insertScheduled) {
          insertScheduled = true;
          setImmediate(() => void insert());
        }
      });
    };
    const finish = async () => {
      finished = true;
      if (timer) clearTimeout(timer);
      failAll(new Error('the analysis has ended'));
      // Jobs still waiting would only be skipped by the workers; take them off the queue now.
      for (let i = 0; i < jobIds.length; i += 1000) {
        await this.boss.cancel(GW_QUEUE, jobIds.slice(i, i + 1000)).catch(() => {});
      }
    };
    return { solve, finish };
  }

  async close(): Promise<void> {
    await this.boss.stop({ graceful: false, wait: true }).catch(() => {});
    await this.db.end().catch(() => {});
  }
}

export interface GwWorkerOptions extends GwQueueOptions {
  /** The pool that solves (its worker threads are the worker's parallelism). */
  pool: GwPool;
  /** Jobs taken at a time (default: the pool's size). */
  concurrency: number;
  /** Reported in analysis_solves.worker (default host:pid). */
  name?: string;
  /** Observes each finished job (metrics). */
  onJob?: (e: { seconds: number; outcome: 'solved' | 'skipped' | 'failed'; retry: number }) => void;
}

/** The worker's side: takes GW jobs, solves them, writes results. */
export class GwWorker {
  private readonly spaces = new Map<string, Promise<GwCost>>();

  private constructor(
    private readonly boss: PgBoss,
    private readonly db: pg.Pool,
    private readonly options: GwWorkerOptions,
  ) {}

  static async start(options: GwWorkerOptions): Promise<GwWorker> {
    const boss = await startBoss(options);
    const db = new pg.Pool({ connectionString: options.connectionString, max: options.concurrency + 1 });
    db.on('error', () => {});
    const worker = new GwWorker(boss, db, options);
    await worker.heartbeat();
    worker.heartbeatTimer = setInterval(() => void worker.heartbeat(), 5000);
    worker.heartbeatTimer.unref();
    for (let i = 0; i < options.concurrency; i++) worker.loops.push(worker.loop());
    return worker;
  }

  private heartbeatTimer: NodeJS.Timeout | undefined;
  private readonly startedAtMs = Date.now();

  get name(): string {
    return this.options.name ?? `${hostname()}:${process.pid}`;
  }

  counts(): Promise<QueueCounts> {
    return queueCounts(this.boss, this.db);
  }

  private async heartbeat(): Promise<void> {
    await this.db
      .query(
        `INSERT INTO gw_workers(name, threads, started_at_ms, last_seen_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO UPDATE SET threads = excluded.threads, last_seen_ms = excluded.last_seen_ms`,
        [this.name, this.options.concurrency, this.startedAtMs, Date.now()],
      )
      .catch(() => {});
  }

  private readonly loops: Promise<void>[] = [];
  private stopping = false;
  private idleTimer: { timer: NodeJS.Timeout; wake: () => void } | undefined;

  /**
   * One job at a time: fetch, solve, complete, and fetch again at once while there is work (pg-boss'
   * own work() loop waits out its polling interval after every batch, which would cost up to
   * 0.5 s per job); poll every pollMs when the queue is empty.
   */
  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      let jobs: PgBoss.JobWithMetadata<GwJobData>[] = [];
      try {
        jobs = await this.boss.fetch<GwJobData>(GW_QUEUE, { batchSize: 1, includeMetadata: true });
        failures = 0;
      } catch (err) {
        // The database is away (restart, failover): back off 0.25 s, 0.5 s, … up to 8 s.
        failures++;
        if (failures === 1 || failures % 10 === 0) {
          this.options.logger?.warn('the job queue is unreachable; retrying', {
            error: (err as Error).message,
          });
        }
      }
      const job = jobs[0];
      if (!job) {
        const wait = failures > 0 ? Math.min(8000, 250 * 2 ** (failures - 1)) : (this.options.pollMs ?? 250);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, wait);
          this.idleTimer = { timer, wake: resolve };
        });
        continue;
      }
      try {
        await this.run(job);
        await this.boss.complete(GW_QUEUE, job.id);
      } catch (err) {
        await this.boss.fail(GW_QUEUE, job.id, { message: (err as Error).message }).catch(() => {});
      }
    }
  }

  private async run(job: PgBoss.JobWithMetadata<GwJobData>): Promise<void> {
    const started = performance.now();
    const { analysisId, a, b } = job.data;
    const status = await this.db.query<{ status: string }>(
      'SELECT status FROM analyses WHERE analysis_id = $1',
      [analysisId],
    );
    const current = status.rows[0]?.status;
    if (current !== 'queued' && current !== 'running') {
      this.options.onJob?.({ seconds: 0, outcome: 'skipped', retry: job.retryCount });
      return;
    }
    try {
      const cost = job.data.cost ?? 'euclidean';
      const [C1, C2] = await Promise.all([this.space(a, job.data.n, cost), this.space(b, job.data.n, cost)]);
      const r = await this.options.pool.solve(C1, C2, job.data.gw);
      await this.record(job, { distance: r.distance, identityValue: r.identityValue, error: null }, started);
      this.options.onJob?.({
        seconds: (performance.now() - started) / 1000,
        outcome: 'solved',
        retry: job.retryCount,
      });
    } catch (err) {
      const message = (err as Error).message;
      this.options.onJob?.({
        seconds: (performance.now() - started) / 1000,
        outcome: 'failed',
        retry: job.retryCount,
      });
      // The last attempt records the error so that the coordinator fails the analysis at once.
      if (job.retryCount >= job.retryLimit) {
        await this.record(job, { distance: null, identityValue: null, error: message }, started).catch(
          () => {},
        );
      }
      throw err;
    }
  }

  private async record(
    job: PgBoss.JobWithMetadata<GwJobData>,
    r: { distance: number | null; identityValue: number | null; error: string | null },
    started: number,
  ): Promise<void> {
    await this.db.query(
      `INSERT INTO analysis_solves(analysis_id, side_a, side_b, distance, identity_value, error, worker, seconds, solved_at_ms)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
      [
        job.data.analysisId,
        sideKey(job.data.a),
        sideKey(job.data.b),
        r.distance,
        r.identityValue,
        r.error,
        this.name,
        (performance.now() - started) / 1000,
        Date.now(),
      ],
    );
  }

  /** The metric space of one stored probe layer; a few are kept, as each is used by many jobs. */
  private space(ref: GramRef, n: number, cost: ProbeCost): Promise<GwCost> {
    const key = `${ref.requestId}\n${sideKey(ref)}\n${cost}`;
    let cached = this.spaces.get(key);
    if (!cached) {
      cached = this.loadSpace(ref, n, cost);
      this.spaces.set(key, cached);
      cached.catch(() => this.spaces.delete(key));
      while (this.spaces.size > 64) this.spaces.delete(this.spaces.keys().next().value!);
    }
    return cached;
  }

  private async loadSpace(ref: GramRef, n: number, cost: ProbeCost): Promise<GwCost> {
    const r = await this.db.query<{ n: number; gram: Buffer; factor_rank: number }>(
      `SELECT n, gram, factor_rank FROM probe_summaries WHERE request_id = $1 AND client_id = $2 AND task_id = $3 AND layer = $4`,
      [ref.requestId, ref.clientId, ref.taskId, ref.layer],
    );
    const row = r.rows[0];
    if (!row) throw new Error(`no stored probe summary for ${sideKey(ref)} (request ${ref.requestId})`);
    if (row.n !== n)
      throw new Error(`the probe summary of ${sideKey(ref)} has n = ${row.n}, the job says ${n}`);
    const layer = decodeProbeLayer({ layer: ref.layer, n, gram: row.gram, factorRank: row.factor_rank });
    return probeGwCost(layer, n, cost);
  }

  /** Finishes the jobs in hand, then disconnects. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.idleTimer) {
      clearTimeout(this.idleTimer.timer);
      this.idleTimer.wake();
    }
    await Promise.allSettled(this.loops);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.db.query('DELETE FROM gw_workers WHERE name = $1', [this.name]).catch(() => {});
    await this.boss.stop({ graceful: true, wait: true, timeout: 30_000 }).catch(() => {});
    await this.db.end().catch(() => {});
  }
}
