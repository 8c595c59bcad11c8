// The demo's data directory: a fresh run empties a directory the demo made, refuses to touch one
// it did not make, and --data (fresh = false) keeps what is there.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_MARKER, demoTemplate, prepareDataDir } from '../../src/demo/run.js';
import {
  DEMO_TEMPLATE_PATH,
  modelTemplateFromAtomTemplate,
  readTemplateFile,
} from '../../src/shared/template-file.js';

const root = mkdtempSync(join(tmpdir(), 'atomlens-demo-dir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('prepareDataDir', () => {
  it('creates logs/ and reports/ and marks the directory', () => {
    const dir = join(root, 'new');
    prepareDataDir(dir, true);
    expect(readdirSync(dir).sort()).toEqual([DEMO_MARKER, 'logs', 'reports'].sort());
  });

  it('a fresh run empties a directory the demo made', () => {
    const dir = join(root, 'again');
    prepareDataDir(dir, true);
    writeFileSync(join(dir, 'atomlens.db'), 'old');
    prepareDataDir(dir, true);
    expect(existsSync(join(dir, 'atomlens.db'))).toBe(false);
  });

  it('refuses to empty a directory it did not make, and says what to do', () => {
    const dir = join(root, 'foreign');
    mkdirSync(dir);
    writeFileSync(join(dir, 'precious.txt'), 'keep me');
    expect(() => prepareDataDir(dir, true)).toThrow(/was not created by the demo; remove it, or pass --data/);
    expect(existsSync(join(dir, 'precious.txt'))).toBe(true);
  });

  it('keeps what is there when reusing (--data)', () => {
    const dir = join(root, 'kept');
    mkdirSync(dir);
    writeFileSync(join(dir, 'atomlens.db'), 'old');
    prepareDataDir(dir, false);
    expect(existsSync(join(dir, 'atomlens.db'))).toBe(true);
    expect(existsSync(join(dir, 'reports'))).toBe(true);
  });
});

describe('demoTemplate', () => {
  it('is the built-in demo template file with the probe size asked for (α and its fingerprint unchanged)', () => {
    const file = readTemplateFile(DEMO_TEMPLATE_PATH);
    const t = demoTemplate(48);
    expect(t.probe.builtin?.size).toBe(48);
    expect(t.alphaFingerprint).toBe(file.alphaFingerprint);
    expect(t.layers).toEqual(file.layers);
    const model = modelTemplateFromAtomTemplate(t);
    expect(model.probe.size).toBe(48);
    expect(model.initialAtoms).toHaveLength(model.layers.length);
  });
});
