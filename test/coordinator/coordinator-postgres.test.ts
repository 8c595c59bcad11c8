// The coordinator with its state in PostgreSQL (`--store postgres://…`): uploads acknowledged
// over gRPC are in the database, survive a coordinator restart, and a database restart in the
// middle of uploads costs the clients a retry (UNAVAILABLE), never an acknowledged round.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStorage } from '../../src/coordinator/storage/postgres.js';
import type { GetModelHistoryResponse__Output } from '../../src/generated/atomlens/v1/GetModelHistoryResponse.js';
import type { PushAtomsResponse__Output } from '../../src/generated/atomlens/v1/PushAtomsResponse.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { buildTemplate } from '../../src/shared/template.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../helpers/postgres-server.js';
import { type Harness, pushRequest, randomAtoms, rpc, startHarness } from './helpers.js';

const template = buildTemplate();
const unavailable = postgresUnavailable();
if (unavailable) console.warn(unavailable);

describe.skipIf(unavailable !== undefined)('coordinator on PostgreSQL', () => {
  let server: PostgresServer;
  let store: string;
  let h: Harness;
  beforeAll(async () => {
    server = await startPostgres();
    store = await server.createDatabase();
    h = await startHarness({ extra: { store } });
  });
  afterAll(async () => {
    await h?.close();
    server?.destroy();
  });

  const push = (clientId: string, round: number, seed: number) =>
    rpc<PushAtomsResponse__Output>((cb) =>
      h.fed.PushAtoms(pushRequest(template, clientId, '0-1', round, randomAtoms(template, seed)), cb),
    );

  it('stores registrations and uploads in the database, and has them after a restart', async () => {
    expect(h.running.storage).toBeInstanceOf(PostgresStorage);
    await rpc((cb) =>
      h.fed.Register(
        {
          clientId: 'alice',
          tasks: [{ taskId: '0-1', classes: [0, 1] }],
          alphaFingerprint: '',
          clientVersion: 't',
        },
        cb,
      ),
    );
    for (let round = 1; round <= 3; round++)
      expect((await push('alice', round, round)).duplicate).toBe(false);
    await h.running.stop();
    await h.restart();
    expect(h.running.federation.client('alice')?.tasks.map((t) => t.taskId)).toEqual(['0-1']);
    expect(h.running.similarity.model('alice', '0-1')?.round).toBe(3);
    expect((await push('alice', 3, 3)).duplicate).toBe(true);
    const history = await rpc<GetModelHistoryResponse__Output>((cb) =>
      h.op.GetModelHistory({ model: { clientId: 'alice', taskId: '0-1' } }, cb),
    );
    expect(history.rounds.map((r) => Number(r.round))).toEqual([1, 2, 3]);
  });

  it('answers UNAVAILABLE while the database is down and keeps every acknowledged upload', async () => {
    const acked: number[] = [];
    const refused: number[] = [];
    let round = 10;
    const pushOne = async () => {
      const r = round++;
      try {
        await push('alice', r, r);
        acked.push(r);
      } catch (err) {
        expect((err as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
        expect((err as grpc.ServiceError).details).toMatch(
          /could not store the upload \(correlation id [0-9a-f]+\); the client retries it/,
        );
        refused.push(r);
      }
    };
    for (let i = 0; i < 5; i++) await pushOne();
    server.stop();
    try {
      for (let i = 0; i < 5; i++) await pushOne();
    } finally {
      server.start();
    }
    for (let i = 0; i < 5; i++) await pushOne();
    expect(refused).toEqual([15, 16, 17, 18, 19]);
    // The clients retry what was refused; everything acknowledged is stored.
    for (const r of refused) {
      await push('alice', r, r);
      acked.push(r);
    }
    const stored = (await h.running.storage.listRounds('alice', '0-1', false)).map((r) => r.round);
    expect(stored).toEqual([1, 2, 3, ...acked.sort((a, b) => a - b)]);
  });

  it('atomlens coordinator --store: starts on PostgreSQL with the job queue, and exports the queue metrics', async () => {
    const url = await server.createDatabase();
    const data = mkdtempSync(join(tmpdir(), 'atomlens-cli-pg-'));
    const child = spawn(
      process.execPath,
      atomlensArgv([
        'coordinator',
        '--grpc-port',
        '0',
        '--http-port',
        '0',
        '--data',
        data,
        '--store',
        url,
        '--analysis-workers',
        '0',
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
    );
    try {
      let out = '';
      const http = await new Promise<string>((resolve, reject) => {
        const onData = (b: Buffer) => {
          out += b.toString();
          const m = /http listening on (\S+)/.exec(out);
          if (m && out.includes('grpc listening')) resolve(m[1]!);
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', onData);
        child.on('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${out}`)));
      });
      let metrics = '';
      for (let i = 0; i < 100 && !metrics.includes('atomlens_gw_queue_depth'); i++) {
        metrics = await (await fetch(`${http}/metrics`)).text();
        if (!metrics.includes('atomlens_gw_queue_depth')) await new Promise((r) => setTimeout(r, 100));
      }
      expect(metrics).toMatch(/atomlens_gw_queue_depth 0/);
      expect(metrics).toMatch(/atomlens_gw_workers_live 0/);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('refuses --analysis-workers 0 without --store, and a --store that is not a PostgreSQL URL', () => {
    const noStore = spawnSync(process.execPath, atomlensArgv(['coordinator', '--analysis-workers', '0']), {
      encoding: 'utf8',
    });
    expect(noStore.status).toBe(2);
    expect(noStore.stderr).toMatch(/--analysis-workers must be an integer from 1 to 64/);
    const data = mkdtempSync(join(tmpdir(), 'atomlens-cli-pg-'));
    const bad = spawnSync(
      process.execPath,
      atomlensArgv([
        'coordinator',
        '--grpc-port',
        '0',
        '--http-port',
        '0',
        '--data',
        data,
        '--store',
        'mysql://x/y',
      ]),
      { encoding: 'utf8' },
    );
    rmSync(data, { recursive: true, force: true });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--store must be a postgres:\/\/ or postgresql:\/\/ URL/);
  });
});
