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

/** File that marks a directory as created by the demo, so a fresh run may delete it. */
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

/** Prepares the data directory: a fresh default one is emptied, a foreign non-empty one refused. */
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
  const opts = { ...options, dataDir };
  const { signal } = options;
  prepareDataDir(dataDir, options.fresh);
  const templatePath = join(dataDir, 'demo.template.json');
  writeTemplateFile(templatePath, demoTemplate(options.probeSize));

  const plans = planScenario({
    clients: options.clients,
    tasks: options.tasks,
    countShare: options.countShare,
  });
  const display = new DemoDisplay(options.out, plans, options.rounds);
  const children: ManagedChild[] = [];
  let operator: DemoOperator | undefined;
  let coordinator: ManagedChild | undefined;
  let stopping = false;

  const shutdown = async () => {
    stopping = true;
    display.finish();
    operator?.close();
    const clients = children.filter((c) => c !== coordinator);
    // Clients first (they close their sessions), then the coordinator drains and closes storage.
    await stopChildren(clients, 10_000);
    if (coordinator) await stopChildren([coordinator], 15_000);
  };

  try {
    display.line(
      `atomlens demo: ${plans.length} clients, tasks ${options.tasks.join(', ')}, ${options.rounds} rounds per task`,
    );
    display.line(`data directory ${dataDir} (logs in ${join(dataDir, 'logs')})`);
    const coord = startCoordinatorChild(opts, templatePath);
    coordinator = coord.child;
    children.push(coord.child);
    options.onChild?.('coordinator', coord.child.pid);
    const { grpc: grpcAddress, http: httpUrl } = await abortable(coord.ready, signal);
    display.line(`coordinator (pid ${coord.child.pid}): gRPC ${grpcAddress}, HTTP ${httpUrl}`);
    const metricsUrl = `${httpUrl}/metrics`;
    operator = new DemoOperator(grpcAddress);
    const op = operator;

    // Fail loudly if the coordinator dies while the demo still needs it.
    const coordinatorGone = coord.child.exited.then((exit) => {
      if (!stopping) {
        throw new DemoError(
          `the coordinator exited unexpectedly (code ${exit.code ?? exit.signal}); its log (${coord.child.logPath}):\n${tail(coord.child.logPath)}`,
        );
      }
      return new Promise<never>(() => {});
    });
    coordinatorGone.catch(() => {});

    // --- clients --------------------------------------------------------------------------
    const trainingStarted = Date.now();
    let announcedRounds = 0;
    const seenReports = new Set<string>();
    const escalations: EscalationRecord[] = [];
    const notes: Record<string, string> = {};
    for (const p of plans) if (p.role === 'skewed') notes[p.id] = 'skewed share';
    /** Reports the coordinator wrote on its own since the last look, saved beside the demo's. */
    const collectEscalations = async (): Promise<EscalationRecord[]> => {
      const found: EscalationRecord[] = [];
      for (const r of await op.listReports()) {
        const trigger = triggerName(r.trigger);
        if (seenReports.has(r.reportId) || trigger === 'operator') continue;
        seenReports.add(r.reportId);
        const stored = await op.getReport(r.reportId);
        const htmlPath = join(dataDir, 'reports', `${r.reportId}.html`);
        writeFileSync(htmlPath, stored.html);
        writeFileSync(join(dataDir, 'reports', `${r.reportId}.json`), stored.json);
        const parsedReport = JSON.parse(stored.json) as AnalysisReport;
        const record = {
          reportId: r.reportId,
          trigger,
          reason: parsedReport.trigger.reason,
          models: r.models,
          htmlPath,
          summary: summariseDemo(parsedReport, lastSnapshot, notes),
        };
        escalations.push(record);
        found.push(record);
      }
      return found;
    };
    let snapshotChain: Promise<void> = Promise.resolve();
    let lastSnapshot: FederationSnapshot = { similarity: null, models: [] };
    const onFederationProgress = () => {
      const done = display.completedFederationRounds();
      if (done <= announcedRounds) return;
      announcedRounds = done;
      snapshotChain = snapshotChain.then(async () => {
        try {
          const snap = await op.snapshot();
          lastSnapshot = snap;
          const top = snap.models.find((m) => Number.isFinite(m.divergence));
          display.line(
            `round ${done}/${display.totalFederationRounds()}: federation similarity ${snap.similarity === null ? 'n/a' : snap.similarity.toFixed(4)}` +
              (top
                ? ` · most divergent ${top.clientId}/${top.taskId} (divergence ${top.divergence.toFixed(4)}, drift ${top.drift.toFixed(4)})`
                : ''),
          );
          for (const e of await collectEscalations()) {
            display.line(
              `escalation (${e.trigger}): ${e.reason} → ${e.models} models analysed, ${e.htmlPath}`,
            );
          }
        } catch (err) {
          if (!stopping) display.line(`(could not query the coordinator: ${(err as Error).message})`);
        }
      });
    };

    const clientExits: Promise<unknown>[] = [];
    for (const plan of plans) {
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
          '--linger',
          'inf',
          '--give-up',
          '30',
          '--json',
        ],
        logPath: join(dataDir, 'logs', `${plan.id}.log`),
        onLine(line) {
          let event: ClientProgressEvent;
          try {
            event = JSON.parse(line) as ClientProgressEvent;
          } catch {
            return;
          }
          if (display.clientEvent(plan.id, event)) onFederationProgress();
        },
      });
      children.push(child);
      display.setPid(plan.id, child.pid);
      options.onChild?.(plan.id, child.pid);
      display.line(`[${plan.id}] started (pid ${child.pid}): ${plan.note}`);
      clientExits.push(
        child.exited.then((exit) => {
          if (stopping) return;
          const ok = exit.code === 0;
          display.setState(
            plan.id,
            ok ? 'done' : 'failed',
            ok ? 'exited' : `exited with ${exit.code ?? exit.signal}`,
          );
          if (!ok)
            display.line(
              `[${plan.id}] failed (exit ${exit.code ?? exit.signal}); its log:\n${tail(child.logPath)}`,
            );
          onFederationProgress();
        }),
      );
    }

    // Wait until every client has uploaded all its rounds (or has failed).
    await abortable(
      Promise.race([
        coordinatorGone,
        new Promise<void>((resolveTrained) => {
          const check = setInterval(() => {
            if (display.allTrained()) {
              clearInterval(check);
              resolveTrained();
            }
          }, 200);
          signal.addEventListener('abort', () => clearInterval(check), { once: true });
        }),
      ]),
      signal,
    );
    await abortable(snapshotChain, signal);
    const trainingSeconds = (Date.now() - trainingStarted) / 1000;
    const trained = [...display.rows.values()].filter((r) => r.uploads > 0).length;
    if (trained < 2) {
      throw new DemoError(
        `only ${trained} client(s) uploaded atoms; an analysis needs at least two models. See the logs in ${join(dataDir, 'logs')}`,
      );
    }
    display.line(
      `training finished in ${trainingSeconds.toFixed(1)} s; asking the coordinator for an analysis of every model`,
    );

    // --- analysis ---------------------------------------------------------------------------
    const analysisStarted = Date.now();
    let lastStage = '';
    const outcome = await abortable(
      Promise.race([
        coordinatorGone,
        op.requestAnalysis(
          { reason: 'demo: end of training', probeSize: options.probeSize, probeDeadlineMs: 60_000 },
          (p) => {
            const stage = stageName(p.stage);
            const text = `analysis ${(p.fraction * 100).toFixed(0).padStart(3)}% ${stage}: ${p.message}`;
            display.status(text, stage !== lastStage);
            lastStage = stage;
          },
          600_000,
        ),
      ]),
      signal,
    );
    display.status('', false);
    const report = await abortable(op.getReport(outcome.reportId), signal);
    const reportJsonPath = join(dataDir, 'reports', `${outcome.reportId}.json`);
    const reportHtmlPath = join(dataDir, 'reports', `${outcome.reportId}.html`);
    writeFileSync(reportJsonPath, report.json);
    writeFileSync(reportHtmlPath, report.html);
    const analysisSeconds = (Date.now() - analysisStarted) / 1000;
    const parsed = JSON.parse(report.json) as AnalysisReport;
    // Divergence as the coordinator sees it now (level 0), beside the report's GW view.
    const snapshot = await abortable(op.snapshot(), signal).catch(() => lastSnapshot);
    await collectEscalations().catch(() => []);
    const summary = summariseDemo(parsed, snapshot, notes);
    display.finish();

    const result: DemoResult = {
      reportId: outcome.reportId,
      reportHtmlPath,
      reportJsonPath,
      reportUrl: `${httpUrl}/reports/${outcome.reportId}.html`,
      metricsUrl,
      grpcAddress,
      summary,
      escalations,
      plans,
      seconds: { total: (Date.now() - started) / 1000, training: trainingSeconds, analysis: analysisSeconds },
    };
    printResult(options.out, result);

    if (options.keepRunning) {
      options.out.write(
        `\nThe coordinator and clients stay up: browse ${result.reportUrl} and ${metricsUrl};\n` +
          `try \`atomlens status --coordinator ${grpcAddress}\` or \`atomlens report --coordinator ${grpcAddress} --out again.html\`.\n` +
          'Press Ctrl-C to stop everything.\n',
      );
      await abortable(coordinatorGone, signal).catch((err: unknown) => {
        if (!(err instanceof DemoInterrupted)) throw err;
      });
    }
    void clientExits;
    return result;
  } finally {
    await shutdown();
  }
}

/** The summary block printed at the end of a run. */
export function printResult(out: Output, r: DemoResult): void {
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
