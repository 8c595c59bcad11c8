// The coordinator the end-to-end analysis tests run against: on loopback with the analysis
// service, its data in a fresh temp dir, the eight-layer template of the simulated clients
// (sim-client.ts), quick sessions, no process metrics and (unless overridden) no escalation.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CoordinatorConfig, DeepPartial } from '../../src/coordinator/config.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import { createLogger } from '../../src/shared/log.js';
import { templateConfig } from './sim-client.js';

export interface LiveCoordinator {
  dir: string;
  coordinator: RunningCoordinator;
  /** gRPC address on loopback. */
  address: string;
  /** Stops the coordinator without draining and removes its data directory. */
  stop(): Promise<void>;
}

/** `config` replaces the defaults above section by section (e.g. a whole `escalation`). */
export async function startLiveCoordinator(
  name: string,
  workers: number,
  config: DeepPartial<CoordinatorConfig> = {},
): Promise<LiveCoordinator> {
  const dir = mkdtempSync(join(tmpdir(), `atomlens-${name}-`));
  let coordinator: RunningCoordinator;
  try {
    coordinator = await startCoordinator({
      dataDir: dir,
      config: {
        template: templateConfig(),
        sessions: { heartbeatIntervalMs: 200, timeoutMs: 3000 },
        metrics: { defaultMetrics: false },
        escalation: { enabled: false },
        ...config,
      },
      analysis: createAnalysisService({ workers }),
      logger: createLogger(name, 'silent'),
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    dir,
    coordinator,
    address: `127.0.0.1:${coordinator.grpcPort}`,
    async stop() {
      await coordinator.stop({ drain: false });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
