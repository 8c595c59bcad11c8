// The SDK's identity against a coordinator with authentication: enrolling with the enrolment
// secret binds the client id to the credential in the client's state directory, so a restarted
// client with that directory is the same client (and resumes its rounds), while another party
// with the secret but without the directory is refused with a message naming the fix.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/coordinator/auth/authenticator.js';
import { grpcAuthHooks } from '../../src/coordinator/auth/hooks.js';
import { tokenDigest } from '../../src/coordinator/auth/tokens.js';
import { type RunningCoordinator, startCoordinator } from '../../src/coordinator/coordinator.js';
import { AtomlensClient, type AtomlensClientOptions, templateFromLayerList } from '../../src/index.js';
import { createLogger } from '../../src/shared/log.js';
import { modelTemplateFromAtomTemplate } from '../../src/shared/template-file.js';

const SECRET = 'sdk-identity-enrolment-secret';
const template = templateFromLayerList([{ name: 'c1', cIn: 1, cOut: 4, k: 3, m: 4 }], {
  seed: 5,
  federationId: 'identity',
});
const probeSet = { values: new Float32Array(4 * 6 * 6).fill(0.5), shape: [4, 6, 6, 1] };

describe('AtomlensClient identity', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-sdk-identity-'));
  let coordinator: RunningCoordinator;
  const options = (extra: Partial<AtomlensClientOptions>): AtomlensClientOptions => ({
    address: `127.0.0.1:${coordinator.grpcPort}`,
    clientId: 'site-a',
    tasks: [{ id: 'task-a', classes: [0, 1] }],
    enrollmentSecret: SECRET,
    backoff: { initialMs: 50, maxMs: 200, giveUpAfterMs: 10_000 },
    logger: createLogger('sdk', 'silent'),
    ...extra,
  });

  beforeAll(async () => {
    const auth = new Authenticator(
      {
        enabled: true,
        enrollmentSecret: SECRET,
        mtlsEnrollment: false,
        tokenTtlSeconds: 3600,
        operatorTokenDigests: [tokenDigest('sdk-identity-operator-token')],
        http: { metrics: 'open', health: 'open' },
      },
      { key: randomBytes(32) },
    );
    coordinator = await startCoordinator({
      dataDir: join(dir, 'coordinator'),
      grpcPort: 0,
      template: modelTemplateFromAtomTemplate(template, probeSet.shape),
      probeSet,
      config: { metrics: { defaultMetrics: false } },
      logger: createLogger('identity', 'silent'),
      ...grpcAuthHooks(auth),
    });
  });
  afterAll(async () => {
    await coordinator?.stop({ drain: false });
    rmSync(dir, { recursive: true, force: true });
  });

  it('a restarted client with its state directory is the same client; without it, refused', async () => {
    const stateDir = join(dir, 'site-a-state');
    const first = await AtomlensClient.connect(options({ stateDir }));
    await first.push('task-a', 1, { c1: new Float32Array(36).fill(0.1) });
    first.close();
    expect(existsSync(join(stateDir, 'client-credential'))).toBe(true);

    const restarted = await AtomlensClient.connect(options({ stateDir }));
    try {
      expect(restarted.lastRound('task-a')).toBe(1);
    } finally {
      restarted.close();
    }

    const other = AtomlensClient.connect(options({ stateDir: join(dir, 'someone-else') }));
    await expect(other).rejects.toThrow(
      /PERMISSION_DENIED.*already enrolled.*--state-dir.*stateDir.*atomlens status --remove-client site-a/,
    );
  });

  it('takes the credential itself instead of a directory', async () => {
    const clientCredential = randomBytes(32);
    const a = await AtomlensClient.connect(options({ clientId: 'site-b', clientCredential }));
    a.close();
    const again = await AtomlensClient.connect(options({ clientId: 'site-b', clientCredential }));
    again.close();
    await expect(
      AtomlensClient.connect(options({ clientId: 'site-b', clientCredential: randomBytes(32) })),
    ).rejects.toThrow(/PERMISSION_DENIED/);
  });

  it('fails at once when its state directory cannot be used', async () => {
    const notADirectory = join(dir, 'a-file');
    writeFileSync(notADirectory, '');
    const started = Date.now();
    await expect(
      AtomlensClient.connect(options({ clientId: 'site-c', stateDir: join(notADirectory, 'state') })),
    ).rejects.toThrow(/--state-dir/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
