/**
 * The daemon's structured log: pino JSON lines on stdout. Secrets never reach it — callers log
 * names and fingerprints, and the redact paths below are a second line of defence.
 */
import { type Logger, pino } from 'pino';

export type { Logger };

/** Creates the root logger. `destination` defaults to stdout (fd 1). */
export function createLogger(opts: { level?: string; destination?: pino.DestinationStream } = {}): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'ccload' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          '*.api_key',
          '*.token',
          '*.password',
          '*.authorization',
          '*["x-api-key"]',
          'headers.authorization',
        ],
        censor: '[redacted]',
      },
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
