// Storage writer thread: owns the SQLite connection every write goes through, so that committing
// (and, with synchronous=FULL, the fsync of the WAL at each commit) never blocks the
// coordinator's event loop. Group commit: whatever batches have arrived while the previous
// transaction was committing are taken together into the next one (up to maxBatch writes).
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { SqliteWriter, type WriteOp, type WriteOutcome } from './sqlite-writes.js';

export interface WriterThreadData {
  path: string;
  synchronous: 'full' | 'normal';
  maxBatch: number;
  port: MessagePort;
}

export type WriterRequest = { type: 'commit'; id: number; ops: WriteOp[] } | { type: 'close' };

export type WriterReply =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | {
      type: 'committed';
      /** Outcomes per request id, in the order of that request's ops. */
      results: { id: number; outcomes: WriteOutcome[] }[];
      seconds: number;
      writes: number;
    }
  | { type: 'closed' };

const { path, synchronous, maxBatch, port } = workerData as WriterThreadData;

let db: Database.Database;
let writer: SqliteWriter;
try {
  db = new Database(path);
  // Per-connection settings: the writer's connection is the one that commits and fsyncs.
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 2000');
  writer = new SqliteWriter(db);
  port.postMessage({ type: 'ready' } satisfies WriterReply);
} catch (err) {
  port.postMessage({ type: 'failed', message: (err as Error).message } satisfies WriterReply);
  port.close();
  throw err;
}

function close(): void {
  db.close();
  port.postMessage({ type: 'closed' } satisfies WriterReply);
  port.close();
}

port.on('message', (first: WriterRequest) => {
  if (first.type === 'close') return close();
  const requests = [first];
  let writes = first.ops.length;
  let closing = false;
  // Everything that queued up while the last commit ran joins this one.
  while (writes < maxBatch) {
    const next = receiveMessageOnPort(port)?.message as WriterRequest | undefined;
    if (!next) break;
    if (next.type === 'close') {
      closing = true;
      break;
    }
    requests.push(next);
    writes += next.ops.length;
  }
  const started = performance.now();
  const ops = requests.length === 1 ? first.ops : requests.flatMap((r) => r.ops);
  const outcomes = writer.commit(ops);
  const seconds = (performance.now() - started) / 1000;
  let at = 0;
  const results = requests.map((r) => {
    const slice = outcomes.slice(at, at + r.ops.length);
    at += r.ops.length;
    return { id: r.id, outcomes: slice };
  });
  port.postMessage({ type: 'committed', results, seconds, writes } satisfies WriterReply);
  if (closing) close();
});
