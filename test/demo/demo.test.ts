// `atomlens demo` as a user runs it: a child process that starts a real coordinator and real
// clients (TensorFlow.js training on split-MNIST) over gRPC on loopback. A shortened run (2 rounds,
// a fraction of an epoch, 32 probe inputs) must end with a summary that matches the report it
// wrote, a live /metrics while --keep-running holds, and no child process left after Ctrl-C —
// whether Ctrl-C comes at the end or in the middle of training.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { AnalysisReport } from '../../src/analysis/report/types.js';
import { atomlensArgv } from '../../src/shared/runtime.js';

/** Whether a process with this pid exists (signal 0 probes without sending anything). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const dirs: string[] = [];
const started: ChildProcess[] = [];

afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface RunningDemo {
  proc: ChildProcess;
  lines: string[];
  stderr: () => string;
  /** Resolves with the first stdout line matching re (rejects when the demo exits first). */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray>;
  exited: Promise<number | null>;
  pids(): number[];
}

function startDemo(args: string[]): RunningDemo {
  const proc = spawn(process.execPath, atomlensArgv(['demo', ...args]), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ATOMLENS_LOG: 'warn' },
  });
  started.push(proc);
  const lines: string[] = [];
  let err = '';
  let partial = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const parts = partial.split('\n');
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      for (const w of [...waiters]) {
        const m = w.re.exec(line);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return {
    proc,
    lines,
    stderr: () => err,
    exited,
    waitFor(re, timeoutMs) {
      const already = lines.map((l) => re.exec(l)).find((m) => m);
      if (already) return Promise.resolve(already);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(new Error(`no line matching ${re} within ${timeoutMs} ms:\n${lines.join('\n')}\n${err}`)),
          timeoutMs,
        );
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
        void exited.then((code) =>
          setTimeout(() => {
            clearTimeout(timer);
            reject(new Error(`demo exited (${code}) before ${re}:\n${lines.join('\n')}\n${err}`));
          }, 50),
        );
      });
    },
    pids() {
      return lines.flatMap((l) => {
        const m = /\(pid (\d+)\)/.exec(l);
        return m ? [Number(m[1])] : [];
      });
    },
  };
}

async function allGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter(isAlive);
    if (alive.length === 0 || Date.now() > until) return alive;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const SHORT = ['--clients', '3', '--tasks', '2', '--rounds', '2', '--epochs', '0.2', '--probe-size', '32'];

describe('atomlens demo', () => {
  it('a shortened run ends with a summary that matches its report; --keep-running serves /metrics until Ctrl-C', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'atomlens-demo-'));
    dirs.push(dir);
    const demo = startDemo([...SHORT, '--data', dir, '--keep-running']);
    await demo.waitFor(/Press Ctrl-C to stop everything/, 240_000);

    // One coordinator and three clients were started, each with its pid on the display.
    const pids = demo.pids();
    expect(pids).toHaveLength(4);
    expect(pids.every(isAlive)).toBe(true);
    const out = demo.lines.join('\n');
    expect(out).toMatch(/\[site-a\] started \(pid \d+\): learns 0-1 then 2-3/);
    expect(out).toMatch(/\[site-c\] started \(pid \d+\): learns 0-1 from a skewed \(non-IID\) share/);
    // Progress: per-client rounds with loss and accuracy, per federation round similarity.
    expect(out).toMatch(/\[site-b\] task 2-3 round 2 \(2\/2\): loss \d+\.\d+, accuracy \d+\.\d%/);
    expect(out).toMatch(/round 4\/4: federation similarity \d\.\d{4} · most divergent site-\w\/\d-\d/);

    // The report the summary points at exists, and the summary says what it says.
    const reportPath = (await demo.waitFor(/^report: +(\S+\.html)$/, 1000))[1]!;
    expect(reportPath.startsWith(join(dir, 'reports'))).toBe(true);
    const html = readFileSync(reportPath, 'utf8');
    const report = JSON.parse(readFileSync(reportPath.replace(/\.html$/, '.json'), 'utf8')) as AnalysisReport;
    expect(html).toContain(report.reportId);
    expect(html).toContain('<svg');
    expect(report.trigger).toMatchObject({ kind: 'operator', reason: 'demo: end of training' });
    expect(report.template.probe.size).toBe(32);
    // Every model of the scenario was analysed, and the lingering clients answered the probes.
    expect(report.models.map((m) => `${m.clientId}/${m.taskId}`).sort()).toEqual([
      'site-a/0-1',
      'site-a/2-3',
      'site-b/0-1',
      'site-b/2-3',
      'site-c/0-1',
    ]);
    expect(report.models.every((m) => m.answered && m.round === 2)).toBe(true);
    expect(out).toContain(`report ${report.reportId}: 5 models, 5 with probe data (n = 32 probe inputs)`);
    const labelled = new Map<string, string[]>();
    for (const b of report.blocks) labelled.set(b.label, [...(labelled.get(b.label) ?? []), ...b.layers]);
    for (const [label, layers] of labelled) expect(out).toContain(`${label}: ${layers.join(', ')}`);
    expect(out).toMatch(/(diverged|most divergent|diverged most) \((probe|atom) view\): site-\w\/\d-\d/);
    expect(out).toMatch(/atom cosine vs CKA over \d+ \(pair, layer\) points/);
    expect(existsSync(join(dir, 'logs', 'coordinator.log'))).toBe(true);
    expect(existsSync(join(dir, 'logs', 'site-a.log'))).toBe(true);

    // The coordinator is still up: /metrics and the report page answer over HTTP.
    const metricsUrl = (await demo.waitFor(/^metrics: +(http:\/\/\S+\/metrics)$/, 1000))[1]!;
    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics).toMatch(/^atomlens_clients_registered 3$/m);
    // 2 rounds × (2 tasks for site-a and site-b, 1 for site-c): every round stored exactly once.
    expect(metrics).toMatch(/^atomlens_atom_uploads_total\{outcome="accepted"\} 10$/m);
    const page = await fetch(metricsUrl.replace(/\/metrics$/, `/reports/${report.reportId}.html`));
    expect(page.status).toBe(200);

    demo.proc.kill('SIGINT');
    expect(await demo.exited).toBe(0);
    expect(await allGone(pids, 5_000)).toEqual([]);
  });

  it('Ctrl-C in the middle of training stops every child and exits 130', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'atomlens-demo-int-'));
    dirs.push(dir);
    const demo = startDemo([...SHORT, '--rounds', '50', '--data', dir]);
    await demo.waitFor(/^\[site-c\] started \(pid \d+\)/, 60_000);
    // Wait for training to be under way, so the clients are busy when the signal comes.
    await demo.waitFor(/^\[site-\w\] task \S+ round 1 /, 120_000);
    const pids = demo.pids();
    expect(pids).toHaveLength(4);
    demo.proc.kill('SIGINT');
    expect(await demo.exited).toBe(130);
    expect(await allGone(pids, 5_000)).toEqual([]);
    expect(demo.stderr()).toContain('every child process has exited');
  });

  it('children stop on their own when the demo is killed outright (SIGKILL)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'atomlens-demo-kill-'));
    dirs.push(dir);
    const demo = startDemo([...SHORT, '--rounds', '50', '--data', dir]);
    await demo.waitFor(/^\[site-\w\] task \S+ round 1 /, 180_000);
    const pids = demo.pids();
    expect(pids).toHaveLength(4);
    demo.proc.kill('SIGKILL');
    await demo.exited;
    // Each child sees its stdin pipe close and shuts down (the coordinator writes nothing to stdout
    // after start-up, so only that can stop it).
    expect(await allGone(pids, 30_000)).toEqual([]);
  });

  it('refuses bad flags with exit code 2 and a message naming the flag', async () => {
    for (const [args, message] of [
      [['--clients', '1'], /--clients must be at least 2/],
      [['--tasks', '0-1,1-2'], /class 1 appears in more than one task/],
      [['--probe-size', '4'], /--probe-size must be an integer from 8 to 1024/],
      [['--bogus'], /Unknown option '--bogus'/],
    ] as const) {
      const demo = startDemo([...args]);
      expect(await demo.exited).toBe(2);
      expect(demo.stderr()).toMatch(message);
    }
  });
});
