// gRPC server: both services of proto/atomlens/v1/atomlens.proto and the standard health service
// on one port. Metrics, error mapping and authorisation are server interceptors (interceptors.ts)
// around the handlers (federation-handlers.ts, operator-handlers.ts). TLS plugs in through
// `credentials`, authentication through `authorize`.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../../shared/log.js';
import { loadAtomlensProto } from '../../shared/proto.js';
import type { Authorize } from '../calls.js';
import type { CoordinatorConfig } from '../config.js';
import type { FederationCore } from '../federation/federation.js';
import type { SessionRegistry } from '../federation/sessions.js';
import type { AnalysisService } from '../level1/types.js';
import type { CoordinatorMetrics } from '../metrics.js';
import type { Storage } from '../storage/types.js';
import { FEDERATION_POLICIES, federationHandlers } from './federation-handlers.js';
import { HealthStatus, healthPolicies } from './health.js';
import {
  authorizationInterceptor,
  type MethodPolicies,
  type MethodPolicy,
  statusInterceptor,
} from './interceptors.js';
import { OPERATOR_POLICIES, operatorHandlers } from './operator-handlers.js';
import type { OperatorQueries } from './operator-queries.js';

export interface ServerDeps {
  config: CoordinatorConfig;
  federation: FederationCore;
  operator: OperatorQueries;
  sessions: SessionRegistry;
  storage: Storage;
  analysis: AnalysisService | undefined;
  metrics: CoordinatorMetrics;
  logger: Logger;
  /** Per-call authorisation; absent = every call allowed. */
  authorize: Authorize | undefined;
  /** Link tokens for report pages; absent = none issued. */
  reportViewToken?: ((reportId: string) => string) | undefined;
  /** The operator's probe set (float32 LE values, C order) when the template's probe source is 'operator'. */
  probeSet?: Buffer;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  /** Default: insecure (plaintext). */
  credentials?: grpc.ServerCredentials;
}

/** Largest response we send (similarity matrices, reports with HTML). */
const MAX_SEND_BYTES = 256 * 1024 * 1024;

/** Each RPC's policy keyed by its path, from the service definition the server registers. */
function byPath(
  definition: grpc.ServiceDefinition,
  policies: Record<string, MethodPolicy>,
): [string, MethodPolicy][] {
  return Object.entries(policies).map(([name, policy]) => {
    const method = definition[name];
    if (!method) throw new Error(`the service definition has no method ${name}`);
    return [method.path, policy];
  });
}

/** `/atomlens.v1.FederationService/Register` → `atomlens.v1.FederationService`. */
const serviceName = (definition: grpc.ServiceDefinition) => Object.values(definition)[0]!.path.split('/')[1]!;

export function createGrpcServer(deps: ServerDeps): { server: grpc.Server; health: HealthStatus } {
  const proto = loadAtomlensProto();
  const federation = proto.atomlens.v1.FederationService.service;
  const operator = proto.atomlens.v1.OperatorService.service;
  const policies: MethodPolicies = new Map([
    ...byPath(federation, FEDERATION_POLICIES),
    ...byPath(operator, OPERATOR_POLICIES),
    ...healthPolicies(),
  ]);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': deps.config.limits.maxMessageBytes,
    'grpc.max_send_message_length': MAX_SEND_BYTES,
    // Bounds on what one peer can hold open: streams per connection (HTTP/2 SETTINGS; a client
    // asking for more waits for one to finish), and connections left without calls.
    'grpc.max_concurrent_streams': deps.config.limits.maxStreamsPerConnection,
    'grpc.max_connection_idle_ms': deps.config.limits.idleConnectionMs,
    // Transport-level liveness in addition to Session heartbeats: a dead peer is noticed even
    // while no application message is due.
    'grpc.keepalive_time_ms': 30_000,
    'grpc.keepalive_timeout_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    // Channelz stays on (grpc-js' default) although it is not served here: grpc-js 1.14 tracks
    // open connections for forceShutdown() only with it on, and with it off a stopped
    // coordinator kept answering its clients' open connections (a restarted coordinator's
    // clients reached the old one, whose storage was closed).
    // Outermost first: metrics see the final status of every call, refusals included.
    interceptors: [
      statusInterceptor(deps.metrics, deps.logger, policies),
      ...(deps.authorize ? [authorizationInterceptor(deps.authorize, policies)] : []),
    ],
  });
  server.addService(federation, federationHandlers(deps));
  server.addService(operator, operatorHandlers(deps.operator, deps.analysis, deps.reportViewToken));
  const health = new HealthStatus([serviceName(federation), serviceName(operator)]);
  health.addTo(server);
  return { server, health };
}

/** Binds and resolves with the port actually bound (port 0 = pick one). */
export function bindGrpcServer(server: grpc.Server, options: GrpcServerOptions): Promise<number> {
  const address = options.host.includes(':')
    ? `[${options.host}]:${options.port}`
    : `${options.host}:${options.port}`;
  return new Promise((resolve, reject) => {
    server.bindAsync(address, options.credentials ?? grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(new Error(`cannot listen for gRPC on ${address}: ${err.message}`));
      else resolve(port);
    });
  });
}
