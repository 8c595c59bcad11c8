// The federated client: registers with the coordinator, trains its tasks one
// after another with atom swapping, pushes each round's atoms, keeps a Session open (heartbeats,
// probe requests) and survives coordinator restarts.
//
// Round bookkeeping (proto: "Rounds are client-local counters per task, starting at 1"):
//   * a run trains `rounds` rounds per task, numbered after the last round the coordinator
//     reports for that task, so a number is never reused for different atoms;
//   * every trained round is kept (atoms, biases, stats) until the coordinator acknowledges it;
//     after a reconnect, rounds the coordinator does not report are re-sent with the SAME atoms
//     (the coordinator treats a repeat as idempotent), so every round is stored exactly once.
import type * as grpc from '@grpc/grpc-js';
import { status as grpcStatus } from '@grpc/grpc-js';
import * as tf from '@tensorflow/tfjs';
import type { ProbeRequest__Output } from '../generated/atomlens/v1/ProbeRequest.js';
import type { RegisterResponse__Output } from '../generated/atomlens/v1/RegisterResponse.js';
import { idProblem } from '../shared/ids.js';
import { createLogger, type Logger } from '../shared/log.js';
import {
  alphaFingerprint,
  generateAlpha,
  type ModelTemplate,
  type ProbeSetSpec,
  probeSetFromWire,
  templateFromWire,
} from '../shared/template.js';
import { encodeFloat32 } from '../shared/tensor.js';
import { ATOMLENS_VERSION } from '../shared/version.js';
import { type BackendInfo, type BackendPreference, initBackend } from './backend.js';
import {
  FederationConnection,
  gramChunks,
  isTransient,
  readableDetails,
  speaksTls,
  statusCode,
} from './connection.js';
import {
  type DataSplit,
  loadTaskData,
  parseDataSplit,
  parseTasks,
  probeInputs,
  type Task,
  type TaskData,
} from './data.js';
import { ContinualModel, type NewTaskInit } from './model.js';
import { DEFAULT_PROBE_CACHE_DIR, operatorProbeInputs, operatorProbeValues } from './probe-set.js';
import { TaskTrainer } from './train.js';

/** @internal exported for its tests */
export const CLIENT_VERSION = `atomlens-client/${ATOMLENS_VERSION}`;

export interface BackoffOptions {
  /** First retry delay, ms (default 250). */
  initialMs?: number;
  /** Upper bound of the delay, ms (default 10 000). */
  maxMs?: number;
  /** Growth factor per attempt (default 2). */
  multiplier?: number;
}

export type ClientProgressEvent =
  | { type: 'backend'; backend: BackendInfo }
  | { type: 'connected'; address: string; reconnect: boolean; fingerprintMatch: boolean }
  | { type: 'disconnected'; reason: string }
  | { type: 'retry'; attempt: number; delayMs: number; reason: string }
  | { type: 'task-start'; taskId: string; firstRound: number; rounds: number; examples: number }
  | { type: 'batch'; taskId: string; round: number; batch: number; batches: number; loss: number }
  | {
      type: 'round';
      taskId: string;
      round: number;
      loss: number;
      accuracy: number;
      trainAccuracy: number;
      samples: number;
      seconds: number;
    }
  | { type: 'uploaded'; taskId: string; round: number; duplicate: boolean; drift?: number }
  | { type: 'probe'; requestId: string; taskId: string; layers: string[]; ok: boolean; message?: string }
  | { type: 'done'; summary: ClientSummary };

export interface ClientOptions {
  /** Coordinator HOST:PORT. */
  address: string;
  /** Where an operator-supplied probe set is cached (by its SHA-256); default under the OS temp dir. */
  probeCacheDir?: string;
  clientId: string;
  /** Tasks in learning order: Task objects or a list such as "0-1,2-3". */
  tasks: Task[] | string;
  /** Local rounds per task in this run. */
  rounds: number;
  epochs?: number;
  batchSize?: number;
  learningRate?: number;
  learningRateDecay?: number;
  maxBatchesPerRound?: number;
  /** This client's share of the training pool (DataSplit or --data-split syntax). */
  split?: DataSplit | string;
  seed?: number;
  newTaskInit?: NewTaskInit;
  /** Backend to initialise; 'keep' uses whatever tfjs backend is already active. */
  backend?: BackendPreference | 'keep';
  /** Channel credentials factory (TLS later); insecure when absent. */
  credentials?: () => grpc.ChannelCredentials;
  enrollmentSecret?: string;
  /** Give up (UnreachableError) after the coordinator has been unreachable this long (ms). */
  giveUpAfterMs?: number;
  backoff?: BackoffOptions;
  /** Keep the session open this long after training to answer probe requests (ms; default 0). */
  lingerMs?: number;
  /** Deadline of each unary call (ms). */
  callTimeoutMs?: number;
  onProgress?: (event: ClientProgressEvent) => void;
  signal?: AbortSignal;
  logger?: Logger;
  /** Source of jitter in [0, 1); Math.random by default. */
  random?: () => number;
}

export interface TaskSummary {
  taskId: string;
  /** Rounds trained in this run (round numbers as uploaded). */
  rounds: number[];
  /** Evaluation accuracy after the last round. */
  accuracy: number;
  loss: number;
}

export interface ClientSummary {
  clientId: string;
  backend: string;
  tasks: TaskSummary[];
  /** Uploads acknowledged (including idempotent repeats). */
  uploads: number;
  duplicates: number;
  reconnects: number;
  probesAnswered: number;
  probesFailed: number;
  /** True when stopped by the AbortSignal before finishing. */
  aborted: boolean;
  fingerprintMatch: boolean;
}

/** The coordinator stayed unreachable past giveUpAfterMs (CLI exit code 3). */
export class UnreachableError extends Error {}
/** The coordinator refused the client (bad id, tasks, enrolment) — retrying will not help. */
export class RejectedError extends Error {}

interface StoredRound {
  taskId: string;
  round: number;
  atoms: Float32Array[];
  biases: Float32Array[];
  stats: { loss: number; accuracy: number; samples: number };
  acknowledged: boolean;
}

class AbortedError extends Error {}

/** A session that ends sooner than this after opening counts as a failed connection. */
const SHORT_SESSION_MS = 2_000;

function describe(err: unknown): string {
  const e = err as { code?: number; details?: string; message?: string };
  if (typeof e?.code === 'number') {
    return `${grpcStatus[e.code] ?? e.code}: ${readableDetails(e.details || e.message || '')}`;
  }
  return e?.message ?? String(err);
}

/**
 * Runs a federated client to completion (all tasks × rounds, then optional lingering) or until
 * the signal aborts it. Throws UnreachableError when the coordinator stays away too long and
 * RejectedError when it refuses the registration.
 */
export async function runClient(options: ClientOptions): Promise<ClientSummary> {
  const client = new FederatedClient(options);
  try {
    return await client.run();
  } finally {
    client.close();
  }
}

class FederatedClient {
  private readonly log: Logger;
  private readonly tasks: Task[];
  private readonly split: DataSplit;
  private readonly seed: number;
  private readonly emit: (event: ClientProgressEvent) => void;
  private readonly random: () => number;
  private readonly giveUpAfterMs: number;
  private readonly backoff: Required<BackoffOptions>;
  private connection: FederationConnection | undefined;
  private session: { close(): void; send(m: object): void } | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private heartbeatMs = 5_000;
  private template: ModelTemplate | undefined;
  private probeSetCache: { sha256: string; values: Float32Array } | undefined;
  private model: ContinualModel | undefined;
  private fingerprint = '';
  private fingerprintMatch = true;
  /** Coordinator's last acknowledged round per task, from the latest Register. */
  private progress = new Map<string, number>();
  private readonly stored = new Map<string, StoredRound[]>();
  private connected = false;
  private reconnecting: Promise<void> | undefined;
  /** When the coordinator was first found unreachable in the current outage. */
  private unreachableSince: number | undefined;
  private sessionOpenedAt = 0;
  /** Sessions in a row that ended within SHORT_SESSION_MS of opening. */
  private shortSessions = 0;
  private readonly probeQueue: ProbeRequest__Output[] = [];
  private probing: Promise<void> | undefined;
  private readonly summary: ClientSummary;
  private closed = false;
  /** Whether a failed plaintext connection has asked if the address speaks TLS. */
  private tlsChecked = false;

  constructor(private readonly options: ClientOptions) {
    this.log = options.logger ?? createLogger(`client ${options.clientId}`);
    this.tasks = typeof options.tasks === 'string' ? parseTasks(options.tasks) : options.tasks;
    if (this.tasks.length === 0) throw new Error('a client needs at least one task');
    this.split =
      typeof options.split === 'string' ? parseDataSplit(options.split) : (options.split ?? { kind: 'all' });
    if (!Number.isInteger(options.rounds) || options.rounds < 0)
      throw new Error('rounds must be an integer ≥ 0');
    const idError = idProblem('client id', options.clientId);
    if (idError) throw new Error(idError);
    this.seed = options.seed ?? 1;
    this.emit = (event) => {
      try {
        options.onProgress?.(event);
      } catch (err) {
        this.log.warn(`onProgress callback threw: ${(err as Error).message}`);
      }
    };
    this.random = options.random ?? Math.random;
    this.giveUpAfterMs = options.giveUpAfterMs ?? 60_000;
    this.backoff = { initialMs: 250, maxMs: 10_000, multiplier: 2, ...options.backoff };
    this.summary = {
      clientId: options.clientId,
      backend: '',
      tasks: [],
      uploads: 0,
      duplicates: 0,
      reconnects: 0,
      probesAnswered: 0,
      probesFailed: 0,
      aborted: false,
      fingerprintMatch: true,
    };
  }

  private get aborted(): boolean {
    return this.options.signal?.aborted ?? false;
  }

  async run(): Promise<ClientSummary> {
    const backendChoice = this.options.backend ?? 'auto';
    if (backendChoice === 'keep') {
      await tf.ready();
      this.summary.backend = tf.getBackend();
    } else {
      const info = await initBackend(backendChoice, this.log.child('backend'));
      this.summary.backend = info.name;
      this.emit({ type: 'backend', backend: info });
    }
    try {
      await this.connect(false);
      await this.trainAllTasks();
      if (!this.aborted) await this.linger();
    } catch (err) {
      if (!(err instanceof AbortedError)) throw err;
    }
    this.summary.aborted = this.aborted;
    this.summary.fingerprintMatch = this.fingerprintMatch;
    this.emit({ type: 'done', summary: this.summary });
    return this.summary;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopSession();
    this.connection?.close();
    this.model?.dispose();
  }

  // -------------------------------------------------------------------------------------------
  // Connection lifecycle

  private stopSession(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    this.session?.close();
    this.session = undefined;
  }

  /** Sleeps, waking early (with AbortedError) when the signal fires. */
  /** Delay before retry number `attempt` (0-based): full jitter in [d/2, d], d capped at max. */
  private backoffDelay(attempt: number): number {
    const { initialMs, maxMs, multiplier } = this.backoff;
    const cap = Math.min(maxMs, initialMs * multiplier ** attempt);
    return cap / 2 + this.random() * (cap / 2);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.options.signal;
      if (signal?.aborted) return reject(new AbortedError());
      const onAbort = () => {
        clearTimeout(timer);
        reject(new AbortedError());
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Registers and opens the session, retrying with exponential backoff and full jitter
   * (delay drawn from [d/2, d], d = initial·multiplier^attempt capped at max) until success,
   * abort, or giveUpAfterMs of continuous failure.
   */
  private async connect(reconnect: boolean): Promise<void> {
    this.unreachableSince ??= Date.now();
    const started = this.unreachableSince;
    let attempt = 0;
    for (;;) {
      if (this.aborted) throw new AbortedError();
      try {
        await this.registerAndOpenSession();
        this.unreachableSince = undefined;
        if (reconnect) this.summary.reconnects++;
        this.emit({
          type: 'connected',
          address: this.options.address,
          reconnect,
          fingerprintMatch: this.fingerprintMatch,
        });
        this.log.debug(
          `${reconnect ? 'reconnected to' : 'connected to'} coordinator ${this.options.address}` +
            (this.fingerprintMatch ? '' : ' (α fingerprint MISMATCH: atoms compared only by subspace)'),
        );
        return;
      } catch (err) {
        if (err instanceof RejectedError || err instanceof AbortedError) throw err;
        // A plaintext client cannot talk to a TLS coordinator, however long it retries: ask the
        // address once whether it speaks TLS, and say which flag fixes it.
        if (!this.options.credentials && !this.tlsChecked && statusCode(err) === grpcStatus.UNAVAILABLE) {
          this.tlsChecked = true;
          if (await speaksTls(this.options.address)) {
            throw new RejectedError(
              `the coordinator at ${this.options.address} speaks TLS and this client connects without it: ` +
                "pass --ca FILE (the CA certificate that signed the coordinator's, e.g. certs/ca.pem)",
            );
          }
        }
        const elapsed = Date.now() - started;
        if (elapsed >= this.giveUpAfterMs) {
          throw new UnreachableError(
            `coordinator ${this.options.address} unreachable for ${Math.round(elapsed / 1000)} s (${describe(err)}); ` +
              'check the address and that the coordinator is running',
          );
        }
        const { initialMs, maxMs, multiplier } = this.backoff;
        const cap = Math.min(maxMs, initialMs * multiplier ** attempt);
        const delay = Math.min(cap / 2 + this.random() * (cap / 2), this.giveUpAfterMs - elapsed);
        attempt++;
        this.emit({ type: 'retry', attempt, delayMs: Math.round(delay), reason: describe(err) });
        this.log.debug(
          `connect attempt ${attempt} failed (${describe(err)}); retrying in ${Math.round(delay)} ms`,
        );
        await this.sleep(delay);
      }
    }
  }

  private async registerAndOpenSession(): Promise<void> {
    this.stopSession();
    this.connection?.close();
    this.connection = new FederationConnection({
      address: this.options.address,
      ...(this.options.credentials ? { credentials: this.options.credentials() } : {}),
      ...(this.options.callTimeoutMs ? { callTimeoutMs: this.options.callTimeoutMs } : {}),
    });
    let response: RegisterResponse__Output;
    try {
      response = await this.connection.register({
        clientId: this.options.clientId,
        tasks: this.tasks.map((t) => ({ taskId: t.id, classes: t.classes })),
        alphaFingerprint: this.fingerprint,
        clientVersion: CLIENT_VERSION,
        enrollmentSecret: this.options.enrollmentSecret ?? '',
      });
    } catch (err) {
      const code = statusCode(err);
      // Only transient failures are retried; any other answer would be the same next time.
      if (code !== undefined && !isTransient(err)) {
        throw new RejectedError(`coordinator refused registration: ${describe(err)}`);
      }
      throw err;
    }
    this.connection.setToken(response.token);
    this.adoptTemplate(response);
    this.progress = new Map(response.progress.map((p) => [p.taskId, Number(p.lastRound)]));
    this.heartbeatMs = response.heartbeatIntervalMs > 0 ? response.heartbeatIntervalMs : 5_000;
    this.openSession();
    this.connected = true;
  }

  /** The operator's probe set, fetched once per hash (memory, then the disk cache, then gRPC). */
  private async operatorProbeSet(
    probe: ProbeSetSpec,
    connection: FederationConnection,
  ): Promise<Float32Array> {
    const cached = this.probeSetCache;
    if (cached && cached.sha256 === probe.sha256) return cached.values;
    const values = await operatorProbeValues(
      probe,
      this.options.probeCacheDir ?? DEFAULT_PROBE_CACHE_DIR,
      (sha256) => connection.fetchProbeSet(this.options.clientId, sha256),
    );
    this.probeSetCache = { sha256: probe.sha256!, values };
    return values;
  }

  /** First registration: take the coordinator's template (α verified against its fingerprint). */
  private adoptTemplate(response: RegisterResponse__Output): void {
    if (!response.template) throw new RejectedError('coordinator sent no model template');
    if (this.template) {
      // α cannot change under a model being trained; a new coordinator template is only noted.
      this.fingerprintMatch = response.fingerprintMatch;
      if (response.template.alphaFingerprint !== this.fingerprint) {
        this.log.warn('the coordinator now has a different template; this client keeps the α it trains with');
      }
      return;
    }
    let template: ModelTemplate;
    try {
      template = templateFromWire(response.template);
    } catch (err) {
      throw new RejectedError(`the coordinator's model template is unusable: ${(err as Error).message}`);
    }
    if (template.customNetwork) {
      throw new RejectedError(
        "the coordinator's template describes the atom layers of a custom network; this built-in client trains only the demo CNN — use the atomlens SDK with your own model (docs/sdk.md)",
      );
    }
    const fromSeed = alphaFingerprint(template.layers, generateAlpha(template.layers, template.alphaSeed));
    if (fromSeed !== template.alphaFingerprint) {
      this.log.info(
        'template α was uploaded by the operator (not generated from its seed); using it as sent',
      );
    }
    this.template = template;
    this.fingerprint = template.alphaFingerprint;
    this.fingerprintMatch = true;
  }

  private openSession(): void {
    const connection = this.connection!;
    this.sessionOpenedAt = Date.now();
    const session = connection.openSession({
      onMessage: (message) => {
        if (message.kind === 'welcome' && message.welcome) {
          if (message.welcome.heartbeatIntervalMs > 0)
            this.restartHeartbeat(message.welcome.heartbeatIntervalMs);
        } else if (message.kind === 'probeRequest' && message.probeRequest) {
          this.probeQueue.push(message.probeRequest);
          this.serveProbes();
        }
      },
      onClose: (err) => {
        if (this.session !== session || this.closed) return;
        this.session = undefined;
        if (this.heartbeat) clearInterval(this.heartbeat);
        this.heartbeat = undefined;
        this.connected = false;
        const reason = err ? describe(err) : 'session ended by the coordinator';
        this.log.warn(`session lost: ${reason}`);
        this.emit({ type: 'disconnected', reason });
        this.ensureReconnect().catch(() => {
          // Failures surface to whoever awaits the reconnect (uploads, lingering).
        });
      },
    });
    this.session = session;
    session.send({ hello: { clientId: this.options.clientId } });
    this.restartHeartbeat(this.heartbeatMs);
  }

  private restartHeartbeat(intervalMs: number): void {
    this.heartbeatMs = intervalMs;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(
      () => this.session?.send({ heartbeat: { sentAtMs: Date.now() } }),
      intervalMs,
    );
    this.heartbeat.unref();
  }

  /** One shared reconnect (with backoff) at a time; re-sends rounds the coordinator lacks. */
  private ensureReconnect(): Promise<void> {
    if (!this.reconnecting) {
      this.connected = false;
      this.stopSession();
      this.reconnecting = (async () => {
        try {
          // A coordinator that accepts Register but drops the session at once would otherwise be
          // hammered in a tight loop: back off as for a failed connection.
          if (Date.now() - this.sessionOpenedAt < SHORT_SESSION_MS) {
            this.shortSessions++;
            const { initialMs, maxMs, multiplier } = this.backoff;
            const cap = Math.min(maxMs, initialMs * multiplier ** (this.shortSessions - 1));
            await this.sleep(cap / 2 + this.random() * (cap / 2));
          } else {
            this.shortSessions = 0;
          }
          for (let attempt = 0; ; attempt++) {
            await this.connect(true);
            try {
              await this.resendUnacknowledged();
              return;
            } catch (err) {
              if (!(isTransient(err) || statusCode(err) === grpcStatus.FAILED_PRECONDITION)) throw err;
              // Register may keep succeeding while the re-send keeps failing: back off each time.
              const delay = this.backoffDelay(attempt);
              this.log.warn(
                `re-sending rounds failed (${describe(err)}); reconnecting in ${Math.round(delay)} ms`,
              );
              this.connected = false;
              this.stopSession();
              await this.sleep(delay);
            }
          }
        } finally {
          this.reconnecting = undefined;
        }
      })();
    }
    return this.reconnecting;
  }

  // -------------------------------------------------------------------------------------------
  // Training and uploads

  private async trainAllTasks(): Promise<void> {
    const template = this.template!;
    this.model = new ContinualModel(template, {
      seed: this.seed,
      ...(this.options.newTaskInit ? { newTaskInit: this.options.newTaskInit } : {}),
    });
    for (const task of this.tasks) {
      if (this.aborted) return;
      const data: TaskData = loadTaskData(task, this.split);
      const trainer = new TaskTrainer(this.model, data, {
        seed: this.seed,
        ...(this.options.epochs !== undefined ? { epochs: this.options.epochs } : {}),
        ...(this.options.batchSize !== undefined ? { batchSize: this.options.batchSize } : {}),
        ...(this.options.learningRate !== undefined ? { learningRate: this.options.learningRate } : {}),
        ...(this.options.learningRateDecay !== undefined
          ? { learningRateDecay: this.options.learningRateDecay }
          : {}),
        ...(this.options.maxBatchesPerRound !== undefined
          ? { maxBatches: this.options.maxBatchesPerRound }
          : {}),
      });
      const taskSummary: TaskSummary = {
        taskId: task.id,
        rounds: [],
        accuracy: Number.NaN,
        loss: Number.NaN,
      };
      this.summary.tasks.push(taskSummary);
      const firstRound = (this.progress.get(task.id) ?? 0) + 1;
      if (firstRound > 1) {
        this.log.info(
          `coordinator already holds ${firstRound - 1} round(s) of task ${task.id}; continuing at ${firstRound}`,
        );
      }
      this.emit({
        type: 'task-start',
        taskId: task.id,
        firstRound,
        rounds: this.options.rounds,
        examples: data.train.count,
      });
      try {
        for (let i = 0; i < this.options.rounds; i++) {
          if (this.aborted) return;
          const round = this.nextRound(task.id);
          const result = await trainer.trainRound(round, {
            ...(this.options.signal ? { signal: this.options.signal } : {}),
            onBatch: (b) => this.emit({ type: 'batch', taskId: task.id, round, ...b }),
          });
          if (result.aborted) return;
          const entry: StoredRound = {
            taskId: task.id,
            round,
            atoms: this.model.getAtoms(task.id),
            biases: this.model.getBiases(task.id),
            stats: { loss: result.loss, accuracy: result.accuracy, samples: result.samples },
            acknowledged: false,
          };
          this.storedFor(task.id).push(entry);
          taskSummary.rounds.push(round);
          taskSummary.accuracy = result.accuracy;
          taskSummary.loss = result.loss;
          this.emit({
            type: 'round',
            taskId: task.id,
            round,
            loss: result.loss,
            accuracy: result.accuracy,
            trainAccuracy: result.trainAccuracy,
            samples: result.samples,
            seconds: result.seconds,
          });
          await this.upload(entry);
        }
      } finally {
        trainer.dispose();
      }
    }
  }

  private storedFor(taskId: string): StoredRound[] {
    let list = this.stored.get(taskId);
    if (!list) {
      list = [];
      this.stored.set(taskId, list);
    }
    return list;
  }

  /** Next round number: after both our own rounds and whatever the coordinator holds. */
  private nextRound(taskId: string): number {
    const ours = this.storedFor(taskId).reduce((max, r) => Math.max(max, r.round), 0);
    return Math.max(ours, this.progress.get(taskId) ?? 0) + 1;
  }

  /** Pushes one round until acknowledged, reconnecting as needed. */
  private async upload(entry: StoredRound): Promise<void> {
    // A token can expire or be revoked between rounds: re-registering (with the enrolment secret
    // or certificate) gets a new one, or a refusal that ends the run. Once per upload, so a
    // coordinator that keeps refusing fresh tokens cannot make this loop forever.
    let renewedToken = false;
    // Failed attempts of this upload: each retry waits longer (Register may succeed every time
    // while PushAtoms keeps failing, so reconnecting alone is no delay).
    let failures = 0;
    for (;;) {
      if (entry.acknowledged) return;
      if (this.aborted) throw new AbortedError();
      if (!this.connected) {
        await this.ensureReconnect();
        continue;
      }
      try {
        await this.push(entry);
        return;
      } catch (err) {
        const code = statusCode(err);
        if (code === grpcStatus.FAILED_PRECONDITION || isTransient(err)) {
          // Not registered any more (coordinator restarted) or unreachable: reconnect, retry.
          const delay = this.backoffDelay(failures++);
          this.log.warn(
            `upload of ${entry.taskId} round ${entry.round} failed (${describe(err)}); retrying in ${Math.round(delay)} ms`,
          );
          this.emit({ type: 'retry', attempt: failures, delayMs: Math.round(delay), reason: describe(err) });
          this.connected = false;
          await this.sleep(delay);
          await this.ensureReconnect();
          continue;
        }
        if (code === grpcStatus.UNAUTHENTICATED && !renewedToken) {
          renewedToken = true;
          this.log.warn(
            `upload of ${entry.taskId} round ${entry.round} refused (${describe(err)}); registering again`,
          );
          this.connected = false;
          await this.ensureReconnect();
          continue;
        }
        if (code === grpcStatus.ALREADY_EXISTS) {
          // Someone else's atoms hold this number: take the next free number instead.
          const previous = entry.round;
          await this.ensureReconnect();
          if (entry.acknowledged) return;
          entry.round = Math.max(this.nextRound(entry.taskId), (this.progress.get(entry.taskId) ?? 0) + 1);
          this.log.warn(
            `round ${previous} of ${entry.taskId} already exists with other atoms; sending as round ${entry.round}`,
          );
          continue;
        }
        throw new Error(`coordinator rejected ${entry.taskId} round ${entry.round}: ${describe(err)}`);
      }
    }
  }

  private async push(entry: StoredRound): Promise<void> {
    const template = this.template!;
    const response = await this.connection!.pushAtoms({
      clientId: this.options.clientId,
      taskId: entry.taskId,
      round: entry.round,
      layers: template.layers.map((layer, i) => ({
        layer: layer.name,
        atoms: encodeFloat32(entry.atoms[i]!, [layer.m, layer.k, layer.k]),
      })),
      stats: entry.stats,
    });
    entry.acknowledged = true;
    this.summary.uploads++;
    if (response.duplicate) this.summary.duplicates++;
    this.progress.set(entry.taskId, Math.max(this.progress.get(entry.taskId) ?? 0, entry.round));
    this.emit({
      type: 'uploaded',
      taskId: entry.taskId,
      round: entry.round,
      duplicate: response.duplicate,
      ...(response.hasDrift ? { drift: response.drift } : {}),
    });
  }

  /**
   * After (re)registering, re-sends with their original atoms (in round order):
   *   * rounds whose acknowledgement never arrived — if the coordinator did commit them, the
   *     repeat is idempotent (duplicate = true);
   *   * acknowledged rounds the coordinator no longer reports (a restart that lost them).
   */
  private async resendUnacknowledged(): Promise<void> {
    for (const [taskId, rounds] of this.stored) {
      const held = this.progress.get(taskId) ?? 0;
      for (const entry of rounds) {
        if (entry.acknowledged && entry.round > held) {
          this.log.warn(`coordinator no longer holds ${taskId} round ${entry.round}; sending it again`);
          entry.acknowledged = false;
        }
      }
      for (const entry of rounds) {
        if (!entry.acknowledged) await this.push(entry);
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Probe requests

  private serveProbes(): void {
    if (this.probing) return;
    this.probing = (async () => {
      try {
        for (;;) {
          const request = this.probeQueue.shift();
          if (!request) return;
          try {
            await this.answerProbe(request);
          } catch (err) {
            this.log.error(
              `probe request ${request.requestId} crashed: ${(err as Error).stack ?? String(err)}`,
            );
          }
        }
      } finally {
        this.probing = undefined;
      }
    })();
  }

  private async answerProbe(request: ProbeRequest__Output): Promise<void> {
    const connection = this.connection;
    const fail = (message: string) => {
      this.summary.probesFailed++;
      this.log.warn(`probe request ${request.requestId} failed: ${message}`);
      this.session?.send({ probeFailure: { requestId: request.requestId, message } });
      this.emit({
        type: 'probe',
        requestId: request.requestId,
        taskId: request.taskId,
        layers: request.layers,
        ok: false,
        message,
      });
    };
    if (!connection) return fail('not connected');
    if (request.deadlineMs > 0 && Date.now() > request.deadlineMs) {
      return fail('the request arrived after its deadline');
    }
    const model = this.model;
    if (!model?.hasTask(request.taskId)) {
      return fail(
        `task ${request.taskId} has no model on this client (tasks: ${model?.taskIds().join(', ') || 'none yet'})`,
      );
    }
    const rounds = this.storedFor(request.taskId);
    const wanted = Number(request.round);
    const latest = rounds[rounds.length - 1];
    const chosen = wanted === 0 ? latest : rounds.find((r) => r.round === wanted);
    if (!chosen) {
      return fail(
        wanted === 0
          ? `task ${request.taskId} has no completed round yet`
          : `round ${wanted} of task ${request.taskId} is not held here (rounds ${rounds.map((r) => r.round).join(', ') || 'none'})`,
      );
    }
    let probe: ProbeSetSpec | undefined;
    try {
      probe = request.probe ? probeSetFromWire(request.probe) : this.template?.probe;
    } catch (err) {
      return fail((err as Error).message);
    }
    if (!probe) return fail('the request has no probe set');
    const layers = request.layers.length > 0 ? request.layers : (this.template?.probeLayers ?? []);
    let operatorValues: Float32Array | undefined;
    if (probe.source === 'operator') {
      try {
        operatorValues = await this.operatorProbeSet(probe, connection);
      } catch (err) {
        return fail(`cannot obtain the operator's probe set: ${(err as Error).message}`);
      }
    }
    let grams: ReturnType<ContinualModel['layerGrams']>;
    try {
      // The model is between two batches here (this runs on the event loop between them);
      // swap in the chosen round's parameters, compute, and restore the live ones.
      const liveAtoms = model.getAtoms(request.taskId);
      const liveBiases = model.getBiases(request.taskId);
      model.setConvParameters(request.taskId, chosen.atoms, chosen.biases);
      try {
        const inputs =
          probe.source === 'operator'
            ? operatorProbeInputs(operatorValues!, probe.shape ?? [], probe.size)
            : probeInputs({ source: probe.source, size: probe.size, seed: probe.seed });
        try {
          grams = model.layerGrams(request.taskId, inputs, layers, probe.pooling);
        } finally {
          inputs.dispose();
        }
      } finally {
        model.setConvParameters(request.taskId, liveAtoms, liveBiases);
      }
    } catch (err) {
      return fail((err as Error).message);
    }
    const chunks = function* (clientId: string) {
      for (const g of grams) {
        yield* gramChunks(
          {
            requestId: request.requestId,
            clientId,
            taskId: request.taskId,
            round: chosen.round,
            layer: g.layer,
            n: g.n,
            featureDim: g.featureDim,
          },
          g.gram,
        );
      }
    };
    try {
      const timeout = request.deadlineMs > 0 ? Math.max(1_000, request.deadlineMs - Date.now()) : undefined;
      await connection.pushProbeSummary(chunks(this.options.clientId), timeout);
      this.summary.probesAnswered++;
      this.emit({
        type: 'probe',
        requestId: request.requestId,
        taskId: request.taskId,
        layers,
        ok: true,
      });
    } catch (err) {
      fail(`upload failed: ${describe(err)}`);
    }
  }

  // -------------------------------------------------------------------------------------------

  /** Keeps the session (and reconnects) for lingerMs after training, answering probes. */
  private async linger(): Promise<void> {
    const lingerMs = this.options.lingerMs ?? 0;
    if (lingerMs <= 0) {
      await this.probing;
      return;
    }
    this.log.info(
      `training done; staying connected ${Number.isFinite(lingerMs) ? `for ${Math.round(lingerMs / 1000)} s` : 'until stopped'} to answer probe requests`,
    );
    const until = Date.now() + lingerMs;
    while (Date.now() < until && !this.aborted) {
      if (!this.connected) await this.ensureReconnect();
      await this.sleep(Math.min(500, Math.max(0, until - Date.now()))).catch(() => undefined);
    }
    await this.probing;
  }
}
