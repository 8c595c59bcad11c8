// An operator-chosen probe set end to end: the coordinator runs with the demo template file and
// a probe set of its own; two real clients (separate processes) train one round, fetch the set
// over gRPC (FetchProbeSet), verify it by SHA-256, cache it on disk, and answer an analysis with
// Gram matrices computed on exactly those inputs. FetchProbeSet's refusals are checked too.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { operatorProbeValues } from '../../src/client/probe-set.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { createAnalysisService } from '../../src/coordinator/level1/analysis-service.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import { createLogger } from '../../src/shared/log.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { mulberry32 } from '../../src/shared/rng.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import {
  DEMO_TEMPLATE_PATH,
  probeSetIdentity,
  readModelTemplateFile,
} from '../../src/shared/template-file.js';
import { encodeFloat32 } from '../../src/shared/tensor.js';
import { analysisReport } from '../helpers/operator-analysis.js';
import { unary } from './sim-client.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/report.schema.json', import.meta.url), 'utf8'));
const N = 24;
const SHAPE = [N, 28, 28, 1];
const rng = mulberry32(99);
const VALUES = Float32Array.from({ length: N * 28 * 28 }, () => rng());
const IDENTITY = probeSetIdentity(VALUES, SHAPE);

describe('an operator-supplied probe set', () => {
  let dir: string;
  let coordinator: RunningCoordinator;
  const children: ChildProcess[] = [];
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atomlens-probe-set-'));
    coordinator = await startCoordinator({
      dataDir: join(dir, 'data'),
      template: readModelTemplateFile(DEMO_TEMPLATE_PATH),
      probeSet: { values: VALUES, shape: SHAPE },
      config: { metrics: { defaultMetrics: false }, escalation: { enabled: false } },
      analysis: createAnalysisService({ workers: 1 }),
      logger: createLogger('probe-set', 'silent'),
    });
    const address = `127.0.0.1:${coordinator.grpcPort}`;
    await Promise.all(
      ['alice', 'bob'].map((clientId, i) => {
        const child = spawn(
          process.execPath,
          atomlensArgv([
            'client',
            '--coordinator',
            address,
            '--id',
            clientId,
            '--tasks',
            i === 0 ? '0-1' : '2-3',
            '--rounds',
            '1',
            '--epochs',
            '0.2',
            '--linger',
            '300',
            '--probe-cache',
            join(dir, `cache-${clientId}`),
            '--json',
          ]),
          { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ATOMLENS_LOG: 'warn' } },
        );
        children.push(child);
        let stderr = '';
        child.stderr.on('data', (d) => (stderr += d));
        return new Promise<void>((resolve, reject) => {
          let buffer = '';
          child.stdout.on('data', (d: Buffer) => {
            buffer += d.toString();
            if (/"type":"uploaded"/.test(buffer)) resolve();
          });
          child.once('exit', (code) =>
            reject(new Error(`client ${clientId} exited with ${code}: ${stderr}`)),
          );
        });
      }),
    );
  }, 180_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    await Promise.all(
      children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : null)),
    );
    await coordinator?.stop({ drain: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('is announced in the template by hash and shape', () => {
    expect(coordinator.template.probe).toMatchObject({
      source: 'operator',
      size: N,
      sha256: IDENTITY.sha256,
      shape: SHAPE,
    });
  });

  it('clients fetch, verify and cache it, and answer an analysis computed on it', async () => {
    const report = await analysisReport(`127.0.0.1:${coordinator.grpcPort}`, {
      models: [],
      reason: 'operator probe set',
      probeDeadlineMs: 60_000,
    });
    expect(new Ajv({ strict: true }).validate(schema, report)).toBe(true);
    expect(report.template.probe).toMatchObject({ source: 'operator', sha256: IDENTITY.sha256 });
    expect(report.models.map((m) => [m.clientId, m.answered])).toEqual([
      ['alice', true],
      ['bob', true],
    ]);
    for (const m of report.models) {
      const rows = await coordinator.storage.getProbeSummaries(m.requestId!);
      expect(rows.every((r) => r.n === N)).toBe(true);
    }
    for (const clientId of ['alice', 'bob']) {
      const cached = join(dir, `cache-${clientId}`, `${IDENTITY.sha256}.f32`);
      expect(existsSync(cached)).toBe(true);
      expect(readFileSync(cached).equals(encodeFloat32(VALUES, SHAPE).data)).toBe(true);
    }
  }, 120_000);

  it('FetchProbeSet streams the verified bytes in chunks and refuses a wrong hash or a bad offset', async () => {
    const proto = loadAtomlensProto();
    const fed = new proto.atomlens.v1.FederationService(
      `127.0.0.1:${coordinator.grpcPort}`,
      grpc.credentials.createInsecure(),
    ) as unknown as FederationServiceClient;
    const reg = await unary<{ token: string }>((cb) =>
      fed.register({ clientId: 'carol', tasks: [{ taskId: '4-5', classes: [4, 5] }] }, cb),
    );
    tokens.carol = reg.token;
    const fetch = (sha256: string, offset = 0) =>
      new Promise<Buffer>((resolve, reject) => {
        const md = new grpc.Metadata();
        if (tokens.carol) md.set('authorization', `Bearer ${tokens.carol}`);
        const call = fed.fetchProbeSet({ clientId: 'carol', sha256, offset }, md);
        const parts: Buffer[] = [];
        call.on('data', (c: { data: Buffer }) => parts.push(c.data));
        call.on('error', reject);
        call.on('end', () => resolve(Buffer.concat(parts)));
      });
    const cache = join(dir, 'cache-carol');
    const values = await operatorProbeValues(IDENTITY, cache, (sha) => fetch(sha));
    expect(Array.from(values.subarray(0, 5))).toEqual(Array.from(VALUES.subarray(0, 5)));
    expect((await fetch(IDENTITY.sha256, 4 * 28 * 28)).length).toBe((N - 1) * 28 * 28 * 4);
    await expect(fetch('0'.repeat(64))).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(fetch(IDENTITY.sha256, 6)).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    // A download that does not match the template's hash is refused, not cached.
    const wrongDir = join(dir, 'cache-wrong');
    await expect(
      operatorProbeValues(IDENTITY, wrongDir, async () => Buffer.alloc(N * 28 * 28 * 4)),
    ).rejects.toThrow(/has SHA-256 [0-9a-f]{64}, but the template says/);
    expect(existsSync(join(wrongDir, `${IDENTITY.sha256}.f32`))).toBe(false);
    fed.close();
  });
});
