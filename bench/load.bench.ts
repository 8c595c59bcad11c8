// Load test: N lightweight simulated clients (no TensorFlow, plain grpc-js) register
// and push atoms for the default template against a coordinator running as a CHILD PROCESS, so
// its memory is measured apart from the generator's. Every upload is acknowledged by the
// coordinator only after a durable commit.
//
// Open loop: the offered rate is fixed (LOAD_RATE uploads/s in total, spread evenly over the
// clients with random phases). A client sends its next round only after the previous one is
// acknowledged, as a real client does; when it falls behind schedule the next upload goes out as
// soon as the ack arrives, and its latency is counted from the SCHEDULED time (no coordinated
// omission: a slow server cannot hide its queueing by slowing the generator down).
//
// Environment:
//   LOAD_CLIENTS=100,1000   client counts to run          LOAD_SECONDS=60   measured duration
//   LOAD_RATE=3000          offered uploads/s in total     LOAD_WARMUP_SECONDS=5
//   LOAD_CONNECTIONS=0      TCP connections (0 = one per client)
//   LOAD_SECURE=1           TLS + enrolment + bearer tokens (default: --insecure, like the demo)
//   LOAD_SYNCHRONOUS=full   storage.synchronous: full (fsync per group commit, default) or normal
//   LOAD_STORE=postgres     state in a throwaway PostgreSQL server (Debian's postgresql package,
//                           fsync on) instead of SQLite: the coordinator runs with --store
//   LOAD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"   Node flags for the coordinator process
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import type { FederationServiceClient } from '../src/generated/atomlens/v1/FederationService.js';
import type { ModelTemplate__Output } from '../src/generated/atomlens/v1/ModelTemplate.js';
import type { OperatorServiceClient } from '../src/generated/atomlens/v1/OperatorService.js';
import type { RegisterResponse__Output } from '../src/generated/atomlens/v1/RegisterResponse.js';
import { loadAtomlensProto } from '../src/shared/proto.js';
import { mulberry32, normalSampler } from '../src/shared/rng.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../test/helpers/postgres-server.js';
import { type CoordinatorProcess, spawnCoordinator } from './coordinator-process.js';
import type { BenchTable } from './run.js';

const env = process.env;
const CLIENT_COUNTS = (env.LOAD_CLIENTS ?? '100,1000').split(',').map(Number);
const SECONDS = Number(env.LOAD_SECONDS ?? 60);
const WARMUP_SECONDS = Number(env.LOAD_WARMUP_SECONDS ?? 5);
const RATE = Number(env.LOAD_RATE ?? 3000);
const CONNECTIONS = Number(env.LOAD_CONNECTIONS ?? 0);
const SECURE = env.LOAD_SECURE === '1';
const SYNCHRONOUS = env.LOAD_SYNCHRONOUS === 'normal' ? 'normal' : 'full';
const POSTGRES = env.LOAD_STORE === 'postgres';
let postgres: PostgresServer | undefined;
const SECRET = 'load-bench-enrolment-secret-0123456789';
const OPERATOR_TOKEN = 'load-bench-operator-token-0123456789';

const identity = (b: Buffer): Buffer => b;

interface SimClient {
  id: string;
  /** PushAtomsRequest bytes without the round field (appended per upload). */
  base: Buffer;
  rpc: grpc.Client;
  metadata: grpc.Metadata;
  round: number;
  inFlight: boolean;
  /** Scheduled times of uploads not yet sent (the client is behind). */
  backlog: number[];
}

/** Protobuf varint (field 3 `round` is uint64; rounds stay far below 2^53). */
function varint(n: number): Buffer {
  const bytes: number[] = [];
  let v = n;
  while (v >= 0x80) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** Field 3 (round), wire type 0: protobuf allows fields in any order, so it is appended. */
function withRound(base: Buffer, round: number): Buffer {
  return Buffer.concat([base, Buffer.from([0x18]), varint(round)]);
}

function fetchText(url: string, ca: Buffer | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(url, ca ? { ca, servername: 'localhost' } : {}, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
  });
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return Number.NaN;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return num / den;
}

function unary<T>(fn: (cb: (err: grpc.ServiceError | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => fn((err, value) => (err ? reject(err) : resolve(value as T))));
}

interface Certs {
  ca: Buffer;
  dir: string;
}

function makeCerts(): Certs {
  const dir = mkdtempSync(join(tmpdir(), 'atomlens-load-certs-'));
  const script = fileURLToPath(new URL('../scripts/make-certs.sh', import.meta.url));
  execFileSync('bash', [script, dir], { stdio: 'pipe' });
  return { ca: readFileSync(join(dir, 'ca.pem')), dir };
}

async function runOnce(n: number, log: (msg: string) => void): Promise<(string | number)[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'atomlens-load-'));
  const certs = SECURE ? makeCerts() : undefined;
  const args: string[] = [];
  const configFile = join(dataDir, 'config.json');
  const config: Record<string, unknown> = { storage: { synchronous: SYNCHRONOUS } };
  if (certs) {
    config.auth = { enabled: true, enrollmentSecret: SECRET, operatorTokens: [OPERATOR_TOKEN] };
    args.push('--tls-cert', join(certs.dir, 'server.pem'), '--tls-key', join(certs.dir, 'server-key.pem'));
  } else {
    args.push('--insecure');
  }
  writeFileSync(configFile, JSON.stringify(config));
  args.push('--config', configFile);
  if (postgres) args.push('--store', await postgres.createDatabase());
  const coordinator: CoordinatorProcess = await spawnCoordinator({
    dataDir: join(dataDir, 'data'),
    args,
    ...(env.LOAD_NODE_ARGS ? { nodeArgs: env.LOAD_NODE_ARGS.split(' ').filter(Boolean) } : {}),
  });
  log(`N=${n}: coordinator pid ${coordinator.pid} on ${coordinator.grpcAddress}`);
  const creds = () => (certs ? grpc.credentials.createSsl(certs.ca) : grpc.credentials.createInsecure());
  const proto = loadAtomlensProto();
  const Federation = proto.atomlens.v1.FederationService;
  const pushDef = Federation.service.PushAtoms;
  const RawFederation = grpc.makeGenericClientConstructor(
    {
      PushAtoms: {
        ...pushDef,
        requestSerialize: identity,
      },
    },
    'Federation',
  );
  const connectionCount = CONNECTIONS > 0 ? Math.min(CONNECTIONS, n) : n;
  // A local subchannel pool per channel gives each simulated client its own TCP connection.
  const channels = Array.from(
    { length: connectionCount },
    () => new RawFederation(coordinator.grpcAddress, creds(), { 'grpc.use_local_subchannel_pool': 1 }),
  );
  const registrar = new Federation(coordinator.grpcAddress, creds()) as unknown as FederationServiceClient;

  try {
    // ---- register everyone (50 at a time) ----------------------------------------------------
    const t0 = performance.now();
    const clients: SimClient[] = [];
    let template: ModelTemplate__Output | undefined;
    for (let start = 0; start < n; start += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, n - start) }, (_, j) => {
          const id = `load-${String(start + j).padStart(5, '0')}`;
          return unary<RegisterResponse__Output>((cb) =>
            registrar.register(
              {
                clientId: id,
                tasks: [{ taskId: '0-1', classes: [0, 1] }],
                clientVersion: 'load-bench',
                enrollmentSecret: certs ? SECRET : '',
              },
              { deadline: Date.now() + 30_000 },
              cb,
            ),
          ).then((r) => ({ id, r }));
        }),
      );
      for (const { id, r } of batch) {
        template ??= r.template!;
        const normal = normalSampler(mulberry32(clients.length + 1));
        const layers = template.layers.map((l) => {
          const values = new Float32Array(l.m * l.k * l.k);
          for (let i = 0; i < values.length; i++) values[i] = normal() / l.k;
          return { layer: l.name, atoms: { shape: [l.m, l.k, l.k], data: Buffer.from(values.buffer) } };
        });
        const base = pushDef.requestSerialize({
          clientId: id,
          taskId: '0-1',
          layers,
          stats: { loss: 0.5, accuracy: 0.9, samples: 128 },
        });
        const metadata = new grpc.Metadata();
        if (r.token) metadata.set('authorization', `Bearer ${r.token}`);
        clients.push({
          id,
          base,
          rpc: channels[clients.length % connectionCount]!,
          metadata,
          round: 0,
          inFlight: false,
          backlog: [],
        });
      }
    }
    const registerSeconds = (performance.now() - t0) / 1000;
    const uploadBytes = clients[0]!.base.length + 3;
    log(`N=${n}: registered in ${registerSeconds.toFixed(1)} s; upload ${uploadBytes} bytes`);

    // ---- open-loop load ----------------------------------------------------------------------
    const intervalMs = (n / RATE) * 1000;
    const latencyFromSchedule: number[] = [];
    const latencyFromSend: number[] = [];
    const errors = new Map<string, number>();
    let acked = 0;
    let measuring = false;
    let running = true;
    const ackedPerClient = new Map<string, number>();

    const send = (c: SimClient, scheduledAt: number) => {
      c.inFlight = true;
      c.round += 1;
      const sentAt = performance.now();
      const round = c.round;
      c.rpc.makeUnaryRequest(
        pushDef.path,
        identity,
        pushDef.responseDeserialize,
        withRound(c.base, round),
        c.metadata,
        { deadline: Date.now() + 30_000 },
        (err: grpc.ServiceError | null) => {
          const now = performance.now();
          c.inFlight = false;
          if (err) {
            const key = grpc.status[err.code] ?? String(err.code);
            errors.set(key, (errors.get(key) ?? 0) + 1);
            // The round may or may not be stored; re-sending the same round is idempotent.
            c.round -= 1;
          } else {
            ackedPerClient.set(c.id, round);
            if (measuring) {
              acked += 1;
              latencyFromSchedule.push(now - scheduledAt);
              latencyFromSend.push(now - sentAt);
            }
          }
          const next = c.backlog.shift();
          if (next !== undefined && running) send(c, next);
        },
      );
    };

    const timers: NodeJS.Timeout[] = [];
    for (const c of clients) {
      const phase = Math.random() * intervalMs;
      timers.push(
        setTimeout(() => {
          const tick = () => {
            if (!running) return;
            const scheduledAt = performance.now();
            if (c.inFlight) c.backlog.push(scheduledAt);
            else send(c, scheduledAt);
          };
          tick();
          timers.push(setInterval(tick, intervalMs));
        }, phase),
      );
    }

    await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000));
    measuring = true;
    const rssSamples: { t: number; rss: number }[] = [];
    const mStart = performance.now();
    const sampler = setInterval(() => {
      rssSamples.push({ t: (performance.now() - mStart) / 1000, rss: coordinator.rssBytes() });
      if (rssSamples.length % 10 === 1) {
        const s = rssSamples.at(-1)!;
        log(`N=${n}: t=${s.t.toFixed(0)} s acked ${acked} RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB`);
      }
    }, 1000);
    rssSamples.push({ t: 0, rss: coordinator.rssBytes() });
    const cpuStart = coordinator.cpuSeconds();
    const genCpuStart = process.cpuUsage();
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    measuring = false;
    const measuredSeconds = (performance.now() - mStart) / 1000;
    const coordinatorCpu = coordinator.cpuSeconds() - cpuStart;
    const genCpu = process.cpuUsage(genCpuStart);
    const generatorCpu = (genCpu.user + genCpu.system) / 1e6;
    clearInterval(sampler);
    running = false;
    for (const t of timers) clearTimeout(t);
    const backlogLeft = clients.reduce((a, c) => a + c.backlog.length, 0);
    // Let in-flight uploads finish before checking what the coordinator holds.
    const drainUntil = Date.now() + 30_000;
    while (clients.some((c) => c.inFlight) && Date.now() < drainUntil)
      await new Promise((r) => setTimeout(r, 50));

    // ---- every acknowledged round is stored: last_round per client = last acked round --------
    const operator = new proto.atomlens.v1.OperatorService(
      coordinator.grpcAddress,
      creds(),
    ) as unknown as OperatorServiceClient;
    const opMeta = new grpc.Metadata();
    if (certs) opMeta.set('authorization', `Bearer ${OPERATOR_TOKEN}`);
    const listed = await unary<{ clients: { clientId: string; tasks: { lastRound: number }[] }[] }>((cb) =>
      operator.listClients({}, opMeta, { deadline: Date.now() + 30_000 }, cb),
    );
    operator.close();
    let mismatched = 0;
    for (const info of listed.clients) {
      const expected = ackedPerClient.get(info.clientId) ?? 0;
      if ((info.tasks[0]?.lastRound ?? 0) < expected) mismatched += 1;
    }

    // Group-commit figures from the coordinator's own metrics (whole run, warm-up included).
    const metricsText = await fetchText(`${coordinator.httpUrl}/metrics`, certs?.ca);
    const metric = (series: string) => {
      const line = metricsText.split('\n').find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : Number.NaN;
    };
    const commits = metric('atomlens_storage_commit_duration_seconds_count');
    const commitSeconds = metric('atomlens_storage_commit_duration_seconds_sum');
    const accepted = metric('atomlens_atom_uploads_total{outcome="accepted"}');

    const sched = Float64Array.from(latencyFromSchedule).sort();
    const sent = Float64Array.from(latencyFromSend).sort();
    const rss = rssSamples.filter((s) => Number.isFinite(s.rss));
    const mb = (b: number) => b / 2 ** 20;
    const rssSlope = slope(
      rss.map((s) => s.t / 60),
      rss.map((s) => mb(s.rss)),
    );
    const errorText = [...errors].map(([k, v]) => `${k}:${v}`).join(' ') || '0';
    log(
      `N=${n}: ${(acked / measuredSeconds).toFixed(0)} acked/s, p50 ${percentile(sched, 50).toFixed(1)} ms, p99 ${percentile(sched, 99).toFixed(1)} ms, errors ${errorText}`,
    );
    const stopped = await coordinator.stop();
    return [
      n,
      connectionCount,
      RATE,
      acked / measuredSeconds,
      percentile(sched, 50),
      percentile(sched, 99),
      percentile(sent, 99),
      (coordinatorCpu / Math.max(1, acked)) * 1000,
      coordinatorCpu / measuredSeconds,
      (generatorCpu / Math.max(1, acked)) * 1000,
      accepted / commits,
      (commitSeconds / commits) * 1000,
      mb(rss[0]?.rss ?? Number.NaN),
      mb(rss.at(-1)?.rss ?? Number.NaN),
      mb(Math.max(...rss.map((s) => s.rss))),
      rssSlope,
      errorText,
      backlogLeft,
      mismatched === 0 ? 'yes' : `NO (${mismatched} clients)`,
      stopped.code === 0 ? 'clean' : `code ${stopped.code} signal ${stopped.signal}`,
    ];
  } finally {
    registrar.close();
    for (const ch of channels) ch.close();
    await coordinator.kill9();
    rmSync(dataDir, { recursive: true, force: true });
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  }
}

export async function run(log: (msg: string) => void): Promise<BenchTable[]> {
  const rows: (string | number)[][] = [];
  if (POSTGRES) {
    const unavailable = postgresUnavailable();
    if (unavailable) throw new Error(unavailable);
    postgres = await startPostgres({ fsync: true });
  }
  try {
    for (const n of CLIENT_COUNTS) rows.push(await runOnce(n, log));
  } finally {
    postgres?.destroy();
  }
  const store = POSTGRES
    ? `PostgreSQL ${postgres!.version} on loopback, fsync on`
    : `SQLite synchronous=${SYNCHRONOUS}`;
  return [
    {
      title: `Load: acknowledged atom uploads against a coordinator child process (${SECONDS} s measured, ${SECURE ? 'TLS + tokens' : 'plaintext --insecure'}, ${store})`,
      columns: [
        'clients',
        'connections',
        'offered/s',
        'acked/s',
        'p50 ms',
        'p99 ms',
        'p99 from send ms',
        'coord CPU ms/upload',
        'coord cores busy',
        'generator CPU ms/upload',
        'uploads/commit',
        'commit ms',
        'RSS start MiB',
        'RSS end MiB',
        'RSS max MiB',
        'RSS slope MiB/min',
        'errors',
        'late at end',
        'acked all stored',
        'SIGTERM exit',
      ],
      rows,
      notes: [
        'Open loop: latency counts from the scheduled send time, so queueing when the coordinator falls behind is included.',
        'The generator runs in the bench process and shares the machine’s cores with the coordinator.',
        'CPU ms/upload (from /proc) is the load-independent cost: 1000 / (coord CPU ms/upload) bounds acked/s per coordinator core.',
        'Default template (5 layers, m = 6, k = 3); every upload is a new round acknowledged after a durable commit.',
        'Targets (2 cores): ≥ 3,000 acked/s at N = 1,000, p99 < 100 ms, RSS flat.',
      ],
    },
  ];
}
