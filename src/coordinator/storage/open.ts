// Picks the storage backend: PostgreSQL for a postgres:// URL, otherwise the embedded SQLite file
// in the data directory.
import { PostgresStorage } from './postgres.js';
import { SqliteStorage } from './sqlite.js';
import type { Storage } from './types.js';

export interface OpenStorageOptions {
  /** postgres://… selects PostgreSQL; undefined or '' keeps SQLite in dataDir. */
  store?: string | undefined;
  dataDir: string;
  synchronous?: 'full' | 'normal';
  maxBatch?: number;
  maxQueuedWrites?: number;
}

export function isPostgresUrl(store: string | undefined): boolean {
  return store !== undefined && /^postgres(ql)?:\/\//.test(store);
}

export async function openStorage(options: OpenStorageOptions): Promise<Storage> {
  if (options.store !== undefined && options.store !== '') {
    if (!isPostgresUrl(options.store)) {
      throw new Error(
        `--store must be a postgres:// or postgresql:// URL, got '${options.store.split(':')[0]}:…'; ` +
          'leave it out to use SQLite in --data DIR',
      );
    }
    return PostgresStorage.open({
      connectionString: options.store,
      ...(options.maxBatch !== undefined ? { maxBatch: options.maxBatch } : {}),
      ...(options.maxQueuedWrites !== undefined ? { maxQueuedWrites: options.maxQueuedWrites } : {}),
    });
  }
  return new SqliteStorage({
    dataDir: options.dataDir,
    ...(options.synchronous ? { synchronous: options.synchronous } : {}),
    ...(options.maxBatch !== undefined ? { maxBatch: options.maxBatch } : {}),
    ...(options.maxQueuedWrites !== undefined ? { maxQueuedWrites: options.maxQueuedWrites } : {}),
  });
}
