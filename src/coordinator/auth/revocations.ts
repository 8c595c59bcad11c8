// The one piece of authentication state: revoked token nonces (until the tokens would have
// expired anyway) and per-client "not before" cut-offs with a block flag. Kept in memory and, when
// a file is given, persisted atomically as JSON next to the token key; another process (the CLI's
// --revoke-client while the coordinator runs) may edit the file, and changes are picked up.
import { readFileSync, statSync } from 'node:fs';
import { writeFileAtomic } from '../../shared/atomic-file.js';
import type { TokenClaims } from './tokens.js';

interface ClientEntry {
  notBeforeMs: number;
  blocked: boolean;
}

interface RevocationState {
  /** Revoked token nonces → their expiry (dropped once expired). */
  tokens: Map<string, number>;
  /** Per client: tokens issued before notBeforeMs are invalid; blocked clients cannot enrol. */
  clients: Map<string, ClientEntry>;
}

/** What a running coordinator learns from the file another process edits. */
export interface RevocationEvents {
  /** A client was revoked (its tokens before now are invalid) by another process. */
  revoked?(clientId: string): void;
  /** The file changed but cannot be read; the revocations already known stay in force. */
  unreadable?(message: string): void;
}

export class RevocationList {
  private state: RevocationState;
  /** mtime+size+inode of the file as last read or written, and when it was last checked. */
  private stamp: string;
  private checkedAt = 0;
  /** The stamp of the last unreadable version reported (each bad version is reported once). */
  private reportedStamp = '';

  /** `file` absent: memory only. `now` dates revocations and expires old entries. */
  constructor(
    private readonly file: string | undefined,
    private readonly now: () => number,
    private readonly events: RevocationEvents = {},
  ) {
    this.state = file ? loadRevocations(file) : emptyRevocations();
    this.stamp = file ? fileStamp(file) : '';
  }

  /** Tokens for clientId issued before this instant are revoked. */
  notBefore(clientId: string): number {
    return this.state.clients.get(clientId)?.notBeforeMs ?? 0;
  }

  isBlocked(clientId: string): boolean {
    return this.state.clients.get(clientId)?.blocked ?? false;
  }

  isRevoked(claims: TokenClaims): boolean {
    return this.state.tokens.has(claims.nonce) || claims.issuedAtMs < this.notBefore(claims.clientId);
  }

  revokeToken(claims: TokenClaims): void {
    this.refresh(true);
    this.state.tokens.set(claims.nonce, claims.expiresAtMs);
    this.persist();
  }

  revokeClient(clientId: string): void {
    this.refresh(true);
    // +1: a token issued in this very millisecond is revoked as well.
    this.state.clients.set(clientId, { notBeforeMs: this.now() + 1, blocked: true });
    this.persist();
  }

  /** Revokes the tokens issued to clientId so far; whether it may enrol stays as it was. */
  cutOff(clientId: string): void {
    this.refresh(true);
    const blocked = this.state.clients.get(clientId)?.blocked ?? false;
    this.state.clients.set(clientId, { notBeforeMs: this.now() + 1, blocked });
    this.persist();
  }

  reinstateClient(clientId: string): void {
    this.refresh(true);
    const entry = this.state.clients.get(clientId);
    if (!entry) return;
    entry.blocked = false;
    this.persist();
  }

  /**
   * Picks up revocations written by another process: the file is stat'ed at most once a second
   * (unless forced), re-read when its modification time or size changed. A corrupt file keeps
   * the revocations already known.
   */
  refresh(force = false): void {
    if (!this.file) return;
    const now = Date.now();
    if (!force && now - this.checkedAt < 1000) return;
    this.checkedAt = now;
    const stamp = fileStamp(this.file);
    if (stamp === this.stamp) return;
    let next: RevocationState;
    try {
      next = loadRevocations(this.file);
    } catch (err) {
      // Half-written by a writer that does not rename atomically, or damaged: keep what we have,
      // say so (once per version of the file), and look again next second.
      if (stamp !== this.reportedStamp) {
        this.reportedStamp = stamp;
        this.events.unreadable?.(
          `${(err as Error).message}; the ${this.state.clients.size} client revocation(s) already known stay in force`,
        );
      }
      return;
    }
    const before = this.state;
    this.state = next;
    this.stamp = stamp;
    for (const [clientId, entry] of next.clients) {
      if (entry.notBeforeMs > (before.clients.get(clientId)?.notBeforeMs ?? 0))
        this.events.revoked?.(clientId);
    }
  }

  private persist(): void {
    const now = this.now();
    for (const [nonce, exp] of this.state.tokens) if (exp <= now) this.state.tokens.delete(nonce);
    if (this.file) {
      saveRevocations(this.file, this.state);
      this.stamp = fileStamp(this.file);
    }
  }
}

function fileStamp(path: string): string {
  try {
    const st = statSync(path);
    return `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    return '';
  }
}

function emptyRevocations(): RevocationState {
  return { tokens: new Map(), clients: new Map() };
}

function loadRevocations(path: string): RevocationState {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return emptyRevocations();
    throw new Error(`cannot read revocation list '${path}': ${(err as Error).message}`);
  }
  try {
    const data = JSON.parse(text) as {
      version: number;
      tokens: Record<string, number>;
      clients: Record<string, ClientEntry>;
    };
    if (data.version !== 1) throw new Error(`unsupported version ${data.version}`);
    return { tokens: new Map(Object.entries(data.tokens)), clients: new Map(Object.entries(data.clients)) };
  } catch (err) {
    // Refusing to start is safer than silently forgetting revocations.
    throw new Error(
      `revocation list '${path}' is corrupt (${(err as Error).message}); restore it or delete it to forget all revocations`,
    );
  }
}

function saveRevocations(path: string, state: RevocationState): void {
  const data = {
    version: 1,
    tokens: Object.fromEntries(state.tokens),
    clients: Object.fromEntries(state.clients),
  };
  writeFileAtomic(path, `${JSON.stringify(data, null, 1)}\n`, 0o600);
}
