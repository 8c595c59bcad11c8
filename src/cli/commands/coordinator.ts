// `atomlens coordinator`: runs the coordinator until SIGINT/SIGTERM, then drains and closes the
// database. Prints one line per listener for scripts to parse:
//   grpc listening on HOST:PORT
//   http listening on http://HOST:PORT

import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { DEFAULT_PROBE_COST, PROBE_COSTS } from '../../analysis/representation.js';
import { openAuthenticator } from '../../coordinator/auth/authenticator.js';
import { type AuthConfig, AuthConfigError, resolveAuthConfig } from '../../coordinator/auth/config.js';
import { isLoopbackHost, prepareSecurity, type Security } from '../../coordinator/auth/security.js';
import { type CoordinatorConfig, loadConfigFile, resolveConfig } from '../../coordinator/config.js';
import { startCoordinator } from '../../coordinator/coordinator.js';
import { createAnalysisService } from '../../coordinator/level1/analysis-service.js';
import { createLogger, type Logger } from '../../shared/log.js';
import { readNpy } from '../../shared/npy.js';
import type { ModelTemplate } from '../../shared/template.js';
import { readModelTemplateFile } from '../../shared/template-file.js';
import { CliError, type CommandSpec, choiceFlag, EXIT, intFlag, type Parsed, UsageError } from '../args.js';

export const spec: CommandSpec = {
  name: 'coordinator',
  summary:
    'Run the coordinator: gRPC (Federation + Operator) and HTTP (/metrics, /healthz, /readyz, /reports)',
  usage:
    'atomlens coordinator [--grpc-port P] [--http-port Q] [--data DIR | --store postgres://…] [--config FILE] [--template FILE] [--probe-set probe.npy] [--host H] [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE] | --insecure]',
  options: {
    'grpc-port': {
      type: 'string',
      value: 'P',
      description: 'gRPC port; 0 picks a free one',
      default: '50051',
    },
    'http-port': {
      type: 'string',
      value: 'Q',
      description: 'HTTP port for metrics and reports; 0 picks a free one',
      default: '9464',
    },
    data: {
      type: 'string',
      value: 'DIR',
      description: 'Data directory (SQLite database atomlens.db)',
      default: './atomlens-data',
    },
    store: {
      type: 'string',
      value: 'URL',
      description:
        'Keep the federation in PostgreSQL (postgres://user@host:5432/db; the password may come from PGPASSWORD) instead of SQLite in --data',
    },
    template: {
      type: 'string',
      value: 'FILE',
      description:
        "The federation's template file (α and initial atoms explicit, e.g. templates/demo.template.json, which the demo uses); without it α is generated from the config's template section (its alphaSeed)",
    },
    'probe-set': {
      type: 'string',
      value: 'probe.npy',
      description:
        'Probe inputs chosen by the operator (.npy, float32, n × input shape); clients fetch them over gRPC and verify them by SHA-256',
    },
    config: {
      type: 'string',
      value: 'FILE',
      description:
        'JSON configuration merged over the defaults (template, limits, sessions, storage, metrics, analysis, escalation, auth)',
    },
    host: {
      type: 'string',
      value: 'H',
      description: 'Address to listen on (0.0.0.0 for every interface)',
      default: '127.0.0.1',
    },
    'http-host': { type: 'string', value: 'H', description: 'Address for HTTP if different from --host' },
    'analysis-workers': {
      type: 'string',
      value: 'N',
      description:
        'Worker threads for GW analyses (default: available CPU cores); with --store, 0 leaves every solve to `atomlens worker` processes',
    },
    'gw-cost': {
      type: 'string',
      value: 'COST',
      description: `What GW compares probe layers by: ${PROBE_COSTS.join(' or ')} (squared) distances between probe inputs; overrides the config's analysis.cost (default ${DEFAULT_PROBE_COST}, see docs/EVIDENCE.md)`,
    },
    'without-analysis': {
      type: 'boolean',
      description:
        'Run level 0 only: no escalation, probes or reports (report calls answer UNIMPLEMENTED/501)',
    },
    'tls-cert': {
      type: 'string',
      value: 'FILE',
      description: 'TLS certificate chain (PEM) for gRPC and HTTPS; turns token authentication on by default',
    },
    'tls-key': { type: 'string', value: 'FILE', description: 'Private key (PEM) of --tls-cert' },
    'tls-client-ca': {
      type: 'string',
      value: 'FILE',
      description:
        'Mutual TLS: require client certificates signed by this CA; their CN must be the client id',
    },
    insecure: {
      type: 'boolean',
      description: 'Serve plaintext on a non-loopback address (trusted networks only)',
    },
    'http-insecure': {
      type: 'boolean',
      description: 'Serve HTTP (metrics, reports) without TLS even when gRPC uses it',
    },
    'revoke-client': {
      type: 'string',
      value: 'ID',
      description:
        'Revoke every token of client ID and block its enrolment (in DIR; a running coordinator picks it up within a second), then exit',
    },
    'reinstate-client': {
      type: 'string',
      value: 'ID',
      description: 'Let a revoked client enrol again, then exit',
    },
    'revoke-token': { type: 'string', value: 'TOKEN', description: 'Revoke one client token, then exit' },
    'print-config': { type: 'boolean', description: 'Print the resolved configuration as JSON and exit' },
  },
  details:
    'On start it prints "grpc listening on HOST:PORT" and "http listening on http://HOST:PORT" (https:// with TLS).\n' +
    'SIGINT/SIGTERM stop it: sessions end, calls in flight drain (up to 5 s), the database is closed.\n' +
    'Everything acknowledged to a client has been committed (DIR/atomlens.db, or PostgreSQL with --store) before the answer.\n' +
    'Security: plaintext is served only on loopback addresses or with --insecure. With --tls-cert/--tls-key\n' +
    'authentication is on unless the config says auth.enabled=false: clients enrol with auth.enrollmentSecret\n' +
    '(or ATOMLENS_ENROLLMENT_SECRET) or, with --tls-client-ca, by their certificate; operator calls and the\n' +
    'report routes need an operator token (auth.operatorTokens / ATOMLENS_OPERATOR_TOKEN). See docs/security.md.',
};

export async function run(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  const grpcPort = intFlag(v, 'grpc-port', 0, 65535);
  const httpPort = intFlag(v, 'http-port', 0, 65535);
  const host = String(v.host);
  const httpHost = typeof v['http-host'] === 'string' ? v['http-host'] : host;
  // --print-config and start-up validate the same way: the whole file by the configuration
  // schema, then the auth section's secrets (files, environment, lengths).
  const { config, auth } = configFromFlags(v);
  if (typeof v['gw-cost'] === 'string') config.analysis.cost = choiceFlag(v, 'gw-cost', PROBE_COSTS);
  if (v['print-config']) {
    process.stdout.write(`${JSON.stringify(printableConfig(config, auth), null, 2)}\n`);
    return EXIT.ok;
  }
  const probeSet = probeSetFromFlags(v);
  const template = templateFromFlags(v, probeSet?.shape);
  const revocation = revocationFromFlags(v, auth);
  if (revocation !== undefined) return revocation;
  const logger = createLogger('coordinator');
  const security = securityFromFlags(v, host, httpHost, auth, logger);
  const store = typeof v.store === 'string' ? v.store : undefined;
  // With PostgreSQL, GW solves are queue jobs; 0 leaves them all to `atomlens worker` processes.
  const workers =
    typeof v['analysis-workers'] === 'string' ? intFlag(v, 'analysis-workers', store ? 0 : 1, 64) : undefined;
  let running: Awaited<ReturnType<typeof startCoordinator>>;
  try {
    running = await startCoordinator({
      dataDir: String(v.data),
      ...(store ? { store } : {}),
      grpcHost: host,
      grpcPort,
      httpHost,
      httpPort,
      config,
      ...(template ? { template } : {}),
      ...(probeSet ? { probeSet } : {}),
      logger,
      ...security.options,
      ...(v['without-analysis']
        ? {}
        : {
            analysis: createAnalysisService({
              ...(workers !== undefined ? { workers } : {}),
              ...(store ? { queue: { connectionString: store } } : {}),
            }),
          }),
    });
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.failure);
  }
  const show = (h: string) => (h.includes(':') ? `[${h}]` : h);
  process.stdout.write(`grpc listening on ${show(host)}:${running.grpcPort}\n`);
  const scheme = security.options.httpsOptions ? 'https' : 'http';
  process.stdout.write(`http listening on ${scheme}://${show(httpHost)}:${running.httpPort}\n`);
  logger.info(`security: ${security.summary}`);
  if (!security.tls && !(isLoopbackHost(host) && isLoopbackHost(httpHost))) {
    logger.warn(
      'serving PLAINTEXT beyond loopback (--insecure): anyone on the network can read and forge traffic',
    );
  }

  return new Promise<number>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn(`second ${signal}: exiting without draining`);
        process.exit(EXIT.failure);
      }
      stopping = true;
      logger.info(`${signal}: draining and shutting down`);
      running.stop({ drain: true }).then(
        () => resolve(EXIT.ok),
        (err: unknown) => {
          logger.error('shutdown failed', { error: String(err) });
          resolve(EXIT.failure);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * The configuration file (or the defaults) and its auth section resolved. Authentication
 * defaults to on when --tls-cert is given. Throws CliError (exit 4) naming the bad key.
 */
function configFromFlags(v: Parsed['values']): { config: CoordinatorConfig; auth: AuthConfig } {
  const configFile = typeof v.config === 'string' ? v.config : undefined;
  try {
    const config = configFile ? loadConfigFile(configFile) : resolveConfig({});
    const auth = resolveAuthConfig(
      config.auth,
      process.env,
      configFile ? dirname(configFile) : '.',
      typeof v['tls-cert'] === 'string',
    );
    return { config, auth };
  } catch (err) {
    const where = configFile && err instanceof AuthConfigError ? `config file ${configFile}: ` : '';
    throw new CliError(`${where}${(err as Error).message}`, EXIT.badInput);
  }
}

/** The template from --template FILE, if given (else the coordinator generates α from the config's seed). */
function templateFromFlags(v: Parsed['values'], probeSetShape?: number[]): ModelTemplate | undefined {
  if (typeof v.template !== 'string') return undefined;
  try {
    return readModelTemplateFile(v.template, probeSetShape);
  } catch (err) {
    throw new CliError(`--template: ${(err as Error).message}`, EXIT.badInput);
  }
}

/** The operator's probe set from --probe-set (float32 .npy), if given. */
function probeSetFromFlags(v: Parsed['values']): { values: Float32Array; shape: number[] } | undefined {
  if (typeof v['probe-set'] !== 'string') return undefined;
  const path = v['probe-set'];
  let npy: ReturnType<typeof readNpy>;
  try {
    npy = readNpy(readFileSync(path));
  } catch (err) {
    throw new CliError(`--probe-set ${path}: ${(err as Error).message}`, EXIT.badInput);
  }
  if (npy.dtype !== 'float32') {
    throw new CliError(
      `--probe-set ${path} holds ${npy.dtype}; save it as float32 (numpy: x.astype('float32'))`,
      EXIT.badInput,
    );
  }
  if (npy.shape.length < 2) {
    throw new CliError(
      `--probe-set ${path} must be n × input shape, got [${npy.shape.join(', ')}]`,
      EXIT.badInput,
    );
  }
  return { values: Float32Array.from(npy.data), shape: npy.shape };
}

/** TLS files from the flags, and the hooks for the resolved auth configuration. */
function securityFromFlags(
  v: Parsed['values'],
  host: string,
  httpHost: string,
  auth: AuthConfig,
  logger: Logger,
): Security {
  const str = (name: string) => (typeof v[name] === 'string' ? (v[name] as string) : undefined);
  const cert = str('tls-cert');
  const key = str('tls-key');
  const clientCa = str('tls-client-ca');
  if ((cert === undefined) !== (key === undefined)) {
    throw new UsageError('--tls-cert and --tls-key go together (scripts/make-certs.sh DIR creates both)');
  }
  if (clientCa !== undefined && cert === undefined) {
    throw new UsageError('--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key as well');
  }
  if (cert !== undefined && v.insecure) throw new UsageError('--insecure contradicts --tls-cert; choose one');
  if (cert === undefined && !v.insecure && !(isLoopbackHost(host) && isLoopbackHost(httpHost))) {
    throw new UsageError(
      `refusing to serve plaintext on ${host === httpHost ? host : `${host}/${httpHost}`}: pass --tls-cert FILE --tls-key FILE ` +
        '(scripts/make-certs.sh creates a local CA and certificates), or --insecure to accept plaintext deliberately',
    );
  }
  try {
    return prepareSecurity({
      dataDir: String(v.data),
      ...(cert && key
        ? { tls: { cert, key, ...(clientCa ? { clientCa, requireClientCert: true } : {}) } }
        : {}),
      httpPlaintext: v['http-insecure'] === true,
      auth,
      logger,
    });
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.badInput);
  }
}

/** The configuration as resolved, secrets replaced, for --print-config. */
function printableConfig(config: CoordinatorConfig, auth: AuthConfig): unknown {
  const section = { ...config.auth, enabled: auth.enabled };
  if (section.enrollmentSecret !== undefined) section.enrollmentSecret = '<redacted>';
  if (section.operatorTokens) {
    section.operatorTokens = section.operatorTokens.map((t) => (t.startsWith('sha256:') ? t : '<redacted>'));
  }
  return { ...config, auth: section };
}

/** --revoke-client / --reinstate-client / --revoke-token: edit DIR/auth/revocations.json and exit. */
function revocationFromFlags(v: Parsed['values'], resolved: AuthConfig): number | undefined {
  const client = typeof v['revoke-client'] === 'string' ? v['revoke-client'] : undefined;
  const reinstate = typeof v['reinstate-client'] === 'string' ? v['reinstate-client'] : undefined;
  const token = typeof v['revoke-token'] === 'string' ? v['revoke-token'] : undefined;
  if (client === undefined && reinstate === undefined && token === undefined) return undefined;
  // Revocations live with the token key, which exists only with authentication on.
  const auth: AuthConfig = { ...resolved, enabled: true };
  const authenticator = openAuthenticator(String(v.data), auth);
  if (client !== undefined) {
    authenticator.revokeClient(client);
    process.stdout.write(`revoked every token of client '${client}'; it cannot enrol until reinstated\n`);
  }
  if (reinstate !== undefined) {
    authenticator.reinstateClient(reinstate);
    process.stdout.write(`client '${reinstate}' may enrol again (its old tokens stay revoked)\n`);
  }
  if (token !== undefined) {
    if (!authenticator.revokeToken(token)) {
      throw new CliError(
        `that token was not issued with the key in ${String(v.data)}/auth/token-key`,
        EXIT.badInput,
      );
    }
    process.stdout.write('token revoked\n');
  }
  return EXIT.ok;
}
