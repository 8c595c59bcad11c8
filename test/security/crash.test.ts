// Crash safety: a coordinator child process is killed with SIGKILL while many clients upload;
// after a restart on the same data directory every acknowledged upload is present exactly once,
// byte for byte, nothing half-written exists, and clients resume (re-sending an acknowledged
// round is a duplicate, the next round is accepted). Then SIGTERM while clients upload: calls in
// flight drain, the process exits 0, and the database passes SQLite's integrity check.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { type CoordinatorProcess, spawnCoordinator } from '../../bench/coordinator-process.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { GetModelHistoryResponse__Output } from '../../src/generated/atomlens/v1/GetModelHistoryResponse.js';
import type { PushAtomsResponse__Output } from '../../src/generated/atomlens/v1/PushAtomsResponse.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import { atomsRequest, federationClient, operatorClient, rpc, waitFor } from './helpers.js';

const CLIENTS = 40;
const CHANNELS = 8;
const TASKS = [{ taskId: '0-1', classes: [0, 1] }];
const ids = Array.from({ length: CLIENTS }, (_, i) => `crash-${String(i).padStart(2, '0')}`);

/** Atoms of (client, round) are a pure function of both, so any stored copy can be checked. */
const seedOf = (clientIndex: number, round: number) => clientIndex * 100_003 + round;
const sentBytes = (clientIndex: number, round: number) =>
  Buffer.concat(
    atomsRequest(ids[clientIndex]!, '0-1', round, seedOf(clientIndex, round)).layers!.map(
      (l) => l.atoms!.data as Buffer,
    ),
  );

interface Progress {
  acked: number[];
  /** Highest round sent, acknowledged or not. */
  attempted: number[];
}

/** Every client pushes rounds next, next+1, … as fast as acks come, until stop() is called. */
function uploadLoop(address: string, start: number[], progress: Progress) {
  const channels = Array.from({ length: CHANNELS }, () => federationClient(address));
  let running = true;
  const errors: string[] = [];
  const loops = ids.map(async (id, i) => {
    const fed = channels[i % CHANNELS]!;
    let round = start[i]!;
    while (running) {
      progress.attempted[i] = Math.max(progress.attempted[i]!, round);
      try {
        await rpc<PushAtomsResponse__Output>((cb) =>
          fed.pushAtoms(
            atomsRequest(id, '0-1', round, seedOf(i, round)),
            { deadline: Date.now() + 10_000 },
            cb,
          ),
        );
        progress.acked[i] = round;
        round += 1;
      } catch (err) {
        errors.push(`${id} round ${round}: ${grpc.status[(err as grpc.ServiceError).code]}`);
        return;
      }
    }
  });
  return {
    errors,
    async stop() {
      running = false;
      await Promise.all(loops);
      for (const c of channels) c.close();
    },
  };
}

async function history(address: string, clientId: string): Promise<GetModelHistoryResponse__Output> {
  const op = operatorClient(address);
  try {
    return await rpc<GetModelHistoryResponse__Output>((cb) =>
      op.getModelHistory({ model: { clientId, taskId: '0-1' }, includeAtoms: true }, cb),
    );
  } finally {
    op.close();
  }
}

/** Stored rounds are exactly 1..L with acked ≤ L ≤ attempted, each byte-identical to what was sent. */
async function checkStored(address: string, progress: Progress): Promise<number[]> {
  const last: number[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const h = await history(address, ids[i]!);
    const rounds = h.rounds.map((r) => r.round);
    const L = rounds.length;
    expect(rounds, `${ids[i]} rounds`).toEqual(Array.from({ length: L }, (_, k) => k + 1));
    expect(L, `${ids[i]}: acknowledged round ${progress.acked[i]} missing`).toBeGreaterThanOrEqual(
      progress.acked[i]!,
    );
    expect(L).toBeLessThanOrEqual(progress.attempted[i]!);
    for (const r of h.rounds) {
      const stored = Buffer.concat(r.layers.map((l) => l.atoms!.data));
      expect(stored.equals(sentBytes(i, r.round)), `${ids[i]} round ${r.round} atoms`).toBe(true);
      expect(r.stats?.samples).toBe(64);
    }
    last.push(L);
  }
  return last;
}

describe('crash safety of acknowledged uploads', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-crash-'));
  let coordinator: CoordinatorProcess | undefined;
  afterAll(async () => {
    await coordinator?.kill9();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const start = () =>
    spawnCoordinator({ dataDir, args: ['--without-analysis'], env: { ATOMLENS_LOG: 'error' } });

  it('kill -9 during uploads loses no acknowledged upload and leaves no partial record; clients resume', async () => {
    coordinator = await start();
    const fed: FederationServiceClient = federationClient(coordinator.grpcAddress);
    for (const id of ids) {
      await rpc<RegisterResponse__Output>((cb) =>
        fed.register({ clientId: id, tasks: TASKS, clientVersion: 'crash' }, cb),
      );
    }
    fed.close();
    const progress: Progress = { acked: ids.map(() => 0), attempted: ids.map(() => 0) };
    const loop = uploadLoop(
      coordinator.grpcAddress,
      ids.map(() => 1),
      progress,
    );
    await waitFor(() => progress.acked.reduce((a, b) => a + b, 0) >= 400, 60_000);
    const killed = await coordinator.kill9();
    expect(killed.signal).toBe('SIGKILL');
    await loop.stop();
    // The kill cut calls in flight: those must fail (UNAVAILABLE), never be acknowledged.
    expect(loop.errors.length).toBeGreaterThan(0);
    const ackedTotal = progress.acked.reduce((a, b) => a + b, 0);

    coordinator = await start();
    const stored = await checkStored(coordinator.grpcAddress, progress);
    expect(stored.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(ackedTotal);

    // Resume as a real client does: Register reports the last stored round; re-sending it is a
    // duplicate, the next one is accepted.
    const again = federationClient(coordinator.grpcAddress);
    try {
      for (let i = 0; i < CLIENTS; i++) {
        const reg = await rpc<RegisterResponse__Output>((cb) =>
          again.register({ clientId: ids[i]!, tasks: TASKS, clientVersion: 'crash' }, cb),
        );
        const last = reg.progress.find((p) => p.taskId === '0-1')!.lastRound;
        expect(last).toBe(stored[i]);
        const dup = await rpc<PushAtomsResponse__Output>((cb) =>
          again.pushAtoms(atomsRequest(ids[i]!, '0-1', last, seedOf(i, last)), cb),
        );
        expect(dup.duplicate).toBe(true);
        const next = await rpc<PushAtomsResponse__Output>((cb) =>
          again.pushAtoms(atomsRequest(ids[i]!, '0-1', last + 1, seedOf(i, last + 1)), cb),
        );
        expect(next.duplicate).toBe(false);
        progress.acked[i] = last + 1;
        progress.attempted[i] = last + 1;
      }
    } finally {
      again.close();
    }
  });

  it('SIGTERM during uploads drains calls in flight, exits 0 and leaves a consistent database', async () => {
    const running = coordinator!;
    const progress: Progress = {
      acked: ids.map(() => 0),
      attempted: ids.map(() => 0),
    };
    // Continue from the state the previous test left (last round L per client).
    const history0 = await Promise.all(ids.map((id) => history(running.grpcAddress, id)));
    const base = history0.map((h) => h.rounds.length);
    base.forEach((b, i) => {
      progress.acked[i] = b;
      progress.attempted[i] = b;
    });
    const loop = uploadLoop(
      running.grpcAddress,
      base.map((b) => b + 1),
      progress,
    );
    await waitFor(
      () => progress.acked.reduce((a, b) => a + b, 0) >= base.reduce((a, b) => a + b, 0) + 200,
      60_000,
    );
    const exit = await running.stop(20_000);
    await loop.stop();
    expect(exit).toEqual({ code: 0, signal: null });

    const db = new Database(join(dataDir, 'atomlens.db'), { readonly: true });
    try {
      expect(db.pragma('integrity_check', { simple: true })).toBe('ok');
      const rows = db.prepare('SELECT client_id, round, atoms FROM atom_uploads').all() as {
        client_id: string;
        round: number;
        atoms: Buffer;
      }[];
      for (let i = 0; i < CLIENTS; i++) {
        const mine = rows
          .filter((r) => r.client_id === ids[i])
          .map((r) => r.round)
          .sort((a, b) => a - b);
        expect(mine).toEqual(Array.from({ length: mine.length }, (_, k) => k + 1));
        expect(mine.length).toBeGreaterThanOrEqual(progress.acked[i]!);
      }
      for (const r of rows) {
        const i = ids.indexOf(r.client_id);
        expect(r.atoms.equals(sentBytes(i, r.round))).toBe(true);
      }
    } finally {
      db.close();
    }
    coordinator = undefined;
  });
});
