// Starts the real coordinator in-process for the deploy tests, through its public composition
// root (src/coordinator/coordinator.ts). Imported by path at run time so these tests compile and
// skip cleanly while the coordinator is still being written.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO_ROOT } from './deploy-files.js';

const COORDINATOR_MODULE = join(REPO_ROOT, 'src', 'coordinator', 'coordinator.ts');

export const hasCoordinator = existsSync(COORDINATOR_MODULE);

export interface TestCoordinator {
  grpcPort: number;
  httpPort: number;
  dataDir: string;
  stop(): Promise<void>;
}

interface RunningCoordinatorLike {
  grpcPort: number;
  httpPort: number;
  stop(): Promise<void>;
}

/** A coordinator on loopback with ephemeral ports and a fresh data directory. */
export async function startTestCoordinator(extra: Record<string, unknown> = {}): Promise<TestCoordinator> {
  const mod = (await import(pathToFileURL(COORDINATOR_MODULE).href)) as {
    startCoordinator(options: Record<string, unknown>): Promise<RunningCoordinatorLike>;
  };
  const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-deploy-coordinator-'));
  const running = await mod.startCoordinator({
    dataDir,
    grpcHost: '127.0.0.1',
    grpcPort: 0,
    httpHost: '127.0.0.1',
    httpPort: 0,
    ...extra,
  });
  return {
    grpcPort: running.grpcPort,
    httpPort: running.httpPort,
    dataDir,
    async stop() {
      await running.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Metric families a Prometheus text exposition declares (# TYPE lines): name → type. */
export function exposedFamilies(text: string): Record<string, string> {
  const families: Record<string, string> = {};
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) families[m[1]!] = m[2]!;
  return families;
}
