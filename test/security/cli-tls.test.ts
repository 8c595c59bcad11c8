// `atomlens coordinator` with TLS and authentication from flags and a config file, as an
// operator would run it: gRPC and HTTPS on the same certificate, enrolment by secret, open
// /metrics and health, operator-only reports; plaintext refused beyond loopback.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CoordinatorProcess, spawnCoordinator } from '../../bench/coordinator-process.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { clientTlsFromFlags, grpcChannelCredentials } from '../../src/shared/tls.js';
import {
  atomsRequest,
  bearer,
  type CertDir,
  codeOf,
  federationClient,
  HAS_OPENSSL,
  makeCerts,
  operatorClient,
  rpc,
  testCredential,
} from './helpers.js';

const SECRET = 'cli-enrolment-secret-0123456789';
const OPERATOR = 'cli-operator-token-0123456789';

function httpsGet(
  url: string,
  ca: Buffer | undefined,
  token?: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ...(ca ? { ca } : {}), headers: token ? { authorization: `Bearer ${token}` } : {} },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(!HAS_OPENSSL)('atomlens coordinator with --tls-cert/--tls-key and an auth section', () => {
  let certs: CertDir;
  let dir: string;
  let coordinator: CoordinatorProcess;
  let ca: Buffer;
  let aliceToken = '';

  beforeAll(async () => {
    certs = makeCerts(['alice']);
    dir = mkdtempSync(join(tmpdir(), 'atomlens-cli-tls-'));
    writeFileSync(join(dir, 'secret.txt'), `${SECRET}\n`);
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ auth: { enrollmentSecretFile: 'secret.txt', operatorTokens: [OPERATOR] } }),
    );
    coordinator = await spawnCoordinator({
      dataDir: join(dir, 'data'),
      args: [
        '--tls-cert',
        certs.serverCert,
        '--tls-key',
        certs.serverKey,
        '--config',
        join(dir, 'config.json'),
        '--without-analysis',
      ],
    });
    ca = (await import('node:fs')).readFileSync(certs.ca);
  });
  afterAll(async () => {
    await coordinator?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints an https URL and serves gRPC over TLS with enrolment by secret', async () => {
    expect(coordinator.httpUrl).toMatch(/^https:\/\//);
    const address = `localhost:${coordinator.grpcPort}`;
    const fed = federationClient(address, grpcChannelCredentials(clientTlsFromFlags({ ca: certs.ca })!));
    const plain = federationClient(`127.0.0.1:${coordinator.grpcPort}`);
    try {
      const reg = await rpc<RegisterResponse__Output>((cb) =>
        fed.register(
          {
            clientId: 'alice',
            tasks: [{ taskId: '0-1', classes: [0, 1] }],
            enrollmentSecret: SECRET,
            clientCredential: testCredential('alice'),
          },
          cb,
        ),
      );
      expect(reg.token).toMatch(/^al1:alice:/);
      aliceToken = reg.token;
      expect(
        await codeOf(
          rpc((cb) =>
            fed.register(
              {
                clientId: 'eve',
                tasks: [{ taskId: '0-1', classes: [0, 1] }],
                enrollmentSecret: 'nope-nope-nope-nope',
              },
              cb,
            ),
          ),
        ),
      ).toBe(grpc.status.UNAUTHENTICATED);
      expect(await codeOf(rpc((cb) => plain.register({ clientId: 'eve', tasks: [] }, cb)))).toBe(
        grpc.status.UNAVAILABLE,
      );
      const op = operatorClient(address, grpcChannelCredentials(clientTlsFromFlags({ ca: certs.ca })!));
      try {
        expect(await codeOf(rpc((cb) => op.listClients({}, bearer(reg.token), cb)))).toBe(
          grpc.status.PERMISSION_DENIED,
        );
        const listed = await rpc<{ clients: unknown[] }>((cb) => op.listClients({}, bearer(OPERATOR), cb));
        expect(listed.clients).toHaveLength(1);
      } finally {
        op.close();
      }
    } finally {
      fed.close();
      plain.close();
    }
  });

  it('HTTPS: /metrics and /healthz open, /reports only with the operator token', async () => {
    const base = coordinator.httpUrl!.replace('127.0.0.1', 'localhost');
    expect((await httpsGet(`${base}/healthz`, ca)).status).toBe(200);
    const metrics = await httpsGet(`${base}/metrics`, ca);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('atomlens_clients_registered 1');
    expect((await httpsGet(`${base}/reports`, ca)).status).toBe(401);
    expect((await httpsGet(`${base}/reports`, ca, 'not-a-token')).status).toBe(401);
    // Authorised, then 501 because this coordinator runs without the analysis service.
    expect((await httpsGet(`${base}/reports`, ca, OPERATOR)).status).toBe(501);
    await expect(httpsGet(`${base}/healthz`, undefined)).rejects.toThrow(/certificate/i);
  });

  it('operator commands reach the TLS coordinator with --ca and --token, and say what is missing without', () => {
    const operator = (args: string[], env: NodeJS.ProcessEnv = {}) =>
      spawnSync(process.execPath, atomlensArgv(args), {
        encoding: 'utf8',
        env: { ...process.env, ATOMLENS_LOG: 'error', ATOMLENS_OPERATOR_TOKEN: '', ...env },
        timeout: 60_000,
      });
    const address = `localhost:${coordinator.grpcPort}`;
    const ok = operator([
      'status',
      '--coordinator',
      address,
      '--ca',
      certs.ca,
      '--token',
      OPERATOR,
      '--json',
    ]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(
      (JSON.parse(ok.stdout) as { clients: { clientId: string }[] }).clients.map((c) => c.clientId),
    ).toEqual(['alice']);
    // The token may come from the environment instead of the command line.
    const fromEnv = operator(['status', '--coordinator', address, '--ca', certs.ca], {
      ATOMLENS_OPERATOR_TOKEN: OPERATOR,
    });
    expect(fromEnv.status, fromEnv.stderr).toBe(0);
    const noToken = operator(['status', '--coordinator', address, '--ca', certs.ca]);
    expect(noToken.status).toBe(1);
    expect(noToken.stderr).toMatch(/refused the call.*--token or ATOMLENS_OPERATOR_TOKEN/s);
    const plaintext = operator(['report', '--list', '--coordinator', address, '--token', OPERATOR]);
    expect(plaintext.status).toBe(3);
    expect(plaintext.stderr).toMatch(/cannot reach the coordinator.*TLS \(--ca\)/s);
    const missingCa = operator(['report', '--list', '--coordinator', address, '--ca', join(dir, 'nope.pem')]);
    expect(missingCa.status).toBe(4);
    expect(missingCa.stderr).toMatch(/nope\.pem/);
  });

  it('refuses plaintext on a non-loopback address unless --insecure, and a lone --tls-cert', () => {
    const run = (args: string[]) =>
      spawnSync(process.execPath, atomlensArgv(['coordinator', '--data', join(dir, 'unused'), ...args]), {
        encoding: 'utf8',
        env: { ...process.env, ATOMLENS_LOG: 'error' },
        timeout: 60_000,
      });
    const open = run(['--host', '0.0.0.0', '--grpc-port', '0', '--http-port', '0']);
    expect(open.status).toBe(2);
    expect(open.stderr).toMatch(/refusing to serve plaintext on 0\.0\.0\.0.*--insecure/s);
    const half = run(['--tls-cert', certs.serverCert]);
    expect(half.status).toBe(2);
    expect(half.stderr).toMatch(/--tls-cert and --tls-key go together/);
    const badKey = run(['--tls-cert', certs.serverCert, '--tls-key', certs.clientKey('alice')]);
    expect(badKey.status).toBe(4);
    expect(badKey.stderr).toMatch(/does not belong to certificate/);
  });

  it('--revoke-client on the data dir takes effect in the running coordinator; --reinstate-client undoes the block', async () => {
    const run = (args: string[]) =>
      spawnSync(
        process.execPath,
        atomlensArgv([
          'coordinator',
          '--data',
          join(dir, 'data'),
          '--config',
          join(dir, 'config.json'),
          ...args,
        ]),
        { encoding: 'utf8', env: { ...process.env, ATOMLENS_LOG: 'error' }, timeout: 60_000 },
      );
    const address = `localhost:${coordinator.grpcPort}`;
    const fed = federationClient(address, grpcChannelCredentials(clientTlsFromFlags({ ca: certs.ca })!));
    const push = (token: string) =>
      rpc((cb) => fed.pushAtoms(atomsRequest('alice', '0-1', 1), bearer(token), cb));
    const register = () =>
      rpc<RegisterResponse__Output>((cb) =>
        fed.register(
          {
            clientId: 'alice',
            tasks: [{ taskId: '0-1', classes: [0, 1] }],
            enrollmentSecret: SECRET,
            clientCredential: testCredential('alice'),
          },
          cb,
        ),
      );
    try {
      await push(aliceToken);
      const revoked = run(['--revoke-client', 'alice']);
      expect(revoked.status, revoked.stderr).toBe(0);
      const until = Date.now() + 5_000;
      let code = grpc.status.OK;
      while (Date.now() < until) {
        code = await push(aliceToken).then(
          () => grpc.status.OK,
          (e: grpc.ServiceError) => e.code,
        );
        if (code !== grpc.status.OK) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(code).toBe(grpc.status.UNAUTHENTICATED);
      expect(await codeOf(register())).toBe(grpc.status.PERMISSION_DENIED);
      expect(run(['--reinstate-client', 'alice']).status).toBe(0);
      await new Promise((r) => setTimeout(r, 1_100));
      const again = await register();
      await push(again.token);
      expect(await codeOf(push(aliceToken))).toBe(grpc.status.UNAUTHENTICATED);
      expect(run(['--revoke-token', 'al1:alice:1:2:x:AAAA']).status).toBe(4);
    } finally {
      fed.close();
    }
  });
});
