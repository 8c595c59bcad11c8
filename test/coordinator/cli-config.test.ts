// Configuration merging/validation, and the `atomlens coordinator` / `atomlens status` commands
// as child processes (ports printed, status over gRPC, clean exit on SIGTERM, clear errors).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfigFile, resolveConfig } from '../../src/coordinator/config.js';

/** The defaults: what an empty configuration file gives. */
const defaultConfig = () => resolveConfig({});

import { COORDINATOR_CONFIG_SCHEMA } from '../../src/coordinator/config-schema.js';
import { DEFAULT_ESCALATION_CONFIG } from '../../src/coordinator/level0/escalation.js';
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
    const defaults = defaultConfig();
    expect(c.sessions).toEqual({
      heartbeatIntervalMs: defaults.sessions.heartbeatIntervalMs,
      timeoutMs: 60_000,
    });
    expect(c.escalation).toEqual({ ...DEFAULT_ESCALATION_CONFIG, enabled: false });
    expect(c.auth).toEqual({ ...defaults.auth, enabled: true });
    expect(defaults.auth).toEqual({
      mtlsEnrollment: true,
      tokenTtlSeconds: 86_400,
      metrics: 'open',
      health: 'open',
    });
    expect(c.limits).toEqual(defaults.limits);
    expect(c.template.layers).toHaveLength(5);
  });

  it.each([
    [{ limits: { maxClientz: 3 } }, /unknown setting limits.maxClientz \(known: maxClients/],
    [{ sessions: { timeoutMs: 1000, heartbeatIntervalMs: 2000 } }, /timeoutMs \(1000\) must be larger than/],
    [{ storage: { synchronous: 'off' } }, /storage.synchronous must be one of "full", "normal", got "off"/],
    [{ limits: { maxClients: 1.5 } }, /limits.maxClients must be an integer/],
    [{ metrics: { defaultMetrics: 'yes' } }, /metrics.defaultMetrics must be true or false/],
    [{ template: { probe: { size: 1 } } }, /template.probe.size must be an integer from 2 to 4096, got 1/],
    [{ template: { layers: [{ name: 'c' }] } }, /template.layers\[0\].cIn is required/],
    [{ template: { probeLayers: ['nope'] } }, /template: .*probeLayers: unknown layer nope/],
    [{ sessions: 5 }, /sessions must be an object/],
    [{ escalation: { divergenceThreshold: 'high' } }, /escalation\.divergenceThreshold/],
  ])('rejects %j', (override, message) => {
    expect(() => resolveConfig(override as never)).toThrow(ConfigError);
    expect(() => resolveConfig(override as never)).toThrow(message);
  });

  it('has every setting of the schema in the README configuration reference', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const reference = readme.slice(readme.indexOf('## Configuration reference'));
    const sections = COORDINATOR_CONFIG_SCHEMA.properties as Record<string, { properties: object }>;
    const missing = Object.entries(sections).flatMap(([section, schema]) =>
      Object.keys(schema.properties)
        .map((key) => `${section}.${key}`)
        .filter((path) => !reference.includes(`\`${path}\``)),
    );
    expect(missing).toEqual([]);
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

/** Runs the CLI in this process, capturing what it writes. */
async function cliInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { main } = await import('../../src/cli/main.js');
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    stderr += String(chunk);
    return true;
  });
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

describe('--print-config validates every section exactly as start-up does', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    [
      'template',
      { template: { headInput: 'avg' } },
      /template.headInput must be one of "flatten", "gap", got "avg"/,
    ],
    [
      'limits',
      { limits: { maxMessageBytes: 10 } },
      /limits.maxMessageBytes must be an integer from 65536 to 1073741824, got 10/,
    ],
    [
      'sessions',
      { sessions: { heartbeatIntervalMs: 'fast' } },
      /sessions.heartbeatIntervalMs must be an integer from 10 to 3600000, got "fast"/,
    ],
    ['storage', { storage: { maxBatch: 0 } }, /storage.maxBatch must be an integer from 1 to 1000000, got 0/],
    [
      'metrics',
      { metrics: { maxModelSeries: -1 } },
      /metrics.maxModelSeries must be an integer from 0 to 1000000, got -1/,
    ],
    [
      'analysis',
      { analysis: { probeDeadlineMs: 0 } },
      /analysis.probeDeadlineMs must be an integer from 1 to 86400000, got 0/,
    ],
    [
      'escalation',
      { escalation: { driftThreshold: -0.1 } },
      /escalation.driftThreshold must be a number ≥ 0, got -0.1/,
    ],
    [
      'auth',
      { auth: { tokenTtlSeconds: 0 } },
      /auth.tokenTtlSeconds must be an integer from 1 to 31536000, got 0/,
    ],
    [
      'auth access',
      { auth: { health: 'nobody' } },
      /auth.health must be one of "open", "operator", got "nobody"/,
    ],
    [
      'auth secret',
      { auth: { enrollmentSecret: 'short' } },
      /enrolment secret must be at least 16 characters/,
    ],
    [
      'auth secret file',
      { auth: { operatorTokenFile: 'missing-tokens.txt' } },
      /auth.operatorTokenFile: cannot read/,
    ],
    ['an unknown section', { sesions: {} }, /unknown setting sesions/],
  ];

  it.each(cases)('%s', async (name, content, message) => {
    const file = join(tmp, `bad-${name.replace(/\W/g, '-')}.json`);
    writeFileSync(file, JSON.stringify(content));
    const printed = await cliInProcess(['coordinator', '--config', file, '--print-config']);
    const started = await cliInProcess([
      'coordinator',
      '--config',
      file,
      '--data',
      join(tmp, 'never-created'),
      '--grpc-port',
      '0',
      '--http-port',
      '0',
    ]);
    expect(printed.code).toBe(4);
    expect(printed.stdout).toBe('');
    expect(printed.stderr).toMatch(message);
    expect(printed.stderr).toContain(`config file ${file}: `);
    expect(started).toEqual(printed);
  });

  it('prints the resolved configuration with defaults filled in and secrets redacted', async () => {
    const file = join(tmp, 'print.json');
    const secret = 'an-enrolment-secret-long-enough';
    writeFileSync(file, JSON.stringify({ limits: { maxClients: 7 }, auth: { enrollmentSecret: secret } }));
    const r = await cliInProcess(['coordinator', '--config', file, '--print-config']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain(secret);
    const printed = JSON.parse(r.stdout) as ReturnType<typeof defaultConfig>;
    const defaults = defaultConfig();
    expect(printed.limits).toEqual({ ...defaults.limits, maxClients: 7 });
    expect(printed.escalation).toEqual(defaults.escalation);
    expect(printed.template).toEqual(defaults.template);
    expect(printed.auth).toEqual({ ...defaults.auth, enabled: false, enrollmentSecret: '<redacted>' });
  });

  it('--gw-cost overrides analysis.cost, and names the choices when wrong', async () => {
    const file = join(tmp, 'cost.json');
    writeFileSync(file, JSON.stringify({ analysis: { cost: 'euclidean' } }));
    const r = await cliInProcess([
      'coordinator',
      '--config',
      file,
      '--gw-cost',
      'sqeuclidean',
      '--print-config',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as ReturnType<typeof defaultConfig>).analysis.cost).toBe('sqeuclidean');
    const fromFile = await cliInProcess(['coordinator', '--config', file, '--print-config']);
    expect((JSON.parse(fromFile.stdout) as ReturnType<typeof defaultConfig>).analysis.cost).toBe('euclidean');
    const bad = await cliInProcess(['coordinator', '--gw-cost', 'cosine', '--print-config']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--gw-cost must be one of euclidean, sqeuclidean');
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
