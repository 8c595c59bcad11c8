// Compiles src/ into dist/ (JavaScript, type declarations, source maps; tsconfig.build.json),
// after regenerating the gRPC types it type-checks against. dist/ is emptied first so no module
// deleted from src/ survives there.
//   npm run build
//   node scripts/build.mjs --out-dir DIR   compile into DIR instead of dist/
//   node scripts/build.mjs --prepare   as `npm install`'s prepare step: a production install
//                                      (npm ci --omit=dev) has no TypeScript, and builds nothing
import { execFileSync } from 'node:child_process';
import { copyFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

let tsc;
try {
  tsc = join(dirname(require.resolve('typescript/package.json')), 'bin', 'tsc');
} catch {
  if (!process.argv.includes('--prepare')) throw new Error('TypeScript is not installed: run npm install');
  process.stdout.write('atomlens: no TypeScript here (a production install); dist/ is used as shipped\n');
  process.exit(0);
}

const outFlag = process.argv.indexOf('--out-dir');
const out = outFlag > 0 ? resolve(process.argv[outFlag + 1] ?? '') : join(root, 'dist');

execFileSync(process.execPath, [join(root, 'scripts', 'gen-proto.mjs')], { stdio: 'inherit', cwd: root });
rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', out], {
  stdio: 'inherit',
  cwd: root,
});
// The generated gRPC types are CommonJS (see gen-proto.mjs); their declarations in dist/ need the
// same marker for NodeNext resolution.
copyFileSync(join(root, 'src', 'generated', 'package.json'), join(out, 'generated', 'package.json'));
