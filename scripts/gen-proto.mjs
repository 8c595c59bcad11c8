// Generates TypeScript types for proto/atomlens/v1/atomlens.proto into src/generated (git-ignored).
// Run by `npm install` (prepare) and before type-checking; the runtime loads the .proto itself.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'src', 'generated');
const require = createRequire(import.meta.url);
const bin = join(
  dirname(require.resolve('@grpc/proto-loader/package.json')),
  'build',
  'bin',
  'proto-loader-gen-types.js',
);
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(
  process.execPath,
  [
    bin,
    'atomlens/v1/atomlens.proto',
    '--longs=Number',
    '--enums=String',
    '--defaults',
    '--oneofs',
    '--includeComments',
    '--grpcLib=@grpc/grpc-js',
    '--importFileExtension=.js',
    `--outDir=${out}`,
    '-I',
    join(root, 'proto'),
  ],
  { stdio: ['ignore', 'ignore', 'inherit'], cwd: root },
);
// ES modules like the rest of the code: the generated enum files export values (the enum's
// names), which verbatimModuleSyntax refuses in CommonJS files.
writeFileSync(join(out, 'package.json'), '{ "type": "module" }\n');
