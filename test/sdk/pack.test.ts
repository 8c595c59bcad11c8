// The published package, as a user gets it: `npm pack` makes the tarball, which is installed into an
// empty ESM project; a script there imports only from 'atomlens' (the package's `exports`), builds
// a template from a layer list, starts a coordinator through the package's bin, connects an
// AtomlensClient, pushes one round of atoms, and reads the round back through a second connection.
// Needs the npm registry (or npm's cache) for the package's dependencies; skips where neither answers.
// better-sqlite3's install fetches a prebuilt addon and compiles SQLite from source (minutes on a
// busy machine) when it cannot; the test hands it the addon this checkout already built, through
// the cache that fetch looks in first, so the install is what a user with the prebuilt one gets.
import { execFileSync, type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

const USER_SCRIPT = `
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { AtomlensClient, readTemplateFile, templateFromLayerList, writeNpy, writeTemplateFile } from 'atomlens';

const dir = process.argv[2];
const template = templateFromLayerList(
  [
    { name: 'conv1', cIn: 1, cOut: 4, k: 3, m: 6 },
    { name: 'conv2', cIn: 4, cOut: 8, k: 3, m: 6 },
  ],
  { seed: 7, federationId: 'packed' },
);
const templatePath = join(dir, 'packed.template.json');
writeTemplateFile(templatePath, template);
const reread = readTemplateFile(templatePath);
const probePath = join(dir, 'probe.npy');
writeFileSync(probePath, writeNpy(Float32Array.from({ length: 4 * 6 * 6 }, (_, i) => (i % 7) / 7), [4, 6, 6, 1], 'float32'));

const coordinator = spawn(
  'node',
  ['node_modules/.bin/atomlens', 'coordinator', '--data', join(dir, 'data'), '--grpc-port', '0',
   '--http-port', '0', '--template', templatePath, '--probe-set', probePath],
  { stdio: ['ignore', 'pipe', 'pipe'] },
);
let output = '';
const address = await new Promise((resolve, reject) => {
  const onData = (d) => {
    output += d.toString();
    const m = /grpc listening on (\\S+)/.exec(output);
    if (m) resolve(m[1]);
  };
  coordinator.stdout.on('data', onData);
  coordinator.stderr.on('data', onData);
  coordinator.once('exit', (code) => reject(new Error('coordinator exited with ' + code + ':\\n' + output)));
});
try {
  const tasks = [{ id: 't0', classes: [0, 1] }];
  const client = await AtomlensClient.connect({ address, clientId: 'packer', tasks });
  const atoms = new Map(client.template.layers.map((l) => [l.name, Float32Array.from(l.initialAtoms, (v) => v + 0.01)]));
  const first = await client.push('t0', 1, atoms, { loss: 0.5, samples: 8 });
  const again = await client.push('t0', 1, atoms);
  client.close();
  const second = await AtomlensClient.connect({ address, clientId: 'packer', tasks });
  const lastRound = second.lastRound('t0');
  second.close();
  process.stdout.write(JSON.stringify({
    layers: reread.layers.map((l) => l.name),
    served: second.template.layers.map((l) => l.name),
    first: { round: first.round, duplicate: first.duplicate },
    againDuplicate: again.duplicate,
    lastRound,
  }) + '\\n');
} finally {
  coordinator.kill('SIGTERM');
}
`;

/** An install that compiles SQLite can take this long on a loaded machine. */
const INSTALL_TIMEOUT_MS = 600_000;
const TEST_TIMEOUT_MS = INSTALL_TIMEOUT_MS + 300_000;

type Ran = SpawnSyncReturns<string> & { seconds: number; timeoutMs: number };

function run(cmd: string, args: string[], cwd: string, timeoutMs = 240_000): Ran {
  const started = performance.now();
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout: timeoutMs });
  return Object.assign(r, { seconds: (performance.now() - started) / 1000, timeoutMs });
}

/**
 * What a failed command said: exit status or signal, time taken against its timeout (npm stopped
 * at the timeout exits 1 like any failure), spawn error, and the ends of stderr and stdout.
 */
function said(r: Ran): string {
  const tail = (text: string | null | undefined) => (text ?? '').slice(-6000);
  return [
    `exit status ${r.status}${r.signal ? `, killed by ${r.signal}` : ''} after ${r.seconds.toFixed(0)} s (timeout ${r.timeoutMs / 1000} s)${r.error ? `, ${r.error.message}` : ''}`,
    `stderr:\n${tail(r.stderr)}`,
    `stdout:\n${tail(r.stdout)}`,
  ].join('\n');
}

/**
 * Puts the better-sqlite3 addon of this checkout where better-sqlite3's install (prebuild-install)
 * looks before downloading: npm's cache, `_prebuilds/<sha512(url)[0..6]>-<file name>`, a tarball
 * holding build/Release/better_sqlite3.node. Only for the same version, Node ABI, platform and a
 * glibc system (the prebuilt binary's name has no libc part there); elsewhere the install compiles.
 */
function seedBetterSqlitePrebuild(): void {
  const dir = dirname(createRequire(import.meta.url).resolve('better-sqlite3/package.json'));
  const addon = join(dir, 'build', 'Release', 'better_sqlite3.node');
  const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)
    ?.header?.glibcVersionRuntime;
  if (!existsSync(addon) || process.platform !== 'linux' || !glibc) return;
  const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string };
  const file = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  const url = `https://github.com/WiseLibs/better-sqlite3/releases/download/v${version}/${file}`;
  const cache = execFileSync(npm, ['config', 'get', 'cache'], { encoding: 'utf8' }).trim();
  const digest = createHash('sha512').update(url).digest('hex').slice(0, 6);
  const target = join(cache, '_prebuilds', `${digest}-${basename(url).replace(/[^a-zA-Z0-9.]+/g, '-')}`);
  if (existsSync(target)) return;
  mkdirSync(dirname(target), { recursive: true });
  const partial = `${target}.${process.pid}.tmp`;
  execFileSync('tar', ['-czf', partial, '-C', dir, 'build/Release/better_sqlite3.node']);
  renameSync(partial, target);
}

describe('the npm package', () => {
  const work = mkdtempSync(join(tmpdir(), 'atomlens-pack-'));
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
  });

  it(
    'packs only what it ships, installs into an empty project, and works through its exports',
    (ctx) => {
      const packed = run(npm, ['pack', '--pack-destination', work, '--json'], root);
      expect(packed.status, said(packed)).toBe(0);
      const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
        filename: string;
        files: { path: string }[];
      }[];
      const tops = new Set(info!.files.map((f) => f.path.split('/')[0]));
      for (const needed of ['dist', 'bin', 'proto', 'schemas', 'templates', 'package.json']) {
        expect(tops).toContain(needed);
      }
      for (const unwanted of ['src', 'test', 'bench', 'scripts', 'examples', 'deploy', 'node_modules']) {
        expect(tops).not.toContain(unwanted);
      }
      expect(info!.files.some((f) => f.path === 'dist/index.js')).toBe(true);
      expect(readdirSync(work)).toContain(info!.filename);

      const project = join(work, 'project');
      execFileSync('mkdir', ['-p', project]);
      const init = run(npm, ['init', '-y'], project);
      expect(init.status, said(init)).toBe(0);
      execFileSync(npm, ['pkg', 'set', 'type=module'], { cwd: project });
      seedBetterSqlitePrebuild();
      const install = run(
        npm,
        ['install', join(work, info!.filename), '--no-audit', '--no-fund', '--prefer-offline'],
        project,
        INSTALL_TIMEOUT_MS,
      );
      if (
        install.status !== 0 &&
        // npm's own error code, not a line of an install script's output (better-sqlite3's
        // prebuilt download failing offline before it compiles is not a reason to skip).
        /^npm error code (ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|ECONNRESET)$/m.test(
          install.stderr,
        )
      ) {
        ctx.skip(`the npm registry is unreachable and npm's cache lacks a dependency:\n${install.stderr}`);
      }
      expect(install.status, said(install)).toBe(0);

      writeFileSync(join(project, 'use.mjs'), USER_SCRIPT);
      const used = run(process.execPath, ['use.mjs', work], project);
      expect(used.status, said(used)).toBe(0);
      const result = JSON.parse(used.stdout.trim().split('\n').at(-1)!);
      expect(result).toEqual({
        layers: ['conv1', 'conv2'],
        served: ['conv1', 'conv2'],
        first: { round: 1, duplicate: false },
        againDuplicate: true,
        lastRound: 1,
      });
    },
    TEST_TIMEOUT_MS,
  );
});
