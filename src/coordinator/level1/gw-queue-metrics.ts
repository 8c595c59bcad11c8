// Prometheus metrics of the GW job queue, exported by the coordinator and by every worker:
//   atomlens_gw_queue_depth            jobs waiting to be taken (created or waiting for a retry)
//   atomlens_gw_queue_active_jobs      jobs a worker holds right now
//   atomlens_gw_workers_live           workers that reported within the last 30 s
//   atomlens_gw_job_duration_seconds   per job, by outcome (solved, failed, skipped) — workers only
//   atomlens_gw_job_retries_total      jobs taken again after a failure or a dead worker — workers only
// The gauges are read from the database at scrape time, so every exporter reports the same queue.
import client from 'prom-client';

export interface QueueCounts {
  waiting: number;
  active: number;
  liveWorkers: number;
}

export function registerQueueGauges(registry: client.Registry, counts: () => Promise<QueueCounts>): void {
  let last: Promise<QueueCounts> | undefined;
  // One query per scrape for the three gauges.
  const read = () => {
    last ??= counts().finally(() => {
      setImmediate(() => {
        last = undefined;
      });
    });
    return last;
  };
  new client.Gauge({
    name: 'atomlens_gw_queue_depth',
    help: 'GW solve jobs waiting to be taken by a worker (new or waiting for a retry)',
    registers: [registry],
    async collect() {
      this.set((await read()).waiting);
    },
  });
  new client.Gauge({
    name: 'atomlens_gw_queue_active_jobs',
    help: 'GW solve jobs a worker is working on',
    registers: [registry],
    async collect() {
      this.set((await read()).active);
    },
  });
  new client.Gauge({
    name: 'atomlens_gw_workers_live',
    help: 'GW workers (atomlens worker processes and coordinators that solve) seen within the last 30 s',
    registers: [registry],
    async collect() {
      this.set((await read()).liveWorkers);
    },
  });
}

export class WorkerJobMetrics {
  readonly duration: client.Histogram<'outcome'>;
  readonly retries: client.Counter;

  constructor(registry: client.Registry) {
    this.duration = new client.Histogram({
      name: 'atomlens_gw_job_duration_seconds',
      help: 'Time a worker spent on one GW job (a batch of solves), from taking it to writing its results',
      labelNames: ['outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    });
    this.retries = new client.Counter({
      name: 'atomlens_gw_job_retries_total',
      help: 'GW solve jobs taken again after a failed attempt or a worker that died holding them',
      registers: [registry],
    });
  }

  observe(e: { seconds: number; outcome: 'solved' | 'skipped' | 'failed'; retry: number }): void {
    this.duration.observe({ outcome: e.outcome }, e.seconds);
    if (e.retry > 0) this.retries.inc();
  }
}
