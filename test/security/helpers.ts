// Shared by the security tests: certificates from scripts/make-certs.sh into a temp dir.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Authenticator, type AuthenticatorOptions } from '../../src/coordinator/auth/authenticator.js';
import { tokenDigest } from '../../src/coordinator/auth/tokens.js';
import type { FederationServiceClient } from '../../src/generated/atomlens/v1/FederationService.js';
import type { OperatorServiceClient } from '../../src/generated/atomlens/v1/OperatorService.js';
import type { PushAtomsRequest } from '../../src/generated/atomlens/v1/PushAtomsRequest.js';
import { loadAtomlensProto } from '../../src/shared/proto.js';
import { mulberry32, normalSampler } from '../../src/shared/rng.js';
import { buildTemplate, DEFAULT_TEMPLATE_CONFIG } from '../../src/shared/template.js';
import { encodeFloat32 } from '../../src/shared/tensor.js';

export const MAKE_CERTS = fileURLToPath(new URL('../../scripts/make-certs.sh', import.meta.url));

export const HAS_OPENSSL = spawnSync('openssl', ['version']).status === 0;
if (!HAS_OPENSSL) console.warn('openssl not found: TLS tests are skipped (apt-get install openssl)');

export interface CertDir {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  operatorCert: string;
  operatorKey: string;
  clientCert(id: string): string;
  clientKey(id: string): string;
}

/** Runs make-certs.sh for the given client ids into a fresh temp dir. */
export function makeCerts(clientIds: string[], env: Record<string, string> = {}): CertDir {
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-certs-'));
  execFileSync('bash', [MAKE_CERTS, dir, ...clientIds], { env: { ...process.env, ...env }, stdio: 'pipe' });
  return {
    dir,
    ca: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server-key.pem'),
    operatorCert: join(dir, 'operator.pem'),
    operatorKey: join(dir, 'operator-key.pem'),
    clientCert: (id) => join(dir, `client-${id}.pem`),
    clientKey: (id) => join(dir, `client-${id}-key.pem`),
  };
}

const TEMPLATE = buildTemplate(DEFAULT_TEMPLATE_CONFIG);

/**
 * A client credential (RegisterRequest.client_credential) for a test client: 32 bytes fixed per
 * id, so that every registration of that id presents the same one, as a real client does.
 */
export function testCredential(clientId: string): Buffer {
  return createHash('sha256').update(`test client credential ${clientId}`).digest();
}

/**
 * The Authenticator of a test coordinator without TLS: enrolment by the secret (no mTLS), one
 * operator token, hour-long client tokens, metrics and health open.
 */
export function tokenAuthenticator(
  enrollmentSecret: string,
  operatorToken: string,
  options: AuthenticatorOptions = { key: Buffer.alloc(32, 7) },
): Authenticator {
  return new Authenticator(
    {
      enabled: true,
      enrollmentSecret,
      mtlsEnrollment: false,
      tokenTtlSeconds: 3600,
      operatorTokenDigests: [tokenDigest(operatorToken)],
      http: { metrics: 'open', health: 'open' },
    },
    options,
  );
}

/** A valid PushAtomsRequest for the default template (atoms from a seeded normal). */
export function atomsRequest(
  clientId: string,
  taskId: string,
  round: number,
  seed = round,
): PushAtomsRequest {
  const normal = normalSampler(mulberry32(seed * 7919 + clientId.length));
  return {
    clientId,
    taskId,
    round,
    layers: TEMPLATE.layers.map((l) => {
      const values = new Float32Array(l.m * l.k * l.k);
      for (let i = 0; i < values.length; i++) values[i] = normal() / l.k;
      return { layer: l.name, atoms: encodeFloat32(values, [l.m, l.k, l.k]) };
    }),
    stats: { loss: 0.5, accuracy: 0.9, samples: 64 },
  };
}

export function federationClient(
  address: string,
  creds = grpc.credentials.createInsecure(),
): FederationServiceClient {
  const proto = loadAtomlensProto();
  return new proto.atomlens.v1.FederationService(address, creds, {
    'grpc.use_local_subchannel_pool': 1,
  }) as unknown as FederationServiceClient;
}

export function operatorClient(
  address: string,
  creds = grpc.credentials.createInsecure(),
): OperatorServiceClient {
  const proto = loadAtomlensProto();
  return new proto.atomlens.v1.OperatorService(address, creds, {
    'grpc.use_local_subchannel_pool': 1,
  }) as unknown as OperatorServiceClient;
}

/** Metadata carrying a bearer token ('' → no authorization at all). */
export function bearer(token: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return md;
}

type Callback<T> = (err: grpc.ServiceError | null, value?: T) => void;

/** Calls a unary method: `rpc((cb) => client.method(req, md, cb))`. */
export function rpc<T>(fn: (cb: Callback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, value) => (err ? reject(err) : resolve(value as T)));
  });
}

/** Resolves with the status code of a failing call (rejects if it succeeds). */
export async function codeOf(p: Promise<unknown>): Promise<grpc.status> {
  try {
    await p;
  } catch (err) {
    return (err as grpc.ServiceError).code;
  }
  throw new Error('expected the call to fail');
}

/** Polls every pollMs until cond() holds; throws after timeoutMs. */
export async function waitFor(cond: () => boolean, timeoutMs: number, pollMs = 10): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
