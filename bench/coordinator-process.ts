// A coordinator in a child process (`atomlens coordinator …` via src/shared/runtime.ts), for the
// load benchmark (its memory is measured apart from the load generator's) and for crash tests
// (SIGKILL needs a separate process). Waits for the listening lines the CLI prints.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { atomlensArgv } from '../src/shared/runtime.js';

export interface CoordinatorProcess {
  child: ChildProcess;
  pid: number;
  /** host:port of the gRPC endpoint. */
  grpcAddress: string;
  grpcPort: number;
  /** Base URL of the HTTP endpoint (http:// or https://), when one was printed. */
  httpUrl: string | undefined;
  /** Resolves with the exit code/signal once the process has exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends SIGTERM (graceful drain) and waits for exit; SIGKILL after graceMs. */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** kill -9: no drain, no cleanup. */
  kill9(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resident set size of the coordinator process in bytes (Linux /proc), or NaN. */
  rssBytes(): number;
  /** CPU time (user + system) the coordinator process has used so far, in seconds (Linux /proc), or NaN. */
  cpuSeconds(): number;
  /** The last lines the coordinator wrote (stdout and stderr), for error messages. */
  output(): string;
}

export interface SpawnOptions {
  dataDir: string;
  /** Extra CLI flags after `coordinator --data DIR --host 127.0.0.1`. */
  args?: string[];
  grpcPort?: number;
  httpPort?: number;
  env?: Record<string, string>;
  startTimeoutMs?: number;
  /** Node flags for the child, e.g. ['--cpu-prof'] (NODE_OPTIONS refuses some of them). */
  nodeArgs?: string[];
}

/** USER_HZ: 100 on every Linux configuration Node supports. */
const CLOCK_TICKS = 100;
const GRPC_LINE = /grpc listening on (\S+):(\d+)/;
const HTTP_LINE = /http listening on (https?:\/\/\S+)/;

export function spawnCoordinator(options: SpawnOptions): Promise<CoordinatorProcess> {
  const args = [
    'coordinator',
    '--data',
    options.dataDir,
    '--host',
    '127.0.0.1',
    '--grpc-port',
    String(options.grpcPort ?? 0),
    '--http-port',
    String(options.httpPort ?? 0),
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...atomlensArgv(args)], {
    env: { ...process.env, ATOMLENS_LOG: 'warn', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A bench or test that dies without stopping its coordinator must not leave it running.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  const lines: string[] = [];
  const remember = (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line) lines.push(line);
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const output = () => lines.join('\n');

  return new Promise<CoordinatorProcess>((resolve, reject) => {
    let grpc: { host: string; port: number } | undefined;
    let http: string | undefined;
    let settled = false;
    const timer = setTimeout(
      () =>
        fail(
          new Error(`coordinator did not start within ${options.startTimeoutMs ?? 60_000} ms:\n${output()}`),
        ),
      options.startTimeoutMs ?? 60_000,
    );
    function fail(err: Error) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    }
    function check() {
      if (settled || !grpc || !http) return;
      settled = true;
      clearTimeout(timer);
      const pid = child.pid!;
      const { host, port } = grpc;
      resolve({
        child,
        pid,
        grpcAddress: `${host}:${port}`,
        grpcPort: port,
        httpUrl: http,
        exited,
        output,
        async stop(graceMs = 15_000) {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
          const r = await exited;
          clearTimeout(t);
          return r;
        },
        async kill9() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          return exited;
        },
        cpuSeconds() {
          try {
            // Fields after the parenthesised command name; utime and stime are 14th and 15th overall.
            const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
            const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
          } catch {
            return Number.NaN;
          }
        },
        rssBytes() {
          try {
            const status = readFileSync(`/proc/${pid}/status`, 'utf8');
            const m = /VmRSS:\s+(\d+) kB/.exec(status);
            return m ? Number(m[1]) * 1024 : Number.NaN;
          } catch {
            return Number.NaN;
          }
        },
      });
    }
    child.stdout!.on('data', (chunk: Buffer) => {
      remember(chunk);
      const text = chunk.toString();
      const g = GRPC_LINE.exec(text);
      if (g) grpc = { host: g[1]!, port: Number(g[2]) };
      const h = HTTP_LINE.exec(text);
      if (h) http = h[1]!;
      check();
    });
    child.stderr!.on('data', remember);
    exited.then(({ code, signal }) =>
      fail(new Error(`coordinator exited early (code ${code}, signal ${signal}):\n${output()}`)),
    );
  });
}
