// The SDK's federation client: takes part in an atomlens federation with the user's own model and
// training loop (the built-in split-MNIST client is one such user). It registers the user's
// tasks, hands over the template (α and the initial atoms per layer) and the probe set, pushes
// each round's atoms with acknowledgement — resending, with exponential backoff, across lost
// connections and coordinator restarts — and answers probe requests by calling a user function
// for per-layer activations, from which it computes what the coordinator's analysis needs: per
// layer the Gram matrix K = X Xᵀ or, when the layer has few features (probeLayerSummary), the
// centred activations — a factor of K that is smaller on the wire and lets the coordinator run GW
// in factored form.
//
// Retry policy: only UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED and CANCELLED (and failures
// with no status: the network itself) are transient (isTransient, connection.ts). Every retry waits — a delay drawn from [d/2, d],
// d = initial·multiplier^attempt capped at max ("full jitter" halved) — including re-registration
// after a session that ended at once, so a coordinator that accepts Register and then drops the
// client is not hammered in a tight loop. A status carrying the standard gRPC retry hint
// (trailer grpc-retry-pushback-ms, sent e.g. with RESOURCE_EXHAUSTED when the coordinator's write
// queue is full) makes that wait at least the hinted time, at most MAX_PUSHBACK_MS; a malformed
// hint is ignored.
import * as grpc from '@grpc/grpc-js';
import { centredActivations, factorPaysOff } from '../analysis/representation.js';
import type { ProbeRequest__Output } from '../generated/atomlens/v1/ProbeRequest.js';
import type { RegisterResponse__Output } from '../generated/atomlens/v1/RegisterResponse.js';
import { idProblem } from '../shared/ids.js';
import { createLogger, type Logger } from '../shared/log.js';
import {
  type ModelTemplate,
  type ProbeSetSpec,
  probeSetFromWire,
  templateFromWire,
} from '../shared/template.js';
import {
  type AtomLayerTemplate,
  atomLayersOf,
  type BuiltinNetwork,
  builtinNetworkOf,
} from '../shared/template-file.js';
import { encodeFloat32 } from '../shared/tensor.js';
import { ATOMLENS_VERSION } from '../shared/version.js';
import { seededInitialAtoms } from './atomConv.js';
import {
  FederationConnection,
  gramChunks,
  isTransient,
  readableDetails,
  type SessionHandle,
  speaksTls,
  statusCode,
} from './connection.js';
import { IMAGE_SIZE, probeImages } from './data.js';
import { ClientIdentity } from './identity.js';
import { DEFAULT_PROBE_CACHE_DIR, operatorProbeValues } from './probe-set.js';

/** One task a member trains, as it registers it with the coordinator. */
export interface SdkTask {
  /** Task id (letters, digits, '.', '_', '-'), e.g. "site-a/cars". */
  id: string;
  /** The task's class labels (0–255), e.g. [0, 1, 2]. */
  classes: number[];
}

/** What a probe function is asked for. */
export interface ProbeCall {
  /** The task whose model is probed. */
  taskId: string;
  /** The round whose atoms to use (as pushed); the SDK passes those atoms too. */
  round: number;
  /** The atoms pushed for that round, per template layer (swap them in with swapAtoms). */
  atoms: Map<string, Float32Array>;
  /** Template layers whose outputs are wanted. */
  layers: string[];
  /** Probe inputs, float32 C order, shape `shape` ([n, ...input shape]). */
  inputs: Float32Array;
  /** Shape of `inputs`: [n, ...input shape]. */
  shape: number[];
  /** How a spatial output becomes one vector per input ('gap': mean over height and width). */
  pooling: 'gap' | 'flatten';
}

/**
 * Returns, per asked layer, its activations for the probe inputs as an n × d row-major matrix
 * (any d; pooled as `pooling` says). The SDK sends K = X Xᵀ or, when `2(d + 2) < n`, X centred
 * (see probeLayerSummary).
 */
export type ProbeFunction = (call: ProbeCall) => Promise<Record<string, Float32Array>>;

/**
 * How the client waits between retries. A wait is drawn from [d/2, d] with
 * d = initialMs · multiplier^attempt, capped at maxMs.
 */
export interface BackoffPolicy {
  /** First wait after a failure (ms, default 200). */
  initialMs?: number;
  /** Longest wait (ms, default 5,000). */
  maxMs?: number;
  /** Growth of the wait per attempt (default 2). */
  multiplier?: number;
  /**
   * Give up once the coordinator has been unreachable this long (ms, default 120,000): the
   * operation rejects with {@link UnreachableError}.
   */
  giveUpAfterMs?: number;
  /** Source of the jitter, uniform in [0, 1) (default Math.random). */
  random?: () => number;
}

/** Something the client did on its own, for progress displays and logs. */
export type FederationEvent =
  | {
      /** Registered and the session is open (`reconnect`: again, after losing it). */
      type: 'connected';
      reconnect: boolean;
      /** Whether the coordinator's α fingerprint is the one this client trains with. */
      fingerprintMatch: boolean;
    }
  | {
      /** The session ended; the client is reconnecting. */
      type: 'disconnected';
      reason: string;
    }
  | {
      /** An operation failed transiently and is tried again after `delayMs`. */
      type: 'retry';
      /** What is retried, e.g. "register" or "push round 3 of cars". */
      what: string;
      attempt: number;
      delayMs: number;
      reason: string;
    }
  | {
      /** The coordinator acknowledged a round (`resent`: sent again after a reconnect). */
      type: 'pushed';
      taskId: string;
      round: number;
      duplicate: boolean;
      drift?: number;
      resent: boolean;
    }
  | {
      /** A probe request was answered (`ok`) or declined with `message`. */
      type: 'probe';
      requestId: string;
      taskId: string;
      layers: string[];
      ok: boolean;
      message?: string;
    };

/** Options of {@link AtomlensClient.connect}. */
export interface AtomlensClientOptions {
  /** Coordinator HOST:PORT. */
  address: string;
  /** This member's id (letters, digits, '.', '_', '-'; at most 64). */
  clientId: string;
  /** The tasks this member trains. */
  tasks: SdkTask[];
  /** TLS credentials (grpc.credentials.createSsl(...)); plaintext when absent (loopback only). */
  credentials?: grpc.ChannelCredentials;
  /** The federation's enrolment secret, when it uses one. */
  enrollmentSecret?: string;
  /**
   * Where this member keeps its client credential (default ~/.atomlens/clients/CLIENT_ID).
   * Enrolling with the secret binds the client id to that credential: keep this directory
   * (mode 0700, the file 0600) to register as the same member after a restart. Used only with
   * enrollmentSecret.
   */
  stateDir?: string;
  /** The credential itself (16–1,024 random bytes, e.g. from a secret store) instead of stateDir. */
  clientCredential?: Uint8Array;
  /** Answers the coordinator's probe requests; without it requests are declined. */
  probe?: ProbeFunction;
  /** Where the operator's probe set is cached (by its SHA-256). */
  probeCacheDir?: string;
  /** Waits between retries and when to give up. */
  backoff?: BackoffPolicy;
  /** Deadline of each unary call (ms, default 15,000). */
  callTimeoutMs?: number;
  /** Stops retries and waits: pending operations reject once it fires. */
  signal?: AbortSignal;
  /** Called for connections, retries, acknowledged rounds and probe answers. */
  onEvent?: (event: FederationEvent) => void;
  /** What the operator's client list shows as this member's software (default atomlens-sdk/VERSION). */
  clientVersion?: string;
  /** Where the client logs (default: a logger named after the client id). */
  logger?: Logger;
}

/** What the federation agreed on, as the SDK hands it to the user's model code. */
export interface FederationTemplate {
  /** The federation's id. */
  federationId: string;
  /** Template version. */
  version: number;
  /** Hex SHA-256 of α in the canonical layout. */
  alphaFingerprint: string;
  /**
   * Per atom layer: dimensions, frozen α and the initial atoms every task starts from (explicit
   * in a template file; for a template generated from a seed, generated here from that seed).
   */
  layers: AtomLayerTemplate[];
  /** Layers whose outputs the analysis compares. */
  probeLayers: string[];
  /** The probe set: the operator's (fetched with {@link AtomlensClient.probeSet}) or a built-in one. */
  probe: ProbeSetSpec;
  /** How the built-in demo CNN wires the layers; absent for a custom network (the usual case). */
  network?: BuiltinNetwork;
}

/** The coordinator's acknowledgement of a push. */
export interface PushResult {
  /** True when the coordinator already held this round with the same atoms. */
  duplicate: boolean;
  /** The round stored. */
  round: number;
  /** 1 − atom cosine to this model's previous stored round (mean over layers); undefined for the first. */
  drift?: number;
}

/** Optional numbers pushed with a round's atoms. */
export interface RoundStats {
  /** Training loss of the round. */
  loss?: number;
  /** Accuracy after the round, in [0, 1]. */
  accuracy?: number;
  /** Examples trained on. */
  samples?: number;
}

/** The coordinator stayed unreachable for longer than the backoff policy's giveUpAfterMs. */
export class UnreachableError extends Error {
  /** Always 'UnreachableError'. */
  override readonly name = 'UnreachableError';
}

/**
 * The coordinator answered with a refusal that retrying will not change (bad id or tasks, a
 * wrong enrolment secret, a revoked client, a round rejected); `code` is the gRPC status.
 */
export class RejectedError extends Error {
  /** Always 'RejectedError'. */
  override readonly name = 'RejectedError';
  /** The gRPC status code of the refusal, when there was one. */
  readonly code: number | undefined;
  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

/** A session that ends sooner than this after opening counts as a failed connection. */
const SHORT_SESSION_MS = 2_000;
const DEFAULT_HEARTBEAT_MS = 5_000;

/** K = X Xᵀ for X (n × d, row-major), accumulated in float64. */
export function gramMatrix(x: Float32Array, n: number): Float32Array {
  if (n < 1 || x.length % n !== 0) throw new Error(`activations of ${x.length} values are not ${n} rows`);
  const d = x.length / n;
  const k = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let t = 0; t < d; t++) s += x[i * d + t]! * x[j * d + t]!;
      k[i * n + j] = s;
      k[j * n + i] = s;
    }
  }
  return k;
}

/**
 * What the SDK uploads for one layer's activations X (n × d): the centred activations as a factor
 * of K (factorRank = d) when `2(d + 2) < n` — the rule the proto's PushProbeSummaryRequest.factor_rank
 * states: under half the Gram's bytes, and the coordinator can run GW on it in factored form —
 * else the Gram matrix K = X Xᵀ (factorRank 0).
 */
export function probeLayerSummary(
  x: Float32Array,
  n: number,
): { featureDim: number; factorRank: number; values: Float32Array } {
  if (n < 1 || x.length % n !== 0) throw new Error(`activations of ${x.length} values are not ${n} rows`);
  const d = x.length / n;
  if (d >= 1 && factorPaysOff(d, n)) {
    return { featureDim: d, factorRank: d, values: Float32Array.from(centredActivations(x, n, d)) };
  }
  return { featureDim: d, factorRank: 0, values: gramMatrix(x, n) };
}

/** The longest wait a server's retry hint can impose on one retry. */
const MAX_PUSHBACK_MS = 60_000;

/**
 * The wait the server asked for before a retry (trailer grpc-retry-pushback-ms, a non-negative
 * decimal integer of milliseconds, as in gRPC's retry design A6), capped at MAX_PUSHBACK_MS;
 * undefined without a hint or with a malformed one.
 */
function retryPushbackMs(err: unknown): number | undefined {
  const metadata = (err as { metadata?: unknown } | null)?.metadata;
  if (!(metadata instanceof grpc.Metadata)) return undefined;
  const values = metadata.get('grpc-retry-pushback-ms');
  if (values.length !== 1) return undefined;
  const value = values[0];
  if (typeof value !== 'string' || !/^\d{1,15}$/.test(value)) return undefined;
  return Math.min(Number(value), MAX_PUSHBACK_MS);
}

/** "CODE: details" for a gRPC error, else its message. */
function describe(err: unknown): string {
  const e = err as { code?: number; details?: string; message?: string };
  if (typeof e?.code === 'number' && !(err instanceof RejectedError)) {
    return `${grpc.status[e.code] ?? e.code}: ${readableDetails(e.details || e.message || '')}`;
  }
  return e?.message ?? String(err);
}

interface PushedRound {
  taskId: string;
  round: number;
  atoms: Map<string, Float32Array>;
  request: {
    clientId: string;
    taskId: string;
    round: number;
    layers: { layer: string; atoms: ReturnType<typeof encodeFloat32> }[];
    stats: { loss: number; accuracy: number; samples: number };
  };
  acknowledged: PushResult | undefined;
}

/**
 * A member's connection to the federation. Create it with {@link AtomlensClient.connect}, push
 * each round's atoms with {@link AtomlensClient.push}, and {@link AtomlensClient.close} it at the
 * end; between pushes it keeps a session open on which it answers probe requests.
 */
export class AtomlensClient {
  private templateValue: FederationTemplate | undefined;
  private readonly connection: FederationConnection;
  private session: SessionHandle | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private heartbeatMs = DEFAULT_HEARTBEAT_MS;
  private closed = false;
  private reconnecting: Promise<void> | undefined;
  private progress = new Map<string, number>();
  /** Every pushed round per task (kept: probes may ask for any, and a restart may lose them). */
  private readonly pushed = new Map<string, Map<number, PushedRound>>();
  private probeValues: { sha256: string; values: Float32Array } | undefined;
  private readonly probeQueue: ProbeRequest__Output[] = [];
  private probing: Promise<void> | undefined;
  private sessionOpenedAt = 0;
  private shortSessions = 0;
  private tlsChecked = false;
  private fingerprintMatch = true;
  private readonly stop = new AbortController();
  private readonly onAbort = () => this.stop.abort();
  private readonly backoff: Required<BackoffPolicy>;
  private readonly log: Logger;
  private readonly identity: ClientIdentity;

  private constructor(private readonly options: AtomlensClientOptions) {
    this.log = options.logger ?? createLogger(`sdk ${options.clientId}`);
    this.backoff = {
      initialMs: 200,
      maxMs: 5_000,
      multiplier: 2,
      giveUpAfterMs: 120_000,
      random: Math.random,
      ...options.backoff,
    };
    this.identity = new ClientIdentity({
      clientId: options.clientId,
      ...(options.stateDir !== undefined ? { stateDir: options.stateDir } : {}),
      ...(options.clientCredential !== undefined ? { credential: options.clientCredential } : {}),
    });
    this.connection = new FederationConnection({
      address: options.address,
      identity: this.identity,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.callTimeoutMs ? { callTimeoutMs: options.callTimeoutMs } : {}),
      // The channel's own reconnection follows the same backoff, so a coordinator that is back
      // is found within maxMs rather than grpc-js's default of up to two minutes.
      channelOptions: {
        'grpc.initial_reconnect_backoff_ms': Math.max(1, Math.round(this.backoff.initialMs)),
        'grpc.max_reconnect_backoff_ms': Math.max(1, Math.round(this.backoff.maxMs)),
      },
    });
    options.signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /**
   * Registers with the coordinator (retrying while it is unreachable) and opens the session.
   * Rejects with {@link RejectedError} when the coordinator refuses the registration and with
   * {@link UnreachableError} when it stays unreachable past the backoff's giveUpAfterMs.
   */
  static async connect(options: AtomlensClientOptions): Promise<AtomlensClient> {
    const idError = idProblem('client id', options.clientId);
    if (idError) throw new Error(idError);
    if (options.tasks.length === 0) throw new Error('a client needs at least one task');
    const client = new AtomlensClient(options);
    try {
      // Read (or made) before the first attempt: a state directory that cannot be used fails at
      // once (ClientIdentityError) instead of being retried like an unreachable coordinator.
      if (options.enrollmentSecret) client.identity.credential();
      const response = await client.register('register');
      await client.adoptTemplate(response);
      client.afterRegister(response, false);
      return client;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  /** The federation's template: per layer its dimensions, α and initial atoms; the probe set. */
  get template(): FederationTemplate {
    return this.templateValue!;
  }

  /** The last round the coordinator acknowledged for a task (0 = none), to resume numbering. */
  lastRound(taskId: string): number {
    return this.progress.get(taskId) ?? 0;
  }

  /**
   * The template's probe set as inputs: the operator's (fetched once over gRPC, verified by
   * SHA-256, cached on disk) or a built-in one generated from its seed ('mnist' needs the
   * optional `mnist` package).
   */
  async probeSet(): Promise<{ values: Float32Array; shape: number[] }> {
    return this.probeInputs(this.template.probe);
  }

  /**
   * Pushes a round's atoms (per template layer, [m][k][k] values) and resolves once the
   * coordinator has stored them. Retries through disconnections with backoff (registering again
   * after a coordinator restart or an expired token); pushing the same round again is harmless
   * (duplicate = true). Rejects with {@link RejectedError} when the coordinator refuses the
   * round (ALREADY_EXISTS: other atoms already hold this round number).
   */
  async push(
    taskId: string,
    round: number,
    atoms: ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>,
    stats?: RoundStats,
  ): Promise<PushResult> {
    const byName = atoms instanceof Map ? atoms : new Map(Object.entries(atoms));
    const copies = new Map<string, Float32Array>();
    const layers = this.template.layers.map((l) => {
      const values = byName.get(l.name);
      if (!values) throw new Error(`no atoms given for template layer '${l.name}'`);
      if (values.length !== l.m * l.k * l.k)
        throw new Error(
          `layer '${l.name}': ${values.length} atom values, expected m·k·k = ${l.m * l.k * l.k}`,
        );
      copies.set(l.name, values.slice());
      return { layer: l.name, atoms: encodeFloat32(values, [l.m, l.k, l.k]) };
    });
    const entry: PushedRound = {
      taskId,
      round,
      atoms: copies,
      request: {
        clientId: this.options.clientId,
        taskId,
        round,
        layers,
        stats: { loss: stats?.loss ?? 0, accuracy: stats?.accuracy ?? 0, samples: stats?.samples ?? 0 },
      },
      acknowledged: undefined,
    };
    let rounds = this.pushed.get(taskId);
    if (!rounds) {
      rounds = new Map();
      this.pushed.set(taskId, rounds);
    }
    rounds.set(round, entry);
    const what = `push round ${round} of ${taskId}`;
    // A token can expire or be revoked between rounds: registering again gets a new one, or a
    // refusal. Once per push, so a coordinator that keeps refusing fresh tokens ends the loop.
    let renewedToken = false;
    let failures = 0;
    let failingSince: number | undefined;
    for (;;) {
      if (entry.acknowledged) return entry.acknowledged;
      this.throwIfStopped();
      await this.ensureConnected();
      if (entry.acknowledged) return entry.acknowledged;
      try {
        return await this.send(entry, false);
      } catch (err) {
        const code = statusCode(err);
        if (isTransient(err) || code === grpc.status.FAILED_PRECONDITION) {
          // Unreachable, or no longer registered (a restarted coordinator): wait, (re)connect, retry.
          failingSince ??= Date.now();
          const delay = this.retryDelay(what, failures++, err, failingSince);
          this.log.warn(`${what} failed (${describe(err)}); retrying in ${Math.round(delay)} ms`);
          await this.sleep(delay);
          if (code === grpc.status.FAILED_PRECONDITION) await this.reconnect();
          continue;
        }
        if (code === grpc.status.UNAUTHENTICATED && !renewedToken) {
          renewedToken = true;
          this.log.warn(`${what} refused (${describe(err)}); registering again`);
          await this.reconnect();
          continue;
        }
        // A refused round is forgotten: it is neither re-sent nor offered to probes.
        if (rounds.get(round) === entry) rounds.delete(round);
        throw new RejectedError(`the coordinator rejected ${taskId} round ${round}: ${describe(err)}`, code);
      }
    }
  }

  /**
   * Waits until the client is registered with an open session, reconnecting if it is not.
   * Rejects like {@link AtomlensClient.connect} when that fails.
   */
  async ensureConnected(): Promise<void> {
    this.throwIfStopped();
    if (!this.session) await this.reconnect();
    else if (this.reconnecting) await this.reconnecting;
  }

  /** Waits for probe requests already received to be answered (or declined). */
  async settled(): Promise<void> {
    while (this.probing) await this.probing;
  }

  /** Closes the session and the channel; pending operations reject. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.options.signal?.removeEventListener('abort', this.onAbort);
    this.stop.abort();
    this.stopSession();
    this.connection.close();
  }

  // -------------------------------------------------------------------------------------------
  // Registration and the session

  /** Register, retried with backoff while the coordinator is unreachable. */
  private async register(what: string): Promise<RegisterResponse__Output> {
    let failingSince: number | undefined;
    for (let attempt = 0; ; attempt++) {
      this.throwIfStopped();
      try {
        // A stale token (expired, or from a previous coordinator) must not ride on Register.
        this.connection.setToken('');
        const response = await this.connection.register({
          clientId: this.options.clientId,
          tasks: this.options.tasks.map((t) => ({ taskId: t.id, classes: t.classes })),
          alphaFingerprint: this.templateValue?.alphaFingerprint ?? '',
          clientVersion: this.options.clientVersion ?? `atomlens-sdk/${ATOMLENS_VERSION}`,
          enrollmentSecret: this.options.enrollmentSecret ?? '',
        });
        this.connection.setToken(response.token);
        return response;
      } catch (err) {
        if (!isTransient(err)) {
          throw new RejectedError(`the coordinator refused registration: ${describe(err)}`, statusCode(err));
        }
        // A plaintext client cannot talk to a TLS coordinator however long it retries: ask the
        // address once whether it speaks TLS, and say what fixes it.
        if (!this.options.credentials && !this.tlsChecked && statusCode(err) === grpc.status.UNAVAILABLE) {
          this.tlsChecked = true;
          if (await speaksTls(this.options.address)) {
            throw new RejectedError(
              `the coordinator at ${this.options.address} speaks TLS and this client connects without it: ` +
                "pass --ca FILE (the CA certificate that signed the coordinator's, e.g. certs/ca.pem; " +
                'in code, credentials: grpc.credentials.createSsl(ca))',
            );
          }
        }
        failingSince ??= Date.now();
        const delay = this.retryDelay(what, attempt, err, failingSince);
        this.log.debug(`${what} failed (${describe(err)}); retrying in ${Math.round(delay)} ms`);
        await this.sleep(delay);
      }
    }
  }

  /** First registration: the coordinator's template, as the user's model code needs it. */
  private async adoptTemplate(response: RegisterResponse__Output): Promise<void> {
    if (!response.template) throw new RejectedError('the coordinator sent no template');
    let template: ModelTemplate;
    try {
      template = templateFromWire(response.template);
    } catch (err) {
      throw new RejectedError(`the coordinator's template is unusable: ${(err as Error).message}`);
    }
    // A template generated from a seed carries no atoms: every member generates the same.
    const initialAtoms =
      template.initialAtoms ??
      (await Promise.all(template.layers.map((_, i) => seededInitialAtoms(template, i))));
    this.templateValue = {
      federationId: template.federationId,
      version: template.version,
      alphaFingerprint: template.alphaFingerprint,
      layers: atomLayersOf(template, initialAtoms),
      probeLayers: [...template.probeLayers],
      probe: template.probe,
      ...(template.customNetwork
        ? {}
        : {
            network: builtinNetworkOf(template),
          }),
    };
  }

  private afterRegister(response: RegisterResponse__Output, reconnect: boolean): void {
    this.progress = new Map(response.progress.map((p) => [p.taskId, Number(p.lastRound)]));
    if (reconnect && response.template?.alphaFingerprint !== this.template.alphaFingerprint) {
      this.log.warn('the coordinator now has a different template; this client keeps the one it trains with');
    }
    this.fingerprintMatch = !reconnect || response.fingerprintMatch;
    this.heartbeatMs = response.heartbeatIntervalMs > 0 ? response.heartbeatIntervalMs : DEFAULT_HEARTBEAT_MS;
    this.openSession();
    this.emit({ type: 'connected', reconnect, fingerprintMatch: this.fingerprintMatch });
    this.log.debug(
      `${reconnect ? 'reconnected to' : 'connected to'} coordinator ${this.options.address}` +
        (this.fingerprintMatch ? '' : ' (α fingerprint MISMATCH: atoms compared only by subspace)'),
    );
  }

  private openSession(): void {
    this.stopSession();
    this.sessionOpenedAt = Date.now();
    const session = this.connection.openSession({
      onMessage: (message) => {
        if (message.kind === 'welcome' && message.welcome) {
          if (message.welcome.heartbeatIntervalMs > 0)
            this.startHeartbeat(message.welcome.heartbeatIntervalMs);
        } else if (message.kind === 'probeRequest' && message.probeRequest) {
          this.probeQueue.push(message.probeRequest);
          this.serveProbes();
        }
      },
      onClose: (err) => {
        if (this.closed || this.session !== session) return;
        this.stopSession();
        const reason = err ? describe(err) : 'session ended by the coordinator';
        this.log.warn(`session lost: ${reason}`);
        this.emit({ type: 'disconnected', reason });
        this.reconnect().catch((e: unknown) => {
          // Whoever waits for the connection (a push, ensureConnected) sees the failure.
          if (!this.closed) this.log.warn(`reconnect failed: ${describe(e)}`);
        });
      },
    });
    this.session = session;
    session.send({ hello: { clientId: this.options.clientId } });
    this.startHeartbeat(this.heartbeatMs);
  }

  private startHeartbeat(intervalMs: number): void {
    this.heartbeatMs = intervalMs;
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = setInterval(
      () => this.session?.send({ heartbeat: { sentAtMs: Date.now() } }),
      intervalMs,
    );
    this.heartbeat.unref();
  }

  private stopSession(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    const session = this.session;
    this.session = undefined;
    session?.close();
  }

  /**
   * Registers again and reopens the session, then re-sends what the coordinator lacks;
   * concurrent callers share one attempt.
   */
  private reconnect(): Promise<void> {
    if (this.closed) return Promise.reject(this.stoppedError());
    this.reconnecting ??= (async () => {
      this.stopSession();
      // A coordinator that accepts Register but drops the session at once would otherwise be
      // hammered in a tight loop: back off as for a failed connection.
      if (Date.now() - this.sessionOpenedAt < SHORT_SESSION_MS) {
        await this.sleep(this.delay(this.shortSessions++));
      } else {
        this.shortSessions = 0;
      }
      let failingSince: number | undefined;
      for (let attempt = 0; ; attempt++) {
        const response = await this.register('register again');
        this.afterRegister(response, true);
        try {
          await this.resendLost();
          return;
        } catch (err) {
          if (!(isTransient(err) || statusCode(err) === grpc.status.FAILED_PRECONDITION)) throw err;
          // Register may keep succeeding while the re-send keeps failing: back off each time.
          failingSince ??= Date.now();
          const delay = this.retryDelay('re-send rounds', attempt, err, failingSince);
          this.log.warn(
            `re-sending rounds failed (${describe(err)}); reconnecting in ${Math.round(delay)} ms`,
          );
          this.stopSession();
          await this.sleep(delay);
        }
      }
    })().finally(() => {
      this.reconnecting = undefined;
    });
    return this.reconnecting;
  }

  /**
   * After registering again, re-sends with their original atoms, in round order: rounds whose
   * acknowledgement never arrived (a repeat of a committed round is idempotent) and acknowledged
   * rounds the coordinator no longer reports (a restart that lost them).
   */
  private async resendLost(): Promise<void> {
    for (const [taskId, rounds] of this.pushed) {
      const held = this.lastRound(taskId);
      const lost = [...rounds.values()]
        .filter((r) => !r.acknowledged || r.round > held)
        .sort((a, b) => a.round - b.round);
      for (const entry of lost) {
        if (entry.acknowledged)
          this.log.warn(`the coordinator no longer holds ${taskId} round ${entry.round}; sending it again`);
        await this.send(entry, true);
      }
    }
  }

  private async send(entry: PushedRound, resent: boolean): Promise<PushResult> {
    const response = await this.connection.pushAtoms(entry.request);
    const result: PushResult = {
      duplicate: response.duplicate,
      round: Number(response.round),
      ...(response.hasDrift ? { drift: response.drift } : {}),
    };
    entry.acknowledged = result;
    this.progress.set(entry.taskId, Math.max(this.lastRound(entry.taskId), entry.round));
    this.emit({ type: 'pushed', taskId: entry.taskId, ...result, round: entry.round, resent });
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // Probe requests, one at a time (a probe function swaps atoms in and out of a shared model)

  private serveProbes(): void {
    if (this.probing) return;
    this.probing = (async () => {
      try {
        for (let request = this.probeQueue.shift(); request; request = this.probeQueue.shift()) {
          try {
            await this.answer(request);
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

  private async answer(request: ProbeRequest__Output): Promise<void> {
    const fail = (message: string) => {
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
    const fn = this.options.probe;
    if (!fn) return fail('this client does not answer probe requests');
    if (request.deadlineMs > 0 && Date.now() > request.deadlineMs) {
      return fail('the request arrived after its deadline');
    }
    const rounds = this.pushed.get(request.taskId);
    const wanted = Number(request.round);
    const held = [...(rounds?.keys() ?? [])].sort((a, b) => a - b);
    const round = wanted === 0 ? held.at(-1) : wanted;
    const entry = round === undefined ? undefined : rounds?.get(round);
    if (!entry) {
      return fail(
        wanted === 0
          ? `task ${request.taskId} has no pushed round on this client (tasks: ${[...this.pushed.keys()].join(', ') || 'none yet'})`
          : `round ${wanted} of task ${request.taskId} is not held here (rounds ${held.join(', ') || 'none'})`,
      );
    }
    const layers = request.layers.length > 0 ? request.layers : this.template.probeLayers;
    let grams: { layer: string; featureDim: number; factorRank: number; values: Float32Array }[];
    let n: number;
    try {
      const probe = request.probe ? probeSetFromWire(request.probe) : this.template.probe;
      const { values, shape } = await this.probeInputs(probe);
      n = shape[0]!;
      const activations = await fn({
        taskId: request.taskId,
        round: entry.round,
        atoms: entry.atoms,
        layers,
        inputs: values,
        shape,
        pooling: probe.pooling,
      });
      grams = layers.map((layer) => {
        const x = activations[layer];
        if (!x) throw new Error(`the probe function returned no activations for layer '${layer}'`);
        return { layer, ...probeLayerSummary(x, n) };
      });
    } catch (err) {
      return fail((err as Error).message);
    }
    const clientId = this.options.clientId;
    const chunks = function* () {
      for (const g of grams) {
        yield* gramChunks(
          {
            requestId: request.requestId,
            clientId,
            taskId: request.taskId,
            round: entry.round,
            layer: g.layer,
            n,
            featureDim: g.featureDim,
            factorRank: g.factorRank,
          },
          g.values,
        );
      }
    };
    try {
      const timeout = request.deadlineMs > 0 ? Math.max(1_000, request.deadlineMs - Date.now()) : undefined;
      await this.connection.pushProbeSummary(chunks(), timeout);
      this.emit({ type: 'probe', requestId: request.requestId, taskId: request.taskId, layers, ok: true });
    } catch (err) {
      fail(`upload failed: ${describe(err)}`);
    }
  }

  /** The first `probe.size` inputs of a probe set, with their shape. */
  private async probeInputs(probe: ProbeSetSpec): Promise<{ values: Float32Array; shape: number[] }> {
    if (probe.source !== 'operator') {
      // Built-in sets are generated from their seed, the same on every member.
      return { values: probeImages(probe), shape: [probe.size, IMAGE_SIZE, IMAGE_SIZE, 1] };
    }
    const shape = probe.shape;
    if (!probe.sha256 || !shape) throw new Error('the probe set is named without its SHA-256 and shape');
    if (this.probeValues?.sha256 !== probe.sha256) {
      const values = await operatorProbeValues(
        probe,
        this.options.probeCacheDir ?? DEFAULT_PROBE_CACHE_DIR,
        (sha256) =>
          this.retrying('fetch the probe set', () =>
            this.connection.fetchProbeSet(this.options.clientId, sha256),
          ),
      );
      this.probeValues = { sha256: probe.sha256, values };
    }
    const n = shape[0]!;
    if (probe.size > n)
      throw new Error(`${probe.size} probe inputs asked for, the operator's probe set has ${n}`);
    const rowSize = this.probeValues.values.length / n;
    return {
      values: this.probeValues.values.subarray(0, probe.size * rowSize),
      shape: [probe.size, ...shape.slice(1)],
    };
  }

  // -------------------------------------------------------------------------------------------
  // Backoff

  /** `op` until it succeeds, waiting after transient failures. */
  private async retrying<T>(what: string, op: () => Promise<T>): Promise<T> {
    let failingSince: number | undefined;
    for (let attempt = 0; ; attempt++) {
      this.throwIfStopped();
      try {
        return await op();
      } catch (err) {
        if (!isTransient(err)) throw new Error(`could not ${what}: ${describe(err)}`, { cause: err });
        failingSince ??= Date.now();
        await this.sleep(this.retryDelay(what, attempt, err, failingSince));
      }
    }
  }

  /** Wait before retry number `attempt` (0-based): drawn from [d/2, d], d capped at maxMs. */
  private delay(attempt: number): number {
    const { initialMs, maxMs, multiplier, random } = this.backoff;
    const cap = Math.min(maxMs, initialMs * multiplier ** attempt);
    return cap / 2 + random() * (cap / 2);
  }

  /** The next wait of a failing operation, or UnreachableError once it has failed too long. */
  private retryDelay(what: string, attempt: number, err: unknown, failingSince: number): number {
    const elapsed = Date.now() - failingSince;
    const budget = this.backoff.giveUpAfterMs;
    if (elapsed >= budget) {
      throw new UnreachableError(
        `coordinator ${this.options.address} unreachable for ${Math.round(elapsed / 1000)} s (${describe(err)}); ` +
          'check the address and that the coordinator is running',
      );
    }
    const delay = Math.min(Math.max(this.delay(attempt), retryPushbackMs(err) ?? 0), budget - elapsed);
    this.emit({
      type: 'retry',
      what,
      attempt: attempt + 1,
      delayMs: Math.round(delay),
      reason: describe(err),
    });
    return delay;
  }

  private stoppedError(): Error {
    const reason = this.options.signal?.aborted ? this.options.signal.reason : undefined;
    return reason instanceof Error ? reason : new Error(this.closed ? 'the client is closed' : 'aborted');
  }

  private throwIfStopped(): void {
    if (this.stop.signal.aborted) throw this.stoppedError();
  }

  /** Sleeps, waking early (rejecting) when the client is closed or the signal fires. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const signal = this.stop.signal;
      if (signal.aborted) return reject(this.stoppedError());
      const onAbort = () => {
        clearTimeout(timer);
        reject(this.stoppedError());
      };
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private emit(event: FederationEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch (err) {
      this.log.warn(`onEvent callback threw: ${(err as Error).message}`);
    }
  }
}
