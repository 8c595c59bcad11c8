// Transport security and authentication for startCoordinator, from files and configuration:
// one place that turns "TLS files + auth section" into the coordinator's hooks (gRPC credentials,
// per-call authorize, Register-time enroll, HTTP authorize, HTTPS options), so the CLI, the demo
// and tests configure security the same way.

import type { Logger } from '../../shared/log.js';
import {
  grpcServerCredentials,
  httpsServerOptions,
  loadServerTls,
  type ServerTlsFiles,
  type ServerTlsMaterial,
} from '../../shared/tls.js';
import type { CoordinatorOptions } from '../coordinator.js';
import { type Authenticator, openAuthenticator } from './authenticator.js';
import { type AuthConfig, checkAuthUsable } from './config.js';
import { grpcAuthHooks, httpAuthorizeFor } from './hooks.js';

export interface SecurityInput {
  /** Where the token key and revocation list live (`<dataDir>/auth/`). */
  dataDir: string;
  /** TLS for gRPC (and HTTP unless httpPlaintext); absent = plaintext. */
  tls?: ServerTlsFiles;
  /** Serve HTTP without TLS even when gRPC uses it (explicit opt-out). */
  httpPlaintext?: boolean;
  /** Resolved auth configuration (resolveAuthConfig); absent or disabled = no authentication. */
  auth?: AuthConfig;
  /** Clock for token expiry (tests). */
  now?: () => number;
  /** Where revocations made by another process (and an unreadable revocation file) are logged. */
  logger?: Logger;
}

export interface Security {
  tls: ServerTlsMaterial | undefined;
  authenticator: Authenticator | undefined;
  /** Spread into startCoordinator's options. */
  options: Pick<
    CoordinatorOptions,
    | 'grpcCredentials'
    | 'authorize'
    | 'enroll'
    | 'clientRemoved'
    | 'httpAuthorize'
    | 'httpsOptions'
    | 'reportViewToken'
  >;
  /** One line for the log saying what is protected how (no secrets). */
  summary: string;
}

/** Loads TLS files and the token key; throws TlsConfigError / AuthConfigError with the fix. */
export function prepareSecurity(input: SecurityInput): Security {
  const tls = input.tls ? loadServerTls(input.tls) : undefined;
  const auth = input.auth?.enabled ? input.auth : undefined;
  if (auth)
    checkAuthUsable(auth, { tls: tls !== undefined, clientCertificates: tls?.requireClientCert ?? false });
  const logger = input.logger;
  const authenticator = auth
    ? openAuthenticator(
        input.dataDir,
        auth,
        input.now,
        logger && {
          revoked: (clientId) =>
            logger.warn('client revoked: its tokens are refused and its open session ends', {
              client: clientId,
            }),
          unreadable: (message) => logger.error('revocation list unreadable', { error: message }),
        },
      )
    : undefined;
  const options: Security['options'] = {};
  if (tls) {
    options.grpcCredentials = grpcServerCredentials(tls);
    if (!input.httpPlaintext) options.httpsOptions = httpsServerOptions(tls);
  }
  if (authenticator) {
    Object.assign(options, grpcAuthHooks(authenticator));
    options.httpAuthorize = httpAuthorizeFor(authenticator);
  }
  const parts = [
    tls
      ? `TLS (certificate CN=${tls.subjectCn}, valid to ${tls.validTo.toISOString().slice(0, 10)})`
      : 'PLAINTEXT',
    tls?.requireClientCert ? 'mutual TLS (client certificate CN = client id)' : undefined,
    tls && input.httpPlaintext ? 'HTTP plaintext' : undefined,
    auth
      ? `tokens on (enrolment by ${[auth.enrollmentSecret !== undefined ? 'secret' : '', tls?.requireClientCert && auth.mtlsEnrollment ? 'mTLS' : ''].filter(Boolean).join(' or ')}; ${auth.operatorTokenDigests.length} operator token(s); /metrics ${auth.http.metrics})`
      : 'authentication OFF',
  ].filter(Boolean);
  return { tls, authenticator, options, summary: parts.join(', ') };
}

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
