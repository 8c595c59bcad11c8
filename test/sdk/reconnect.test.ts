// The SDK client across a coordinator restart: a push issued while the coordinator is down is
// retried with backoff and acknowledged once it is back (registering again on the new process),
// and the round numbering resumes from what the coordinator stored.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { AtomlensClient, templateFromLayerList } from '../../src/index.js';
import { createLogger } from '../../src/shared/log.js';
import { modelTemplateFromAtomTemplate } from '../../src/shared/template-file.js';

const template = templateFromLayerList(
  [
    { name: 'c1', cIn: 1, cOut: 4, k: 3, m: 4 },
    { name: 'c2', cIn: 4, cOut: 4, k: 3, m: 4 },
  ],
  { seed: 3, federationId: 'restart' },
);
const probeSet = { values: new Float32Array(8 * 6 * 6).fill(0.5), shape: [8, 6, 6, 1] };

describe('AtomlensClient across a coordinator restart', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-sdk-restart-'));
  let coordinator: RunningCoordinator | undefined;
  let client: AtomlensClient | undefined;
  const start = (grpcPort = 0) =>
    startCoordinator({
      dataDir: dir,
      grpcPort,
      template: modelTemplateFromAtomTemplate(template, probeSet.shape),
      probeSet,
      config: { metrics: { defaultMetrics: false } },
      logger: createLogger('restart', 'silent'),
    });
  afterAll(async () => {
    client?.close();
    await coordinator?.stop({ drain: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('retries a push until the coordinator is back, then resumes the numbering', async () => {
    coordinator = await start();
    const port = coordinator.grpcPort;
    client = await AtomlensClient.connect({
      address: `127.0.0.1:${port}`,
      clientId: 'alice',
      tasks: [{ id: 'task-a', classes: [0, 1] }],
      backoff: { initialMs: 50, maxMs: 300, giveUpAfterMs: 30_000 },
      logger: createLogger('sdk', 'silent'),
    });
    const atoms = (v: number) => ({ c1: new Float32Array(36).fill(v), c2: new Float32Array(36).fill(-v) });
    expect(await client.push('task-a', 1, atoms(0.1))).toMatchObject({ duplicate: false, round: 1 });
    await coordinator.stop();
    coordinator = undefined;
    const pushing = client.push('task-a', 2, atoms(0.2));
    await new Promise((r) => setTimeout(r, 700));
    coordinator = await start(port);
    const ack = await pushing;
    expect(ack).toMatchObject({ duplicate: false, round: 2 });
    expect(ack.drift).toBeGreaterThanOrEqual(0);
    expect(client.lastRound('task-a')).toBe(2);
    // A new client process for the same member learns where to resume.
    const again = await AtomlensClient.connect({
      address: `127.0.0.1:${port}`,
      clientId: 'alice',
      tasks: [{ id: 'task-a', classes: [0, 1] }],
      logger: createLogger('sdk', 'silent'),
    });
    expect(again.lastRound('task-a')).toBe(2);
    expect(again.template.layers[0]!.initialAtoms).toEqual(template.layers[0]!.initialAtoms);
    again.close();
  }, 60_000);
});
