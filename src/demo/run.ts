// `atomlens demo` end to end: a coordinator and several clients as child processes on loopback,
// live progress from the clients' JSON events and the coordinator's Operator service, an analysis
// of every model at the end, the report written under the data directory, and a summary.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AnalysisReport } from '../analysis/report/types.js';
import type { ClientProgressEvent } from '../client/client.js';
import { stageName, triggerName } from '../operator/connection.js';
import {
  type AtomTemplate,
  DEMO_TEMPLATE_PATH,
  readTemplateFile,
  writeTemplateFile,
} from '../shared/template-file.js';
import { type ManagedChild, startChild, stopChildren } from './children.js';
import { DemoDisplay, type Output } from './display.js';
import { DemoOperator, type FederationSnapshot } from './operator.js';
import { type DemoClientPlan, planScenario, type ShareCounter } from './scenario.js';
import { type DemoSummary, summariseDemo } from './summary.js';

/**
 * File that marks a directory as created by the demo, so a fresh run may delete it.
 * @internal exported for its tests
 */
export const DEMO_MARKER = '.atomlens-demo';

export interface DemoOptions {
  clients: number;
  tasks: string[];
  /** Local rounds per task. */
  rounds: number;
  /** Probe inputs per model in analyses. */
  probeSize: number;
  /** Passes over each client's local data per round (fractions train on part of it). */
  epochs: number;
  dataDir: string;
  /** Delete a previous demo's data first (the default directory); false keeps and resumes. */
  fresh: boolean;
  keepRunning: boolean;
  grpcPort: number;
  httpPort: number;
  countShare: ShareCounter;
  out: Output;
  /** Aborted on Ctrl-C / SIGTERM: everything stops, children included. */
  signal: AbortSignal;
  /** Called with every child's pid as it starts (tests use it; the display prints them too). */
  onChild?: (name: string, pid: number) => void;
}

export interface DemoResult {
  reportId: string;
  reportHtmlPath: string;
  reportJsonPath: string;
  reportUrl: string;
  metricsUrl: string;
  grpcAddress: string;
  summary: DemoSummary;
  /** Reports the coordinator wrote on its own (escalations) while the demo ran. */
  escalations: EscalationRecord[];
  plans: DemoClientPlan[];
  seconds: { total: number; training: number; analysis: number };
}

/**
 * The template the demo's coordinator runs with: the built-in demo template file (α and initial
 * atoms from a base-trained CNN) with the probe size asked for (the final analysis asks for the
 * same size; the probe size is not part of α's fingerprint). Escalation runs on the coordinator's
 * defaults, which are chosen to fire on the demo's skewed client (see DEFAULT_ESCALATION_CONFIG).
 * @internal exported for its tests
 */
export function demoTemplate(probeSize: number): AtomTemplate {
  const t = readTemplateFile(DEMO_TEMPLATE_PATH);
  if (!t.probe.builtin) throw new Error(`${DEMO_TEMPLATE_PATH} has no built-in probe set`);
  return { ...t, probe: { ...t.probe, builtin: { ...t.probe.builtin, size: probeSize } } };
}

export interface EscalationRecord {
  reportId: string;
  trigger: string;
  /** What the escalation policy saw, e.g. "site-d/0-1 diverges from its task (…) at round 2". */
  reason: string;
  models: number;
  htmlPath: string;
  /** The report's findings, in the same form as the final summary. */
  summary: DemoSummary;
}

export class DemoInterrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

export class DemoError extends Error {}

/**
 * Prepares the data directory: a fresh default one is emptied, a foreign non-empty one refused.
 * @internal exported for its tests
 */
export function prepareDataDir(dir: string, fresh: boolean): void {
  if (fresh && existsSync(dir)) {
    const entries = readdirSync(dir);
    if (entries.length > 0 && !entries.includes(DEMO_MARKER)) {
      throw new DemoError(
        `${dir} exists and was not created by the demo; remove it, or pass --data ${dir} to reuse it (the demo then continues its rounds)`,
      );
    }
    rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(join(dir, 'logs'), { recursive: true });
  mkdirSync(join(dir, 'reports'), { recursive: true });
  writeFileSync(
    join(dir, DEMO_MARKER),
    'created by `atomlens demo`; a fresh demo run deletes this directory\n',
  );
}

function tail(path: string, lines = 12): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new DemoInterrupted());
  return new Promise<T>((resolvePromise, reject) => {
    const onAbort = () => reject(new DemoInterrupted());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolvePromise(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** Waits for the coordinator's two "listening" lines. */
function startCoordinatorChild(
  options: DemoOptions,
  templatePath: string,
): { child: ManagedChild; ready: Promise<{ grpc: string; http: string }> } {
  let grpcAddress: string | undefined;
  let httpUrl: string | undefined;
  let onReady: ((v: { grpc: string; http: string }) => void) | undefined;
  const readyPromise = new Promise<{ grpc: string; http: string }>((r) => {
    onReady = r;
  });
  const child = startChild({
    name: 'coordinator',
    args: [
      'coordinator',
      '--host',
      '127.0.0.1',
      '--grpc-port',
      String(options.grpcPort),
      '--http-port',
      String(options.httpPort),
      '--data',
      options.dataDir,
      '--template',
      templatePath,
      // Plaintext without authentication: the coordinator allows it on loopback only.
    ],
    logPath: join(options.dataDir, 'logs', 'coordinator.log'),
    onLine(line) {
      const g = /^grpc listening on (\S+)$/.exec(line);
      if (g) grpcAddress = g[1];
      const h = /^http listening on (\S+)$/.exec(line);
      if (h) httpUrl = h[1];
      if (grpcAddress && httpUrl) onReady?.({ grpc: grpcAddress, http: httpUrl });
    },
  });
  const ready = Promise.race([
    readyPromise,
    child.exited.then((exit) => {
      throw new DemoError(
        `the coordinator exited during start-up (code ${exit.code ?? exit.signal}); its log (${child.logPath}):\n${tail(child.logPath)}`,
      );
    }),
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new DemoError(`the coordinator did not start within 60 s; see ${child.logPath}`)),
        60_000,
      ).unref(),
    ),
  ]);
  return { child, ready };
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const dataDir = resolve(options.dataDir);
  prepareDataDir(dataDir, options.fresh);
  const templatePath = join(dataDir, 'demo.template.json');
  writeTemplateFile(templatePath, demoTemplate(options.probeSize));

  const plans = planScenario({
    clients: options.clients,
    tasks: options.tasks,
    countShare: options.countShare,
  });
  const run = new DemoRun({ ...options, dataDir }, plans);
  try {
    run.display.line(
      `atomlens demo: ${plans.length} clients, tasks ${options.tasks.join(', ')}, ${options.rounds} rounds per task`,
    );
    run.display.line(`data directory ${dataDir} (logs in ${join(dataDir, 'logs')})`);
    const coordinator = await run.startCoordinator(templatePath);

    const trainingStarted = Date.now();
    run.startClients(coordinator.grpcAddress);
    await run.waitForTraining(coordinator.gone);
    const trainingSeconds = (Date.now() - trainingStarted) / 1000;
    run.requireTwoTrainedClients();
    run.display.line(
      `training finished in ${trainingSeconds.toFixed(1)} s; asking the coordinator for an analysis of every model`,
    );

    const analysisStarted = Date.now();
    const analysis = await run.finalAnalysis(coordinator.gone);
    const analysisSeconds = (Date.now() - analysisStarted) / 1000;
    const summary = await run.finalSummary(analysis.report);

    const result: DemoResult = {
      reportId: analysis.reportId,
      reportHtmlPath: analysis.htmlPath,
      reportJsonPath: analysis.jsonPath,
      reportUrl: `${coordinator.httpUrl}/reports/${analysis.reportId}.html`,
      metricsUrl: coordinator.metricsUrl,
      grpcAddress: coordinator.grpcAddress,
      summary,
      escalations: run.escalations,
      plans,
      seconds: { total: (Date.now() - started) / 1000, training: trainingSeconds, analysis: analysisSeconds },
    };
    printResult(options.out, result);
    if (options.keepRunning) await run.keepRunning(result, coordinator.gone);
    return result;
  } finally {
    await run.shutdown();
  }
}

/** The coordinator as the demo reaches it, and a promise that rejects if it dies while needed. */
interface RunningCoordinator {
  grpcAddress: string;
  httpUrl: string;
  metricsUrl: string;
  /** Rejects with a DemoError when the coordinator exits before the demo stops it; never resolves. */
  gone: Promise<never>;
}

/** One demo run's moving parts: children, the operator connection, the display and what it saw. */
class DemoRun {
  readonly display: DemoDisplay;
  readonly escalations: EscalationRecord[] = [];
  private readonly children: ManagedChild[] = [];
  private readonly clientExits: Promise<unknown>[] = [];
  private coordinator: ManagedChild | undefined;
  private operatorConnection: DemoOperator | undefined;
  private stopping = false;
  private announcedRounds = 0;
  private readonly seenReports = new Set<string>();
  /** What the summaries say about each client beside its numbers (the skewed one is named). */
  private readonly notes: Record<string, string> = {};
  private snapshotChain: Promise<void> = Promise.resolve();
  private lastSnapshot: FederationSnapshot = { similarity: null, models: [] };

  constructor(
    private readonly options: DemoOptions,
    private readonly plans: DemoClientPlan[],
  ) {
    this.display = new DemoDisplay(options.out, plans, options.rounds);
    for (const p of plans) if (p.role === 'skewed') this.notes[p.id] = 'skewed share';
  }

  private get operator(): DemoOperator {
    if (!this.operatorConnection) throw new Error('the coordinator has not been started');
    return this.operatorConnection;
  }

  /** Starts the coordinator child and waits until it listens; the operator connection follows. */
  async startCoordinator(templatePath: string): Promise<RunningCoordinator> {
    const coord = startCoordinatorChild(this.options, templatePath);
    this.coordinator = coord.child;
    this.children.push(coord.child);
    this.options.onChild?.('coordinator', coord.child.pid);
    const { grpc: grpcAddress, http: httpUrl } = await abortable(coord.ready, this.options.signal);
    this.display.line(`coordinator (pid ${coord.child.pid}): gRPC ${grpcAddress}, HTTP ${httpUrl}`);
    this.operatorConnection = new DemoOperator(grpcAddress);

    // Fail loudly if the coordinator dies while the demo still needs it.
    const gone = coord.child.exited.then((exit) => {
      if (!this.stopping) {
        throw new DemoError(
          `the coordinator exited unexpectedly (code ${exit.code ?? exit.signal}); its log (${coord.child.logPath}):\n${tail(coord.child.logPath)}`,
        );
      }
      return new Promise<never>(() => {});
    });
    gone.catch(() => {});
    return { grpcAddress, httpUrl, metricsUrl: `${httpUrl}/metrics`, gone };
  }

  /** Starts one client child per plan; their JSON events drive the display and the progress lines. */
  startClients(grpcAddress: string): void {
    const { options } = this;
    for (const plan of this.plans) {
      const child = startChild({
        name: plan.id,
        args: [
          'client',
          '--coordinator',
          grpcAddress,
          '--id',
          plan.id,
          '--tasks',
          plan.tasks.join(','),
          '--rounds',
          String(options.rounds),
          '--data-split',
          plan.split,
          '--epochs',
          String(options.epochs),
          // Same seed everywhere: models of a task start from the same atoms (see scenario.ts).
          // Fresh atoms per task: copying the previous task's left the second task near chance
          // after 3 rounds when we tried it (loss 0.70 vs 0.46 fresh, iid:1/2 shares).
          '--seed',
          '1',
          '--new-task-init',
          'fresh',
          // The clients train side by side, already more of them than cores: no helper threads.
          '--train-threads',
          '1',
          '--linger',
          'inf',
          '--give-up',
          '30',
          '--json',
        ],
        logPath: join(options.dataDir, 'logs', `${plan.id}.log`),
        onLine: (line) => {
          let event: ClientProgressEvent;
          try {
            event = JSON.parse(line) as ClientProgressEvent;
          } catch {
            return;
          }
          if (this.display.clientEvent(plan.id, event)) this.onFederationProgress();
        },
      });
      this.children.push(child);
      this.display.setPid(plan.id, child.pid);
      options.onChild?.(plan.id, child.pid);
      this.display.line(`[${plan.id}] started (pid ${child.pid}): ${plan.note}`);
      this.clientExits.push(child.exited.then((exit) => this.onClientExit(plan, child, exit)));
    }
  }

  private onClientExit(plan: DemoClientPlan, child: ManagedChild, exit: Awaited<ManagedChild['exited']>) {
    if (this.stopping) return;
    const ok = exit.code === 0;
    this.display.setState(
      plan.id,
      ok ? 'done' : 'failed',
      ok ? 'exited' : `exited with ${exit.code ?? exit.signal}`,
    );
    if (!ok)
      this.display.line(
        `[${plan.id}] failed (exit ${exit.code ?? exit.signal}); its log:\n${tail(child.logPath)}`,
      );
    this.onFederationProgress();
  }

  /**
   * After each completed federation round: one line with the coordinator's similarity view, and
   * any escalation report it wrote meanwhile. Queries run one after another (a chain).
   */
  private onFederationProgress(): void {
    const { display } = this;
    const done = display.completedFederationRounds();
    if (done <= this.announcedRounds) return;
    this.announcedRounds = done;
    this.snapshotChain = this.snapshotChain.then(async () => {
      try {
        const snap = await this.operator.snapshot();
        this.lastSnapshot = snap;
        const top = snap.models.find((m) => Number.isFinite(m.divergence));
        display.line(
          `round ${done}/${display.totalFederationRounds()}: federation similarity ${snap.similarity === null ? 'n/a' : snap.similarity.toFixed(4)}` +
            (top
              ? ` · most divergent ${top.clientId}/${top.taskId} (divergence ${top.divergence.toFixed(4)}, drift ${top.drift.toFixed(4)})`
              : ''),
        );
        for (const e of await this.collectEscalations()) {
          display.line(`escalation (${e.trigger}): ${e.reason} → ${e.models} models analysed, ${e.htmlPath}`);
        }
      } catch (err) {
        if (!this.stopping) display.line(`(could not query the coordinator: ${(err as Error).message})`);
      }
    });
  }

  /** Reports the coordinator wrote on its own since the last look, saved beside the demo's. */
  private async collectEscalations(): Promise<EscalationRecord[]> {
    const found: EscalationRecord[] = [];
    const op = this.operator;
    for (const r of await op.listReports()) {
      const trigger = triggerName(r.trigger);
      if (this.seenReports.has(r.reportId) || trigger === 'operator') continue;
      this.seenReports.add(r.reportId);
      const stored = await op.getReport(r.reportId);
      const htmlPath = join(this.options.dataDir, 'reports', `${r.reportId}.html`);
      writeFileSync(htmlPath, stored.html);
      writeFileSync(join(this.options.dataDir, 'reports', `${r.reportId}.json`), stored.json);
      const parsedReport = JSON.parse(stored.json) as AnalysisReport;
      const record = {
        reportId: r.reportId,
        trigger,
        reason: parsedReport.trigger.reason,
        models: r.models,
        htmlPath,
        summary: summariseDemo(parsedReport, this.lastSnapshot, this.notes),
      };
      this.escalations.push(record);
      found.push(record);
    }
    return found;
  }

  /** Waits until every client has uploaded all its rounds (or has failed), and the last progress line. */
  async waitForTraining(coordinatorGone: Promise<never>): Promise<void> {
    const { signal } = this.options;
    await abortable(
      Promise.race([
        coordinatorGone,
        new Promise<void>((resolveTrained) => {
          const check = setInterval(() => {
            if (this.display.allTrained()) {
              clearInterval(check);
              resolveTrained();
            }
          }, 200);
          signal.addEventListener('abort', () => clearInterval(check), { once: true });
        }),
      ]),
      signal,
    );
    await abortable(this.snapshotChain, signal);
  }

  requireTwoTrainedClients(): void {
    const trained = [...this.display.rows.values()].filter((r) => r.uploads > 0).length;
    if (trained < 2) {
      throw new DemoError(
        `only ${trained} client(s) uploaded atoms; an analysis needs at least two models. See the logs in ${join(this.options.dataDir, 'logs')}`,
      );
    }
  }

  /** Asks for an analysis of every model, following its progress; writes the report's two files. */
  async finalAnalysis(coordinatorGone: Promise<never>) {
    const { signal, dataDir } = this.options;
    let lastStage = '';
    const outcome = await abortable(
      Promise.race([
        coordinatorGone,
        this.operator.requestAnalysis(
          { reason: 'demo: end of training', probeSize: this.options.probeSize, probeDeadlineMs: 60_000 },
          (p) => {
            const stage = stageName(p.stage);
            const text = `analysis ${(p.fraction * 100).toFixed(0).padStart(3)}% ${stage}: ${p.message}`;
            this.display.status(text, stage !== lastStage);
            lastStage = stage;
          },
          600_000,
        ),
      ]),
      signal,
    );
    this.display.status('', false);
    const report = await abortable(this.operator.getReport(outcome.reportId), signal);
    const jsonPath = join(dataDir, 'reports', `${outcome.reportId}.json`);
    const htmlPath = join(dataDir, 'reports', `${outcome.reportId}.html`);
    writeFileSync(jsonPath, report.json);
    writeFileSync(htmlPath, report.html);
    return {
      reportId: outcome.reportId,
      jsonPath,
      htmlPath,
      report: JSON.parse(report.json) as AnalysisReport,
    };
  }

  /** The summary of the final report, with divergence as the coordinator sees it now (level 0). */
  async finalSummary(report: AnalysisReport): Promise<DemoSummary> {
    const snapshot = await abortable(this.operator.snapshot(), this.options.signal).catch(
      () => this.lastSnapshot,
    );
    await this.collectEscalations().catch(() => []);
    const summary = summariseDemo(report, snapshot, this.notes);
    this.display.finish();
    return summary;
  }

  /** --keep-running: everything stays up until Ctrl-C (or the coordinator dies). */
  async keepRunning(result: DemoResult, coordinatorGone: Promise<never>): Promise<void> {
    this.options.out.write(
      `\nThe coordinator and clients stay up: browse ${result.reportUrl} and ${result.metricsUrl};\n` +
        `try \`atomlens status --coordinator ${result.grpcAddress}\` or \`atomlens report --coordinator ${result.grpcAddress} --out again.html\`.\n` +
        'Press Ctrl-C to stop everything.\n',
    );
    await abortable(coordinatorGone, this.options.signal).catch((err: unknown) => {
      if (!(err instanceof DemoInterrupted)) throw err;
    });
  }

  async shutdown(): Promise<void> {
    this.stopping = true;
    this.display.finish();
    this.operatorConnection?.close();
    const clients = this.children.filter((c) => c !== this.coordinator);
    // Clients first (they close their sessions), then the coordinator drains and closes storage.
    await stopChildren(clients, 10_000);
    if (this.coordinator) await stopChildren([this.coordinator], 15_000);
  }
}

/** The summary block printed at the end of a run. */
function printResult(out: Output, r: DemoResult): void {
  const lines = [
    '',
    `Summary (analysis of every model at the end)`,
    ...r.summary.lines.map((l) => `  ${l}`),
    ...(r.escalations.length > 0
      ? r.escalations.flatMap((e) => [
          '',
          `Escalation (${e.trigger}): ${e.reason}`,
          ...e.summary.lines
            .filter((l) => /^(in short|diverged|differ|most divergent)/.test(l))
            .map((l) => `  ${l}`),
          `  report: ${e.htmlPath}`,
        ])
      : ['', 'Escalations: none fired (thresholds: escalation.* in the coordinator config)']),
    '',
    `report:   ${r.reportHtmlPath}`,
    `          (JSON beside it; served at ${r.reportUrl})`,
    `metrics:  ${r.metricsUrl}`,
    `time:     ${r.seconds.total.toFixed(1)} s (training ${r.seconds.training.toFixed(1)} s, analysis ${r.seconds.analysis.toFixed(1)} s)`,
  ];
  out.write(`${lines.join('\n')}\n`);
}
