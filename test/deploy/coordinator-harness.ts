// Starts the real coordinator in-process for the deploy tests, through its public composition
// root (src/coordinator/coordinator.ts).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCoordinator } from '../../src/coordinator/coordinator.js';

export interface TestCoordinator {
  grpcPort: number;
  httpPort: number;
  dataDir: string;
  stop(): Promise<void>;
}

/** A coordinator on loopback with ephemeral ports and a fresh data directory. */
export async function startTestCoordinator(): Promise<TestCoordinator> {
  const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-deploy-coordinator-'));
  const running = await startCoordinator({
    dataDir,
    grpcHost: '127.0.0.1',
    grpcPort: 0,
    httpHost: '127.0.0.1',
    httpPort: 0,
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
