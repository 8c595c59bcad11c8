// scripts/make-certs.sh writes private keys: wherever it is pointed, even inside a git checkout,
// none of what it writes may be picked up by `git add`, and keys stay owner-only.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HAS_OPENSSL, MAKE_CERTS } from './helpers.js';

describe.skipIf(!HAS_OPENSSL)('make-certs.sh', () => {
  const repo = mkdtempSync(join(tmpdir(), 'atomlens-make-certs-'));
  afterAll(() => rmSync(repo, { recursive: true, force: true }));

  it('leaves nothing for git to commit when run inside a checkout', () => {
    execFileSync('git', ['init', '-q', repo]);
    execFileSync('bash', [MAKE_CERTS, join(repo, 'certs'), 'site-a'], { cwd: repo, stdio: 'pipe' });
    const status = execFileSync('git', ['status', '--porcelain', '--untracked-files=all'], {
      cwd: repo,
      encoding: 'utf8',
    });
    expect(status).toBe('');
    execFileSync('git', ['add', '-A'], { cwd: repo });
    expect(execFileSync('git', ['diff', '--cached', '--name-only'], { cwd: repo, encoding: 'utf8' })).toBe(
      '',
    );
    expect(statSync(join(repo, 'certs', 'client-site-a-key.pem')).mode & 0o077).toBe(0);
    expect(statSync(join(repo, 'certs', 'ca-key.pem')).mode & 0o077).toBe(0);
  });
});
