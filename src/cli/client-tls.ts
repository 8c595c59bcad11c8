// The flags with which a CLI tool dials the coordinator over TLS, shared by `atomlens client`
// and the operator commands (OPERATOR_OPTIONS in operator-flags.ts) so that they read and fail the same everywhere.
import { type ClientTlsMaterial, clientTlsFromFlags, TlsConfigError } from '../shared/tls.js';
import { CliError, EXIT, type OptionSpec, type Parsed } from './args.js';

export const CLIENT_TLS_OPTIONS: Record<string, OptionSpec> = {
  tls: { type: 'boolean', description: 'Connect with TLS (system roots unless --ca)' },
  ca: {
    type: 'string',
    value: 'FILE',
    description: "CA bundle of the coordinator's certificate (implies --tls)",
  },
  cert: { type: 'string', value: 'FILE', description: 'Client certificate for mutual TLS (implies --tls)' },
  key: { type: 'string', value: 'FILE', description: 'Private key of --cert' },
};

/**
 * TLS material from the CLIENT_TLS_OPTIONS flags (undefined for plaintext); a bad file is a
 * CliError with exit code 4 whose message names the file and the fix.
 */
export function clientTlsFromCliFlags(values: Parsed['values']): ClientTlsMaterial | undefined {
  try {
    return clientTlsFromFlags({
      tls: values.tls === true,
      ...(typeof values.ca === 'string' ? { ca: values.ca } : {}),
      ...(typeof values.cert === 'string' ? { cert: values.cert } : {}),
      ...(typeof values.key === 'string' ? { key: values.key } : {}),
    });
  } catch (err) {
    if (err instanceof TlsConfigError) throw new CliError(err.message, EXIT.badInput);
    throw err;
  }
}
