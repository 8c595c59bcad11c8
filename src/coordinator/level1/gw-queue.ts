// GW solves as jobs on a queue in the federation's PostgreSQL (pg-boss), so that `atomlens worker`
// processes on any number of machines share an analysis.
//
// Why pg-boss: it keeps the queue in the database that is already the system of record (no broker
// to run), takes jobs with SELECT … FOR UPDATE SKIP LOCKED, retries failed and expired jobs
// (a killed worker's job expires and is taken again), and is the maintained standard for this on
// Node. The 10.x line is used because it is the last one supporting Node 20.
//
// A job names its problems instead of carrying them: the analysis id and, per solve and side, the
// stored probe summary (request, client, task, layer). The worker rebuilds each metric space from
// the Gram matrix or factor with the same function the in-process path uses (probeGwCost) and solves
// it with the same pool and options, so the numbers are identical. Results go to analysis_solves
// keyed by (analysis, side a, side b) — models and layers — with ON CONFLICT DO NOTHING: a job run
// twice (retried after a worker died mid-job) writes once. The coordinator polls that table and
// assembles the report when every result is in. Cancellation goes through the store too: a worker
// skips the jobs of an analysis that is no longer queued or running.
//
// A job carries a batch of solves (tens of ms of work, see solvesPerJob) rather than one: each
// job costs a fetch, a status check, a result INSERT and a complete — about 4 ms of round trips and
// database CPU on the same cores — which at n = 128 (≈ 4 ms per solve) would be as much as the
// solving. A worker that dies loses at most the batch it holds, which pg-boss retries as before.
//
// New jobs and new results are announced with NOTIFY (LISTEN on a connection of its own), so that
// an idle worker starts at once and the coordinator reads results when they land; the polling
// intervals stay as the fallback while a listening connection is down.
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

/** One GW problem of a job: the two stored probe layers. */
export interface GwJobSolve {
  a: GramRef;
  b: GramRef;
}

export interface GwJobData {
  analysisId: string;
  n: number;
  /** The solves of this job (absent in jobs queued when a job was one solve: then a and b). */
  solves?: GwJobSolve[];
  a?: GramRef;
  b?: GramRef;
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
  /** Solves per job (default: solvesPerJob(n, solves queued at once)). */
  solvesPerJob?: number;
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

/**
 * How many solves one job carries: about 60 ms of work — a CG solve at n = 128 takes ≈ 4 ms and the
 * cost grows as n³ (the gradient's matrix products) — and at most 1/16 of the analysis, so that two
 * to a few workers still share the last jobs evenly. From n ≈ 320 a solve is worth its own job.
 * (Measured at n = 128 on 2 cores: 16 solves per job instead of 8 took the queue's GW phase from
 * 1.11 s to 1.02 s with one worker — the in-process pool's time — and larger batches gained nothing.)
 */
function solvesPerJob(n: number, queued: number): number {
  const forWork = Math.max(1, Math.min(32, Math.round(16 * (128 / n) ** 3)));
  return Math.max(1, Math.min(forWork, Math.ceil(queued / 16)));
}

/** The solves of a job, in either job format. */
function jobSolves(data: GwJobData): GwJobSolve[] {
  if (data.solves) return data.solves;
  return data.a && data.b ? [{ a: data.a, b: data.b }] : [];
}

/** NOTIFY channels: new jobs (no payload), and new results (payload: the analysis id). */
const JOBS_CHANNEL = 'atomlens_gw_jobs';
const RESULTS_CHANNEL = 'atomlens_gw_results';

/**
 * LISTEN on one channel over a connection of its own (a pooled connection would drop the
 * subscription when returned), reconnecting every second while it is down.
 */
class Listener {
  private client: pg.Client | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly connectionString: string,
    private readonly channel: string,
    private readonly onNotify: (payload: string) => void,
  ) {
    void this.connect();
  }

  private async connect(): Promise<void> {
    this.retry = undefined;
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.connectionString });
    client.on('error', () => {});
    client.on('notification', (m) => this.onNotify(m.payload ?? ''));
    client.on('end', () => {
      if (this.client === client) {
        this.client = undefined;
        this.reconnectLater();
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
    } catch {
      await client.end().catch(() => {});
      this.reconnectLater();
      return;
    }
    if (this.closed) await client.end().catch(() => {});
    else this.client = client;
  }

  private reconnectLater(): void {
    if (this.closed || this.retry) return;
    this.retry = setTimeout(() => void this.connect(), 1000);
    this.retry.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }
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

/** The outcome of one solve of a job, as written to analysis_solves. */
interface SolveRecord {
  solve: GwJobSolve;
  distance: number | null;
  identityValue: number | null;
  error: string | null;
  seconds: number;
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
  /** Per analysis being solved: read its new results now. */
  private readonly wakers = new Map<string, () => void>();
  private readonly results: Listener;

  private constructor(
    private readonly boss: PgBoss,
    private readonly db: pg.Pool,
    private readonly options: GwQueueOptions,
  ) {
    this.results = new Listener(options.connectionString, RESULTS_CHANNEL, (analysisId) =>
      this.wakers.get(analysisId)?.(),
    );
  }

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
    let pendingSolves: GwJobSolve[] = [];
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
    let polling = false;
    let pollAgain = false;
    const schedulePoll = () => {
      if (!timer && !finished && waiting.size > 0)
        timer = setTimeout(() => void poll(), this.options.pollMs ?? 100);
    };
    const pollNow = () => {
      if (polling) {
        pollAgain = true;
        return;
      }
      if (timer) clearTimeout(timer);
      timer = undefined;
      void poll();
    };
    this.wakers.set(analysisId, pollNow);
    const poll = async () => {
      timer = undefined;
      if (finished) return;
      polling = true;
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
      polling = false;
      if (pollAgain) {
        pollAgain = false;
        pollNow();
      } else schedulePoll();
    };
    const insert = async () => {
      insertScheduled = false;
      const solves = pendingSolves;
      pendingSolves = [];
      const perJob = this.options.solvesPerJob ?? solvesPerJob(n, solves.length);
      const jobs: PgBoss.JobInsert<GwJobData>[] = [];
      // buildReport asks for a model's layer pairs, then each layer's model pairs, in turn:
      // consecutive solves share metric spaces, which the worker then loads once per job.
      for (let i = 0; i < solves.length; i += perJob) {
        const id = randomUUID();
        jobIds.push(id);
        jobs.push({
          id,
          name: GW_QUEUE,
          data: { analysisId, n, solves: solves.slice(i, i + perJob), gw, cost },
          retryLimit: this.options.retryLimit ?? 3,
          retryDelay: 1,
          expireInSeconds: this.options.expireInSeconds ?? 600,
        });
      }
      try {
        await this.boss.insert(jobs);
      } catch (err) {
        failAll(new Error(`could not queue GW jobs: ${(err as Error).message}`));
        return;
      }
      // Idle workers start now instead of at their next poll; if this is lost they poll anyway.
      await this.db.query(`SELECT pg_notify('${JOBS_CHANNEL}', '')`).catch(() => {});
      lastProgress = Date.now();
      schedulePoll();
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
        pendingSolves.push({ a, b });
        // buildReport asks for every solve at once: one INSERT for all of them.
        if (!insertScheduled) {
          insertScheduled = true;
          setImmediate(() => void insert());
        }
      });
    };
    const finish = async () => {
      finished = true;
      if (this.wakers.get(analysisId) === pollNow) this.wakers.delete(analysisId);
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
    await this.results.close();
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

/**
 * Starts the pool's threads by solving a small problem on each: a thread's first solve pays its
 * start (module load, WebAssembly instantiation, JIT warm-up) — 0.2–0.3 s, as much as several jobs —
 * which is better paid before the worker takes jobs than by the first job of an analysis.
 */
async function warmUp(pool: GwPool, threads: number): Promise<void> {
  // Big enough (64 × 64) for the pool to send it to a thread rather than solve it in this one.
  const n = 64;
  const C = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) C[i * n + j] = ((i - j) / n) ** 2;
  await Promise.all(
    Array.from({ length: threads }, () => pool.solve(C, C, { init: 'product' }).catch(() => {})),
  );
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
    worker.jobs = new Listener(options.connectionString, JOBS_CHANNEL, () => worker.wakeIdle());
    await warmUp(options.pool, options.concurrency);
    await worker.heartbeat();
    worker.heartbeatTimer = setInterval(() => void worker.heartbeat(), 5000);
    worker.heartbeatTimer.unref();
    for (let i = 0; i < options.concurrency; i++) worker.loops.push(worker.loop());
    return worker;
  }

  private heartbeatTimer: NodeJS.Timeout | undefined;
  private jobs: Listener | undefined;
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
  /** The loops waiting for work, each with its timer and the function that ends its wait. */
  private readonly idle = new Map<NodeJS.Timeout, () => void>();

  private wakeIdle(): void {
    for (const [timer, wake] of this.idle) {
      clearTimeout(timer);
      wake();
    }
    this.idle.clear();
  }

  /**
   * One job (a batch of solves) at a time: fetch, solve, complete, and fetch again at once while
   * there is work (pg-boss' own work() loop waits out its polling interval after every batch, which
   * would cost up to 0.5 s per job); when the queue is empty, wait for a NOTIFY of new jobs or
   * pollMs. A job is not prefetched: one fetched ahead would sit active (and expire with this
   * worker) while another worker idles.
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
          const timer = setTimeout(() => {
            this.idle.delete(timer);
            resolve();
          }, wait);
          this.idle.set(timer, resolve);
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
    const { analysisId } = job.data;
    const status = await this.db.query<{ status: string }>(
      'SELECT status FROM analyses WHERE analysis_id = $1',
      [analysisId],
    );
    const current = status.rows[0]?.status;
    if (current !== 'queued' && current !== 'running') {
      this.options.onJob?.({ seconds: 0, outcome: 'skipped', retry: job.retryCount });
      return;
    }
    let solves = jobSolves(job.data);
    if (job.retryCount > 0 && solves.length > 1) {
      // A retried batch: an earlier attempt may have written some results before a solve failed.
      const done = await this.db.query<{ side_a: string; side_b: string }>(
        'SELECT side_a, side_b FROM analysis_solves WHERE analysis_id = $1 AND error IS NULL',
        [analysisId],
      );
      const have = new Set(done.rows.map((r) => `${r.side_a}|${r.side_b}`));
      solves = solves.filter((s) => !have.has(`${sideKey(s.a)}|${sideKey(s.b)}`));
    }
    const cost = job.data.cost ?? 'euclidean';
    // Start loading every metric space of the batch at once: the queries, decoding and distance
    // matrices of spaces not yet cached then run on this thread while the pool's thread solves.
    for (const s of solves) {
      for (const ref of [s.a, s.b]) this.space(ref, job.data.n, cost).catch(() => {});
    }
    const results: SolveRecord[] = [];
    let failure: Error | undefined;
    for (const s of solves) {
      const t0 = performance.now();
      try {
        const [C1, C2] = await Promise.all([
          this.space(s.a, job.data.n, cost),
          this.space(s.b, job.data.n, cost),
        ]);
        const r = await this.options.pool.solve(C1, C2, job.data.gw);
        results.push({
          solve: s,
          distance: r.distance,
          identityValue: r.identityValue,
          error: null,
          seconds: (performance.now() - t0) / 1000,
        });
      } catch (err) {
        failure ??= err as Error;
        // The last attempt records the error so that the coordinator fails the analysis at once.
        if (job.retryCount >= job.retryLimit) {
          results.push({
            solve: s,
            distance: null,
            identityValue: null,
            error: (err as Error).message,
            seconds: (performance.now() - t0) / 1000,
          });
        }
      }
    }
    // One INSERT for the batch; the solves that did finish are kept even when another failed, so
    // that a retry redoes only the rest.
    await this.record(analysisId, results).catch((err: Error) => {
      failure ??= err;
    });
    this.options.onJob?.({
      seconds: (performance.now() - started) / 1000,
      outcome: failure ? 'failed' : 'solved',
      retry: job.retryCount,
    });
    if (failure) throw failure;
  }

  private async record(analysisId: string, results: SolveRecord[]): Promise<void> {
    if (results.length === 0) return;
    const values: unknown[] = [];
    const rows = results.map((r, i) => {
      values.push(
        analysisId,
        sideKey(r.solve.a),
        sideKey(r.solve.b),
        r.distance,
        r.identityValue,
        r.error,
        this.name,
        r.seconds,
        Date.now(),
      );
      const k = i * 9;
      return `($${k + 1}, $${k + 2}, $${k + 3}, $${k + 4}, $${k + 5}, $${k + 6}, $${k + 7}, $${k + 8}, $${k + 9})`;
    });
    // The NOTIFY rides on the same statement (delivered at commit): no extra round trip.
    await this.db.query(
      `WITH written AS (
         INSERT INTO analysis_solves(analysis_id, side_a, side_b, distance, identity_value, error, worker, seconds, solved_at_ms)
         VALUES ${rows.join(', ')} ON CONFLICT DO NOTHING
       )
       SELECT pg_notify('${RESULTS_CHANNEL}', $1::text)`,
      values,
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
    this.wakeIdle();
    await this.jobs?.close();
    await Promise.allSettled(this.loops);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.db.query('DELETE FROM gw_workers WHERE name = $1', [this.name]).catch(() => {});
    await this.boss.stop({ graceful: true, wait: true, timeout: 30_000 }).catch(() => {});
    await this.db.end().catch(() => {});
  }
}
