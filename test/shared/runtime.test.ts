// Worker threads and child processes started the way atomlens starts them (src/shared/runtime.ts),
// here from the sources as in every test; scripts/check-production-install.mjs covers dist/.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { atomlensArgv, NODE_EXEC_ARGV } from '../../src/shared/runtime.js';

const scratch = mkdtempSync(join(tmpdir(), 'atomlens-runtime-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('runtime', () => {
  it('runs `atomlens <command>` in a child process', () => {
    const r = spawnSync(process.execPath, atomlensArgv(['--version']), { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("GW worker threads start without the process's preloads (they would run in every worker)", () => {
    // A preload like the demo's exit-with-parent hook: harmless on the main thread, fatal in a worker.
    const preload = join(scratch, 'main-thread-only.mjs');
    writeFileSync(
      preload,
      "import { isMainThread } from 'node:worker_threads';\nif (!isMainThread) throw new Error('a preload ran in a worker thread');\n",
    );
    const script = join(scratch, 'pool.mts');
    const ot = fileURLToPath(new URL('../../src/ot/index.ts', import.meta.url));
    writeFileSync(
      script,
      `import { GwPool } from ${JSON.stringify(ot)};
const n = 12;
const C = new Float64Array(n * n).map((_, k) => Math.abs(Math.floor(k / n) - (k % n)));
// inThreadMaxSize 0: even this small problem goes to a worker thread.
const pool = new GwPool({ workers: 2, inThreadMaxSize: 0 });
const r = await pool.solve(C, C, { init: 'product' });
const started = pool.started;
await pool.close();
process.stdout.write(JSON.stringify({ gw: r.gw, started }));
`,
    );
    const r = spawnSync(process.execPath, [...NODE_EXEC_ARGV, '--import', preload, script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const { gw, started } = JSON.parse(r.stdout) as { gw: number; started: number };
    expect(started).toBe(1);
    // GW of a space with itself from the product coupling: the solver finds the identity, 0.
    expect(gw).toBeCloseTo(0, 12);
  });

  it('starts worker threads when node runs with V8 flags, which a worker may not repeat', () => {
    const script = join(scratch, 'v8-flags.mts');
    const runtime = fileURLToPath(new URL('../../src/shared/runtime.ts', import.meta.url));
    const entry = join(scratch, 'echo-worker.mjs');
    writeFileSync(
      entry,
      "import { parentPort } from 'node:worker_threads';\nparentPort.postMessage('up');\n",
    );
    writeFileSync(
      script,
      `import { pathToFileURL } from 'node:url';
import { startWorker } from ${JSON.stringify(runtime)};
const worker = startWorker(pathToFileURL(${JSON.stringify(entry)}));
const message = await new Promise((resolve, reject) => {
  worker.once('message', resolve);
  worker.once('error', reject);
});
await worker.terminate();
process.stdout.write(String(message));
`,
    );
    const flags = ['--max-old-space-size=512', '--max-semi-space-size=32', '--stack-size=900'];
    const r = spawnSync(process.execPath, [...flags, ...NODE_EXEC_ARGV, script], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe('up');
  });
});
