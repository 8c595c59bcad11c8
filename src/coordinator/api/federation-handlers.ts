// FederationService handlers: decode, delegate to FederationCore / the session registry / probe
// intake, encode. Authorisation, metrics and the mapping of internal errors happen around them,
// in the server's interceptors.
import * as grpc from '@grpc/grpc-js';
import type { FederationServiceHandlers } from '../../generated/atomlens/v1/FederationService.js';
import type { PushProbeSummaryRequest__Output } from '../../generated/atomlens/v1/PushProbeSummaryRequest.js';
import type { SessionRequest__Output } from '../../generated/atomlens/v1/SessionRequest.js';
import type { SessionResponse } from '../../generated/atomlens/v1/SessionResponse.js';
import { templateToWire } from '../../shared/template.js';
import { failedPrecondition, invalid, notFound, RpcError } from '../calls.js';
import type { CoordinatorConfig } from '../config.js';
import { type FederationCore, ProbeIntake } from '../federation/federation.js';
import type { SessionHandle, SessionRegistry } from '../federation/sessions.js';
import { checkClientId, FIELD_LIMITS, validateRegister } from '../federation/validation.js';
import type { Storage } from '../storage/types.js';
import type { MethodPolicy } from './interceptors.js';
import { endStream, reply, statusError } from './rpc.js';

export interface FederationHandlerDeps {
  config: CoordinatorConfig;
  federation: FederationCore;
  sessions: SessionRegistry;
  storage: Storage;
  /** The operator's probe set (float32 LE values, C order) when the template's probe source is 'operator'. */
  probeSet?: Buffer;
}

/** FetchProbeSet chunk size (the proto promises at most 1 MiB). */
const PROBE_SET_CHUNK_BYTES = 1024 * 1024;

/**
 * Register is enrolment (its own check, in FederationCore); every other call needs a client's
 * credentials from its start, and each message naming a client must name that client.
 */
export const FEDERATION_POLICIES: Record<keyof FederationServiceHandlers, MethodPolicy> = {
  Register: { service: 'Federation', method: 'Register', authorize: false },
  PushAtoms: {
    service: 'Federation',
    method: 'PushAtoms',
    authorize: true,
    actsFor: (req: { clientId: string }) => req.clientId,
  },
  Session: {
    service: 'Federation',
    method: 'Session',
    authorize: true,
    actsFor: (msg: SessionRequest__Output, index) => (index === 0 ? msg.hello?.clientId : undefined),
    // A revoked (or expired) token ends the open session at its next heartbeat.
    recheckEachMessage: true,
  },
  PushProbeSummary: {
    service: 'Federation',
    method: 'PushProbeSummary',
    authorize: true,
    actsFor: (chunk: PushProbeSummaryRequest__Output) => chunk.clientId,
  },
  FetchProbeSet: {
    service: 'Federation',
    method: 'FetchProbeSet',
    authorize: true,
    actsFor: (req: { clientId: string }) => req.clientId,
  },
};

export function federationHandlers(deps: FederationHandlerDeps): FederationServiceHandlers {
  const { federation, sessions, config } = deps;
  // The template never changes while the server runs: encode α once.
  const template = templateToWire(federation.template);
  return {
    Register: (call, callback) =>
      reply(async () => {
        const req = call.request;
        const tasks = validateRegister(req, config.limits.maxTasksPerClient);
        const result = await federation.register({
          clientId: req.clientId,
          tasks,
          alphaFingerprint: req.alphaFingerprint,
          clientVersion: req.clientVersion,
          enrollmentSecret: req.enrollmentSecret,
          clientCredential: req.clientCredential,
          call,
        });
        return {
          template,
          fingerprintMatch: result.fingerprintMatch,
          progress: result.progress,
          token: result.token,
          heartbeatIntervalMs: sessions.heartbeatIntervalMs,
        };
      }, callback),

    PushAtoms: (call, callback) =>
      reply(
        () =>
          federation.pushAtoms(call.request).then((result) => ({
            duplicate: result.duplicate,
            round: result.round,
            hasDrift: result.drift !== undefined,
            drift: result.drift ?? 0,
          })),
        callback,
      ),

    Session: (call) => runSession(call, federation, sessions, config.limits.firstMessageMs),

    FetchProbeSet: (call) =>
      endStream(
        () => streamProbeSet(call, deps.probeSet, federation.template.probe.sha256),
        call as grpc.ServerWritableStream<unknown, unknown>,
      ),

    PushProbeSummary: (call, callback) => {
      const intake = new ProbeIntake({
        sessions,
        storage: deps.storage,
        maxLayerBytes: config.limits.maxProbeLayerBytes,
        now: Date.now,
      });
      reply(() => consumeChunks(call, intake, config.limits.firstMessageMs), callback);
    },
  };
}

/** Writes the probe set from the requested offset in chunks, waiting for the stream to drain. */
async function streamProbeSet(
  call: Parameters<FederationServiceHandlers['FetchProbeSet']>[0],
  bytes: Buffer | undefined,
  sha256: string | undefined,
): Promise<void> {
  const req = call.request;
  if (!bytes || !sha256) throw failedPrecondition('this federation has no operator probe set');
  if (req.sha256 !== sha256) throw notFound(`probe set ${req.sha256} is not this federation's (${sha256})`);
  const start = Number(req.offset);
  if (!Number.isSafeInteger(start) || start < 0 || start > bytes.length || start % 4 !== 0) {
    throw invalid(`offset ${String(req.offset)} is not a multiple of 4 within the ${bytes.length} bytes`);
  }
  for (let offset = start; offset < bytes.length; offset += PROBE_SET_CHUNK_BYTES) {
    if (call.cancelled) return;
    const data = bytes.subarray(offset, Math.min(bytes.length, offset + PROBE_SET_CHUNK_BYTES));
    if (!call.write({ offset, data, totalBytes: bytes.length })) {
      await new Promise<void>((resolve) => call.once('drain', resolve));
    }
  }
}

/** Serialises chunk handling: each chunk is stored before the next is read. */
function consumeChunks(
  call: grpc.ServerReadableStream<PushProbeSummaryRequest__Output, unknown>,
  intake: ProbeIntake,
  firstMessageMs: number,
): Promise<{ layers: string[] }> {
  return new Promise((resolve, reject) => {
    let chain = Promise.resolve();
    let failed = false;
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      clearTimeout(firstMessage);
      call.removeAllListeners('data');
      reject(err);
    };
    const firstMessage = firstMessageTimer(firstMessageMs, 'PushProbeSummary', 'chunk', fail);
    call.on('data', (c: PushProbeSummaryRequest__Output) => {
      clearTimeout(firstMessage);
      call.pause();
      chain = chain
        .then(() => (failed ? undefined : intake.chunk(c)))
        .then(
          () => {
            call.resume();
          },
          (err) => fail(err),
        );
    });
    call.on('end', () => {
      clearTimeout(firstMessage);
      chain.then(() => {
        if (failed) return;
        try {
          intake.finish();
          resolve({ layers: intake.completed });
        } catch (err) {
          fail(err);
        }
      });
    });
    // Ended by the client, or refused by an interceptor: nothing more will arrive.
    call.on('cancelled', () => fail(new RpcError(grpc.status.CANCELLED, 'the upload was cancelled')));
    call.on('error', (err) => fail(err));
  });
}

/**
 * One Session stream: the first message must be a hello from a registered client; every message
 * after it is a heartbeat (and may report a probe failure).
 */
function runSession(
  call: grpc.ServerDuplexStream<SessionRequest__Output, SessionResponse>,
  federation: FederationCore,
  sessions: SessionRegistry,
  firstMessageMs: number,
): void {
  let handle: SessionHandle | undefined;
  let finished = false;
  const failWith = (err: RpcError) => {
    clearTimeout(firstMessage);
    if (finished) return;
    finished = true;
    call.emit('error', statusError(err));
  };
  const firstMessage = firstMessageTimer(firstMessageMs, 'Session', 'hello', failWith);
  const hello = (msg: SessionRequest__Output) => {
    if (msg.kind !== 'hello' || !msg.hello) {
      failWith(failedPrecondition('the first Session message must be a hello carrying the client_id'));
      return;
    }
    try {
      checkClientId(msg.hello.clientId, 'hello.client_id');
      federation.checkSessionHello(msg.hello.clientId);
    } catch (err) {
      failWith(err as RpcError);
      return;
    }
    if (sessions.isStopped()) {
      // A client reconnecting while the coordinator shuts down: retry against its next instance.
      failWith(new RpcError(grpc.status.UNAVAILABLE, 'the coordinator is shutting down'));
      return;
    }
    handle = sessions.open(msg.hello.clientId, {
      send: (m) => {
        if (!finished && call.writable) call.write(m);
      },
      end: (reason) =>
        failWith(new RpcError(grpc.status.UNAVAILABLE, `session closed by the coordinator: ${reason}`)),
    });
  };
  call.on('data', (msg: SessionRequest__Output) => {
    clearTimeout(firstMessage);
    if (finished) return;
    if (!handle) {
      hello(msg);
      return;
    }
    sessions.heartbeat(handle);
    if (msg.kind === 'probeFailure' && msg.probeFailure) {
      const { requestId, message } = msg.probeFailure;
      // Free text for a report line: cut, not refused, so the failure still reaches the analysis.
      const cut =
        message.length > FIELD_LIMITS.probeFailureMessage
          ? `${message.slice(0, FIELD_LIMITS.probeFailureMessage - 1)}…`
          : message;
      sessions.probeFailed(handle.clientId, requestId, cut);
    }
  });
  call.on('end', () => {
    clearTimeout(firstMessage);
    if (handle) sessions.closed(handle, true);
    if (!finished) {
      finished = true;
      call.end();
    }
  });
  call.on('cancelled', () => {
    clearTimeout(firstMessage);
    finished = true;
    if (handle) sessions.closed(handle, false, 'the client cancelled the stream or the connection broke');
  });
  call.on('error', () => {
    finished = true;
    if (handle) sessions.closed(handle, false, 'stream error');
  });
}

/**
 * Ends a stream whose first message has not arrived within `ms` (DEADLINE_EXCEEDED): an opened
 * stream that never speaks would otherwise hold its resources until the connection dies.
 */
function firstMessageTimer(
  ms: number,
  rpc: string,
  what: string,
  fail: (err: RpcError) => void,
): NodeJS.Timeout {
  const timer = setTimeout(
    () =>
      fail(
        new RpcError(
          grpc.status.DEADLINE_EXCEEDED,
          `no ${what} within ${ms} ms of opening ${rpc} (limits.firstMessageMs); send it first`,
        ),
      ),
    ms,
  );
  timer.unref();
  return timer;
}
