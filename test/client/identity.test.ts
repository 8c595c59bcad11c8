// The client's own credential: made once in its state directory (hex, mode 0600), read back
// unchanged by every later client of that directory, and refused with a message naming the fix
// when the directory cannot be used or the file is damaged.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ClientIdentity,
  ClientIdentityError,
  CREDENTIAL_FILE,
  defaultStateDir,
} from '../../src/client/identity.js';

describe('ClientIdentity', () => {
  const root = mkdtempSync(join(tmpdir(), 'atomlens-identity-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('makes 32 random bytes once, private to the user, and reads the same bytes afterwards', () => {
    const dir = join(root, 'a', 'nested');
    const first = new ClientIdentity({ clientId: 'a', stateDir: dir }).credential();
    expect(first.length).toBe(32);
    const file = join(dir, CREDENTIAL_FILE);
    expect(readFileSync(file, 'utf8')).toBe(`${first.toString('hex')}\n`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(new ClientIdentity({ clientId: 'a', stateDir: dir }).credential()).toEqual(first);
    // Another directory is another client.
    expect(new ClientIdentity({ clientId: 'a', stateDir: join(root, 'b') }).credential()).not.toEqual(first);
  });

  it('uses a credential given directly, without touching any directory, within 16 to 1,024 bytes', () => {
    const given = Buffer.alloc(16, 7);
    expect(new ClientIdentity({ clientId: 'a', credential: given }).credential()).toEqual(given);
    expect(() => new ClientIdentity({ clientId: 'a', credential: Buffer.alloc(15) })).toThrow(
      /15 bytes; give 16 to 1024/,
    );
  });

  it('names --state-dir when the directory cannot be made', () => {
    const file = join(root, 'plain-file');
    writeFileSync(file, 'x');
    const identity = new ClientIdentity({ clientId: 'a', stateDir: join(file, 'state') });
    expect(() => identity.credential()).toThrow(ClientIdentityError);
    expect(() => identity.credential()).toThrow(/ENOTDIR.*--state-dir/);
  });

  it('refuses a damaged credential file instead of replacing it', () => {
    const dir = join(root, 'damaged');
    new ClientIdentity({ clientId: 'a', stateDir: dir }).credential();
    writeFileSync(join(dir, CREDENTIAL_FILE), 'not hex\n');
    expect(() => new ClientIdentity({ clientId: 'a', stateDir: dir }).credential()).toThrow(
      /is not a client credential.*remove-client/,
    );
    expect(readFileSync(join(dir, CREDENTIAL_FILE), 'utf8')).toBe('not hex\n');
  });

  it('defaults to a directory per client id under ~/.atomlens/clients', () => {
    expect(defaultStateDir('site-a')).toBe(join(homedir(), '.atomlens', 'clients', 'site-a'));
    expect(new ClientIdentity({ clientId: 'site-a' }).stateDir).toBe(defaultStateDir('site-a'));
  });
});
