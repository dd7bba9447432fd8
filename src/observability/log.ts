/**
 * The daemon's structured log: pino JSON lines on stdout by default. When stdout is a terminal
 * the lines are rendered for people (`HH:MM:SS.mmm LEVEL message key=value …`), and when it is the
 * systemd journal each line carries a syslog priority prefix (`<6>message key=value …`) so
 * `journalctl -p warning` works. `CCLOAD_LOG_FORMAT=json|pretty|journal` overrides the choice.
 * Secrets never reach the log: callers log names and fingerprints only (tests search the log for
 * keys). pino's redaction is not used — it cost more per request line than the rest of the line.
 */
import { fstatSync } from 'node:fs';
import { type Logger, pino } from 'pino';

export type { Logger };

/**
 * The `event` field of the log lines tools filter on (docs/interfaces.md#log-lines): one name per
 * kind of line, so a typo is a compile error rather than a line no alert matches.
 */
export type LogEvent =
  | 'request'
  | 'proxy_error'
  | 'drain_timeout'
  | 'state_write_failed'
  | 'config_reload'
  | 'config_warning'
  | 'config_write_back'
  | 'config_git_commit_failed'
  | 'config_file_removed'
  | 'config_watch_error'
  | 'restart_needed'
  | 'log_level'
  | 'sessions_ended'
  | 'listening'
  | 'connections_dropped'
  | 'database_health'
  | 'shutdown'
  | 'shutdown_forced'
  | 'systemd_notify'
  | 'retention'
  | 'rollup_backfill'
  | 'login'
  | 'login_failed'
  | 'login_refused'
  | 'cooldown_cleared'
  | 'channel_test';

/**
 * A logger whose every line carries `event` (a pino child). Make it where the event happens, not
 * once at start-up: a child keeps the level its parent had when it was made, so a long-lived child
 * would not follow a reloaded `server.log_level`. (The per-request `request` line sets the field
 * itself: no allocation per request.)
 */
export function eventLog(log: Logger, event: LogEvent): Logger {
  return log.child({ event });
}

/** How log lines are written. */
export type LogFormat = 'json' | 'pretty' | 'journal';

const LEVELS: Record<number, [string, number]> = {
  10: ['TRACE', 7],
  20: ['DEBUG', 7],
  30: ['INFO', 6],
  40: ['WARN', 4],
  50: ['ERROR', 3],
  60: ['FATAL', 2],
};
const SKIP = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname']);

/** The format for stdout given the environment: explicit, else journal, else TTY, else JSON. */
function detectFormat(env: Readonly<Record<string, string | undefined>> = process.env): LogFormat {
  const asked = env['CCLOAD_LOG_FORMAT'];
  if (asked === 'json' || asked === 'pretty' || asked === 'journal') return asked;
  const journal = env['JOURNAL_STREAM'];
  if (journal) {
    try {
      const st = fstatSync(1);
      if (journal === `${st.dev}:${st.ino}`) return 'journal';
    } catch {
      // not a file descriptor we can inspect: fall through
    }
  }
  return process.stdout.isTTY ? 'pretty' : 'json';
}

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) || v === '' ? JSON.stringify(v) : v;
  if (v && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Renders one pino JSON line for people (`pretty`) or for the journal. */
function formatLine(json: string, format: 'pretty' | 'journal'): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const [name, prio] = LEVELS[Number(o['level'])] ?? [String(o['level']), 6];
  const fields: string[] = [];
  for (const [k, v] of Object.entries(o)) {
    if (SKIP.has(k) || v === undefined || v === null) continue;
    if (k === 'err' && v && typeof v === 'object') {
      const e = v as { message?: string; code?: string };
      fields.push(`err=${value(e.code ? `${e.code}: ${e.message}` : e.message)}`);
    } else fields.push(`${k}=${value(v)}`);
  }
  const text = `${String(o['msg'] ?? '')}${fields.length ? ` ${fields.join(' ')}` : ''}`;
  if (format === 'journal') return `<${prio}>${text}\n`;
  const time = typeof o['time'] === 'number' ? new Date(o['time']).toISOString().slice(11, 23) : '';
  return `${time} ${name.padEnd(5)} ${text}\n`;
}

/**
 * pino's `isoTime` (`,"time":"2026-12-03T16:31:45.123Z"`), with the part up to the second built
 * once per second: `Date#toISOString` per line was a third of the log line's cost (bench profile).
 */
export function isoTimeCached(): () => string {
  let second = -1;
  let head = '';
  return () => {
    const now = Date.now();
    const s = Math.floor(now / 1000);
    if (s !== second) {
      second = s;
      head = `,"time":"${new Date(s * 1000).toISOString().slice(0, 19)}.`;
    }
    const ms = now - s * 1000;
    return `${head}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z"`;
  };
}

/** Creates the root logger. `destination` defaults to stdout in the detected format. */
export function createLogger(
  opts: { level?: string; destination?: pino.DestinationStream; format?: LogFormat } = {},
): Logger {
  const format = opts.format ?? detectFormat();
  let destination = opts.destination;
  if (!destination) {
    if (format === 'json') {
      // Lines are written in blocks of 16 KiB (one write per about 40 request lines under load;
      // the write calls were 3 % of a small request's profile with 4 KiB blocks) and at least every
      // 500 ms, so a quiet daemon's lines still show up at once.
      const dest = pino.destination({ fd: 1, sync: false, minLength: 16_384, maxWrite: 65_536 });
      setInterval(() => dest.flush(), 500).unref();
      process.once('exit', () => dest.flushSync());
      destination = dest;
    } else destination = { write: (line: string) => void process.stdout.write(formatLine(line, format)) };
  }
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: 'ccload' },
      timestamp: format === 'json' ? isoTimeCached() : pino.stdTimeFunctions.epochTime,
      formatters: { level: (label, number) => (format === 'json' ? { level: label } : { level: number }) },
    },
    destination,
  );
}

/** A logger that drops everything (tests that do not look at logs). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
