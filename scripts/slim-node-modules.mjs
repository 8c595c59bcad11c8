// Removes from a production node_modules what compiling the native addon leaves behind but nothing
// loads at run time: better-sqlite3's bundled SQLite and C++ sources (deps/, src/) and its object
// files and static libraries, keeping build/Release/better_sqlite3.node (the file its loader,
// `bindings`, opens). About 25 MB of a 46 MB tree. Used by the Dockerfile; check:production runs
// the coordinator on a tree slimmed this way.
//   node scripts/slim-node-modules.mjs [node_modules]     prints the bytes removed
import { lstatSync, readdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const KEEP_IN_RELEASE = new Set(['better_sqlite3.node']);

/** Bytes in a directory tree, each hard-linked file once (as du counts). */
export function treeBytes(path, seen = new Set()) {
  const stat = lstatSync(path);
  if (!stat.isDirectory()) {
    const id = `${stat.dev}:${stat.ino}`;
    if (seen.has(id)) return 0;
    seen.add(id);
    return stat.size;
  }
  return readdirSync(path).reduce((sum, entry) => sum + treeBytes(join(path, entry), seen), 0);
}

/** Deletes the intermediates under `modules`; returns the bytes removed. */
export function slimNodeModules(modules) {
  const addon = join(modules, 'better-sqlite3');
  const release = join(addon, 'build', 'Release');
  const doomed = [join(addon, 'deps'), join(addon, 'src')];
  try {
    for (const entry of readdirSync(release))
      if (!KEEP_IN_RELEASE.has(entry)) doomed.push(join(release, entry));
  } catch {
    throw new Error(`${release} not found: is better-sqlite3 installed and built in ${modules}?`);
  }
  let removed = 0;
  for (const path of doomed) {
    try {
      removed += treeBytes(path);
    } catch {
      continue;
    }
    rmSync(path, { recursive: true, force: true });
  }
  return removed;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const modules = resolve(process.argv[2] ?? 'node_modules');
  const removed = slimNodeModules(modules);
  process.stdout.write(`slim-node-modules: removed ${(removed / 1e6).toFixed(1)} MB from ${modules}\n`);
}
