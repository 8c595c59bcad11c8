// `atomlens coordinator --template FILE`: the coordinator hands out the file's α and initial atoms
// at Register (so clients start from them), and a bad file is refused with the flag named.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CoordinatorProcess, spawnCoordinator } from '../../bench/coordinator-process.js';
import type { RegisterResponse__Output } from '../../src/generated/atomlens/v1/RegisterResponse.js';
import { atomlensArgv } from '../../src/shared/runtime.js';
import { templateFromWire } from '../../src/shared/template.js';
import { DEMO_TEMPLATE_PATH, readTemplateFile } from '../../src/shared/template-file.js';
import { federationClient, rpc } from '../security/helpers.js';

describe('atomlens coordinator --template', () => {
  let dir: string;
  let coordinator: CoordinatorProcess;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atomlens-cli-template-'));
    coordinator = await spawnCoordinator({
      dataDir: join(dir, 'data'),
      args: ['--template', DEMO_TEMPLATE_PATH, '--without-analysis'],
      env: { ATOMLENS_LOG: 'error' },
    });
  });
  afterAll(async () => {
    await coordinator?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends the file’s α and initial atoms to a registering client', async () => {
    const fed = federationClient(`127.0.0.1:${coordinator.grpcPort}`);
    try {
      const reg = await rpc<RegisterResponse__Output>((cb) =>
        fed.register({ clientId: 'alice', tasks: [{ taskId: '0-1', classes: [0, 1] }] }, cb),
      );
      const sent = templateFromWire(reg.template!);
      const file = readTemplateFile(DEMO_TEMPLATE_PATH);
      expect(sent.alphaFingerprint).toBe(file.alphaFingerprint);
      expect(sent.layers.map((l) => l.m)).toEqual(file.layers.map((l) => l.m));
      sent.initialAtoms!.forEach((atoms, i) => {
        expect(Array.from(atoms)).toEqual(Array.from(file.layers[i]!.initialAtoms));
      });
    } finally {
      fed.close();
    }
  });

  it('refuses an unusable template file, naming --template', () => {
    const bad = join(dir, 'bad.template.json');
    writeFileSync(bad, '{"format": "atomlens-template"}');
    const r = spawnSync(
      process.execPath,
      atomlensArgv(['coordinator', '--template', bad, '--data', join(dir, 'x')]),
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(
      /--template: .*bad.template.json is not a valid atomlens template: .*layers must be an array/,
    );
  });
});
