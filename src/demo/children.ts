// Child processes of `atomlens demo`: the coordinator and the clients, each `atomlens <command>`
// started as src/shared/runtime.ts says (compiled JavaScript, or the sources through tsx). Each
// child runs in its own process group (detached), so a Ctrl-C in the terminal reaches only the
// demo, which then stops the children exactly once and in order (clients first, coordinator last) — a signal sent to the whole group would make every
// child stop on its own, racing the demo's own shutdown. If the demo is killed outright, each
// child notices its stdin closing and stops itself (exit-with-parent.ts). stderr of every child
// goes to a log file; stdout is read line by line by the demo.
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { CLI_MAIN, moduleUrl, NODE_EXEC_ARGV } from '../shared/runtime.js';

/** Preload that stops a child when the demo's end of its stdin pipe closes (exit-with-parent.ts). */
const EXIT_WITH_PARENT = moduleUrl('./exit-with-parent.js', import.meta.url).href;

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ManagedChild {
  name: string;
  pid: number;
  logPath: string;
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<ChildExit>;
  /** Undefined while running. */
  exit: ChildExit | undefined;
  /** Sends a signal if the process is still running. */
  signal(sig: NodeJS.Signals): void;
}

export interface StartChildOptions {
  name: string;
  /** Arguments after `atomlens`. */
  args: string[];
  /** File that receives the child's stderr (appended). */
  logPath: string;
  /** Called for every stdout line. */
  onLine(line: string): void;
  env?: NodeJS.ProcessEnv;
}

/** Starts `atomlens <args…>` as a detached child (its own process group). */
export function startChild(options: StartChildOptions): ManagedChild {
  const log: WriteStream = createWriteStream(options.logPath, { flags: 'a' });
  const argv = [...NODE_EXEC_ARGV, '--import', EXIT_WITH_PARENT, CLI_MAIN, ...options.args];
  const child: ChildProcess = spawn(process.execPath, argv, {
    // stdin is a pipe nobody writes to: it closes when the demo dies, however it dies.
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, ...options.env },
  });
  if (child.pid === undefined) {
    // spawn reports the failure asynchronously as an 'error' event; the pid tells us now.
    log.end();
    throw new Error(`could not start atomlens ${options.args[0]} (${options.name})`);
  }
  child.stderr!.pipe(log);
  createInterface({ input: child.stdout! }).on('line', (line) => options.onLine(line));
  const managed: ManagedChild = {
    name: options.name,
    pid: child.pid,
    logPath: options.logPath,
    exit: undefined,
    exited: new Promise<ChildExit>((resolve) => {
      child.on('error', (err) => {
        log.write(`[demo] child process error: ${err.message}\n`);
      });
      child.on('exit', (code, signal) => {
        managed.exit = { code, signal };
        resolve(managed.exit);
      });
    }),
    signal(sig) {
      if (managed.exit === undefined) {
        try {
          process.kill(child.pid!, sig);
        } catch {
          // Already gone between the check and the kill.
        }
      }
    },
  };
  return managed;
}

/**
 * Stops children: SIGTERM, then SIGKILL for any still running after graceMs. Resolves when every
 * one has exited.
 */
export async function stopChildren(children: readonly ManagedChild[], graceMs: number): Promise<void> {
  const running = children.filter((c) => c.exit === undefined);
  if (running.length === 0) return;
  for (const c of running) c.signal('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const killed = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      for (const c of running) c.signal('SIGKILL');
      resolve();
    }, graceMs);
  });
  await Promise.race([Promise.all(running.map((c) => c.exited)), killed]);
  clearTimeout(timer);
  await Promise.all(running.map((c) => c.exited));
}
