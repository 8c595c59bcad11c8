// Versioned schema migrations, shared by the storage backends: each backend lists its numbered
// steps (in its own SQL dialect) and records the ones applied in a schema_migrations table, so a
// store written by an older atomlens is brought forward on open and one written by a newer atomlens
// is refused instead of misread.

export interface Migration {
  /** 1, 2, 3, …: applied in this order, each exactly once. */
  version: number;
  name: string;
  /** Statements run in one transaction together with recording the step. */
  sql: string;
}

/** The steps still to apply, in order; throws when the store is newer than this code. */
export function pendingMigrations(
  known: readonly Migration[],
  applied: readonly number[],
  storeName: string,
): Migration[] {
  known.forEach((m, i) => {
    if (m.version !== i + 1)
      throw new Error(`migration ${m.name} is numbered ${m.version}, expected ${i + 1}`);
  });
  const latest = known.length;
  const newest = Math.max(0, ...applied);
  if (newest > latest) {
    throw new Error(
      `${storeName} has storage schema version ${newest}; this atomlens understands up to ${latest}. ` +
        'Upgrade atomlens, or use a store written by this version.',
    );
  }
  const done = new Set(applied);
  return known.filter((m) => !done.has(m.version));
}

export function latestVersion(known: readonly Migration[]): number {
  return known.length;
}
