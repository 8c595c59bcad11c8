// `atomlens experiment` as a child process: listing, usage errors, and one tiny run end to end.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { atomlensArgv } from '../../src/shared/runtime.js';

function cli(args: string[]) {
  const r = spawnSync(process.execPath, atomlensArgv(['experiment', ...args]), {
    encoding: 'utf8',
    env: { ...process.env, ATOMLENS_LOG: 'warn' },
    timeout: 120_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('atomlens experiment', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('lists the experiments', () => {
    const r = cli(['--list']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^atom-vs-cka\s/m);
    expect(r.stdout).toMatch(/^subnetworks\s/m);
  });

  it('rejects a missing or unknown experiment and bad flags with exit code 2', () => {
    expect(cli([]).code).toBe(2);
    const unknown = cli(['atom-vs-gw']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown experiment 'atom-vs-gw'; choose one of atom-vs-cka, subnetworks/);
    const badSize = cli(['subnetworks', '--probe-sizes', '64,x']);
    expect(badSize.code).toBe(2);
    expect(badSize.stderr).toMatch(/--probe-sizes must be a comma-separated list/);
    const badRef = cli(['subnetworks', '--probe-sizes', '64,128', '--reference-size', '100']);
    expect(badRef.code).toBe(2);
    expect(badRef.stderr).toMatch(/--reference-size 100 is not one of the probe sizes 64, 128/);
    expect(cli(['atom-vs-cka', '--checkpoints', '0,9', '--rounds', '4']).code).toBe(2);
    const badScope = cli(['atom-vs-cka', '--optimizer-scope', 'epoch']);
    expect(badScope.code).toBe(2);
    expect(badScope.stderr).toMatch(/--optimizer-scope must be 'task' or 'round', got 'epoch'/);
    const badSuite = cli(['subnetworks', '--task-suite', 'cifar']);
    expect(badSuite.code).toBe(2);
    expect(badSuite.stderr).toMatch(/--task-suite must be one of binary, five-way, rotated, permuted/);
    const fiveWay = cli(['atom-vs-cka', '--task-suite', 'five-way']);
    expect(fiveWay.code).toBe(2);
    expect(fiveWay.stderr).toMatch(/no held-out digits.*use rotated or permuted/);
  });

  it('runs atom-vs-cka --tiny and records the command that reproduces it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'atomlens-exp-cli-'));
    dirs.push(dir);
    const r = cli(['atom-vs-cka', '--tiny', '--seed', '9', '--out', dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/atom-vs-cka: \d+ models, \d+ pairs, Pearson r = -?\d\.\d{3}/);
    expect(existsSync(join(dir, 'results.md'))).toBe(true);
    const md = readFileSync(join(dir, 'results.md'), 'utf8');
    expect(md).toContain('`npm run experiment -- atom-vs-cka --tiny --seed 9`');
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).config.seed).toBe(9);
  });
});
