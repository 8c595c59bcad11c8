// Load test: N simulated clients (no TensorFlow; a raw HTTP/2 gRPC caller, bench/h2-unary.ts)
// register and push atoms for the default template against a coordinator running as a CHILD
// PROCESS, so its CPU and memory are measured apart from the generator's. Every upload is
// acknowledged by the coordinator only after a durable commit.
//
// True open loop against an absolute schedule: upload j (of all clients together) is due at
// t0 + j / LOAD_RATE, client by client in a fixed shuffled order, so each client uploads every
// N / LOAD_RATE seconds. An upload goes out when it is due whether or not the client's previous one
// was answered (HTTP/2 carries both), and its latency counts from when it was DUE, not from when it
// was sent: neither a slow coordinator nor a late generator can hide queueing (no coordinated
// omission). "offered/s" counts the uploads actually sent; "send lag" says how late the
// generator itself sent them. Every round of a client carries new atoms (its base atoms plus fresh
// noise: drift ≈ 0.02 between rounds). After the run the store is read back: every acknowledged
// (client, round) must be stored with exactly the atoms sent, and nothing that was never sent.
//
// Environment:
//   LOAD_CLIENTS=100,1000   client counts to run          LOAD_SECONDS=60   measured duration
//   LOAD_RATE=3000          offered uploads/s in total     LOAD_WARMUP_SECONDS=5
//   LOAD_SECURE=1           TLS + enrolment + bearer tokens (default: --insecure, like the demo)
//   LOAD_SYNCHRONOUS=full   storage.synchronous: full (fsync per group commit, default) or normal
//   LOAD_STORE=postgres     state in a throwaway PostgreSQL server (Debian's postgresql package,
//                           fsync on) instead of SQLite: the coordinator runs with --store
//   LOAD_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof"   Node flags for the coordinator process
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { FederationServiceClient } from '../src/generated/atomlens/v1/FederationService.js';
import type { ModelTemplate__Output } from '../src/generated/atomlens/v1/ModelTemplate.js';
import type { RegisterResponse__Output } from '../src/generated/atomlens/v1/RegisterResponse.js';
import { loadAtomlensProto } from '../src/shared/proto.js';
import { mulberry32, normalSampler, permutation } from '../src/shared/rng.js';
import { type PostgresServer, postgresUnavailable, startPostgres } from '../test/helpers/postgres-server.js';
import { type CoordinatorProcess, spawnCoordinator } from './coordinator-process.js';
import { frameMessage, type H2UnaryClient, h2UnaryClient } from './h2-unary.js';
import type { BenchTable } from './run.js';

const env = process.env;
const CLIENT_COUNTS = (env.LOAD_CLIENTS ?? '100,1000').split(',').map(Number);
const SECONDS = Number(env.LOAD_SECONDS ?? 60);
const WARMUP_SECONDS = Number(env.LOAD_WARMUP_SECONDS ?? 5);
const RATE = Number(env.LOAD_RATE ?? 3000);
const SECURE = env.LOAD_SECURE === '1';
const SYNCHRONOUS = env.LOAD_SYNCHRONOUS === 'normal' ? 'normal' : 'full';
const POSTGRES = env.LOAD_STORE === 'postgres';
let postgres: PostgresServer | undefined;
const SECRET = 'load-bench-enrolment-secret-0123456789';
const OPERATOR_TOKEN = 'load-bench-operator-token-0123456789';
const PUSH_PATH = '/atomlens.v1.FederationService/PushAtoms';
/** Relative size of a round's noise on a client's base atoms (drift ≈ 2σ² ≈ 0.02). */
const ROUND_NOISE = 0.1;

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

/** CPU seconds one thread of a process has used (Linux /proc; the main thread's id is the pid). */
function threadCpuSeconds(pid: number, tid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * One simulated client: its id, token, base atoms, and the layout of its upload message (the
 * request serialised once; each round overwrites the atom values in a copy and appends the round).
 */
interface SimClient {
  index: number;
  id: string;
  rpc: H2UnaryClient;
  headers: Record<string, string>;
  base: Float32Array;
  /** Serialised PushAtomsRequest without its round field. */
  message: Buffer;
  /** Byte offset in `message` of each layer's atom data, and its float count. */
  slots: { offset: number; count: number }[];
  /** Rounds sent so far (the next upload is round sent + 1). */
  sent: number;
  /** acked[r] = 1 when round r was acknowledged. */
  acked: Uint8Array;
}

/** The atoms of a client's round: base plus noise that is a pure function of (client, round). */
function roundAtoms(c: SimClient, round: number, out: Float32Array): Float32Array {
  const normal = normalSampler(mulberry32((c.index + 1) * 1_000_003 + round));
  for (let i = 0; i < out.length; i++) out[i] = c.base[i]! * (1 + ROUND_NOISE * normal());
  return out;
}

/** The serialised upload of a client's round (atoms written into a copy of its message). */
function uploadBytes(c: SimClient, round: number, scratch: Float32Array): Buffer {
  const atoms = roundAtoms(c, round, scratch);
  const r = varint(round);
  const body = Buffer.allocUnsafe(c.message.length + 1 + r.length);
  c.message.copy(body, 0);
  const bytes = new Uint8Array(atoms.buffer, atoms.byteOffset, atoms.byteLength);
  let at = 0;
  for (const slot of c.slots) {
    body.set(bytes.subarray(at * 4, (at + slot.count) * 4), slot.offset);
    at += slot.count;
  }
  // Field 3 (round), wire type 0: protobuf allows fields in any order, so it goes last.
  body[c.message.length] = 0x18;
  r.copy(body, c.message.length + 1);
  return frameMessage(body);
}

/** What the store holds after the run: every (client, round) and its atoms, via a callback. */
async function readStored(
  dataDir: string,
  store: string | undefined,
  visit: (clientId: string, round: number, atoms: Buffer) => void,
): Promise<void> {
  if (store) {
    const client = new pg.Client({ connectionString: store });
    await client.connect();
    try {
      const r = await client.query<{ client_id: string; round: string; atoms: Buffer }>(
        'SELECT client_id, round, atoms FROM atom_uploads',
      );
      for (const row of r.rows) visit(row.client_id, Number(row.round), row.atoms);
    } finally {
      await client.end();
    }
    return;
  }
  const db = new Database(join(dataDir, 'atomlens.db'), { readonly: true });
  try {
    for (const row of db
      .prepare('SELECT client_id, round, atoms FROM atom_uploads')
      .iterate() as IterableIterator<{
      client_id: string;
      round: number;
      atoms: Buffer;
    }>) {
      visit(row.client_id, row.round, row.atoms);
    }
  } finally {
    db.close();
  }
}

const load = () =>
  loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

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
  const store = postgres ? await postgres.createDatabase() : undefined;
  if (store) args.push('--store', store);
  const coordinatorDir = join(dataDir, 'data');
  const coordinator: CoordinatorProcess = await spawnCoordinator({
    dataDir: coordinatorDir,
    args,
    ...(env.LOAD_NODE_ARGS ? { nodeArgs: env.LOAD_NODE_ARGS.split(' ').filter(Boolean) } : {}),
  });
  log(`N=${n}: coordinator pid ${coordinator.pid} on ${coordinator.grpcAddress}`);
  const creds = () => (certs ? grpc.credentials.createSsl(certs.ca) : grpc.credentials.createInsecure());
  const proto = loadAtomlensProto();
  const Federation = proto.atomlens.v1.FederationService;
  const pushDef = Federation.service.PushAtoms;
  const registrar = new Federation(coordinator.grpcAddress, creds()) as unknown as FederationServiceClient;
  const tls = certs ? { ca: certs.ca, servername: 'localhost' } : undefined;
  const clients: SimClient[] = [];

  try {
    // ---- register everyone (50 at a time); one HTTP/2 connection per client ----------------
    const t0 = performance.now();
    let template: ModelTemplate__Output | undefined;
    const maxRounds = Math.ceil(((SECONDS + WARMUP_SECONDS + 5) * RATE) / n) + 2;
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
                ...(certs ? { clientCredential: randomBytes(32) } : {}),
              },
              { deadline: Date.now() + 30_000 },
              cb,
            ),
          ).then((r) => ({ id, r }));
        }),
      );
      for (const { id, r } of batch) {
        template ??= r.template!;
        const index = clients.length;
        const normal = normalSampler(mulberry32(index + 1));
        const layers = template.layers.map((l) => {
          const values = new Float32Array(l.m * l.k * l.k);
          for (let i = 0; i < values.length; i++) values[i] = normal() / l.k;
          return { layer: l.name, values };
        });
        const message = pushDef.requestSerialize({
          clientId: id,
          taskId: '0-1',
          layers: layers.map((l) => ({
            layer: l.layer,
            atoms: { shape: [l.values.length / 9, 3, 3], data: Buffer.from(l.values.buffer) },
          })),
          stats: { loss: 0.5, accuracy: 0.9, samples: 128 },
        });
        // Each layer's random values occur once in the message: find where they sit.
        let from = 0;
        const slots = layers.map((l) => {
          const offset = message.indexOf(Buffer.from(l.values.buffer), from);
          if (offset < 0) throw new Error('atom bytes not found in the serialised upload');
          from = offset + l.values.byteLength;
          return { offset, count: l.values.length };
        });
        const base = new Float32Array(layers.reduce((a, l) => a + l.values.length, 0));
        let at = 0;
        for (const l of layers) {
          base.set(l.values, at);
          at += l.values.length;
        }
        clients.push({
          index,
          id,
          rpc: h2UnaryClient(coordinator.grpcAddress, tls),
          headers: {
            'grpc-timeout': '30S',
            ...(r.token ? { authorization: `Bearer ${r.token}` } : {}),
          },
          base,
          message,
          slots,
          sent: 0,
          acked: new Uint8Array(maxRounds + 1),
        });
      }
    }
    if (template!.layers.some((l) => l.k !== 3)) throw new Error('the load bench expects 3×3 atoms');
    // Every client's connection is up before the schedule starts (not opened in a burst by it).
    for (let start = 0; start < n; start += 100) {
      await Promise.all(clients.slice(start, start + 100).map((c) => c.rpc.connect()));
    }
    const registerSeconds = (performance.now() - t0) / 1000;
    const scratch = new Float32Array(clients[0]!.base.length);
    const uploadBytesLength = uploadBytes(clients[0]!, 1, scratch).length;
    log(
      `N=${n}: registered in ${registerSeconds.toFixed(1)} s; upload ${uploadBytesLength} bytes; load ${load()}`,
    );

    // ---- open loop on an absolute schedule ------------------------------------------------------
    const order = permutation(n, mulberry32(12345));
    const latency = new Float64Array(Math.ceil(SECONDS * RATE * 1.05) + 1024);
    const sendLag = new Float64Array(latency.length);
    let latencies = 0;
    let lags = 0;
    const errors = new Map<string, number>();
    let acked = 0;
    let offered = 0;
    let inFlight = 0;
    let measuring = false;
    let running = true;
    const scheduleStart = performance.now() + 200;
    let next = 0; // global index of the next upload due
    const dueAt = (j: number) => scheduleStart + (j * 1000) / RATE;

    const send = (c: SimClient, due: number) => {
      const round = ++c.sent;
      const counted = measuring;
      const sentAt = performance.now();
      if (counted) {
        offered += 1;
        if (lags < sendLag.length) sendLag[lags++] = sentAt - due;
      }
      inFlight += 1;
      c.rpc.call(PUSH_PATH, uploadBytes(c, round, scratch), c.headers, ({ code, message }) => {
        inFlight -= 1;
        if (code === 0) {
          if (round < c.acked.length) c.acked[round] = 1;
          if (counted) {
            acked += 1;
            if (latencies < latency.length) latency[latencies++] = performance.now() - due;
          }
        } else if (counted) {
          const key = code === -1 ? 'transport' : (grpc.status[code] ?? String(code));
          if (!errors.has(key)) log(`N=${n}: first ${key} error: ${message}`);
          errors.set(key, (errors.get(key) ?? 0) + 1);
        }
      });
    };
    let timer: NodeJS.Timeout | undefined;
    const pump = () => {
      const now = performance.now();
      while (running && dueAt(next) <= now) {
        const c = clients[order[next % n]!]!;
        if (c.sent + 1 < c.acked.length) send(c, dueAt(next));
        next += 1;
      }
      if (running) timer = setTimeout(pump, 1);
    };
    timer = setTimeout(pump, 200);

    await new Promise((r) => setTimeout(r, WARMUP_SECONDS * 1000 + 200));
    const loadStart = load();
    measuring = true;
    const rssSamples: { t: number; rss: number }[] = [];
    const mStart = performance.now();
    const cpuStart = coordinator.cpuSeconds();
    const mainCpuStart = threadCpuSeconds(coordinator.pid, coordinator.pid);
    const genCpuStart = process.cpuUsage();
    rssSamples.push({ t: 0, rss: coordinator.rssBytes() });
    const sampler = setInterval(() => {
      rssSamples.push({ t: (performance.now() - mStart) / 1000, rss: coordinator.rssBytes() });
      if (rssSamples.length % 10 === 1) {
        const s = rssSamples.at(-1)!;
        log(
          `N=${n}: t=${s.t.toFixed(0)} s offered ${offered} acked ${acked} in flight ${inFlight} RSS ${(s.rss / 2 ** 20).toFixed(1)} MiB load ${load()}`,
        );
      }
    }, 1000);
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    measuring = false;
    const measuredSeconds = (performance.now() - mStart) / 1000;
    const coordinatorCpu = coordinator.cpuSeconds() - cpuStart;
    const mainCpu = threadCpuSeconds(coordinator.pid, coordinator.pid) - mainCpuStart;
    const genCpu = process.cpuUsage(genCpuStart);
    const generatorCpu = (genCpu.user + genCpu.system) / 1e6;
    const loadEnd = load();
    clearInterval(sampler);
    running = false;
    clearTimeout(timer);
    // Let the uploads in flight finish, then read what the coordinator reports and holds.
    const inFlightAtEnd = inFlight;
    const drainUntil = Date.now() + 35_000;
    while (inFlight > 0 && Date.now() < drainUntil) await new Promise((r) => setTimeout(r, 50));

    // Group-commit figures from the coordinator's own metrics (whole run, warm-up included).
    const metricsText = await fetchText(`${coordinator.httpUrl}/metrics`, certs?.ca);
    const metric = (series: string) => {
      const line = metricsText.split('\n').find((l) => l.startsWith(`${series} `));
      return line ? Number(line.slice(series.length + 1)) : Number.NaN;
    };
    const commits = metric('atomlens_storage_commit_duration_seconds_count');
    const commitSeconds = metric('atomlens_storage_commit_duration_seconds_sum');
    const accepted = metric('atomlens_atom_uploads_total{outcome="accepted"}');
    const refused = metric('atomlens_storage_writes_refused_total');
    const stopped = await coordinator.stop();

    // ---- the store holds every acknowledged round with the atoms sent, and nothing unsent -------
    const byId = new Map(clients.map((c) => [c.id, c]));
    let stored = 0;
    let unsent = 0;
    let wrongAtoms = 0;
    let storedAcked = 0;
    await readStored(coordinatorDir, store, (clientId, round, atoms) => {
      stored += 1;
      const c = byId.get(clientId);
      if (!c || round < 1 || round > c.sent) {
        unsent += 1;
        return;
      }
      if (c.acked[round]) storedAcked += 1;
      const expected = roundAtoms(c, round, scratch);
      if (!atoms.equals(Buffer.from(expected.buffer, expected.byteOffset, expected.byteLength)))
        wrongAtoms += 1;
    });
    const ackedTotal = clients.reduce((a, c) => a + c.acked.reduce((x, y) => x + y, 0), 0);
    const missing = ackedTotal - storedAcked;
    const storeCheck =
      missing === 0 && unsent === 0 && wrongAtoms === 0
        ? `yes (${ackedTotal} acked, ${stored} stored)`
        : `NO: ${missing} acked missing, ${unsent} never sent, ${wrongAtoms} other atoms`;

    const lat = latency.subarray(0, latencies).sort();
    const lag = sendLag.subarray(0, lags).sort();
    const rss = rssSamples.filter((s) => Number.isFinite(s.rss));
    const mb = (b: number) => b / 2 ** 20;
    const rssSlope = (samples: typeof rss) =>
      slope(
        samples.map((s) => s.t / 60),
        samples.map((s) => mb(s.rss)),
      );
    const errorText = [...errors].map(([k, v]) => `${k}:${v}`).join(' ') || '0';
    log(
      `N=${n}: offered ${(offered / measuredSeconds).toFixed(0)}/s, ${(acked / measuredSeconds).toFixed(0)} acked/s, p50 ${percentile(lat, 50).toFixed(1)} ms, p99 ${percentile(lat, 99).toFixed(1)} ms, errors ${errorText}, store ${storeCheck}`,
    );
    return [
      n,
      RATE,
      offered / measuredSeconds,
      acked / measuredSeconds,
      percentile(lat, 50),
      percentile(lat, 95),
      percentile(lat, 99),
      lat.length > 0 ? lat[lat.length - 1]! : Number.NaN,
      percentile(lag, 99),
      (coordinatorCpu / Math.max(1, acked)) * 1000,
      coordinatorCpu / measuredSeconds,
      mainCpu / measuredSeconds,
      (generatorCpu / Math.max(1, acked)) * 1000,
      generatorCpu / measuredSeconds,
      accepted / commits,
      (commitSeconds / commits) * 1000,
      mb(rss[0]?.rss ?? Number.NaN),
      mb(rss.at(-1)?.rss ?? Number.NaN),
      mb(Math.max(...rss.map((s) => s.rss))),
      rssSlope(rss),
      rssSlope(rss.filter((s) => s.t >= measuredSeconds / 2)),
      errorText,
      Number.isFinite(refused) ? refused : 'n/a',
      inFlightAtEnd,
      storeCheck,
      stopped.code === 0 ? 'clean' : `code ${stopped.code} signal ${stopped.signal}`,
      `${loadStart} → ${loadEnd}`,
    ];
  } finally {
    registrar.close();
    for (const c of clients) c.rpc.close();
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
      title: `Load: acknowledged atom uploads against a coordinator child process (${SECONDS} s measured after ${WARMUP_SECONDS} s warm-up, ${SECURE ? 'TLS + tokens' : 'plaintext --insecure'}, ${store})`,
      columns: [
        'clients',
        'target/s',
        'offered/s',
        'acked/s',
        'p50 ms',
        'p95 ms',
        'p99 ms',
        'max ms',
        'send lag p99 ms',
        'coord CPU ms/upload',
        'coord cores',
        'coord main-thread cores',
        'generator CPU ms/upload',
        'generator cores',
        'uploads/commit',
        'commit ms',
        'RSS start MiB',
        'RSS end MiB',
        'RSS max MiB',
        'RSS slope MiB/min',
        'RSS slope 2nd half MiB/min',
        'errors',
        'refused (queue full)',
        'in flight at end',
        'acked all stored',
        'SIGTERM exit',
        'load avg 1/5/15 min (start → end)',
      ],
      rows,
      notes: [
        'Open loop on an absolute schedule: latency (p50–max) counts from when each upload was due, so queueing in the coordinator and a late generator both count. offered/s = uploads actually sent; send lag = how late the generator sent them.',
        'The generator (raw HTTP/2 gRPC, one connection per client) runs in the bench process on the same cores as the coordinator: its CPU is shown beside the coordinator’s.',
        'Coordinator CPU (from /proc) covers all its threads; main-thread cores is the event loop alone (commits run on the storage writer thread). 1000 / (coord CPU ms/upload) bounds acked/s per core.',
        'RSS slope: least-squares fit over the measured run (and over its second half, after warm-up effects).',
        'Default template (5 layers, m = 6, k = 3); every round carries new atoms; every upload is acknowledged after a durable commit, and the store is read back after SIGTERM: every acknowledged round present with the atoms sent, none that was not sent.',
        'Targets (2 cores): ≥ 3,000 acked/s at N = 1,000, p99 < 100 ms, RSS flat over 10 minutes (LOAD_SECONDS=600).',
      ],
    },
  ];
}
