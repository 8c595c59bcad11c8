// One coordinator per data directory: a second one (in this process or another) fails with a
// message naming the first one's pid; the lock of a coordinator killed with SIGKILL does not
// stand in the way of the next start; a stopped coordinator releases it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CoordinatorProcess, spawnCoordinator } from '../../bench/coordinator-process.js';
import { startCoordinator } from '../../src/coordinator/coordinator.js';
import { createLogger } from '../../src/shared/log.js';

const quiet = createLogger('test', 'silent');
const start = (dataDir: string) =>
  startCoordinator({ dataDir, grpcHost: '127.0.0.1', grpcPort: 0, httpPort: 0, logger: quiet });

describe('data directory lock', () => {
  const dirs: string[] = [];
  let child: CoordinatorProcess | undefined;
  const fresh = () => {
    const dir = mkdtempSync(join(tmpdir(), 'atomlens-lock-'));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    await child?.kill9().catch(() => undefined);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a second coordinator in the same process, naming the pid; a stop releases the directory', async () => {
    const dataDir = fresh();
    const first = await start(dataDir);
    await expect(start(dataDir)).rejects.toThrow(
      new RegExp(`data directory .* is in use by another coordinator \\(pid ${process.pid}`),
    );
    await first.stop({ drain: false });
    const again = await start(dataDir);
    await again.stop({ drain: false });
  });

  it('refuses to start on the directory of a running coordinator process; takes it over after kill -9', async () => {
    const dataDir = fresh();
    child = await spawnCoordinator({ dataDir, args: ['--without-analysis'], env: { ATOMLENS_LOG: 'error' } });
    await expect(start(dataDir)).rejects.toThrow(new RegExp(`pid ${child.pid}\\b`));
    await child.kill9();
    child = undefined;
    const next = await start(dataDir);
    await next.stop({ drain: false });
  }, 60_000);
});
