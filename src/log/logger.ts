/**
 * The logger every layer is handed (never a module-level singleton). Messages name the path or
 * bucket and never contain a secret.
 */

import { pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** One line per message for a terminal: ISO time, level, message. */
export function createLogger(write: (line: string) => void, level: LogLevel): Logger {
  const log = (at: LogLevel) => (message: string) => {
    if (ORDER[at] >= ORDER[level]) write(`${new Date().toISOString()} ${at.toUpperCase()} ${message}\n`);
  };
  return { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/**
 * Structured logs for a daemon whose output is a file or the journal: one JSON object per line
 * ({"level":"warn","time":"…","msg":"…"}), written synchronously so nothing is lost at exit.
 */
export function createJsonLogger(fd: number, level: LogLevel): Logger {
  const log = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd, sync: true }),
  );
  return {
    debug: (message) => log.debug(message),
    info: (message) => log.info(message),
    warn: (message) => log.warn(message),
    error: (message) => log.error(message),
  };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
