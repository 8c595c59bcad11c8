// Runs the atomlens CLI as a user does, from the sources, to its end.
import { spawn } from 'node:child_process';
import { atomlensArgv } from '../../src/shared/runtime.js';

/** `atomlens <args>` in a child process: its exit code (-1 when killed), stdout and stderr. */
export function runAtomlens(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, atomlensArgv(args), { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}
