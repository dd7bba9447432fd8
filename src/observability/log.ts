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

/** Longest a log line waits in a block before it is written. */
const LOG_FLUSH_MS = 500;

/** Bytes of log lines (about: UTF-16 units) gathered before they go to the file descriptor. */
const LOG_BLOCK = 16_384;

/**
 * Gathers log lines into blocks before sonic-boom (pino's fd writer) sees them. sonic-boom's own
 * `minLength` buffering appends each line to one growing string and measures that string's byte
 * length on every write — a flattening of up to 16 KiB per line, 2.3 µs of each request's log
 * line in the bench profile. Here a line is pushed to an array; the block is joined once.
 * sonic-boom still does the writing (partial writes, EAGAIN on a full pipe, `flushSync` at exit).
 */
export class LineBlocks {
  readonly #dest: pino.DestinationStream & { flushSync(): void };
  readonly #block: number;
  #lines: string[] = [];
  #size = 0;

  constructor(dest: pino.DestinationStream & { flushSync(): void }, block = LOG_BLOCK) {
    this.#dest = dest;
    this.#block = block;
  }

  write(line: string): void {
    this.#lines.push(line);
    this.#size += line.length;
    if (this.#size >= this.#block) this.#hand();
  }

  /** Starts writing the lines gathered so far (sonic-boom writes asynchronously). */
  flush(): void {
    this.#hand();
  }

  /** Writes everything now, synchronously (at exit). */
  flushSync(): void {
    this.#hand();
    this.#dest.flushSync();
  }

  #hand(): void {
    if (this.#lines.length === 0) return;
    const text = this.#lines.length === 1 ? this.#lines[0]! : this.#lines.join('');
    this.#lines = [];
    this.#size = 0;
    this.#dest.write(text);
  }
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
      const blocks = new LineBlocks(pino.destination({ fd: 1, sync: false, maxWrite: 65_536 }));
      setInterval(() => blocks.flush(), LOG_FLUSH_MS).unref();
      process.once('exit', () => blocks.flushSync());
      destination = blocks;
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
