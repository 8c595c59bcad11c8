// `atomlens worker`: takes GW solve jobs from the federation's PostgreSQL queue and writes their
// results there, until SIGINT/SIGTERM. Any number of workers on any number of machines may share
// one coordinator's analyses. Prints "worker ready (N threads)" once it takes jobs.
import { createServer, type Server } from 'node:http';
import { availableParallelism } from 'node:os';
import client from 'prom-client';
import { GwWorker } from '../../coordinator/level1/gw-queue.js';
import { registerQueueGauges, WorkerJobMetrics } from '../../coordinator/level1/gw-queue-metrics.js';
import { isPostgresUrl } from '../../coordinator/storage/open.js';
import { GwPool } from '../../ot/index.js';
import { createLogger } from '../../shared/log.js';
import { CliError, type CommandSpec, EXIT, intFlag, type Parsed, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'worker',
  summary: 'Solve GW jobs from the PostgreSQL queue of a coordinator started with --store',
  usage:
    'atomlens worker --store postgres://… [--threads N] [--metrics-port P [--metrics-host H]] [--expired-check-seconds S]',
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
    'metrics-port': {
      type: 'string',
      value: 'P',
      description: 'Serve Prometheus metrics (queue depth, job durations, retries, live workers) on /metrics',
    },
    'metrics-host': {
      type: 'string',
      value: 'H',
      description: 'Address for --metrics-port (0.0.0.0 for every interface)',
      default: '127.0.0.1',
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
  const metricsPort =
    typeof v['metrics-port'] === 'string' ? intFlag(v, 'metrics-port', 0, 65535) : undefined;
  const logger = createLogger('worker');
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry });
  const jobMetrics = new WorkerJobMetrics(registry);
  const pool = new GwPool({ workers: threads });
  let worker: GwWorker;
  try {
    worker = await GwWorker.start({
      connectionString: store,
      pool,
      concurrency: threads,
      maintenanceIntervalSeconds: maintenance,
      logger,
      onJob: (e) => jobMetrics.observe(e),
    });
  } catch (err) {
    await pool.close();
    throw new CliError(`cannot reach the job queue: ${(err as Error).message}; check --store`, EXIT.failure);
  }
  registerQueueGauges(registry, () => worker.counts());
  let server: Server | undefined;
  if (metricsPort !== undefined) {
    server = await serveMetrics(registry, String(v['metrics-host']), metricsPort);
    const address = server.address();
    const port = typeof address === 'object' && address ? address.port : metricsPort;
    process.stdout.write(`metrics on http://${String(v['metrics-host'])}:${port}/metrics\n`);
  }
  process.stdout.write(`worker ready (${threads} threads)\n`);
  return new Promise<number>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      logger.info(`${signal}: finishing the jobs in hand`);
      server?.close();
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

function serveMetrics(registry: client.Registry, host: string, port: number): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
