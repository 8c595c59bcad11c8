// The standard gRPC health service, called with a real health client: SERVING once the
// coordinator is up, NOT_SERVING as soon as it starts shutting down, per service and overall;
// with authentication it follows `auth.health` like /healthz.
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/coordinator/auth/authenticator.js';
import { grpcAuthHooks } from '../../src/coordinator/auth/hooks.js';
import { tokenDigest } from '../../src/coordinator/auth/tokens.js';
import { expectStatus, type Harness, rpc, startHarness } from './helpers.js';

interface HealthResponse {
  status: 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
}

interface HealthClient extends grpc.Client {
  check(
    req: { service: string },
    md: grpc.Metadata,
    cb: (e: grpc.ServiceError | null, r?: HealthResponse) => void,
  ): void;
  watch(req: { service: string }): grpc.ClientReadableStream<HealthResponse>;
}

const HealthClientConstructor = grpc.makeGenericClientConstructor(
  healthService as unknown as grpc.ServiceDefinition,
  'Health',
);

function healthClient(port: number): HealthClient {
  return new HealthClientConstructor(
    `127.0.0.1:${port}`,
    grpc.credentials.createInsecure(),
  ) as unknown as HealthClient;
}

function check(client: HealthClient, service: string, token?: string): Promise<HealthResponse> {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return rpc<HealthResponse>((cb) => client.check({ service }, md, cb));
}

describe('gRPC health service', () => {
  let h: Harness;
  let client: HealthClient;

  beforeAll(async () => {
    h = await startHarness();
    client = healthClient(h.running.grpcPort);
  });
  afterAll(async () => {
    client?.close();
    await h?.close();
  });

  it('answers SERVING for the server and both services, NOT_FOUND for others', async () => {
    expect((await check(client, '')).status).toBe('SERVING');
    expect((await check(client, 'atomlens.v1.FederationService')).status).toBe('SERVING');
    expect((await check(client, 'atomlens.v1.OperatorService')).status).toBe('SERVING');
    await expectStatus(check(client, 'atomlens.v1.Nothing'), grpc.status.NOT_FOUND);
  });

  it('turns NOT_SERVING as soon as the coordinator starts shutting down, then ends watches', async () => {
    const seen: string[] = [];
    const watch = client.watch({ service: '' });
    watch.on('data', (r: HealthResponse) => seen.push(r.status));
    const ended = new Promise<void>((resolve, reject) => {
      watch.on('end', () => resolve());
      watch.on('error', reject);
    });
    await expect.poll(() => seen).toEqual(['SERVING']);
    const started = performance.now();
    await h.running.stop({ drain: true, graceMs: 5_000 });
    // An open Watch does not hold up draining until the grace period runs out.
    expect(performance.now() - started).toBeLessThan(4_000);
    await ended;
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
  });
});

describe('gRPC health service with authentication', () => {
  const OPERATOR = 'health-operator-token-0123456789';
  const started: Harness[] = [];
  const start = async (health: 'open' | 'operator') => {
    const auth = new Authenticator(
      {
        enabled: true,
        enrollmentSecret: 'health-enrolment-secret-0123',
        mtlsEnrollment: false,
        tokenTtlSeconds: 60,
        operatorTokenDigests: [tokenDigest(OPERATOR)],
        http: { metrics: 'open', health },
      },
      { key: randomBytes(32) },
    );
    const h = await startHarness({ extra: grpcAuthHooks(auth) });
    started.push(h);
    return healthClient(h.running.grpcPort);
  };
  afterAll(async () => {
    for (const h of started) await h.close();
  });

  it('is open by default, like /healthz', async () => {
    const client = await start('open');
    try {
      expect((await check(client, '')).status).toBe('SERVING');
    } finally {
      client.close();
    }
  });

  it('needs an operator token when auth.health is "operator"', async () => {
    const client = await start('operator');
    try {
      await expectStatus(check(client, ''), grpc.status.UNAUTHENTICATED);
      expect((await check(client, '', OPERATOR)).status).toBe('SERVING');
    } finally {
      client.close();
    }
  });
});
