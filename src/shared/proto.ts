// Loads the wire contract (proto/atomlens/v1/atomlens.proto) once per process.
// The generated types in src/generated (npm run gen:proto) type-check both sides against it.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { ProtoGrpcType } from '../generated/atomlens.js';

const PROTO_ROOT = fileURLToPath(new URL('../../proto', import.meta.url));
const PROTO_FILE = 'atomlens/v1/atomlens.proto';

/** Options must match scripts/gen-proto.mjs so runtime objects have the generated shapes. */
const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
};

let cached: ProtoGrpcType | undefined;

/** The loaded package definition, typed by the generated ProtoGrpcType. */
export function loadAtomlensProto(): ProtoGrpcType {
  if (!cached) {
    const definition = protoLoader.loadSync(PROTO_FILE, PROTO_LOADER_OPTIONS);
    cached = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return cached;
}
