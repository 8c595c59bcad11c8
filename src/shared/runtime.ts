// How atomlens starts more of itself: worker threads and child processes run the TypeScript
// sources through tsx, located by absolute URL so the caller's working directory does not matter.
import { fileURLToPath } from 'node:url';

/** execArgv that lets a worker thread or child process load .ts modules. */
export const TS_EXEC_ARGV: readonly string[] = ['--import', import.meta.resolve('tsx')];

/** Absolute path of the CLI's main module, for spawning `atomlens <command>` as a child process. */
export const CLI_MAIN = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

/** argv (after the node binary) to run `atomlens <args…>` in a child process. */
export function atomlensArgv(args: string[]): string[] {
  return [...TS_EXEC_ARGV, CLI_MAIN, ...args];
}
