// Shared by the security tests: certificates from scripts/make-certs.sh into a temp dir.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
