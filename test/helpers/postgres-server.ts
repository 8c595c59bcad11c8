// A throwaway PostgreSQL server for tests: initdb into a temporary directory, a free loopback port,
// stopped and deleted afterwards. Uses the server binaries of Debian's `postgresql` package
// (/usr/lib/postgresql/<version>/bin, not on PATH). As root, the server runs as the `postgres` user
// (PostgreSQL refuses to run as root), with the temporary directory handed over to it.
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './free-port.js';

export interface PostgresServer {
  readonly port: number;
  readonly version: string;
  /** A connection URL for a new, empty database on this server. */
  createDatabase(): Promise<string>;
  /** Stops the server (fast shutdown: sessions are cut, committed data stays). */
  stop(): void;
  /** Starts it again on the same port and data directory. */
  start(): void;
  /** Stops the server and deletes its files. */
  destroy(): void;
}

/** The newest installed server binaries, or undefined. */
function findPostgresBin(): { bin: string; version: string } | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  const version = versions[0];
  return version === undefined ? undefined : { bin: join(root, version, 'bin'), version };
}

/** Why PostgreSQL tests cannot run here, or undefined when they can. */
export function postgresUnavailable(): string | undefined {
  if (!findPostgresBin()) {
    return 'PostgreSQL server binaries not found under /usr/lib/postgresql (Debian package postgresql): skipping the PostgreSQL tests';
  }
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) {
    return 'running as root without a `postgres` user to run the server as (Debian package postgresql creates it): skipping the PostgreSQL tests';
  }
  return undefined;
}

/** `fsync: true` for measurements (benches); tests default to a server that skips fsync. */
export async function startPostgres(options: { fsync?: boolean } = {}): Promise<PostgresServer> {
  const found = findPostgresBin();
  if (!found) throw new Error(postgresUnavailable());
  const asRoot = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-pg-'));
  const data = join(dir, 'data');
  const log = join(dir, 'server.log');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(dir, uid, gid);
  }
  const run = (tool: string, args: string[]) => {
    const command = asRoot ? 'runuser' : join(found.bin, tool);
    const argv = asRoot ? ['-u', 'postgres', '--', join(found.bin, tool), ...args] : args;
    const r = spawnSync(command, argv, { encoding: 'utf8', cwd: dir });
    if (r.status !== 0) {
      const serverLog = existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : '';
      throw new Error(`${tool} failed (${r.status}): ${r.stderr}${r.stdout}\n${serverLog}`);
    }
  };
  run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--locale=C']);
  const port = await freePort();
  // fsync off for tests: a throwaway server whose durability is not what they check (every write
  // the storage acknowledges has still been COMMITted; a fast shutdown keeps it).
  const fsync = options.fsync ? 'on' : 'off';
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=${fsync} -c max_connections=200`;
  const start = () => run('pg_ctl', ['-D', data, '-l', log, '-o', serverOptions, '-w', '-t', '60', 'start']);
  const stop = () => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
  start();
  let running = true;
  let databases = 0;
  return {
    port,
    version: found.version,
    async createDatabase() {
      const name = `atomlens_test_${++databases}`;
      const admin = new pg.Client({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name}`);
      } finally {
        await admin.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${name}`;
    },
    stop() {
      if (!running) return;
      stop();
      running = false;
    },
    start() {
      if (running) return;
      start();
      running = true;
    },
    destroy() {
      try {
        if (running) stop();
      } finally {
        running = false;
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
