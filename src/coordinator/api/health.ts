// The standard gRPC health service (grpc.health.v1.Health, implemented by grpc-health-check),
// following the coordinator's readiness like HTTP /readyz: NOT_SERVING until the coordinator is
// up (storage open, state loaded, both services bound), SERVING then, NOT_SERVING again from the
// moment it starts shutting down, when open Watch streams are also ended so that they do not hold
// up draining. Answers for "" (the whole server) and each service's full name.
import type * as grpc from '@grpc/grpc-js';
import { HealthImplementation, service as healthService, type ServingStatus } from 'grpc-health-check';
import type { MethodPolicies, MethodPolicy } from './interceptors.js';

export class HealthStatus {
  private readonly implementation: HealthImplementation;
  private readonly names: string[];
  /** Open Watch streams, ended at shutdown so that they do not hold up draining. */
  private readonly watches = new Set<grpc.ServerWritableStream<unknown, unknown>>();

  /** `services`: full names, e.g. "atomlens.v1.FederationService". */
  constructor(services: readonly string[]) {
    this.names = ['', ...services];
    this.implementation = new HealthImplementation(
      Object.fromEntries(this.names.map((name) => [name, 'NOT_SERVING' satisfies ServingStatus])),
    );
  }

  addTo(server: grpc.Server): void {
    this.implementation.addToServer({
      addService: (service, implementation) => {
        const watch = implementation.watch as grpc.handleServerStreamingCall<unknown, unknown>;
        server.addService(service as unknown as grpc.ServiceDefinition, {
          ...(implementation as grpc.UntypedServiceImplementation),
          watch: (call: grpc.ServerWritableStream<unknown, unknown>) => {
            this.watches.add(call);
            call.on('cancelled', () => this.watches.delete(call));
            watch(call);
          },
        });
      },
    });
  }

  private setAll(status: ServingStatus): void {
    for (const name of this.names) this.implementation.setStatus(name, status);
  }

  serving(): void {
    this.setAll('SERVING');
  }

  /** NOT_SERVING to every watcher, then their streams end (OK): the server is going away. */
  shutDown(): void {
    this.setAll('NOT_SERVING');
    for (const call of this.watches) call.end();
    this.watches.clear();
  }
}

/**
 * Health calls pass through the authorisation hook like every call; the coordinator's hooks let
 * them through unless `auth.health` is "operator" (as for /healthz and /readyz).
 */
export function healthPolicies(): MethodPolicies {
  const policies = new Map<string, MethodPolicy>();
  for (const [method, definition] of Object.entries(healthService)) {
    policies.set(definition.path, { service: 'Health', method, authorize: true });
  }
  return policies;
}
