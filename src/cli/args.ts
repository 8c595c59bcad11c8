// Shared flag parsing for every `atomlens` subcommand: one option table drives parsing,
// validation and --help, so flags and help text cannot drift apart.
import { parseArgs } from 'node:util';

/** Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 unreachable peer, 4 bad input file. */
export const EXIT = { ok: 0, failure: 1, usage: 2, unreachable: 3, badInput: 4 } as const;

export class UsageError extends Error {}
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
  }
}

export interface OptionSpec {
  type: 'string' | 'boolean';
  description: string;
  /** Shown in help and used when the flag is absent. */
  default?: string | boolean;
  short?: string;
  /** Placeholder shown in help, e.g. HOST:PORT. */
  value?: string;
  multiple?: boolean;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  options: Record<string, OptionSpec>;
  /** Allowed positional arguments (min, max). */
  positionals?: [number, number];
  details?: string;
}

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

function helpText(spec: CommandSpec): string {
  const rows = Object.entries(spec.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? 'VALUE'}` : ''}`;
    const def = o.default !== undefined && o.default !== false ? ` (default: ${o.default})` : '';
    return [flag, `${o.description}${def}`] as const;
  });
  rows.push(['-h, --help', 'Show this help']);
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  const body = rows.map(([f, d]) => `  ${f.padEnd(width)}${d}`).join('\n');
  return `${spec.summary}\n\nUsage: ${spec.usage}\n\nOptions:\n${body}\n${spec.details ? `\n${spec.details}\n` : ''}`;
}

/** Parses argv for a command; returns null when --help was printed. Throws UsageError on bad flags. */
export function parseCommand(spec: CommandSpec, argv: string[]): Parsed | null {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(spec));
    return null;
  }
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    options[name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(
      `${(err as Error).message.replace(/\. To specify.*$/s, '')}\nRun 'atomlens ${spec.name} --help' for the options.`,
    );
  }
  const [min, max] = spec.positionals ?? [0, 0];
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    throw new UsageError(
      `expected ${min === max ? min : `${min}–${max}`} argument(s), got ${parsed.positionals.length}\nUsage: ${spec.usage}`,
    );
  }
  const values: Parsed['values'] = {};
  for (const [name, o] of Object.entries(spec.options)) {
    values[name] = (parsed.values[name] as Parsed['values'][string]) ?? o.default;
  }
  return { values, positionals: parsed.positionals };
}

/** Reads an integer flag within bounds, with a message naming the flag. */
export function intFlag(values: Parsed['values'], name: string, min: number, max: number): number {
  const raw = values[name];
  const n = typeof raw === 'string' ? Number(raw) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${String(raw)}'`);
  }
  return n;
}

/** Reads a number flag within bounds. */
export function numberFlag(values: Parsed['values'], name: string, min: number, max: number): number {
  const raw = values[name];
  const n = typeof raw === 'string' ? Number(raw) : Number.NaN;
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number from ${min} to ${max}, got '${String(raw)}'`);
  }
  return n;
}

/** Reads a string flag restricted to a set of choices. */
export function choiceFlag<T extends string>(
  values: Parsed['values'],
  name: string,
  choices: readonly T[],
): T {
  const raw = values[name];
  if (typeof raw !== 'string' || !choices.includes(raw as T)) {
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got '${String(raw)}'`);
  }
  return raw as T;
}
