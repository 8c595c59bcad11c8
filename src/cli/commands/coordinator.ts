// `atomlens coordinator`: runs the coordinator until SIGINT/SIGTERM, then drains and closes the
// database. Prints one line per listener for scripts to parse:
//   grpc listening on HOST:PORT
//   http listening on http://HOST:PORT
import { createAnalysisService } from '../../coordinator/analysis.js';
import { loadConfigFile, resolveConfig } from '../../coordinator/config.js';
import { startCoordinator } from '../../coordinator/coordinator.js';
import { createLogger } from '../../shared/log.js';
import { CliError, type CommandSpec, EXIT, intFlag, type Parsed } from '../args.js';

export const spec: CommandSpec = {
  name: 'coordinator',
  summary:
    'Run the coordinator: gRPC (Federation + Operator) and HTTP (/metrics, /healthz, /readyz, /reports)',
  usage: 'atomlens coordinator [--grpc-port P] [--http-port Q] [--data DIR] [--config FILE] [--host H]',
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
    config: {
      type: 'string',
      value: 'FILE',
      description:
        'JSON configuration merged over the defaults (template, limits, sessions, storage, metrics, analysis, escalation)',
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
      description: 'Worker threads for GW analyses (default: available CPU cores)',
    },
    'without-analysis': {
      type: 'boolean',
      description:
        'Run level 0 only: no escalation, probes or reports (report calls answer UNIMPLEMENTED/501)',
    },
    'print-config': { type: 'boolean', description: 'Print the resolved configuration as JSON and exit' },
  },
  details:
    'On start it prints "grpc listening on HOST:PORT" and "http listening on http://HOST:PORT".\n' +
    'SIGINT/SIGTERM stop it: sessions end, calls in flight drain (up to 5 s), the database is closed.\n' +
    'Everything acknowledged to a client has been committed to DIR/atomlens.db before the answer.',
};

export async function run(parsed: Parsed): Promise<number> {
  const v = parsed.values;
  const grpcPort = intFlag(v, 'grpc-port', 0, 65535);
  const httpPort = intFlag(v, 'http-port', 0, 65535);
  const host = String(v.host);
  const httpHost = typeof v['http-host'] === 'string' ? v['http-host'] : host;
  let config: ReturnType<typeof resolveConfig>;
  try {
    config = typeof v.config === 'string' ? loadConfigFile(v.config) : resolveConfig({});
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.badInput);
  }
  if (v['print-config']) {
    process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
    return EXIT.ok;
  }
  const workers =
    typeof v['analysis-workers'] === 'string' ? intFlag(v, 'analysis-workers', 1, 64) : undefined;
  const logger = createLogger('coordinator');
  let running: Awaited<ReturnType<typeof startCoordinator>>;
  try {
    running = await startCoordinator({
      dataDir: String(v.data),
      grpcHost: host,
      grpcPort,
      httpHost,
      httpPort,
      config,
      logger,
      ...(v['without-analysis'] ? {} : { analysis: createAnalysisService(workers ? { workers } : {}) }),
    });
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.failure);
  }
  const show = (h: string) => (h.includes(':') ? `[${h}]` : h);
  process.stdout.write(`grpc listening on ${show(host)}:${running.grpcPort}\n`);
  process.stdout.write(`http listening on http://${show(httpHost)}:${running.httpPort}\n`);

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
