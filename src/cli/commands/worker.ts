// `atomlens worker`: takes GW solve jobs from the federation's PostgreSQL queue and writes their
// results there, until SIGINT/SIGTERM. Any number of workers on any number of machines may share
// one coordinator's analyses. Prints "worker ready (N threads)" once it takes jobs.
import { availableParallelism } from 'node:os';
import { GwWorker } from '../../coordinator/level1/gw-queue.js';
import { isPostgresUrl } from '../../coordinator/storage/open.js';
import { GwPool } from '../../ot/index.js';
import { createLogger } from '../../shared/log.js';
import { CliError, type CommandSpec, EXIT, intFlag, type Parsed, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'worker',
  summary: 'Solve GW jobs from the PostgreSQL queue of a coordinator started with --store',
  usage: 'atomlens worker --store postgres://… [--threads N] [--expired-check-seconds S]',
  options: {
    store: {
      type: 'string',
      value: 'URL',
      description:
        'The federation database the coordinator uses (postgres://user@host:5432/db; the password may come from PGPASSWORD)',
    },
    threads: {
      type: 'string',
      value: 'N',
      description: 'Worker threads, and jobs taken at a time (default: available CPU cores)',
    },
    'expired-check-seconds': {
      type: 'string',
      value: 'S',
      description: 'Check for jobs of dead workers to retry this often (seconds)',
      default: '10',
    },
  },
  details:
    'A job names a GW problem of one analysis (two probe layers of one or two models); the worker rebuilds\n' +
    'both metric spaces from the stored probe summaries, solves with the same solver as the coordinator, and\n' +
    'writes the result once (a retried job is harmless). A worker killed mid-job loses nothing: the job\n' +
    'expires and another worker takes it. SIGINT/SIGTERM finish the jobs in hand, then exit.',
};

export async function run(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  const store = typeof v.store === 'string' ? v.store : '';
  if (!isPostgresUrl(store)) {
    throw new UsageError(
      '--store postgres://… is required: the database of a coordinator started with --store',
    );
  }
  const threads = typeof v.threads === 'string' ? intFlag(v, 'threads', 1, 256) : availableParallelism();
  const maintenance = intFlag(v, 'expired-check-seconds', 1, 3600);
  const logger = createLogger('worker');
  const pool = new GwPool({ workers: threads });
  let worker: GwWorker;
  try {
    worker = await GwWorker.start({
      connectionString: store,
      pool,
      concurrency: threads,
      maintenanceIntervalSeconds: maintenance,
      logger,
    });
  } catch (err) {
    await pool.close();
    throw new CliError(`cannot reach the job queue: ${(err as Error).message}; check --store`, EXIT.failure);
  }
  process.stdout.write(`worker ready (${threads} threads)\n`);
  return new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info(`${signal}: finishing the jobs in hand`);
      worker
        .stop()
        .then(() => pool.close())
        .then(
          () => resolve(EXIT.ok),
          () => resolve(EXIT.failure),
        );
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}
