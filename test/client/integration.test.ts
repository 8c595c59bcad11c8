// The client against the real coordinator on loopback: two tasks with atom swapping, a
// coordinator restart in the middle (stopped without draining, restarted on the same data
// directory and port), and a probe request over the session. At the end the coordinator must
// hold every round of every task exactly once, and the probe answer must be the Gram matrices
// of the requested layers.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClientProgressEvent, runClient, UnreachableError } from '../../src/client/client.js';
import type { RunningCoordinator } from '../../src/coordinator/coordinator.js';
import type { GetModelHistoryResponse__Output } from '../../src/generated/atomlens/v1/GetModelHistoryResponse.js';
import { createLogger } from '../../src/shared/log.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { decodeFloat32 } from '../../src/shared/tensor.js';
import { freePort } from '../helpers/free-port.js';
import { startCoordinatorOn } from '../helpers/loopback.js';

const quiet = createLogger('test', 'silent');
const ROUNDS = 3;
const TASKS = ['0-1', '2-3'];

function modelHistory(
  port: number,
  clientId: string,
  taskId: string,
): Promise<GetModelHistoryResponse__Output> {
  const proto = loadAtomlensProto();
  const op = new proto.atomlens.v1.OperatorService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    op.getModelHistory(
      { model: { clientId, taskId }, includeAtoms: true },
      { deadline: new Date(Date.now() + 10_000) },
      (err, res) => {
        op.close();
        if (err || !res) reject(err ?? new Error('empty history'));
        else resolve(res);
      },
    );
  });
}

describe('client ↔ coordinator on loopback', () => {
  const dirs: string[] = [];
  let coordinator: RunningCoordinator | undefined;

  afterAll(async () => {
    await coordinator?.stop({ drain: false });
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  it('survives a coordinator restart and ends with every round stored exactly once; answers a probe', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-client-it-'));
    dirs.push(dataDir);
    const port = await freePort();
    coordinator = await startCoordinatorOn(dataDir, port);
    const template = coordinator.template;

    const events: ClientProgressEvent[] = [];
    const abort = new AbortController();
    let restart: Promise<void> | undefined;
    let resolveDone: () => void = () => {};
    const allUploaded = new Promise<void>((r) => {
      resolveDone = r;
    });
    const onProgress = (e: ClientProgressEvent) => {
      events.push(e);
      if (e.type === 'round' && e.taskId === '0-1' && e.round === 2 && !restart) {
        // Round 2 is trained but not yet uploaded: take the coordinator away under the client.
        const old = coordinator!;
        restart = (async () => {
          await old.stop({ drain: false });
          await new Promise((r) => setTimeout(r, 700));
          coordinator = await startCoordinatorOn(dataDir, port);
        })();
      }
      const uploads = events.filter((x) => x.type === 'uploaded').length;
      if (e.type === 'uploaded' && uploads === TASKS.length * ROUNDS) resolveDone();
    };

    const run = runClient({
      address: `127.0.0.1:${port}`,
      clientId: 'alice',
      tasks: TASKS.join(','),
      rounds: ROUNDS,
      maxBatchesPerRound: 4,
      batchSize: 32,
      // Data parallel (capped at the cores): the helper threads through a restart and a probe.
      trainThreads: 2,
      seed: 5,
      backend: 'wasm',
      giveUpAfterMs: 30_000,
      backoff: { initialMs: 100, maxMs: 800 },
      lingerMs: 60_000,
      signal: abort.signal,
      logger: quiet,
      onProgress,
    });
    // The run resolves only after abort (it lingers); fail fast if it dies early.
    const failed = run.then(
      () => {
        throw new Error('client finished before its uploads');
      },
      (err) => {
        throw err;
      },
    );
    await Promise.race([allUploaded, failed]);
    await restart;

    // A probe request over the (re-established) session, for the first task's latest round.
    const live = coordinator!;
    for (let i = 0; i < 100 && !live.sessions.isConnected('alice'); i++)
      await new Promise((r) => setTimeout(r, 50));
    const answer = await live.sessions.requestProbe('alice', {
      taskId: '0-1',
      layers: [...template.probeLayers],
      probe: { ...template.probe, size: 40 },
      deadlineMs: Date.now() + 20_000,
    });
    // An earlier round on request: the client swaps that round's atoms in for the probe.
    const older = await live.sessions.requestProbe('alice', {
      taskId: '0-1',
      round: 1,
      layers: ['conv3'],
      probe: { ...template.probe, size: 40 },
      deadlineMs: Date.now() + 20_000,
    });
    // What the client cannot serve comes back as a probe failure naming the reason.
    const unknownTask = live.sessions.requestProbe('alice', {
      taskId: '7-8',
      layers: ['conv1'],
      probe: { ...template.probe, size: 8 },
      deadlineMs: Date.now() + 20_000,
    });
    await expect(unknownTask).rejects.toMatchObject({
      outcome: 'failed',
      message: expect.stringMatching(/7-8/),
    });
    abort.abort();
    const summary = await run;

    // The restart really happened and the client came back.
    expect(summary.reconnects).toBeGreaterThanOrEqual(1);
    expect(events.some((e) => e.type === 'disconnected' || e.type === 'retry')).toBe(true);
    expect(summary.aborted).toBe(true);
    expect(summary.tasks.map((t) => [t.taskId, t.rounds])).toEqual([
      ['0-1', [1, 2, 3]],
      ['2-3', [1, 2, 3]],
    ]);

    // Every round of every task exactly once, with the template's atom shapes and finite values.
    for (const taskId of TASKS) {
      const history = await modelHistory(port, 'alice', taskId);
      expect(history.rounds.map((r) => Number(r.round))).toEqual([1, 2, 3]);
      const atomsByRound = history.rounds.map((r) => {
        expect(r.layers.map((l) => l.layer)).toEqual(template.layers.map((l) => l.name));
        return r.layers.map((l, i) => {
          const spec = template.layers[i]!;
          expect(l.atoms!.shape).toEqual([spec.m, spec.k, spec.k]);
          const values = decodeFloat32(l.atoms!);
          expect(values.every(Number.isFinite)).toBe(true);
          return values;
        });
      });
      // Training moved the atoms between rounds (rounds are not copies of one upload).
      expect(atomsByRound[1]![0]).not.toEqual(atomsByRound[0]![0]);
      expect(atomsByRound[2]![0]).not.toEqual(atomsByRound[1]![0]);
    }
    // Atom swapping: the second task's atoms are its own, not the first task's.
    const first = await modelHistory(port, 'alice', '0-1');
    const second = await modelHistory(port, 'alice', '2-3');
    expect(decodeFloat32(second.rounds[0]!.layers[0]!.atoms!)).not.toEqual(
      decodeFloat32(first.rounds[2]!.layers[0]!.atoms!),
    );

    // The probe answer, per requested layer from the latest round, pooled feature dimension d =
    // the layer's channels (GAP): the centred activations (a 40 × d factor, columns summing to 0)
    // when 2(d + 2) < 40, else the 40 × 40 Gram, symmetric with a non-negative diagonal.
    expect([...answer.layers.keys()].sort()).toEqual([...template.probeLayers].sort());
    const forms = new Set<string>();
    for (const [name, summaryLayer] of answer.layers) {
      const spec = template.layers.find((l) => l.name === name)!;
      expect(summaryLayer.n).toBe(40);
      expect(summaryLayer.featureDim).toBe(spec.cOut);
      expect(summaryLayer.round).toBe(3);
      const d = spec.cOut;
      if (2 * (d + 2) < 40) {
        forms.add('factor');
        expect(summaryLayer.factorRank).toBe(d);
        expect(summaryLayer.gram.length).toBe(40 * d);
        for (let c = 0; c < d; c++) {
          let sum = 0;
          let scale = 0;
          for (let i = 0; i < 40; i++) {
            sum += summaryLayer.gram[i * d + c]!;
            scale += Math.abs(summaryLayer.gram[i * d + c]!);
          }
          expect(Math.abs(sum)).toBeLessThanOrEqual(1e-5 * scale + 1e-12);
        }
        continue;
      }
      forms.add('gram');
      expect(summaryLayer.factorRank).toBe(0);
      const k = summaryLayer.gram;
      expect(k.length).toBe(40 * 40);
      for (let i = 0; i < 40; i++) {
        expect(k[i * 40 + i]!).toBeGreaterThanOrEqual(0);
        for (let j = 0; j < i; j++) {
          expect(Math.abs(k[i * 40 + j]! - k[j * 40 + i]!)).toBeLessThanOrEqual(
            1e-5 * (k[i * 40 + i]! + k[j * 40 + j]!) + 1e-12,
          );
        }
      }
    }
    expect(events.some((e) => e.type === 'probe' && e.ok)).toBe(true);
    // The demo CNN's 8 and 16 channels go as factors, its 24 as Gram matrices.
    expect([...forms].sort()).toEqual(['factor', 'gram']);
    const olderConv3 = older.layers.get('conv3')!;
    expect(olderConv3.round).toBe(1);
    expect(olderConv3.gram).not.toEqual(answer.layers.get('conv3')!.gram);
    expect(summary.probesAnswered).toBe(2);
    expect(summary.probesFailed).toBe(1);
  });

  it('re-sends the rounds a restarted coordinator no longer holds (new, empty data directory)', async () => {
    const port = await freePort();
    const firstDir = mkdtempSync(join(tmpdir(), 'atomlens-client-it-a-'));
    const secondDir = mkdtempSync(join(tmpdir(), 'atomlens-client-it-b-'));
    dirs.push(firstDir, secondDir);
    let current = await startCoordinatorOn(firstDir, port);
    let swapped: Promise<void> | undefined;
    const uploads: [number, boolean][] = [];
    try {
      const summary = await runClient({
        address: `127.0.0.1:${port}`,
        clientId: 'bob',
        tasks: '4-5',
        rounds: 3,
        maxBatchesPerRound: 2,
        batchSize: 16,
        backend: 'wasm',
        giveUpAfterMs: 30_000,
        backoff: { initialMs: 100, maxMs: 800 },
        logger: quiet,
        onProgress: (e) => {
          if (e.type === 'uploaded') uploads.push([e.round, e.duplicate]);
          // After round 2 is acknowledged, replace the coordinator by one with no memory of it.
          if (e.type === 'uploaded' && e.round === 2 && !swapped) {
            const old = current;
            swapped = (async () => {
              await old.stop({ drain: false });
              current = await startCoordinatorOn(secondDir, port);
            })();
          }
        },
      });
      await swapped;
      expect(summary.reconnects).toBeGreaterThanOrEqual(1);
      const history = await modelHistory(port, 'bob', '4-5');
      expect(history.rounds.map((r) => Number(r.round))).toEqual([1, 2, 3]);
      // Rounds 1 and 2 went out twice: to the first coordinator and again to the second.
      expect(uploads.filter(([r]) => r <= 2).length).toBe(4);
    } finally {
      await current.stop({ drain: false });
    }
  });

  it('gives up with UnreachableError when nothing listens', async () => {
    const port = await freePort();
    const started = Date.now();
    await expect(
      runClient({
        address: `127.0.0.1:${port}`,
        clientId: 'nobody',
        tasks: '0-1',
        rounds: 1,
        backend: 'keep',
        giveUpAfterMs: 1_500,
        backoff: { initialMs: 100, maxMs: 400 },
        logger: quiet,
      }),
    ).rejects.toBeInstanceOf(UnreachableError);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('CLI: a progress line per round; SIGTERM stops at a batch boundary and exits 0', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-client-cli-'));
    dirs.push(dataDir);
    const cliCoordinator = await startCoordinatorOn(dataDir, 0);
    try {
      const child = spawn(
        process.execPath,
        atomlensArgv([
          'client',
          '--coordinator',
          `127.0.0.1:${cliCoordinator.grpcPort}`,
          '--id',
          'cli-sig',
          '--tasks',
          '0-1',
          '--rounds',
          '1000',
          '--data-split',
          'iid:1/4',
          '--backend',
          'wasm',
          // Helper threads running when the signal comes: they must not keep the process alive.
          '--train-threads',
          '2',
        ]),
        { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
      );
      let stdout = '';
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += String(d);
      });
      const firstRound = new Promise<void>((resolve) => {
        child.stdout.on('data', (d) => {
          stdout += String(d);
          if (/round 1 \(1\/1000\)\s+loss \d+\.\d+\s+accuracy \d+\.\d%/.test(stdout)) resolve();
        });
      });
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      await Promise.race([firstRound, exited]);
      child.kill('SIGTERM');
      const code = await exited;
      expect(code, `${stdout}\n${stderr}`).toBe(0);
      expect(stderr).toMatch(/SIGTERM received/);
      expect(stdout).toMatch(/\[cli-sig\] stopped: \d+ uploads/);
      // Only completed rounds were uploaded, each once.
      const history = await modelHistory(cliCoordinator.grpcPort, 'cli-sig', '0-1');
      const rounds = history.rounds.map((r) => Number(r.round));
      expect(rounds.length).toBeGreaterThanOrEqual(1);
      expect(rounds).toEqual(rounds.map((_, i) => i + 1));
    } finally {
      await cliCoordinator.stop({ drain: false });
    }
  });

  it('CLI: --train-threads 0 is refused with a message naming the flag', () => {
    const run = (value: string) =>
      spawnSync(
        process.execPath,
        atomlensArgv([
          'client',
          '--coordinator',
          '127.0.0.1:1',
          '--id',
          'x',
          '--tasks',
          '0-1',
          '--train-threads',
          value,
        ]),
        { encoding: 'utf8', env: { ...process.env, ATOMLENS_LOG: 'warn' } },
      );
    const bad = run('0');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--train-threads must be an integer from 1 to 256, got '0'/);
  });

  it('CLI: exit code 3 when the coordinator stays unreachable', async () => {
    const port = await freePort();
    const child = spawn(
      process.execPath,
      atomlensArgv([
        'client',
        '--coordinator',
        `127.0.0.1:${port}`,
        '--id',
        'cli-test',
        '--tasks',
        '0-1',
        '--give-up',
        '1',
        '--backend',
        'cpu',
      ]),
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
    );
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code, stderr).toBe(3);
    expect(stderr).toMatch(/unreachable/);
  });
});
