// `atomlens report`: ask a running coordinator for a sub-network analysis (escalation level 1)
// and follow its progress to the report, or list / fetch stored reports.
import { accessSync, constants, existsSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { AnalysisReport } from '../../analysis/report/types.js';
import type { GetReportResponse__Output } from '../../generated/atomlens/v1/GetReportResponse.js';
import type { ListReportsResponse__Output } from '../../generated/atomlens/v1/ListReportsResponse.js';
import type { RunAnalysisResponse__Output } from '../../generated/atomlens/v1/RunAnalysisResponse.js';
import { operatorFailure, stageName, triggerName, unary } from '../../operator/connection.js';
import { ID_CHARACTERS, ID_MAX_LENGTH, isValidId } from '../../shared/ids.js';
import { ANALYSIS_STAGE } from '../../shared/wire-enums.js';
import { CliError, type CommandSpec, EXIT, intFlag, type Parsed, UsageError } from '../args.js';
import { connectOperatorFromFlags, OPERATOR_OPTIONS } from '../operator-flags.js';

export const spec: CommandSpec = {
  name: 'report',
  summary: 'Request an analysis from a coordinator, or fetch/list reports',
  usage:
    'atomlens report [--coordinator HOST:PORT] [--models CLIENT/TASK,…] [--reason TEXT] [--out FILE.html] [--json]\n' +
    '       atomlens report --list [--json]\n' +
    '       atomlens report --get REPORT_ID [--out FILE.html] [--json]',
  options: {
    ...OPERATOR_OPTIONS,
    models: {
      type: 'string',
      value: 'CLIENT/TASK,…',
      description: 'Models to analyse (repeatable or comma-separated); default every model with atoms',
      multiple: true,
    },
    reason: {
      type: 'string',
      value: 'TEXT',
      description: 'Why you ask (recorded in the report)',
      default: 'operator request',
    },
    deadline: {
      type: 'string',
      value: 'MS',
      description: 'How long the coordinator waits for probe answers (0 = its configured default)',
      default: '0',
    },
    'probe-size': {
      type: 'string',
      value: 'N',
      description: 'Probe inputs per model (0 = the template’s)',
      default: '0',
    },
    out: { type: 'string', value: 'FILE.html', description: 'Write the report’s HTML page to this file' },
    json: { type: 'boolean', description: 'Print the report (or the list) as JSON on stdout' },
    list: { type: 'boolean', description: 'List stored reports, newest first' },
    limit: { type: 'string', value: 'N', description: 'How many reports --list shows', default: '20' },
    get: {
      type: 'string',
      value: 'REPORT_ID',
      description: 'Fetch a stored report instead of requesting one',
    },
    timeout: {
      type: 'string',
      value: 'MS',
      description: 'Give up on the coordinator after this long (the analysis included)',
      default: '900000',
    },
    http: {
      type: 'string',
      value: 'URL',
      description:
        "The coordinator's HTTP base URL, for the browser link (default: the --coordinator host, port 9464, https with --ca)",
    },
  },
  details:
    'Progress goes to stderr (a bar on a terminal, one line per stage otherwise); stdout has the summary,\n' +
    'or the JSON with --json. The HTML page is self-contained: open it offline in any browser.\n' +
    'Exit codes: 0 ok, 1 the coordinator refused or the analysis failed, 2 usage, 3 coordinator unreachable.',
};

/** Parses "client/task" entries (repeated flags and/or comma-separated). */
export function parseModels(values: string[] | undefined): { clientId: string; taskId: string }[] {
  const out: { clientId: string; taskId: string }[] = [];
  for (const raw of values ?? []) {
    for (const item of raw.split(',')) {
      const s = item.trim();
      if (s === '') continue;
      const [clientId = '', taskId = '', ...extra] = s.split('/');
      if (extra.length > 0 || !isValidId(clientId) || !isValidId(taskId)) {
        throw new UsageError(
          `--models entry '${s}' is not CLIENT/TASK (e.g. alice/0-1; ids are 1–${ID_MAX_LENGTH} characters of ${ID_CHARACTERS})`,
        );
      }
      out.push({ clientId, taskId });
    }
  }
  return out;
}

/** Renders progress on stderr: a redrawn bar on a terminal, a line per stage change otherwise. */
function progressPrinter(stream: NodeJS.WriteStream): {
  update(p: RunAnalysisResponse__Output): void;
  end(): void;
} {
  const tty = stream.isTTY === true;
  let lastStage = '';
  let drawn = false;
  return {
    update(p) {
      const stage = stageName(p.stage);
      if (tty) {
        const width = 30;
        const filled = Math.round(Math.max(0, Math.min(1, p.fraction)) * width);
        const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
        const line = `${bar} ${(p.fraction * 100).toFixed(0).padStart(3)}% ${stage}: ${p.message}`;
        const cols = stream.columns ?? 100;
        stream.write(`\r${line.slice(0, cols - 1).padEnd(cols - 1)}`);
        drawn = true;
      } else if (stage !== lastStage) {
        stream.write(`${stage} (${(p.fraction * 100).toFixed(0)}%): ${p.message}\n`);
      }
      lastStage = stage;
    },
    end() {
      if (drawn) stream.write('\n');
    },
  };
}

const fmt = (v: number | null | undefined, d = 3) => (v === null || v === undefined ? 'n/a' : v.toFixed(d));

/** A few lines a person can read in a terminal. */
export function summariseReport(r: AnalysisReport): string {
  const out: string[] = [];
  out.push(`report ${r.reportId} (${r.createdAt}), trigger ${r.trigger.kind}: ${r.trigger.reason}`);
  const answered = r.models.filter((m) => m.answered).length;
  out.push(`models: ${r.models.length}, with probe data: ${answered}`);
  for (const m of r.missing) out.push(`  no probe data from ${m.clientId}/${m.taskId}: ${m.reason}`);
  if (r.consensus) out.push(`blocks (${r.consensus.reason}):`);
  for (const b of r.blocks) {
    const view = b.decidedBy === 'matched' && b.matched ? b.matched : b.gw;
    const who = view.departing.map((d) => `${d.clientId}/${d.taskId}`).join(', ');
    const sure =
      b.labelConfidence === null ? '' : ` (${Math.round(b.labelConfidence * 100)} % of probe resamples)`;
    out.push(
      `  ${b.layers.join(',').padEnd(24)} ${b.label.padEnd(16)}${sure} matched max ${fmt(b.matched?.max ?? null)}, GW max ${fmt(b.gw.max)}${who ? `  departing: ${who}` : ''}`,
    );
  }
  const o = r.crossCheck.overall;
  out.push(`atom cosine vs CKA over ${o.n} points: Pearson ${fmt(o.pearson)}, Spearman ${fmt(o.spearman)}`);
  return out.join('\n');
}

export async function run(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  const timeoutMs = intFlag(v, 'timeout', 1, 24 * 3_600_000);
  const out = typeof v.out === 'string' ? v.out : undefined;
  const modes = [v.list === true, typeof v.get === 'string'].filter(Boolean).length;
  if (modes > 1) throw new UsageError('use either --list or --get, not both');
  if (v.list && out) throw new UsageError('--out writes one report; it does not go with --list');
  const models = parseModels(v.models as string[] | undefined);
  if ((v.list || typeof v.get === 'string') && models.length > 0) {
    throw new UsageError('--models selects what to analyse; it does not go with --list or --get');
  }
  const deadlineMs = intFlag(v, 'deadline', 0, 24 * 3_600_000);
  const probeSize = intFlag(v, 'probe-size', 0, 4096);
  const limit = intFlag(v, 'limit', 1, 1000);
  // Before the analysis runs (it can take minutes): a path that cannot be written fails now.
  if (out) checkWritable(out);

  const connection = connectOperatorFromFlags(v);
  const { address, client, metadata } = connection;
  const deadline = () => ({ deadline: Date.now() + timeoutMs });
  try {
    if (v.list) {
      const res = await unary<ListReportsResponse__Output>((cb) =>
        client.ListReports({ pageSize: limit }, metadata, deadline(), cb),
      ).catch((err: grpc.ServiceError) => {
        throw operatorFailure(address, err);
      });
      if (v.json) {
        const reports = res.reports.map((r) => ({ ...r, trigger: triggerName(r.trigger) }));
        process.stdout.write(`${JSON.stringify({ reports }, null, 2)}\n`);
      } else if (res.reports.length === 0) {
        process.stdout.write('no reports yet; run `atomlens report` to request one\n');
      } else {
        for (const r of res.reports) {
          process.stdout.write(
            `${r.reportId}  ${new Date(r.createdAtMs).toISOString()}  ${triggerName(r.trigger).padEnd(17)}  ${r.models} models\n`,
          );
        }
      }
      return EXIT.ok;
    }

    let reportId = typeof v.get === 'string' ? v.get : '';
    if (!reportId) {
      const printer = progressPrinter(process.stderr);
      reportId = await new Promise<string>((resolve, reject) => {
        let id = '';
        let failed = '';
        const call = client.RunAnalysis(
          { models, reason: String(v.reason), probeDeadlineMs: deadlineMs, probeSize },
          metadata,
          deadline(),
        );
        call.on('data', (p: RunAnalysisResponse__Output) => {
          printer.update(p);
          const stage = ANALYSIS_STAGE.fromWire(p.stage);
          if (stage === 'done' && p.reportId) id = p.reportId;
          if (stage === 'failed') failed = p.message;
        });
        call.on('error', (err: grpc.ServiceError) => {
          printer.end();
          reject(operatorFailure(address, err));
        });
        call.on('end', () => {
          printer.end();
          if (id) resolve(id);
          else reject(new CliError(`the analysis did not produce a report${failed ? `: ${failed}` : ''}`));
        });
      });
    }

    const res = await unary<GetReportResponse__Output>((cb) =>
      client.GetReport({ reportId, includeHtml: out !== undefined }, metadata, deadline(), cb),
    ).catch((err: grpc.ServiceError) => {
      if (err.code === grpc.status.NOT_FOUND) throw new CliError(err.details);
      throw operatorFailure(address, err);
    });
    if (out) {
      try {
        writeFileSync(out, res.html);
      } catch (err) {
        throw new CliError(
          `cannot write ${out}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        );
      }
    }
    if (v.json) {
      process.stdout.write(`${res.json}\n`);
    } else {
      process.stdout.write(`${summariseReport(JSON.parse(res.json) as AnalysisReport)}\n`);
      process.stdout.write(
        out ? `HTML written to ${out}\n` : `page: atomlens report --get ${reportId} --out report.html\n`,
      );
      if (res.viewToken) {
        const base = httpBase(v, address);
        process.stdout.write(
          `in a browser (link valid 15 minutes): ${base}/reports/${encodeURIComponent(reportId)}.html?view=${res.viewToken}\n`,
        );
      }
    }
    return EXIT.ok;
  } finally {
    client.close();
  }
}

/** UsageError unless `path` can be created or overwritten (its directory exists and is writable). */
function checkWritable(path: string): void {
  const dir = dirname(resolve(path));
  let isDir = false;
  try {
    isDir = statSync(dir).isDirectory();
  } catch {
    // Missing: reported below.
  }
  if (!isDir)
    throw new UsageError(
      `--out ${path}: the directory ${dir} does not exist; create it or choose another path`,
    );
  try {
    accessSync(dir, constants.W_OK);
    if (existsSync(path)) {
      if (statSync(path).isDirectory())
        throw new UsageError(`--out ${path} is a directory; give a file name (e.g. report.html)`);
      accessSync(path, constants.W_OK);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(
      `--out ${path} cannot be written (${(err as NodeJS.ErrnoException).code ?? 'error'}); choose another path`,
    );
  }
}

/** --http, or the coordinator's host on the default HTTP port (https when --ca is given). */
function httpBase(v: Parsed['values'], address: string): string {
  if (typeof v.http === 'string') return v.http.replace(/\/+$/, '');
  const host = address.slice(0, address.lastIndexOf(':'));
  return `${typeof v.ca === 'string' ? 'https' : 'http'}://${host}:9464`;
}
