// `atomlens store migrate --from DIR --to postgres://…`: moves a federation from the embedded
// SQLite file to PostgreSQL, verified by row counts and checksums before it is committed.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { copySqliteToPostgres } from '../../coordinator/storage/copy-store.js';
import { isPostgresUrl } from '../../coordinator/storage/open.js';
import { DATABASE_FILE } from '../../coordinator/storage/sqlite.js';
import { CliError, type CommandSpec, EXIT, type Parsed, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'store',
  summary: 'Move a federation from SQLite (--data DIR) to PostgreSQL',
  usage: 'atomlens store migrate --from DIR --to postgres://…',
  positionals: [1, 1],
  options: {
    from: {
      type: 'string',
      value: 'DIR',
      description: 'Data directory of the SQLite federation (atomlens.db)',
    },
    to: {
      type: 'string',
      value: 'URL',
      description:
        'Empty PostgreSQL database (postgres://user@host:5432/db; the password may come from PGPASSWORD)',
    },
    json: { type: 'boolean', description: 'Print the per-table counts and checksums as JSON' },
  },
  details:
    'Stop the coordinator first. Every table is copied in one transaction; before it commits, each table\n' +
    'is compared with the source by row count and SHA-256 over its rows in key order. Then start the\n' +
    'coordinator with --store URL (keep --data DIR: token keys and revocations stay there).',
};

export async function run(parsed: Parsed): Promise<number> {
  const [verb] = parsed.positionals;
  if (verb !== 'migrate') throw new UsageError(`unknown verb '${verb}'; usage: ${spec.usage}`);
  const v = parsed.values;
  const from = typeof v.from === 'string' ? v.from : '';
  const to = typeof v.to === 'string' ? v.to : '';
  if (!from) throw new UsageError('--from DIR is required: the data directory holding atomlens.db');
  if (!isPostgresUrl(to)) throw new UsageError('--to must be a postgres:// or postgresql:// URL');
  if (!existsSync(join(from, DATABASE_FILE))) {
    throw new CliError(`no ${DATABASE_FILE} in --from ${from}`, EXIT.badInput);
  }
  let result: Awaited<ReturnType<typeof copySqliteToPostgres>>;
  try {
    result = await copySqliteToPostgres(from, to, (table, rows) => {
      if (!v.json) process.stderr.write(`copied ${table}: ${rows} rows\n`);
    });
  } catch (err) {
    throw new CliError(`migration failed: ${(err as Error).message}`, EXIT.failure);
  }
  if (v.json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    for (const t of result.tables)
      process.stdout.write(`${t.table.padEnd(16)} ${String(t.rows).padStart(9)}  sha256 ${t.sha256}\n`);
    process.stdout.write(`verified: every table matches the source (${result.seconds.toFixed(1)} s)\n`);
  }
  return EXIT.ok;
}
