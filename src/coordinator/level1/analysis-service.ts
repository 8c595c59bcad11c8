// Level-1 analysis: the AnalysisService the coordinator core calls for
// operator requests (gRPC RunAnalysis, HTTP POST /analyses, `atomlens report`), plus the
// automatic escalation policy fed by accepted uploads and an optional schedule.
//
// One analysis: resolve the models → ask their clients for probe summaries (reusing stored ones
// at the same round) → every GW problem on the worker pool → segmentation, labels, cross-check →
// the report stored as JSON (its HTML page is rendered when asked for) → metrics. Analyses run
// one at a time (they saturate the CPU); a few may wait in line, more are refused as busy.
// Everything heavy (GW, CKA, distances, the bootstrap) runs on the pool's worker threads, so the
// event loop keeps serving clients during an analysis; stopping an analysis stops its tasks.
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { availableParallelism, hostname } from 'node:os';
import type { LabelThresholdSettings } from '../../analysis/labels.js';
import { buildReport, reportTasksVia, type SolveGw, splitAtoms } from '../../analysis/report/build.js';
import { renderReportHtml } from '../../analysis/report/html.js';
import type { AnalysisReport, ReportModel, ReportTrigger, TriggerKind } from '../../analysis/report/types.js';
import type { ProbeLayerData } from '../../analysis/representation.js';
import type { SegmentationOptions } from '../../analysis/segmentation.js';
import { type GwOptions, GwPool } from '../../ot/index.js';
import { modelKey } from '../../shared/ids.js';
import { correlationId, quoteInput } from '../calls.js';
import { resolveEscalationConfig } from '../config.js';
import type { UploadEvent } from '../federation/federation.js';
import { type Escalation, type EscalationConfig, EscalationPolicy } from '../level0/escalation.js';
import type { ReportCursor } from '../storage/types.js';
import { type GramRef, GwQueue, type GwQueueOptions, GwWorker } from './gw-queue.js';
import { registerQueueGauges, WorkerJobMetrics } from './gw-queue-metrics.js';
import { collectProbes, type ProbeTarget } from './probe-collection.js';
import {
  type AnalysisDeps,
  type AnalysisFactory,
  type AnalysisProgress,
  AnalysisRequestError,
  type AnalysisRequestInput,
  type AnalysisService,
  type ReportSummary,
} from './types.js';

export interface AnalysisServiceOptions {
  /** Worker pool for GW and the report's other heavy tasks; created (and closed) by the service when absent. */
  pool?: GwPool;
  /**
   * Worker threads for a pool the service creates (default: available parallelism). With a
   * queue and `workers` 0, GW is left to `atomlens worker` processes and one thread computes the
   * rest of the report.
   */
  workers?: number;
  /** Solver options for every GW problem (default CG from the identity and product couplings). */
  gw?: Pick<GwOptions, 'solver' | 'init' | 'epsilon' | 'maxIter' | 'tol'>;
  thresholds?: Partial<LabelThresholdSettings>;
  segmentation?: SegmentationOptions;
  /** Analyses allowed to wait behind the running one (default 4); more are refused as busy. */
  maxQueued?: number;
  /** Override of the coordinator config's `escalation` section. */
  escalation?: Partial<EscalationConfig>;
  /**
   * GW solves as jobs on the PostgreSQL queue (`atomlens worker` processes take them) instead of
   * the in-process pool. The coordinator also works the queue with `workers` threads unless
   * `workers` is 0.
   */
  queue?: GwQueueOptions;
}

/** An analysis request from inside the coordinator (escalation) carries its trigger. */
export interface TriggeredRequest extends AnalysisRequestInput {
  trigger?: Omit<ReportTrigger, 'reason'> & { kind: TriggerKind };
}

function newId(prefix: string, now: number): string {
  return `${prefix}-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** @internal exported for its tests */
export class AnalysisServiceImpl implements AnalysisService {
  readonly policy: EscalationPolicy;
  private readonly pool: GwPool;
  /** Whether this process solves GW problems (on `pool`); else the queue's workers do. */
  private readonly solvesHere: boolean;
  private readonly queue: Promise<{ queue: GwQueue; worker: GwWorker | undefined }> | undefined;
  private readonly ownsPool: boolean;
  private chain: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private closed = false;
  private readonly unsubscribe: () => void;
  private readonly scheduleTimer: NodeJS.Timeout | undefined;
  private readonly running = new Set<Promise<unknown>>();

  constructor(
    private readonly deps: AnalysisDeps,
    private readonly options: AnalysisServiceOptions = {},
  ) {
    const config = resolveEscalationConfig({ ...deps.config.escalation, ...options.escalation });
    this.policy = new EscalationPolicy(config);
    this.ownsPool = !options.pool;
    this.solvesHere = !options.queue || options.workers !== 0;
    this.pool =
      options.pool ??
      new GwPool(this.solvesHere ? (options.workers ? { workers: options.workers } : {}) : { workers: 1 });
    if (options.queue) {
      this.queue = this.openQueue(options.queue);
      // Surfaces in the first analysis; logged now so that a bad URL is seen at start.
      this.queue.catch((err: Error) => deps.logger.error('GW job queue unavailable', { error: err.message }));
    }
    this.unsubscribe = deps.onUpload((e) => this.onUpload(e));
    if (config.enabled && config.scheduleMs > 0) {
      this.scheduleTimer = setInterval(() => this.onSchedule(), config.scheduleMs);
      this.scheduleTimer.unref();
    }
  }

  // --- AnalysisService -----------------------------------------------------------------------

  async request(
    req: TriggeredRequest,
    onProgress: (p: AnalysisProgress) => void,
  ): Promise<{ reportId: string }> {
    if (this.closed) throw new AnalysisRequestError('unavailable', 'the coordinator is shutting down');
    const { config } = this.deps;
    const maxWaiting = this.options.maxQueued ?? config.analysis.maxWaiting;
    // The slot is taken before the first await: concurrent requests cannot all pass the check.
    // At most one analysis runs and maxWaiting wait, so maxWaiting + 1 are admitted.
    if (this.queued >= maxWaiting + 1) {
      throw new AnalysisRequestError(
        'busy',
        `${this.queued} analyses are already running or waiting (at most ${maxWaiting + 1}, analysis.maxWaiting + 1); ` +
          'try again when one has finished',
      );
    }
    this.queued++;
    try {
      return await this.admitted(req, onProgress);
    } finally {
      this.queued--;
    }
  }

  /** An admitted request: resolved, recorded, then run in turn (or left when cancelled first). */
  private async admitted(
    req: TriggeredRequest,
    onProgress: (p: AnalysisProgress) => void,
  ): Promise<{ reportId: string }> {
    const { config } = this.deps;
    const models = await this.resolveModels(req.models);
    if (models.length > config.analysis.maxModels) {
      throw new AnalysisRequestError(
        'invalid',
        `${models.length} models would be analysed; one analysis covers at most ${config.analysis.maxModels} ` +
          '(analysis.maxModels): choose some with `atomlens report --models CLIENT/TASK,…` or raise the limit',
      );
    }
    req.signal?.throwIfAborted();
    const createdAtMs = Date.now();
    const analysisId = newId('ana', createdAtMs);
    const trigger: ReportTrigger = {
      kind: req.trigger?.kind ?? 'operator',
      reason: req.reason,
      evidence: req.trigger?.evidence ?? [],
    };
    if (trigger.kind === 'operator') this.deps.metrics.escalations.inc({ reason: 'operator' });
    await this.deps.storage.putAnalysis({
      analysisId,
      status: 'queued',
      trigger: trigger.kind,
      reason: req.reason,
      models,
      createdAtMs,
    });
    let lastFraction = 0;
    const progress = (p: Omit<AnalysisProgress, 'analysisId'>) => {
      // Stages overlap a little (rounding, concurrent solves): never report going backwards.
      lastFraction = Math.min(1, Math.max(lastFraction, p.fraction));
      this.deps.metrics.analysisProgress.set(lastFraction);
      try {
        onProgress({ analysisId, ...p, fraction: lastFraction });
      } catch {
        // A listener that went away (cancelled stream) must not fail the analysis.
      }
    };
    progress({
      stage: 'queued',
      fraction: 0,
      message: `waiting for ${this.queued - 1} earlier analysis(es)`,
    });
    const run = this.chain.then(() => this.run(analysisId, createdAtMs, trigger, models, req, progress));
    this.chain = run.catch(() => {});
    this.running.add(run);
    run.finally(() => this.running.delete(run)).catch(() => {});
    // A request cancelled while it waits leaves the line at once; its turn then does nothing.
    const { signal } = req;
    return signal ? abortable(run, signal, () => cancelledError(signal)) : run;
  }

  async listReports(limit: number, before?: ReportCursor): Promise<ReportSummary[]> {
    return (await this.deps.storage.listReports(limit, before)).map((r) => ({
      reportId: r.reportId,
      createdAtMs: r.createdAtMs,
      trigger: r.trigger,
      models: r.models,
    }));
  }

  async getReport(id: string): Promise<{ json: string; html: string } | undefined> {
    const r = await this.deps.storage.getReport(id);
    if (!r) return undefined;
    // Reports are stored once, as JSON; the page is rendered from it when asked for (reports
    // stored with their HTML by earlier versions keep it).
    return { json: r.json, html: r.html || renderReportHtml(JSON.parse(r.json) as AnalysisReport) };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    if (this.scheduleTimer) clearInterval(this.scheduleTimer);
    // Running analyses finish with whatever probes arrive before the sessions close.
    await Promise.allSettled([...this.running]);
    const queue = await this.queue?.catch(() => undefined);
    await queue?.worker?.stop();
    await queue?.queue.close();
    if (this.ownsPool) await this.pool.close();
  }

  private async openQueue(
    options: GwQueueOptions,
  ): Promise<{ queue: GwQueue; worker: GwWorker | undefined }> {
    const logger = options.logger ?? this.deps.logger.child('gw-queue');
    const queue = await GwQueue.open({ ...options, logger });
    registerQueueGauges(this.deps.metrics.registry, () => queue.counts());
    const jobMetrics = new WorkerJobMetrics(this.deps.metrics.registry);
    const pool = this.pool;
    const threads = this.options.workers ?? availableParallelism();
    const worker = this.solvesHere
      ? await GwWorker.start({
          ...options,
          logger,
          pool,
          concurrency: threads,
          name: `coordinator:${hostname()}:${process.pid}`,
          onJob: (e) => jobMetrics.observe(e),
        })
      : undefined;
    return { queue, worker };
  }

  // --- escalation ----------------------------------------------------------------------------

  private knownModels(): { clientId: string; taskId: string }[] {
    return this.deps.similarity.list().map((m) => ({ clientId: m.clientId, taskId: m.taskId }));
  }

  private federationMean(): number | undefined {
    const f = this.deps.similarity.federationSimilarity();
    return f.models >= 2 ? f.mean : undefined;
  }

  private onUpload(e: UploadEvent): void {
    if (this.closed) return;
    const div = this.deps.similarity.divergence(e.clientId, e.taskId);
    const escalation = this.policy.onUpload(
      {
        clientId: e.clientId,
        taskId: e.taskId,
        round: e.round,
        fingerprintMatch: e.fingerprintMatch,
        drift: e.drift,
        divergence: div && div.peers > 0 ? div.divergence : undefined,
      },
      this.federationMean(),
      () => this.knownModels().filter((m) => m.taskId === e.taskId),
      () => this.knownModels(),
    );
    if (escalation) this.escalate(escalation);
  }

  private onSchedule(): void {
    if (this.closed) return;
    const escalation = this.policy.onSchedule(this.knownModels());
    if (escalation) this.escalate(escalation);
  }

  private escalate(e: Escalation): void {
    this.deps.metrics.escalations.inc({ reason: e.kind });
    this.deps.logger.info('escalating to a GW analysis', {
      trigger: e.kind,
      reason: e.reason,
      models: e.models.length,
    });
    const deadline = this.policy.config.probeDeadlineMs;
    this.request(
      {
        models: e.models,
        reason: e.reason,
        trigger: { kind: e.kind, evidence: e.evidence },
        ...(deadline > 0 ? { probeDeadlineMs: deadline } : {}),
      },
      () => {},
    ).then(
      ({ reportId }) => this.deps.logger.info('escalation report written', { reportId, trigger: e.kind }),
      (err: unknown) =>
        this.deps.logger.warn('escalation analysis failed', { error: String((err as Error).message ?? err) }),
    );
  }

  // --- one analysis --------------------------------------------------------------------------

  private async resolveModels(
    requested: { clientId: string; taskId: string }[],
  ): Promise<{ clientId: string; taskId: string }[]> {
    const { storage } = this.deps;
    if (requested.length === 0) {
      const all: { clientId: string; taskId: string }[] = [];
      for (const c of await storage.listClients()) {
        const rounds = await storage.lastRounds(c.clientId);
        for (const t of c.tasks)
          if ((rounds.get(t.taskId) ?? 0) > 0) all.push({ clientId: c.clientId, taskId: t.taskId });
      }
      if (all.length === 0) {
        throw new AnalysisRequestError('not_found', 'no model has uploaded atoms yet: nothing to analyse');
      }
      // A stable order (not registration order), so that reports of the same models line up.
      return all.sort((a, b) =>
        a.clientId === b.clientId ? a.taskId.localeCompare(b.taskId) : a.clientId.localeCompare(b.clientId),
      );
    }
    const seen = new Set<string>();
    const out: { clientId: string; taskId: string }[] = [];
    for (const m of requested) {
      const client = await storage.getClient(m.clientId);
      if (!client)
        throw new AnalysisRequestError(
          'not_found',
          `unknown client ${quoteInput(m.clientId)}; \`atomlens status\` shows the registered ones`,
        );
      if (!client.tasks.some((t) => t.taskId === m.taskId)) {
        throw new AnalysisRequestError(
          'not_found',
          `client ${quoteInput(m.clientId)} has no task ${quoteInput(m.taskId)} (its tasks: ${client.tasks.map((t) => t.taskId).join(', ')})`,
        );
      }
      const k = modelKey(m.clientId, m.taskId);
      if (!seen.has(k)) {
        seen.add(k);
        out.push({ clientId: m.clientId, taskId: m.taskId });
      }
    }
    return out;
  }

  private async run(
    analysisId: string,
    createdAtMs: number,
    trigger: ReportTrigger,
    models: { clientId: string; taskId: string }[],
    req: AnalysisRequestInput,
    progress: Progress,
  ): Promise<{ reportId: string }> {
    const { storage, metrics, config } = this.deps;
    if (req.signal?.aborted) {
      await storage
        .putAnalysis({
          analysisId,
          trigger: trigger.kind,
          reason: req.reason,
          models,
          createdAtMs,
          status: 'failed',
          finishedAtMs: Date.now(),
          message: 'cancelled before it started',
        })
        .catch(() => {});
      throw cancelledError(req.signal);
    }
    // Stops the analysis at its next step: the caller's cancellation, or analysis.timeoutMs.
    const stop = new AbortController();
    const onCallerAbort = () => stop.abort(cancelledError(req.signal!));
    req.signal?.addEventListener('abort', onCallerAbort, { once: true });
    const timer = setTimeout(
      () =>
        stop.abort(
          new AnalysisRequestError(
            'timeout',
            `the analysis ran longer than analysis.timeoutMs (${config.analysis.timeoutMs} ms) and was stopped`,
          ),
        ),
      config.analysis.timeoutMs,
    );
    timer.unref();
    const signal = stop.signal;
    // Each GW solve in flight listens for it (abortable() in writeReport, removed when the solve
    // settles; the pool adds one listener of its own for all its tasks), and an analysis may have
    // all its layer pairs in flight at once: more than Node's warning threshold of 10 listeners,
    // bounded by the analysis's problem count, not a leak.
    setMaxListeners(0, signal);
    const started = performance.now();
    metrics.analysisInProgress.inc();
    this.policy.analysisStarted(this.federationMean());
    const record = {
      analysisId,
      trigger: trigger.kind,
      reason: req.reason,
      models,
      createdAtMs,
      startedAtMs: Date.now(),
    };
    try {
      await storage.putAnalysis({ ...record, status: 'running' });
      const stored = await this.storedModels(models);
      signal.throwIfAborted();
      const probed = await abortable(this.probe(stored.reportModels, req, progress), signal);
      signal.throwIfAborted();
      const notes: string[] = [];
      const reusedCount = probed.reportModels.filter((m) => m.reused).length;
      if (reusedCount > 0)
        notes.push(`${reusedCount} model(s) reused probe summaries stored at the same round.`);
      if (stored.atoms.some((a) => a === null)) {
        notes.push('Models without stored atoms are left out of the atom similarity.');
      }
      const reportId = await this.writeReport(
        analysisId,
        trigger,
        { ...probed, atoms: stored.atoms, notes },
        progress,
        signal,
      );
      await storage.putAnalysis({ ...record, status: 'completed', finishedAtMs: Date.now(), reportId });
      metrics.analyses.inc({ outcome: 'completed' });
      progress({ stage: 'done', fraction: 1, message: `report ${reportId} written`, reportId });
      return { reportId };
    } catch (thrown) {
      // A step that failed because the analysis was stopped reports why it was stopped.
      const err = signal.aborted ? signal.reason : thrown;
      const message = (err as Error).message ?? String(err);
      const timedOut = err instanceof AnalysisRequestError && err.code === 'timeout';
      const cancelled = err instanceof AnalysisRequestError && err.code === 'cancelled';
      metrics.analyses.inc({ outcome: timedOut ? 'timeout' : cancelled ? 'cancelled' : 'failed' });
      await storage
        .putAnalysis({
          ...record,
          status: timedOut ? 'timeout' : 'failed',
          finishedAtMs: Date.now(),
          message,
        })
        .catch(() => {});
      // What the caller reads: a refusal's own words, or for an internal failure only a
      // correlation id (the cause goes to the log; the analysis record keeps it too).
      let shown = message;
      if (!(err instanceof AnalysisRequestError)) {
        const id = correlationId();
        this.deps.logger.error('analysis failed', {
          analysisId,
          correlationId: id,
          error: (err as Error)?.stack ?? String(err),
        });
        shown = `the analysis failed (correlation id ${id}); the coordinator's log has the details`;
      }
      progress({ stage: 'failed', fraction: 1, message: shown });
      throw err;
    } finally {
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onCallerAbort);
      metrics.analysisInProgress.dec();
      metrics.analysisDuration.observe((performance.now() - started) / 1000);
      this.policy.analysisFinished();
    }
  }

  /** Each model's latest stored round, fingerprint status and atoms (null without a round). */
  private async storedModels(
    models: { clientId: string; taskId: string }[],
  ): Promise<{ reportModels: ReportModel[]; atoms: (Float32Array[] | null)[] }> {
    const { storage, template } = this.deps;
    const reportModels: ReportModel[] = [];
    for (const m of models) {
      const client = await storage.getClient(m.clientId);
      const round = (await storage.lastRounds(m.clientId)).get(m.taskId) ?? 0;
      reportModels.push({
        clientId: m.clientId,
        taskId: m.taskId,
        round: round > 0 ? round : null,
        fingerprintMatch: client?.fingerprintMatch ?? false,
        answered: false,
        reused: false,
        requestId: null,
      });
    }
    const atoms = await Promise.all(
      reportModels.map(async (m) => {
        if (m.round === null) return null;
        const stored = await storage.getRound(m.clientId, m.taskId, m.round);
        if (!stored) return null;
        const values = new Float32Array(stored.atoms.byteLength / 4);
        new Uint8Array(values.buffer).set(stored.atoms);
        return splitAtoms(template, values);
      }),
    );
    return { reportModels, atoms };
  }

  /** Asks every model for probe summaries (progress 2–30 %) and waits up to the deadline. */
  private async probe(
    reportModels: ReportModel[],
    req: AnalysisRequestInput,
    progress: Progress,
  ): Promise<Probed> {
    const { storage, template, sessions, config } = this.deps;
    const probe = { ...template.probe, size: req.probeSize ?? template.probe.size };
    const deadlineMs = Date.now() + (req.probeDeadlineMs ?? config.analysis.probeDeadlineMs);
    progress({
      stage: 'probing',
      fraction: 0.02,
      message: `asking ${reportModels.length} model(s) for probe summaries`,
    });
    const targets: ProbeTarget[] = reportModels.map((m) => ({
      clientId: m.clientId,
      taskId: m.taskId,
      round: m.round ?? 0,
    }));
    const collected = await collectProbes(
      { sessions, storage },
      targets,
      { layers: template.probeLayers, probe, deadlineMs },
      (settled, total, target, ok) =>
        progress({
          stage: 'probing',
          fraction: 0.02 + (0.28 * settled) / total,
          message: `${target.clientId}/${target.taskId} ${ok ? 'answered' : 'did not answer'} (${settled}/${total})`,
        }),
    );
    const answeredModels = [...reportModels];
    const grams = new Map<number, ProbeLayerData[]>();
    for (const a of collected.answered) {
      const i = targets.indexOf(a.target);
      answeredModels[i] = {
        ...answeredModels[i]!,
        answered: true,
        reused: a.reused,
        requestId: a.requestId,
        round: a.round > 0 ? a.round : answeredModels[i]!.round,
      };
      grams.set(i, a.grams);
    }
    const missing = collected.missing.map((m) => ({
      clientId: m.target.clientId,
      taskId: m.target.taskId,
      reason: m.reason,
    }));
    return { probe, reportModels: answeredModels, grams, missing, probingSeconds: collected.seconds };
  }

  /** GW, segmentation and labels (progress 30–95 %), then the report stored once, as JSON. */
  private async writeReport(
    analysisId: string,
    trigger: ReportTrigger,
    input: Probed & { atoms: (Float32Array[] | null)[]; notes: string[] },
    progress: Progress,
    signal: AbortSignal,
  ): Promise<string> {
    const reportId = newId('rep', Date.now());
    const gw = this.options.gw ?? {};
    const solver = await this.solverFor(analysisId, input, signal);
    // No new solve starts once the analysis is stopped, and a solve in flight is not waited for
    // (on the pool it is stopped; on the queue a worker finishes it and the result is dropped).
    const solve: SolveGw = (C1, C2, problem) => {
      signal.throwIfAborted();
      return abortable(Promise.resolve(solver.solve(C1, C2, problem)), signal);
    };
    const tasks = reportTasksVia((module, fn, args) => this.pool.run(module, fn, args, { signal }));
    const report = await buildReport(
      {
        reportId,
        analysisId,
        createdAtMs: Date.now(),
        trigger,
        template: this.deps.template,
        probe: input.probe,
        models: input.reportModels,
        missing: input.missing,
        atoms: input.atoms,
        grams: input.grams,
        cost: this.deps.config.analysis.cost,
        ...(this.options.thresholds ? { thresholds: this.options.thresholds } : {}),
        ...(this.options.segmentation ? { segmentation: this.options.segmentation } : {}),
        solver: {
          method: gw.solver ?? 'cg',
          init: typeof gw.init === 'string' ? gw.init : 'best',
          maxIterations: gw.maxIter ?? null,
          tolerance: gw.tol ?? null,
        },
        probingSeconds: input.probingSeconds,
        notes: input.notes,
      },
      solve,
      (p) => progress({ stage: p.stage, fraction: 0.3 + 0.65 * p.fraction, message: p.message }),
      tasks,
    ).finally(() => solver.finish?.());
    signal.throwIfAborted();
    await this.deps.storage.putReport({
      reportId,
      createdAtMs: report.createdAtMs,
      trigger: trigger.kind,
      models: input.reportModels.length,
      analysisId,
      json: JSON.stringify(report),
      html: '',
    });
    return reportId;
  }

  /** GW solves as jobs on the queue when there is one, else on the in-process pool. */
  private async solverFor(
    analysisId: string,
    input: Probed,
    signal: AbortSignal,
  ): Promise<{ solve: SolveGw; finish?: () => void }> {
    const gw = this.options.gw ?? {};
    const layers = this.deps.template.probeLayers;
    if (this.queue) {
      const queued = (await this.queue).queue.solverFor(
        analysisId,
        input.probe.size,
        gw,
        (model, layer): GramRef => {
          const m = input.reportModels[model]!;
          return { requestId: m.requestId!, clientId: m.clientId, taskId: m.taskId, layer: layers[layer]! };
        },
        this.deps.config.analysis.cost,
      );
      return { solve: queued.solve, finish: () => queued.finish() };
    }
    return { solve: (C1, C2) => this.pool.solve(C1, C2, gw, { signal }) };
  }
}

type Progress = (p: Omit<AnalysisProgress, 'analysisId'>) => void;

function cancelledError(signal: AbortSignal): AnalysisRequestError {
  const reason = signal.reason;
  return reason instanceof AnalysisRequestError
    ? reason
    : new AnalysisRequestError(
        'cancelled',
        'the analysis was cancelled by its caller; no report was written',
      );
}

/**
 * `work`, or the abort's reason (or `reason()`) as soon as `signal` aborts, whichever comes first;
 * the listener goes when `work` settles.
 */
function abortable<T>(work: Promise<T>, signal: AbortSignal, reason = () => signal.reason): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(reason());
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(reason());
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** What probing gives the report: the probe set, who answered with which summaries (Grams or factors), who not. */
interface Probed {
  probe: AnalysisDeps['template']['probe'];
  reportModels: ReportModel[];
  grams: Map<number, ProbeLayerData[]>;
  missing: { clientId: string; taskId: string; reason: string }[];
  probingSeconds: number;
}

/** Factory for startCoordinator({ analysis: createAnalysisService(...) }). */
export function createAnalysisService(options: AnalysisServiceOptions = {}): AnalysisFactory {
  return (deps) => new AnalysisServiceImpl(deps, options);
}
