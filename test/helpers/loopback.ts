// Loopback set-ups shared by tests that stop a coordinator and start another on the same port.
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { createLogger } from '../../src/shared/log.js';

/**
 * A silent coordinator on a fixed loopback gRPC port, so a restart is reached at the same address:
 * fast heartbeats (200 ms, timeout 2 s), no default metrics, no escalations.
 */
export function startCoordinatorOn(dataDir: string, grpcPort: number): Promise<RunningCoordinator> {
  return startCoordinator({
    dataDir,
    grpcHost: '127.0.0.1',
    grpcPort,
    httpPort: 0,
    logger: createLogger('test', 'silent'),
    config: {
      sessions: { heartbeatIntervalMs: 200, timeoutMs: 2_000 },
      metrics: { defaultMetrics: false },
      escalation: { enabled: false },
    },
  });
}
