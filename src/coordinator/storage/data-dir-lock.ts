// One coordinator per data directory. A second one on the same directory would serve the first
// one's database with its own (perhaps weaker) settings, and both would write. The lock is a file
// created exclusively (O_EXCL) holding the owner's pid and host; a lock whose process is gone
// (kill -9, power loss) is stale and taken over, so a crash never needs a manual clean-up.
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

const LOCK_FILE = 'coordinator.lock';

interface LockOwner {
  pid: number;
  host: string;
  sinceMs: number;
}

/** Lock files this process holds (a second coordinator in the same process is refused too). */
const held = new Set<string>();

class DataDirLockedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DataDirLockedError';
  }
}

/** Whether process `pid` exists on this host (EPERM: it exists but belongs to another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readOwner(path: string): LockOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && Number.isInteger(o.pid) && o.pid > 0 && typeof o.host === 'string') {
      return { pid: o.pid, host: o.host, sinceMs: typeof o.sinceMs === 'number' ? o.sinceMs : 0 };
    }
  } catch {
    // Unreadable or half-written (the owner died while writing it): stale.
  }
  return undefined;
}

/**
 * Takes the data directory's lock, or throws DataDirLockedError naming the coordinator that has
 * it. Returns the release function (idempotent).
 */
export function lockDataDir(dataDir: string): () => void {
  mkdirSync(dataDir, { recursive: true });
  const path = join(dataDir, LOCK_FILE);
  const me: LockOwner = { pid: process.pid, host: hostname(), sinceMs: Date.now() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(path, `${JSON.stringify(me)}\n`, { flag: 'wx', mode: 0o600 });
      held.add(path);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        held.delete(path);
        const owner = readOwner(path);
        if (owner?.pid === me.pid && owner.host === me.host && owner.sinceMs === me.sinceMs) {
          try {
            unlinkSync(path);
          } catch {
            // Already gone: nothing to release.
          }
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(path);
    const ours = owner?.pid === process.pid && owner.host === me.host;
    const running =
      owner !== undefined && (owner.host !== me.host || (ours ? held.has(path) : alive(owner.pid)));
    if (running) {
      const since = owner.sinceMs ? ` since ${new Date(owner.sinceMs).toISOString()}` : '';
      const where = owner.host === me.host ? '' : ` on host ${owner.host}`;
      throw new DataDirLockedError(
        `data directory ${dataDir} is in use by another coordinator (pid ${owner.pid}${where}${since}); ` +
          `stop that one first, or give this one another --data directory` +
          (owner.host === me.host ? '' : ` (if that host is gone, delete ${path})`),
      );
    }
    // Stale: its process is gone. Remove it and try again (another starter may win the race).
    try {
      unlinkSync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new DataDirLockedError(`could not take the lock ${path}: another coordinator keeps taking it`);
}
