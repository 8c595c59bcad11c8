#!/usr/bin/env node
// Entry point of the `atomlens` command: the compiled CLI in dist/, written by `npm run build`
// (which `npm install` in a checkout runs). From the TypeScript sources instead, in a checkout:
//   node --import tsx src/cli/main.ts <command> …
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(`atomlens: ${fileURLToPath(main)} is missing; run \`npm run build\` in ${root}\n`);
  process.exit(1);
}
// Stack traces name the TypeScript lines (dist/ carries source maps).
process.setSourceMapsEnabled(true);
const { runMain } = await import(main.href);
runMain();
