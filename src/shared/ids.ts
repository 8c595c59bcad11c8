// Identifiers that cross the wire or name things in a configuration: client ids, task ids, the
// federation id and layer names all share one character set and length, checked the same way by
// the coordinator, the client, the CLI and the template loader.

/** Longest id, in characters. */
export const ID_MAX_LENGTH = 64;
/** The allowed characters, as a message tells a user. */
export const ID_CHARACTERS = "A–Z, a–z, 0–9, '.', '_' or '-'";
/** 1–64 characters of A–Z a–z 0–9 . _ - (the proto documents the same rule). */
export const ID_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

/**
 * Why `id` is not a valid id, as a sentence naming `what` it is (a field or a flag); undefined
 * when it is valid. Long input is cut so that the message stays readable.
 */
export function idProblem(what: string, id: string): string | undefined {
  if (isValidId(id)) return undefined;
  const shown = JSON.stringify(id.length > 80 ? `${id.slice(0, 80)}…` : id);
  return `${what} ${shown} is not valid: use 1–${ID_MAX_LENGTH} characters of ${ID_CHARACTERS}`;
}

/**
 * The key of one model (a client's task) in maps and sets. Ids cannot contain '\n'
 * (ID_PATTERN), so the key is unambiguous.
 */
export function modelKey(clientId: string, taskId: string): string {
  return `${clientId}\n${taskId}`;
}

/**
 * RegisterRequest.client_credential, in bytes: at least 128 bits so that it cannot be guessed
 * (this repository's clients send 32 random bytes), at most 1,024 like the other secrets. The
 * coordinator refuses other lengths, and a client checks a credential it is given or reads.
 */
export const CLIENT_CREDENTIAL_BYTES = { min: 16, max: 1024 } as const;
