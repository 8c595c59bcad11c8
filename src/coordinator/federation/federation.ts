// The coordinator's level-0 state and the logic behind the Federation service: registry of
// clients, accepting atom uploads (validate → durable commit → similarity index), and assembling
// probe answers. Transport-free: the gRPC layer (server.ts) only decodes, calls and maps errors.

import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { modelCosine } from '../../analysis/atoms.js';
import { unitModelVector } from '../../analysis/pairwise.js';
import type { PushAtomsRequest__Output } from '../../generated/atomlens/v1/PushAtomsRequest.js';
import type { Logger } from '../../shared/log.js';
import type { ModelTemplate } from '../../shared/template.js';
import {
  type AuthCall,
  alreadyExists,
  correlationId,
  exhausted,
  failedPrecondition,
  invalid,
  notFound,
  quoteInput,
  RpcError,
} from '../calls.js';
import type { CoordinatorConfig } from '../config.js';
import type { SimilarityIndex } from '../level0/similarity-index.js';
import type { CoordinatorMetrics } from '../metrics.js';
import {
  type ClientRecord,
  type Storage,
  StorageBusyError,
  StorageConflictError,
  type TaskRecord,
} from '../storage/types.js';
import type { ProbeLayerSummary, SessionRegistry } from './sessions.js';
import { splitAtoms, UploadRejection, type ValidatedUpload, validateUpload } from './validation.js';

/** Emitted after an upload is committed and the similarity index updated. */
export interface UploadEvent {
  clientId: string;
  taskId: string;
  round: number;
  fingerprintMatch: boolean;
  /** 1 − cosine to the previous round, when there is one. */
  drift: number | undefined;
}

export interface RegisterInput {
  clientId: string;
  tasks: TaskRecord[];
  alphaFingerprint: string;
  clientVersion: string;
  enrollmentSecret: string;
  /** RegisterRequest.client_credential (validated length; empty = none sent). */
  clientCredential: Uint8Array;
  /** The transport call, for enrolment checks that look at metadata or the TLS peer. */
  call?: AuthCall;
}

export interface RegisterResult {
  fingerprintMatch: boolean;
  progress: { taskId: string; lastRound: number }[];
  /** Bearer token for later calls ('' while authentication is not enabled). */
  token: string;
}

/** What the enrolment hook decided about a registering client. */
export interface Enrolment {
  /** Bearer token to hand out ('' when authentication is off). */
  token: string;
  /**
   * True when the client proved only that it knows the shared enrolment secret: then its
   * client credential (present, checked by the hook) must be the one its id is bound to.
   */
  bindCredential: boolean;
}

/**
 * Enrolment hook: checks a registering client (enrolment secret and the presence of a client
 * credential, mTLS identity on the call) and returns the token and whether the id's credential
 * binding applies, or throws an RpcError (UNAUTHENTICATED / PERMISSION_DENIED). Without one,
 * registration is open. Runs after the request is validated and before anything is stored.
 */
export type Enroll = (
  request: { clientId: string; enrollmentSecret: string; clientCredential: Uint8Array },
  call: AuthCall | undefined,
) => Enrolment;

export interface PushResult {
  duplicate: boolean;
  round: number;
  drift: number | undefined;
}

export interface FederationDeps {
  config: CoordinatorConfig;
  template: ModelTemplate;
  storage: Storage;
  similarity: SimilarityIndex;
  sessions: SessionRegistry;
  metrics: CoordinatorMetrics;
  logger: Logger;
  enroll?: Enroll;
  /** Told when the operator removed a client, so that the tokens issued for its id end. */
  clientRemoved?: (clientId: string) => void;
  now?: () => number;
}

export class FederationCore {
  readonly template: ModelTemplate;
  private readonly deps: FederationDeps;
  private readonly clients = new Map<string, ClientRecord>();
  /** New client ids whose registration is under way (counted against limits.maxClients). */
  private readonly registering = new Set<string>();
  private readonly uploadListeners = new Set<(e: UploadEvent) => void>();
  private readonly now: () => number;

  constructor(deps: FederationDeps) {
    this.deps = deps;
    this.template = deps.template;
    this.now = deps.now ?? Date.now;
  }

  /** Loads the registry and the two latest rounds of every model from storage. */
  async warmUp(): Promise<{ clients: number; models: number }> {
    const { storage, similarity, sessions } = this.deps;
    for (const c of await storage.listClients()) {
      this.clients.set(c.clientId, c);
      sessions.touch(c.clientId, c.lastSeenMs);
    }
    await storage.forEachRecentRound((clientId, taskId, round, atoms) => {
      const client = this.clients.get(clientId);
      similarity.update(
        { clientId, taskId, round, fingerprintMatch: client?.fingerprintMatch ?? false },
        splitAtoms(atoms, this.template),
      );
    }, 2);
    return { clients: this.clients.size, models: similarity.size };
  }

  onUpload(listener: (e: UploadEvent) => void): () => void {
    this.uploadListeners.add(listener);
    return () => this.uploadListeners.delete(listener);
  }

  client(clientId: string): ClientRecord | undefined {
    return this.clients.get(clientId);
  }

  listClients(): ClientRecord[] {
    return [...this.clients.values()];
  }

  get clientCount(): number {
    return this.clients.size;
  }

  async register(input: RegisterInput): Promise<RegisterResult> {
    const { config } = this.deps;
    const { token, bindCredential } = this.deps.enroll
      ? this.deps.enroll(
          {
            clientId: input.clientId,
            enrollmentSecret: input.enrollmentSecret,
            clientCredential: input.clientCredential,
          },
          input.call,
        )
      : { token: '', bindCredential: false };
    const existing = this.clients.get(input.clientId);
    // A new id takes its slot before the first await, so simultaneous registrations of new ids
    // cannot all pass the limit; the slot is released when the registration ends either way.
    const reserving = !existing && !this.registering.has(input.clientId);
    if (reserving && this.clients.size + this.registering.size >= config.limits.maxClients) {
      throw exhausted(
        `the federation already has ${this.clients.size} clients (limits.maxClients); ask the operator to raise the limit`,
      );
    }
    if (reserving) this.registering.add(input.clientId);
    try {
      if (bindCredential) await this.checkCredentialBinding(input.clientId, input.clientCredential);
      return await this.registerAdmitted(input, existing, token);
    } finally {
      if (reserving) this.registering.delete(input.clientId);
    }
  }

  /**
   * Trust on first use: the first secret-enrolment of an id binds it to the SHA-256 of the
   * credential it presented (in storage, so across restarts and coordinators sharing a
   * database); later ones must present the same credential. The digest of a 128-bit-or-more
   * random value needs no salt or slow hash: it cannot be brute-forced.
   */
  private async checkCredentialBinding(clientId: string, credential: Uint8Array): Promise<void> {
    const presented = createHash('sha256').update(credential).digest('hex');
    const bound = await this.deps.storage.bindClientCredential(clientId, presented, this.now());
    if (bound === presented) return;
    this.deps.logger.warn('registration refused: the client id is bound to another client credential', {
      client: clientId,
    });
    // clientId is a validated identifier (at most 64 safe characters): quoting it whole is safe.
    throw new RpcError(
      grpc.status.PERMISSION_DENIED,
      `client id '${clientId}' is already enrolled by a client with another credential. ` +
        'If that was this client, start it with the --state-dir it used then (SDK: stateDir); ' +
        `otherwise choose another --id, or ask the operator to free the id (and delete its data): atomlens status --remove-client ${clientId}`,
    );
  }

  private async registerAdmitted(
    input: RegisterInput,
    existing: ClientRecord | undefined,
    token: string,
  ): Promise<RegisterResult> {
    const { config, storage, similarity, sessions } = this.deps;
    const known = new Set(existing?.tasks.map((t) => t.taskId) ?? []);
    const added = input.tasks.filter((t) => !known.has(t.taskId));
    if (known.size + added.length > config.limits.maxTasksPerClient) {
      throw invalid(
        `client ${quoteInput(input.clientId)} would have ${known.size + added.length} tasks; at most ${config.limits.maxTasksPerClient} are allowed`,
      );
    }
    const fingerprintMatch =
      input.alphaFingerprint === '' || input.alphaFingerprint === this.template.alphaFingerprint;
    if (input.alphaFingerprint !== '' && !/^[0-9a-f]{64}$/.test(input.alphaFingerprint)) {
      throw invalid('alpha_fingerprint must be 64 lowercase hex characters (SHA-256) or empty');
    }
    const now = this.now();
    try {
      await storage.upsertClient(
        {
          clientId: input.clientId,
          alphaFingerprint: input.alphaFingerprint,
          fingerprintMatch,
          clientVersion: input.clientVersion,
          registeredAtMs: existing?.registeredAtMs ?? now,
        },
        input.tasks,
      );
    } catch (err) {
      if (err instanceof StorageConflictError) throw failedPrecondition(err.message);
      throw err;
    }
    const record = await storage.getClient(input.clientId);
    if (!record) throw new Error(`client ${input.clientId} vanished after registration`);
    this.clients.set(input.clientId, record);
    if (existing && existing.fingerprintMatch !== fingerprintMatch) {
      similarity.setFingerprintMatch(input.clientId, fingerprintMatch);
    }
    if (!fingerprintMatch) {
      this.deps.logger.warn(
        'client alpha fingerprint differs from the template; its models use the subspace measure',
        {
          client: input.clientId,
        },
      );
    }
    sessions.touch(input.clientId, now);
    const last = await storage.lastRounds(input.clientId);
    return {
      fingerprintMatch,
      progress: record.tasks.map((t) => ({ taskId: t.taskId, lastRound: last.get(t.taskId) ?? 0 })),
      token,
    };
  }

  /**
   * Validates, commits, then updates the similarity index. Throws RpcError; counts every outcome
   * in atomlens_atom_uploads_total.
   */
  async pushAtoms(req: PushAtomsRequest__Output): Promise<PushResult> {
    const { metrics, storage, similarity, sessions } = this.deps;
    let upload: ValidatedUpload;
    try {
      upload = validateUpload(req, this.clients.get(req.clientId), this.template);
    } catch (err) {
      if (err instanceof UploadRejection) {
        metrics.atomUploads.inc({ outcome: err.outcome });
        throw err.error;
      }
      throw err;
    }
    const receivedAtMs = this.now();
    let outcome: Awaited<ReturnType<Storage['putAtoms']>>;
    try {
      outcome = await storage.putAtoms({
        clientId: upload.clientId,
        taskId: upload.taskId,
        round: upload.round,
        atoms: upload.blob,
        stats: upload.stats,
        receivedAtMs,
        templateVersion: this.template.version,
      });
    } catch (err) {
      if (err instanceof StorageBusyError) {
        // Not queued, so not stored: the gRPC layer answers RESOURCE_EXHAUSTED with a retry hint.
        metrics.atomUploads.inc({ outcome: 'busy' });
        throw err;
      }
      metrics.atomUploads.inc({ outcome: 'rejected' });
      // The storage's own words stay in the log: the client learns only that it may retry.
      const id = correlationId();
      this.deps.logger.error('could not store an upload', {
        correlationId: id,
        client: upload.clientId,
        error: (err as Error)?.stack ?? String(err),
      });
      throw new RpcError(
        grpc.status.UNAVAILABLE,
        `the coordinator could not store the upload (correlation id ${id}); the client retries it`,
      );
    }
    sessions.touch(upload.clientId, receivedAtMs);
    if (outcome === 'conflict') {
      metrics.atomUploads.inc({ outcome: 'conflict' });
      const last = (await storage.lastRounds(upload.clientId)).get(upload.taskId) ?? 0;
      throw alreadyExists(
        `round ${upload.round} of client ${quoteInput(upload.clientId)} task ${quoteInput(upload.taskId)} was already acknowledged with different atoms; ` +
          `send the next round instead (last acknowledged round: ${last})`,
      );
    }
    if (outcome === 'duplicate') {
      metrics.atomUploads.inc({ outcome: 'duplicate' });
      const previous = await storage.getPreviousRound(upload.clientId, upload.taskId, upload.round);
      const drift = previous
        ? 1 - modelCosine(upload.layers, splitAtoms(previous.atoms, this.template)).mean
        : undefined;
      return { duplicate: true, round: upload.round, drift };
    }
    const fingerprintMatch = this.clients.get(upload.clientId)?.fingerprintMatch ?? false;
    const unit = unitModelVector(upload.layers, similarity.layout);
    const applied = similarity.updateUnit(
      { clientId: upload.clientId, taskId: upload.taskId, round: upload.round, fingerprintMatch },
      unit,
    );
    let drift = applied.applied === 'latest' ? applied.drift : undefined;
    if (applied.applied !== 'latest') {
      // An older round arrived late: its drift is against the stored round before it.
      const previous = await storage.getPreviousRound(upload.clientId, upload.taskId, upload.round);
      drift = previous
        ? 1 - modelCosine(upload.layers, splitAtoms(previous.atoms, this.template)).mean
        : undefined;
    }
    metrics.atomUploads.inc({ outcome: 'accepted' });
    const event: UploadEvent = {
      clientId: upload.clientId,
      taskId: upload.taskId,
      round: upload.round,
      fingerprintMatch,
      drift,
    };
    for (const listener of this.uploadListeners) {
      try {
        listener(event);
      } catch (err) {
        this.deps.logger.error('upload listener failed', { error: (err as Error).message });
      }
    }
    return { duplicate: false, round: upload.round, drift };
  }

  /**
   * Removes a client and its data (stored uploads and probe summaries, its models in the
   * similarity index, its open session). NOT_FOUND for an unknown id. It may register again
   * afterwards, as a new client; revoke it as well to keep it out.
   */
  async removeClient(clientId: string): Promise<{ uploads: number; probeSummaries: number }> {
    const removed = await this.deps.storage.removeClient(clientId);
    if (!removed && !this.clients.has(clientId)) {
      throw notFound(`no client ${quoteInput(clientId)} is registered; \`atomlens status\` lists them`);
    }
    this.clients.delete(clientId);
    this.deps.clientRemoved?.(clientId);
    this.deps.similarity.removeClient(clientId);
    this.deps.sessions.end(clientId, 'the client was removed by the operator');
    this.deps.logger.info('client removed', { client: clientId, ...removed });
    return removed ?? { uploads: 0, probeSummaries: 0 };
  }

  /** Session hello: the client must be registered. */
  checkSessionHello(clientId: string): void {
    if (!this.clients.has(clientId)) {
      throw failedPrecondition(
        `client ${quoteInput(clientId)} is not registered: call Register before opening a Session`,
      );
    }
  }

  /** The client record of a (client, task) model, or NOT_FOUND naming what is missing. */
  requireModel(clientId: string, taskId: string): ClientRecord {
    const c = this.clients.get(clientId);
    if (!c) throw notFound(`no client ${quoteInput(clientId)} is registered`);
    if (!c.tasks.some((t) => t.taskId === taskId)) {
      throw notFound(
        `client ${quoteInput(clientId)} has no task ${quoteInput(taskId)} (its tasks: ${c.tasks.map((t) => t.taskId).join(', ')})`,
      );
    }
    return c;
  }
}

/** Assembles one PushProbeSummary stream's chunks into complete layers. */
export class ProbeIntake {
  private current:
    | {
        requestId: string;
        layer: string;
        n: number;
        featureDim: number;
        factorRank: number;
        round: number;
        buffer: Buffer;
        filled: number;
      }
    | undefined;
  readonly completed: string[] = [];

  constructor(
    private readonly deps: {
      sessions: SessionRegistry;
      storage: Storage;
      maxLayerBytes: number;
      now: () => number;
    },
  ) {}

  /** Feeds one chunk; resolves after a completed layer is stored and delivered. */
  async chunk(c: {
    requestId: string;
    clientId: string;
    taskId: string;
    round: number;
    layer: string;
    n: number;
    featureDim: number;
    /** 0 or absent: the layer is its Gram matrix (n × n); r ≥ 1: an n × r factor of it. */
    factorRank?: number;
    offset: number;
    data: Buffer;
  }): Promise<void> {
    const pending = this.deps.sessions.pendingProbe(c.requestId);
    if (!pending) {
      throw notFound(
        `probe request ${quoteInput(c.requestId)} is unknown, already answered, failed or past its deadline`,
      );
    }
    if (pending.clientId !== c.clientId || pending.taskId !== c.taskId) {
      throw invalid(
        `probe request ${quoteInput(c.requestId)} was sent to client ${quoteInput(pending.clientId)} task ${quoteInput(pending.taskId)}, ` +
          `not ${quoteInput(c.clientId)} task ${quoteInput(c.taskId)}`,
      );
    }
    if (!pending.layers.includes(c.layer)) {
      throw invalid(
        `layer ${quoteInput(c.layer)} was not requested; probe ${quoteInput(c.requestId)} asks for ${pending.layers.join(', ')}`,
      );
    }
    if (c.n !== pending.probe.size) {
      throw invalid(`n is ${c.n} but probe ${quoteInput(c.requestId)} uses ${pending.probe.size} inputs`);
    }
    const factorRank = c.factorRank ?? 0;
    if (factorRank > c.n) {
      throw invalid(
        `layer ${quoteInput(c.layer)}: factor_rank ${factorRank} exceeds n = ${c.n}; send the ${c.n}×${c.n} Gram matrix instead`,
      );
    }
    const columns = factorRank > 0 ? factorRank : c.n;
    const what = factorRank > 0 ? `${c.n}×${factorRank} Gram factor` : `${c.n}×${c.n} Gram matrix`;
    const bytes = c.n * columns * 4;
    if (bytes > this.deps.maxLayerBytes) {
      throw exhausted(`a ${what} is ${bytes} bytes; limits.maxProbeLayerBytes is ${this.deps.maxLayerBytes}`);
    }
    let cur = this.current;
    if (!cur || cur.requestId !== c.requestId || cur.layer !== c.layer) {
      if (cur)
        throw invalid(
          `layer ${quoteInput(cur.layer)} ended after ${cur.filled} of ${cur.buffer.byteLength} bytes`,
        );
      if (c.offset !== 0)
        throw invalid(`the first chunk of layer ${quoteInput(c.layer)} must have offset 0, got ${c.offset}`);
      cur = {
        requestId: c.requestId,
        layer: c.layer,
        n: c.n,
        featureDim: c.featureDim,
        factorRank,
        round: c.round,
        buffer: Buffer.alloc(bytes),
        filled: 0,
      };
      this.current = cur;
    } else if (
      c.n !== cur.n ||
      c.featureDim !== cur.featureDim ||
      factorRank !== cur.factorRank ||
      c.round !== cur.round
    ) {
      throw invalid(
        `chunks of layer ${quoteInput(c.layer)} disagree on n, feature_dim, factor_rank or round`,
      );
    }
    if (c.offset !== cur.filled) {
      throw invalid(
        `layer ${quoteInput(c.layer)}: chunk offset ${c.offset}, expected ${cur.filled} (chunks must arrive in order)`,
      );
    }
    if (cur.filled + c.data.byteLength > cur.buffer.byteLength) {
      throw invalid(
        `layer ${quoteInput(c.layer)}: chunks exceed the ${cur.buffer.byteLength} bytes of a ${cur.n}×${cur.factorRank || cur.n} float32 matrix`,
      );
    }
    c.data.copy(cur.buffer, cur.filled);
    cur.filled += c.data.byteLength;
    if (cur.filled < cur.buffer.byteLength) return;
    this.current = undefined;
    const width = cur.factorRank || cur.n;
    const gram = new Float32Array(cur.n * width);
    new Uint8Array(gram.buffer).set(cur.buffer);
    for (let i = 0; i < gram.length; i++) {
      if (!Number.isFinite(gram[i]!)) {
        throw invalid(
          `layer ${quoteInput(cur.layer)}: ${cur.factorRank ? 'factor' : 'Gram'} entry [${Math.floor(i / width)}, ${i % width}] is ${gram[i]}; only finite values are accepted`,
        );
      }
    }
    await this.deps.storage.putProbeSummary({
      requestId: cur.requestId,
      clientId: c.clientId,
      taskId: c.taskId,
      round: cur.round,
      layer: cur.layer,
      n: cur.n,
      featureDim: cur.featureDim,
      gram: cur.buffer,
      factorRank: cur.factorRank,
      receivedAtMs: this.deps.now(),
    });
    const summary: ProbeLayerSummary = {
      layer: cur.layer,
      n: cur.n,
      featureDim: cur.featureDim,
      round: cur.round,
      gram,
      factorRank: cur.factorRank,
    };
    this.completed.push(cur.layer);
    if (!this.deps.sessions.deliverLayer(cur.requestId, summary)) {
      throw notFound(
        `probe request ${quoteInput(cur.requestId)} expired while its layer ${quoteInput(cur.layer)} was uploading`,
      );
    }
  }

  /** The stream ended: an unfinished layer is an error. */
  finish(): void {
    const cur = this.current;
    if (cur) {
      throw invalid(
        `stream ended in the middle of layer ${quoteInput(cur.layer)} (${cur.filled} of ${cur.buffer.byteLength} bytes received)`,
      );
    }
  }
}
