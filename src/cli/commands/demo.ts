// `atomlens demo` (`npm run demo`): a coordinator and several clients as child processes on
// loopback, a few federated rounds with live progress, an analysis, a report and a summary
// (src/demo/run.ts). Ctrl-C stops every child before the demo exits.
import { resolve } from 'node:path';
import { DemoError, DemoInterrupted, runDemo } from '../../demo/run.js';
import { parseDemoTasks, type ShareCounter } from '../../demo/scenario.js';
import { CliError, type CommandSpec, EXIT, intFlag, numberFlag, type Parsed, UsageError } from '../args.js';

/** Exit code after Ctrl-C before the demo finished (128 + SIGINT, as shells report it). */
export const EXIT_INTERRUPTED = 130;

export const spec: CommandSpec = {
  name: 'demo',
  summary: 'Start a coordinator and several clients on loopback, train a few rounds, end with a report',
  usage:
    'atomlens demo [--clients N] [--tasks N|LIST] [--rounds R] [--probe-size N] [--data DIR] [--keep-running]',
  options: {
    clients: { type: 'string', value: 'N', default: '4', description: 'Number of client processes (1–12)' },
    tasks: {
      type: 'string',
      value: 'N|LIST',
      default: '2',
      description: 'Split-MNIST tasks: a count (first N of 0-1,2-3,4-5,6-7,8-9) or a list like 0-1,2-3',
    },
    rounds: { type: 'string', value: 'R', default: '4', description: 'Local rounds per task' },
    'probe-size': {
      type: 'string',
      value: 'N',
      default: '256',
      description: 'Probe inputs per model for the GW analysis (8–1024)',
    },
    epochs: {
      type: 'string',
      value: 'E',
      default: '2',
      description: "Passes over each client's data per round (e.g. 0.2 for a quick run)",
    },
    data: {
      type: 'string',
      value: 'DIR',
      description:
        'Data directory to keep and reuse (rounds continue); default ./demo-data, emptied at every run',
    },
    'keep-running': {
      type: 'boolean',
      description: 'After the summary, leave the coordinator and clients up for browsing until Ctrl-C',
    },
    'grpc-port': {
      type: 'string',
      value: 'P',
      default: '0',
      description: 'Coordinator gRPC port (0 = any free)',
    },
    'http-port': {
      type: 'string',
      value: 'Q',
      default: '0',
      description: 'Coordinator HTTP port for /metrics and /reports (0 = any free)',
    },
  },
  details: `The default scenario (4 clients, 2 tasks):
  site-a, site-b  learn 0-1 then 2-3 (continual learning: shared α, one atom set per task)
  site-c          learns 0-1 (IID share)
  site-d          learns 0-1 from a skewed, mostly-one-class share — the client expected to diverge
With --tasks 3: site-b learns 4-5 then 2-3 and site-c learns 4-5.
Everything runs on 127.0.0.1 in plaintext: it is a demo, not a deployment (see README.md for TLS).
Child logs go to DIR/logs, the report to DIR/reports/<id>.html (and .json).

Exit codes: 0 done (or stopped with Ctrl-C under --keep-running), 1 failure, 2 usage,
130 interrupted by Ctrl-C before the end.`,
};

async function defaultShareCounter(): Promise<ShareCounter> {
  // The client's own data code, so the skewed share the demo picks is exactly what the client gets.
  const { parseDataSplit, trainShare } = await import('../../client/data.js');
  return (classes, split) => classes.map((c) => trainShare([c], parseDataSplit(split)).length);
}

export async function run(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  const clients = intFlag(v, 'clients', 1, 12);
  const rounds = intFlag(v, 'rounds', 1, 100);
  const probeSize = intFlag(v, 'probe-size', 8, 1024);
  const epochs = numberFlag(v, 'epochs', 0.01, 100);
  const grpcPort = intFlag(v, 'grpc-port', 0, 65535);
  const httpPort = intFlag(v, 'http-port', 0, 65535);
  let tasks: string[];
  try {
    tasks = parseDemoTasks(String(v.tasks));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (clients < 2) throw new UsageError('--clients must be at least 2: the demo compares clients');
  const fresh = typeof v.data !== 'string';
  const dataDir = resolve(typeof v.data === 'string' ? v.data : './demo-data');

  const controller = new AbortController();
  const pids = new Map<string, number>();
  let signals = 0;
  const onSignal = (name: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      process.stderr.write(`\natomlens demo: ${name} — stopping the clients and the coordinator…\n`);
      controller.abort();
      return;
    }
    process.stderr.write(`atomlens demo: second ${name} — killing the child processes now\n`);
    for (const pid of pids.values()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    process.exit(EXIT_INTERRUPTED);
  };
  const signalNames: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signalNames) process.on(s, onSignal);
  try {
    await runDemo({
      clients,
      tasks,
      rounds,
      probeSize,
      epochs,
      dataDir,
      fresh,
      keepRunning: v['keep-running'] === true,
      grpcPort,
      httpPort,
      countShare: await defaultShareCounter(),
      out: {
        write: (text) => process.stdout.write(text),
        isTTY: process.stdout.isTTY === true,
        columns: process.stdout.columns,
      },
      signal: controller.signal,
      onChild: (name, pid) => pids.set(name, pid),
    });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof DemoInterrupted) {
      process.stderr.write('atomlens demo: stopped before the end; every child process has exited\n');
      return EXIT_INTERRUPTED;
    }
    if (err instanceof DemoError) throw new CliError(err.message, EXIT.failure);
    throw err;
  } finally {
    for (const s of signalNames) process.off(s, onSignal);
  }
}
