import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CLIENT_VERSION } from '../../src/client/client.js';
import { ID_MAX_LENGTH, idProblem, isValidId, modelKey } from '../../src/shared/ids.js';
import { ATOMLENS_VERSION } from '../../src/shared/version.js';

describe('identifiers', () => {
  it('accepts 1–64 characters of letters, digits, dot, underscore and hyphen', () => {
    for (const id of ['a', 'site-a', 'Task_0.1', '0-1', 'x'.repeat(ID_MAX_LENGTH)]) {
      expect(isValidId(id)).toBe(true);
      expect(idProblem('client_id', id)).toBeUndefined();
    }
  });

  it('refuses empty, too long, and ids with other characters, naming the field', () => {
    for (const id of ['', 'x'.repeat(ID_MAX_LENGTH + 1), 'a/b', 'a b', 'a\nb', 'é', 'a:b']) {
      expect(isValidId(id)).toBe(false);
      expect(idProblem('task_id', id)).toMatch(/^task_id ".*" is not valid: use 1–64 characters of/);
    }
  });

  it('cuts very long input in the message', () => {
    const message = idProblem('--id', 'y'.repeat(500)) ?? '';
    expect(message).toContain(`${'y'.repeat(80)}…`);
    expect(message).not.toContain('y'.repeat(81));
  });

  it('keys a model by client and task without collisions between splits', () => {
    expect(modelKey('a', 'b')).toBe(modelKey('a', 'b'));
    expect(modelKey('a.b', 'c')).not.toBe(modelKey('a', 'b.c'));
    expect(modelKey('a-b', 'c')).not.toBe(modelKey('a', 'b-c'));
  });
});

describe('version', () => {
  it('is the package manifest version, also in the version the client sends', () => {
    const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    expect(ATOMLENS_VERSION).toBe(manifest.version);
    expect(CLIENT_VERSION).toBe(`atomlens-client/${manifest.version}`);
  });
});
