// The coordinator's authentication hooks backed by an Authenticator: the per-call `authorize`
// check of the gRPC server, the Register-time `enroll` check, and the HTTP routes' check.
import type { IncomingMessage } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import type { HttpAuthorize } from '../api/http.js';
import { type Authorize, RpcError } from '../calls.js';
import type { Enroll } from '../federation/federation.js';
import type { AuthError, Authenticator, Requirement } from './authenticator.js';

const toRpc = (e: AuthError) => new RpcError(e.code, e.details);

/**
 * Operator calls need an operator token; Federation calls need a client token from their start,
 * and for each client id they act for (the request's client_id, the Session hello's, each probe
 * chunk's) the token of that client, and under mTLS a certificate for that same id. Health calls
 * follow `auth.health`, like /healthz. Register is checked by `enroll` instead.
 */
export function grpcAuthHooks(auth: Authenticator): {
  authorize: Authorize;
  enroll: Enroll;
  clientRemoved: (clientId: string) => void;
  reportViewToken: (reportId: string) => string;
} {
  return {
    clientRemoved: (clientId) => {
      if (auth.enabled) auth.endClientTokens(clientId);
    },
    reportViewToken: (reportId) => (auth.enabled ? auth.reportViewToken(reportId) : ''),
    authorize: (ctx) => {
      if (!auth.enabled) return undefined;
      if (ctx.service === 'Health' && auth.config.http.health === 'open') return undefined;
      let requirement: Requirement;
      if (ctx.service !== 'Federation') requirement = { kind: 'operator' };
      else if (ctx.clientId !== undefined) requirement = { kind: 'client', clientId: ctx.clientId };
      else {
        // A Federation call starting: only a client may make it; which client is checked
        // against each message that names one.
        const who = auth.authenticate(ctx.call);
        if (!who.ok) return toRpc(who.error);
        return who.value.kind === 'client'
          ? undefined
          : new RpcError(grpc.status.PERMISSION_DENIED, 'federation calls need a client token');
      }
      const r = auth.authorize(ctx.call, requirement);
      return r.ok ? undefined : toRpc(r.error);
    },
    enroll: (request, call) => {
      const r = auth.enroll(call ?? { metadata: new grpc.Metadata() }, request);
      if (!r.ok) throw toRpc(r.error);
      return { token: r.value.token, bindCredential: r.value.via === 'secret' };
    },
  };
}

/** HTTP routes: metrics/health as configured, reports and analyses need an operator token. */
export function httpAuthorizeFor(auth: Authenticator): HttpAuthorize {
  return (req: IncomingMessage, route) => {
    const r = auth.authorizeHttp(req.headers.authorization, route, reportView(req));
    return r.ok ? undefined : { status: r.error.httpStatus, message: r.error.details };
  };
}

/** `/reports/<id>.html?view=TOKEN` (or the JSON without .html): the report id and link token. */
function reportView(req: IncomingMessage): { reportId: string; token: string } | undefined {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const token = url.searchParams.get('view');
  const match = /^\/reports\/([^/]+)$/.exec(url.pathname);
  if (!token || !match) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(match[1]!);
  } catch {
    return undefined;
  }
  return { reportId: name.endsWith('.html') ? name.slice(0, -'.html'.length) : name, token };
}
