/**
 * The logger every layer is handed (never a module-level singleton). Messages name the path or
 * bucket and never contain a secret.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** One line per message: ISO time, level, message. */
export function createLogger(write: (line: string) => void, level: LogLevel): Logger {
  const log = (at: LogLevel) => (message: string) => {
    if (ORDER[at] >= ORDER[level]) write(`${new Date().toISOString()} ${at.toUpperCase()} ${message}\n`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
