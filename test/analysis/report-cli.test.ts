// `atomlens report` as a user runs it: a child process against a live coordinator whose clients
// answer probe requests over gRPC.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningCoordinator } from '../../src/coordinator/coordinator.js';
import { runAtomlens } from '../helpers/cli.js';
import { type LiveCoordinator, startLiveCoordinator } from './live-coordinator.js';
import { type SimClient, startClient } from './sim-client.js';

const schema = JSON.parse(readFileSync(new URL('../../schemas/report.schema.json', import.meta.url), 'utf8'));

const atomlens = (args: string[]) => runAtomlens(args, { ...process.env, ATOMLENS_LOG: 'warn' });

describe('atomlens report', () => {
  let live: LiveCoordinator;
  let dir: string;
  let coordinator: RunningCoordinator;
  let address: string;
  const clients: SimClient[] = [];

  beforeAll(async () => {
    live = await startLiveCoordinator('report-cli', 1);
    ({ dir, coordinator, address } = live);
    clients.push(await startClient(address, 'alice', '0-1', 'classes', { seed: 21 }));
    clients.push(await startClient(address, 'bob', '0-1', 'classes2', { seed: 22 }));
    for (let i = 0; i < 100 && coordinator.sessions.connectedCount() < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await live?.stop();
  });

  it('requests an analysis, shows progress, writes the HTML page and lists/gets the report', async () => {
    const page = join(dir, 'out.html');
    const run = await atomlens([
      'report',
      '--coordinator',
      address,
      '--models',
      'alice/0-1,bob/0-1',
      '--reason',
      'from the CLI test',
      '--deadline',
      '5000',
      '--out',
      page,
    ]);
    expect(run.stderr).toMatch(/probing/);
    expect(run.stderr).toMatch(/solving/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/trigger operator: from the CLI test/);
    // Two models of one task that differ: which one moved cannot be told, so no client is named.
    expect(run.stdout).toMatch(/c7,c8\s+inconclusive\s+\(\d+ % of probe resamples\)/);
    expect(run.stdout).toContain(`HTML written to ${page}`);
    expect(existsSync(page)).toBe(true);
    expect(readFileSync(page, 'utf8')).toContain('class="heatmap" data-kind="gw-layers"');

    const list = await atomlens(['report', '--coordinator', address, '--list', '--json']);
    expect(list.code).toBe(0);
    const reports = JSON.parse(list.stdout).reports as {
      reportId: string;
      trigger: string;
      models: number;
    }[];
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ trigger: 'operator', models: 2 });

    const got = await atomlens(['report', '--coordinator', address, '--get', reports[0]!.reportId, '--json']);
    expect(got.code).toBe(0);
    const report = JSON.parse(got.stdout);
    expect(new Ajv({ strict: true }).validate(schema, report)).toBe(true);
    expect(report.reportId).toBe(reports[0]!.reportId);
  });

  it('explains a missing report and an unknown model', async () => {
    const missing = await atomlens(['report', '--coordinator', address, '--get', 'rep-nope']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no report 'rep-nope'/);
    // The fix is a command, not an RPC.
    expect(missing.stderr).toMatch(/atomlens report --list/);
    expect(missing.stderr).not.toMatch(/ListReports/);
    const unknown = await atomlens(['report', '--coordinator', address, '--models', 'zed/0-1']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown client 'zed'/);
    expect(unknown.stderr).not.toMatch(/ListClients/);
  });

  it('checks --out before it asks for an analysis', async () => {
    const before = (await coordinator.storage.listReports(1000)).length;
    const started = Date.now();
    const bad = await atomlens([
      'report',
      '--coordinator',
      address,
      '--out',
      '/nonexistent-dir/x/report.html',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--out.*\/nonexistent-dir\/x/);
    expect(Date.now() - started).toBeLessThan(30_000);
    expect((await coordinator.storage.listReports(1000)).length).toBe(before);
  });
});
