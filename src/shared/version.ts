// The release version, read once from the package manifest so that `atomlens --version`, the
// coordinator's build info and the version a client sends at Register are always the same.
import { readFileSync } from 'node:fs';

function readVersion(): string {
  // Walk up from this module to the manifest, so the same code works from src/ and from
  // compiled output at a different depth.
  for (let up = 1; up <= 4; up++) {
    try {
      const url = new URL(`${'../'.repeat(up)}package.json`, import.meta.url);
      const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'atomlens' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // not at this depth
    }
  }
  return 'unknown';
}

export const ATOMLENS_VERSION = readVersion();
