// Configuration merging/validation, and the `atomlens coordinator` / `atomlens status` commands
// as child processes (ports printed, status over gRPC, clean exit on SIGTERM, clear errors).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG, loadConfigFile, resolveConfig } from '../../src/coordinator/config.js';
import { atomlensArgv } from '../../src/shared/runtime.js';

const tmp = mkdtempSync(join(tmpdir(), 'atomlens-cli-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('coordinator configuration', () => {
  it('merges a partial configuration over the defaults', () => {
    const c = resolveConfig({
      sessions: { timeoutMs: 60_000 },
      escalation: { enabled: false },
      auth: { enabled: true },
    });
    expect(c.sessions).toEqual({
      heartbeatIntervalMs: DEFAULT_CONFIG.sessions.heartbeatIntervalMs,
      timeoutMs: 60_000,
    });
    expect(c.escalation).toEqual({ enabled: false });
    expect(c.auth).toEqual({ enabled: true });
    expect(c.limits).toEqual(DEFAULT_CONFIG.limits);
    expect(c.template.layers).toHaveLength(5);
  });

  it.each([
    [{ limits: { maxClientz: 3 } }, /unknown setting limits.maxClientz \(known: maxClients/],
    [{ sessions: { timeoutMs: 1000, heartbeatIntervalMs: 2000 } }, /timeoutMs \(1000\) must be larger than/],
    [{ storage: { synchronous: 'off' } }, /storage.synchronous must be one of "full", "normal", got "off"/],
    [{ limits: { maxClients: 1.5 } }, /limits.maxClients must be an integer/],
    [{ metrics: { defaultMetrics: 'yes' } }, /metrics.defaultMetrics must be true or false/],
    [{ template: { probe: { size: 1 } } }, /template: .*probe.size/],
    [{ sessions: 5 }, /sessions must be an object/],
    [{ escalation: { divergenceThreshold: 'high' } }, /escalation\.divergenceThreshold/],
  ])('rejects %j', (override, message) => {
    expect(() => resolveConfig(override as never)).toThrow(ConfigError);
    expect(() => resolveConfig(override as never)).toThrow(message);
  });

  it('reads a JSON file and names the file in errors', () => {
    const good = join(tmp, 'good.json');
    writeFileSync(good, JSON.stringify({ analysis: { probeDeadlineMs: 1234 } }));
    expect(loadConfigFile(good).analysis.probeDeadlineMs).toBe(1234);
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, '{ "limits": ');
    expect(() => loadConfigFile(bad)).toThrow(/bad.json is not valid JSON/);
    expect(() => loadConfigFile(join(tmp, 'missing.json'))).toThrow(
      /cannot read config file .*missing.json: ENOENT/,
    );
  });
});

function runCli(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, atomlensArgv(args), {
    encoding: 'utf8',
    env: { ...process.env, ATOMLENS_LOG: 'warn' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function startCli(args: string[]): Promise<{ child: ChildProcess; grpc: string; http: string }> {
  const child = spawn(process.execPath, atomlensArgv(['coordinator', ...args]), {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ATOMLENS_LOG: 'warn' },
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coordinator did not start: ${out}`)), 60_000);
    const onData = (b: Buffer) => {
      out += b.toString();
      const g = /grpc listening on (\S+)/.exec(out);
      const h = /http listening on (\S+)/.exec(out);
      if (g && h) {
        clearTimeout(timer);
        resolve({ child, grpc: g[1]!, http: h[1]! });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`coordinator exited with ${code}: ${out}`)));
  });
}

describe('atomlens coordinator / status', () => {
  it('starts on free ports, answers status, and exits 0 on SIGTERM', async () => {
    const data = join(tmp, 'data');
    const { child, grpc, http } = await startCli(['--grpc-port', '0', '--http-port', '0', '--data', data]);
    try {
      expect(grpc).toMatch(/^127\.0\.0\.1:\d+$/);
      const health = await fetch(`${http}/healthz`);
      expect(health.status).toBe(200);
      const status = runCli(['status', '--coordinator', grpc, '--json']);
      expect(status.status, status.stderr).toBe(0);
      const snapshot = JSON.parse(status.stdout) as {
        clients: unknown[];
        models: number;
        similarityMean: number | null;
      };
      expect(snapshot).toMatchObject({ clients: [], models: 0, similarityMean: null });
      const text = runCli(['status', '--coordinator', grpc]);
      expect(text.stdout).toMatch(/0 clients \(0 connected\), 0 models/);
    } finally {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });

  it('reports a bad config file with exit code 4 and an unreachable coordinator with exit code 3', () => {
    const bad = join(tmp, 'typo.json');
    writeFileSync(bad, JSON.stringify({ sesions: {} }));
    const r = runCli(['coordinator', '--config', bad, '--data', join(tmp, 'unused')]);
    expect(r.status).toBe(4);
    expect(r.stderr).toMatch(/unknown setting sesions/);
    const s = runCli(['status', '--coordinator', '127.0.0.1:1', '--timeout', '2000']);
    expect(s.status).toBe(3);
    expect(s.stderr).toMatch(/cannot reach the coordinator at 127.0.0.1:1/);
    expect(runCli(['coordinator', '--grpc-port', 'x']).status).toBe(2);
  });

  it('documents every option in --help', () => {
    const r = runCli(['coordinator', '--help']);
    expect(r.status).toBe(0);
    for (const flag of ['--grpc-port', '--http-port', '--data', '--config', '--host'])
      expect(r.stdout).toContain(flag);
  });
});

describe('atomlens status output', () => {
  it('lists clients, the mean similarity and the most divergent models', async () => {
    const { formatStatus } = await import('../../src/cli/commands/status.js');
    const text = formatStatus({
      coordinator: 'h:1',
      clients: [
        {
          clientId: 'alice',
          connected: true,
          fingerprintMatch: true,
          lastSeenMs: Date.now() - 5_000,
          tasks: [{ taskId: '0-1', lastRound: 7 }],
        },
        { clientId: 'bob', connected: false, fingerprintMatch: false, lastSeenMs: 0, tasks: [] },
      ],
      similarityMean: 0.81234,
      similarityNote: '',
      models: 2,
      topDivergence: [{ clientId: 'bob', taskId: '0-1', round: 3, divergence: 0.4, drift: 0.05 }],
    });
    expect(text).toMatch(/2 clients \(1 connected\), 2 models/);
    expect(text).toMatch(/federation similarity \(mean pairwise, latest\): 0\.8123/);
    expect(text).toMatch(/alice\s+yes\s+shared\s+5s ago\s+0-1\(7\)/);
    expect(text).toMatch(/bob\s+no\s+MISMATCH\s+never/);
    expect(text).toMatch(/bob\s+0-1\s+3\s+0\.4000\s+0\.0500/);
  });
});
