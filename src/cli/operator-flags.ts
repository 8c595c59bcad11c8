// The operator commands' connection flags (`atomlens status`, `atomlens report`): one flag table
// and one way from those flags to a dialled Operator connection, with usage errors that name the
// flag to fix. The dialler itself lives in src/operator, shared with the demo.
import * as grpc from '@grpc/grpc-js';
import { connectOperator, type OperatorConnection } from '../operator/connection.js';
import { grpcChannelCredentials } from '../shared/tls.js';
import { type OptionSpec, type Parsed, UsageError } from './args.js';
import { CLIENT_TLS_OPTIONS, clientTlsFromCliFlags } from './client-tls.js';

/** Flags every operator command takes, so they read the same everywhere. */
export const OPERATOR_OPTIONS: Record<string, OptionSpec> = {
  coordinator: {
    type: 'string',
    value: 'HOST:PORT',
    description: 'Coordinator gRPC address',
    default: '127.0.0.1:50051',
  },
  token: {
    type: 'string',
    value: 'TOKEN',
    description: 'Operator bearer token, when the coordinator requires one (or ATOMLENS_OPERATOR_TOKEN)',
  },
  ...CLIENT_TLS_OPTIONS,
};

/** Dials from the OPERATOR_OPTIONS flags, with usage errors for a bad address or TLS files. */
export function connectOperatorFromFlags(values: Parsed['values']): OperatorConnection {
  const address = String(values.coordinator);
  if (!/^[^\s]+:\d{1,5}$/.test(address))
    throw new UsageError(`--coordinator must be HOST:PORT, got '${address}'`);
  const token =
    typeof values.token === 'string' ? values.token : process.env.ATOMLENS_OPERATOR_TOKEN || undefined;
  const tls = clientTlsFromCliFlags(values);
  const credentials = tls ? grpcChannelCredentials(tls) : grpc.credentials.createInsecure();
  return connectOperator(address, { ...(token ? { token } : {}), credentials });
}
