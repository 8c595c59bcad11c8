// How atomlens starts more of itself: worker threads and child processes. Installed, atomlens runs
// the compiled JavaScript in dist/ (`npm run build`) with plain node. From the TypeScript sources
// (the tests, `npm run bench`, `node --import tsx src/cli/main.ts`) the same modules are the .ts
// files, loaded through tsx — a development dependency that compiled code never touches. Which
// case applies is read off this module's own URL; paths are absolute, so the caller's working
// directory does not matter.
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** True when running from the TypeScript sources rather than from dist/. */
const FROM_SOURCES = import.meta.url.endsWith('.ts');

/**
 * execArgv for a child process running atomlens modules: tsx's loader from the sources; from
 * dist/, source maps so stack traces name the TypeScript lines.
 */
export const NODE_EXEC_ARGV: readonly string[] = FROM_SOURCES
  ? ['--import', import.meta.resolve('tsx')]
  : ['--enable-source-maps'];

/**
 * URL of an atomlens module, given relative to `base` (the caller's import.meta.url) with a .js
 * extension as in an import; from the sources the .ts file of that name.
 */
export function moduleUrl(relativeJs: string, base: string): URL {
  if (!relativeJs.endsWith('.js')) throw new Error(`moduleUrl: expected a .js path, got ${relativeJs}`);
  return new URL(FROM_SOURCES ? `${relativeJs.slice(0, -3)}.ts` : relativeJs, base);
}

/** Absolute path of the CLI's main module, for spawning `atomlens <command>` as a child process. */
export const CLI_MAIN = fileURLToPath(moduleUrl('../cli/main.js', import.meta.url));

/**
 * argv (after the node binary) to run `atomlens <args…>` in a child process.
 * @internal exported for its tests
 */
export function atomlensArgv(args: string[]): string[] {
  return [...NODE_EXEC_ARGV, CLI_MAIN, ...args];
}

/** Flags (each taking a value) that make no sense in a worker: preloads and the main script's source. */
const PROCESS_ONLY_FLAGS = new Set([
  '--import',
  '--require',
  '-r',
  '--loader',
  '--experimental-loader',
  '--eval',
  '-e',
  '--print',
  '-p',
  '--input-type',
]);

/**
 * The process's execArgv without preloads (--import, --require, --loader) and entry flags (--eval,
 * --print, --input-type). Workers would otherwise inherit them: a preload such as the demo's
 * exit-with-parent hook would run again inside every worker.
 */
function workerExecArgv(execArgv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    const name = arg.split('=', 1)[0]!;
    if (!PROCESS_ONLY_FLAGS.has(name)) {
      out.push(arg);
      continue;
    }
    if (!arg.includes('=')) i++; // the value is the next item
  }
  return out;
}

/**
 * Starts a worker thread on an atomlens module (a URL from moduleUrl), with workerExecArgv()
 * unless options say otherwise. Node 20 applies no module hooks inside worker threads, so
 * `--import tsx` cannot load a .ts entry there; from the sources the worker starts on
 * dev-worker.mjs, a plain-JavaScript launcher that imports the entry through tsx's API.
 */
export function startWorker(entry: URL, options: WorkerOptions = {}): Worker {
  const start = (execArgv: string[]) =>
    FROM_SOURCES
      ? new Worker(new URL('./dev-worker.mjs', import.meta.url), {
          ...options,
          execArgv,
          argv: [entry.href, ...(options.argv ?? [])],
        })
      : new Worker(entry, { ...options, execArgv });
  const execArgv = options.execArgv ?? workerExecArgv();
  try {
    return start(execArgv);
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw err;
    // V8 flags (heap sizes, GC tracing, …) apply to the whole process, workers included, and a
    // worker's own execArgv may not repeat them: Node names the ones it refused.
    return start(withoutFlags(execArgv, refusedFlags((err as Error).message)));
  }
}

/** The flag names in Node's "invalid execArgv flags: --a=1, --b" message. */
function refusedFlags(message: string): Set<string> {
  const list = message.slice(message.indexOf(':') + 1);
  return new Set(list.split(',').map((f) => f.trim().split('=', 1)[0]!));
}

/** execArgv without the named flags (and the value of one given as a separate item). */
function withoutFlags(execArgv: readonly string[], names: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i]!;
    if (!names.has(arg.split('=', 1)[0]!)) {
      out.push(arg);
      continue;
    }
    if (!arg.includes('=') && execArgv[i + 1] !== undefined && !execArgv[i + 1]!.startsWith('-')) i++;
  }
  return out;
}
