// A coordinator that stops: a call that still meets its closed store (a read or a write) is told
// UNAVAILABLE, which clients retry, rather than INTERNAL; and whatever it acknowledged while
// stopping is in the store afterwards. (That it answers nothing more on open connections is
// stop-connections.test.ts.)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { SqliteStorage } from '../../src/coordinator/storage/sqlite.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { GetModelHistoryResponse__Output } from '../../src/generated/atomlens/v1/GetModelHistoryResponse.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import type { PushAtomsResponse__Output } from '../../src/generated/atomlens/v1/PushAtomsResponse.js';
import type { RegisterRequest } from '../../src/generated/atomlens/v1/RegisterRequest.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import { createLogger } from '../../src/shared/log.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { expectStatus, pushRequest, randomAtoms, rpc } from './helpers.js';

const quiet = createLogger('test', 'silent');
const proto = loadAtomlensProto();
const dirs: string[] = [];
const running: RunningCoordinator[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-stop-test-'));
  dirs.push(dir);
  return dir;
}

async function start(dataDir: string, grpcPort = 0, storage?: SqliteStorage): Promise<RunningCoordinator> {
  const c = await startCoordinator({
    dataDir,
    grpcHost: '127.0.0.1',
    grpcPort,
    httpPort: 0,
    logger: quiet,
    config: { metrics: { defaultMetrics: false }, escalation: { enabled: false } },
    ...(storage ? { storage } : {}),
  });
  running.push(c);
  return c;
}

function federationClient(port: number): FederationServiceClient {
  return new proto.atomlens.v1.FederationService(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as FederationServiceClient;
}

const registration = (clientId: string): RegisterRequest => ({
  clientId,
  tasks: [{ taskId: '0-1', classes: [0, 1] }],
  alphaFingerprint: '',
  clientVersion: 'test',
});

const deadline = (ms: number) => ({ deadline: new Date(Date.now() + ms) });

function register(fed: FederationServiceClient, clientId: string, ms = 10_000) {
  return rpc<RegisterResponse__Output>((cb) => fed.Register(registration(clientId), deadline(ms), cb));
}

/** A call's status code: OK or the code it failed with. */
async function codeOf(call: Promise<unknown>): Promise<grpc.status> {
  return call.then(
    () => grpc.status.OK,
    (err: grpc.ServiceError) => err.code,
  );
}

afterAll(async () => {
  for (const c of running) await c.stop({ drain: false });
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('a coordinator that stops', () => {
  it('calls that meet a closed store are UNAVAILABLE (retry), not INTERNAL', async () => {
    const dataDir = freshDir();
    const storage = new SqliteStorage({ dataDir });
    const c = await start(dataDir, 0, storage);
    const fed = federationClient(c.grpcPort);
    const op = new proto.atomlens.v1.OperatorService(
      `127.0.0.1:${c.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as OperatorServiceClient;
    try {
      await register(fed, 'alice');
      // The store closes under a coordinator that still serves (as when a stop overtakes a call).
      await storage.close();
      await expectStatus(register(fed, 'alice'), grpc.status.UNAVAILABLE, /shutting down/);
      await expectStatus(register(fed, 'newcomer'), grpc.status.UNAVAILABLE, /shutting down/);
      const atoms = randomAtoms(c.template, 1);
      await expectStatus(
        rpc((cb) => fed.PushAtoms(pushRequest(c.template, 'alice', '0-1', 1, atoms), deadline(10_000), cb)),
        grpc.status.UNAVAILABLE,
      );
      await expectStatus(
        rpc((cb) =>
          op.GetModelHistory({ model: { clientId: 'alice', taskId: '0-1' } }, deadline(10_000), cb),
        ),
        grpc.status.UNAVAILABLE,
        /shutting down/,
      );
    } finally {
      fed.close();
      op.close();
    }
  });

  for (const drain of [true, false]) {
    it(`uploads racing stop({ drain: ${drain} }) are acknowledged and stored, or UNAVAILABLE`, async () => {
      const dataDir = freshDir();
      const c = await start(dataDir);
      const template = c.template;
      const clients = Array.from({ length: 8 }, () => federationClient(c.grpcPort));
      try {
        for (const [i, fed] of clients.entries()) await register(fed, `c${i}`);
        const calls: Promise<grpc.status>[] = [];
        const acked: string[] = [];
        for (let round = 1; round <= 5; round++) {
          for (const [i, fed] of clients.entries()) {
            const req = pushRequest(template, `c${i}`, '0-1', round, randomAtoms(template, 100 * i + round));
            const call = rpc<PushAtomsResponse__Output>((cb) => fed.PushAtoms(req, deadline(10_000), cb));
            calls.push(codeOf(call.then(() => acked.push(`c${i}/${round}`))));
          }
          // A Register of a new id in the same race (it writes too).
          calls.push(codeOf(register(clients[round % clients.length]!, `late${round}`)));
        }
        const stopped = c.stop({ drain, graceMs: 5_000 });
        const codes = await Promise.all(calls);
        await stopped;
        for (const code of codes) expect([grpc.status.OK, grpc.status.UNAVAILABLE]).toContain(code);

        const again = await start(dataDir);
        const op = new proto.atomlens.v1.OperatorService(
          `127.0.0.1:${again.grpcPort}`,
          grpc.credentials.createInsecure(),
        ) as OperatorServiceClient;
        try {
          const stored: string[] = [];
          for (let i = 0; i < clients.length; i++) {
            const history = await rpc<GetModelHistoryResponse__Output>((cb) =>
              op.GetModelHistory({ model: { clientId: `c${i}`, taskId: '0-1' } }, deadline(10_000), cb),
            ).catch((err: grpc.ServiceError) => {
              // A model none of whose uploads got in before the stop.
              if (err.code === grpc.status.NOT_FOUND) return { rounds: [] };
              throw err;
            });
            for (const r of history.rounds) stored.push(`c${i}/${Number(r.round)}`);
          }
          // Acknowledged means stored; a round may be stored whose answer never arrived.
          for (const a of acked) expect(stored).toContain(a);
        } finally {
          op.close();
        }
      } finally {
        for (const fed of clients) fed.close();
      }
    });
  }
});
