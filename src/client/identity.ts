// A client's own credential (RegisterRequest.client_credential): 32 random bytes made the first
// time the client enrols with the federation's shared enrolment secret and kept in its state
// directory (mode 0600). The coordinator binds the client id to the credential's SHA-256 at that
// first enrolment, so a restarted client proves with the same bytes that it is the one that
// enrolled the id, and a second party that knows only the shared secret cannot claim it.
import { randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CLIENT_CREDENTIAL_BYTES } from '../shared/ids.js';

/** Bytes of a credential this client makes (the coordinator accepts CLIENT_CREDENTIAL_BYTES). */
const CREDENTIAL_BYTES = 32;
const { min: MIN_BYTES, max: MAX_BYTES } = CLIENT_CREDENTIAL_BYTES;
/** A credential file's content: MIN_BYTES to MAX_BYTES as lowercase hex. */
const CREDENTIAL_HEX = new RegExp(`^(?:[0-9a-f]{2}){${MIN_BYTES},${MAX_BYTES}}$`);

const STATE_DIR_HINT = 'choose a directory this user can write with --state-dir (SDK: stateDir)';

/**
 * The file in the state directory that holds the credential, as hex.
 * @internal exported for its tests
 */
export const CREDENTIAL_FILE = 'client-credential';

/**
 * Where a client keeps its state when not told otherwise: ~/.atomlens/clients/CLIENT_ID.
 * @internal exported for its tests
 */
export function defaultStateDir(clientId: string): string {
  return join(homedir(), '.atomlens', 'clients', clientId);
}

export interface ClientIdentityOptions {
  clientId: string;
  /** Directory for the credential file (default defaultStateDir(clientId)). */
  stateDir?: string;
  /** The credential itself (16–1,024 bytes), e.g. from a secret store; no file is used then. */
  credential?: Uint8Array;
}

/** Thrown when the credential cannot be read or kept; the message names the fix. */
export class ClientIdentityError extends Error {
  override name = 'ClientIdentityError';
}

/** The credential a client presents with the enrolment secret, loaded or made once. */
export class ClientIdentity {
  readonly stateDir: string | undefined;
  private cached: Buffer | undefined;

  constructor(options: ClientIdentityOptions) {
    if (options.credential !== undefined) {
      const n = options.credential.length;
      if (n < MIN_BYTES || n > MAX_BYTES) {
        throw new ClientIdentityError(
          `the client credential has ${n} bytes; give ${MIN_BYTES} to ${MAX_BYTES} random bytes`,
        );
      }
      this.cached = Buffer.from(options.credential);
      this.stateDir = undefined;
    } else {
      this.stateDir = options.stateDir ?? defaultStateDir(options.clientId);
    }
  }

  /** The credential: as given, else read from the state directory, made there on first use. */
  credential(): Buffer {
    this.cached ??= loadOrCreate(this.stateDir!);
    return this.cached;
  }
}

function loadOrCreate(dir: string): Buffer {
  const file = join(dir, CREDENTIAL_FILE);
  const existing = readCredential(file);
  if (existing) return existing;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new ClientIdentityError(
      `cannot create the client state directory ${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ${STATE_DIR_HINT}`,
    );
  }
  // Written under a temporary name and linked into place: the file appears whole, and when two
  // processes of one client start together, exactly one credential wins and both use it.
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(temporary, `${randomBytes(CREDENTIAL_BYTES).toString('hex')}\n`, { mode: 0o600 });
    try {
      linkSync(temporary, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  } catch (err) {
    throw new ClientIdentityError(
      `cannot write the client credential ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ${STATE_DIR_HINT}`,
    );
  } finally {
    rmSync(temporary, { force: true });
  }
  const written = readCredential(file);
  if (!written) throw new ClientIdentityError(`the client credential ${file} vanished after it was written`);
  return written;
}

/** The credential in `file`, undefined when there is no such file. */
function readCredential(file: string): Buffer | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ClientIdentityError(
      `cannot read the client credential ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): ${STATE_DIR_HINT}`,
    );
  }
  if (!CREDENTIAL_HEX.test(text)) {
    throw new ClientIdentityError(
      `${file} is not a client credential (expected ${MIN_BYTES}–${MAX_BYTES} bytes as lowercase hex): ` +
        'restore it from a backup, or ask the operator to free this client id (atomlens status --remove-client ID) and delete the file',
    );
  }
  return Buffer.from(text, 'hex');
}
