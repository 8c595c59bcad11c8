// Minimal leveled logger writing to stderr, so stdout stays free for command output (--json).
// Level from ATOMLENS_LOG (debug|info|warn|error|silent); format from ATOMLENS_LOG_FORMAT=json.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** Where atomlens logs: any object with these methods (the SDK's default writes to stderr). */
export interface Logger {
  /** Detail for debugging. */
  debug(msg: string, fields?: Record<string, unknown>): void;
  /** Normal progress. */
  info(msg: string, fields?: Record<string, unknown>): void;
  /** Something went wrong and was handled (a retry, a declined probe). */
  warn(msg: string, fields?: Record<string, unknown>): void;
  /** Something failed. */
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger for a part of this component. */
  child(component: string): Logger;
}

function envLevel(): LogLevel {
  const v = (process.env.ATOMLENS_LOG ?? 'info').toLowerCase();
  return v in ORDER ? (v as LogLevel) : 'info';
}

export function createLogger(component: string, level: LogLevel = envLevel()): Logger {
  const json = process.env.ATOMLENS_LOG_FORMAT === 'json';
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    if (json) {
      process.stderr.write(
        `${JSON.stringify({ t: new Date().toISOString(), level: lvl, component, msg, ...fields })}\n`,
      );
    } else {
      const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
      process.stderr.write(`[${component}] ${lvl === 'info' ? '' : `${lvl}: `}${msg}${extra}\n`);
    }
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (c) => createLogger(`${component}/${c}`, level),
  };
}
