/**
 * Helpers of the reliability suite: ccload as its own process (the built `main.js serve`) or in
 * this one, a closed-loop load generator that records every request's latency and outcome by
 * phase, a Prometheus text reader, and what /proc says about a process (open fds, RSS).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';
import { deadline } from '../helpers/wait.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

/** The client token every reliability config accepts. */
export const TOKEN = 'ccl-reliability-token-4b1d';
/** The key every channel of a reliability config sends upstream. */
export const CHANNEL_KEY = 'sk-ant-reliability-0000c0ffee';
/** The model the load asks for. */
export const MODEL = 'claude-sonnet-5-5';

/** One channel of `reliabilityConfig`. */
export interface ChannelOpts {
  name: string;
  url: string;
  priority?: number;
  models?: string[];
}

/** A ccload.yaml for the suite: open loopback listen, a database in `state/`, short timeouts. */
export function reliabilityConfig(o: {
  channels: ChannelOpts[];
  firstToken?: string;
  idle?: string;
  cooldown?: { base: string; max: string };
  logLevel?: 'info' | 'warn' | 'error';
  /** Written as a comment on the first line: makes every edit a distinct file. */
  edit?: number;
}): string {
  const lines = [
    `# reliability suite${o.edit === undefined ? '' : ` edit ${o.edit}`}`,
    'version: 1',
    'server:',
    '  listen: 127.0.0.1:0',
    '  database: file:state/ccload.db',
    `  log_level: ${o.logLevel ?? 'warn'}`,
    '  drain_timeout: 2s',
    'admin:',
    '  password: reliability-admin-pass',
    'auth:',
    '  tokens:',
    '    - name: load',
    `      token: ${TOKEN}`,
    'routing:',
    `  cooldown: { base: ${o.cooldown?.base ?? '1s'}, max: ${o.cooldown?.max ?? '30s'} }`,
    '  timeouts:',
    '    connect: 1s',
    `    first_token: ${o.firstToken ?? '5s'}`,
    `    idle: ${o.idle ?? '5s'}`,
    '  max_attempts: 3',
    '  when_all_cooling: soonest',
    '  cooling_wait: 2s',
    'channels:',
  ];
  for (const c of o.channels) {
    lines.push(
      `  - name: ${c.name}`,
      `    url: ${c.url}`,
      `    api_key: ${CHANNEL_KEY}`,
      `    priority: ${c.priority ?? 10}`,
    );
    if (c.models) lines.push(`    models: [${c.models.join(', ')}]`);
  }
  return `${lines.join('\n')}\n`;
}

/** Replaces `file` atomically (temp file + rename), as editors and `git checkout` do. */
export function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** ccload running as its own process. */
export interface ChildDaemon {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string;
  readonly dir: string;
  readonly file: string;
  /** The exit code, once it exited. */
  readonly exited: Promise<number | null>;
  /** The last lines it logged (for failure messages). */
  readonly tail: string[];
}

/**
 * Starts `node dist/src/main.js serve` on `text` (written to `<dir>/ccload.yaml`) and resolves once
 * it listens; SIGKILLed at teardown if still running. Its stdout (JSON lines) is read continuously,
 * so a chatty daemon never blocks on a full pipe.
 */
export async function startChildDaemon(
  t: Teardownable,
  text: string,
  o: { dir?: string; nodeArgs?: string[] } = {},
): Promise<ChildDaemon> {
  const dir = o.dir ?? tmpDir(t, 'ccload-rel-');
  const file = join(dir, 'ccload.yaml');
  writeFileSync(file, text);
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), MAIN, 'serve', '--config', file], {
    cwd: dir,
    env: { PATH: process.env['PATH'] ?? '', RUNTIME_DIRECTORY: dir, CCLOAD_LOG_FORMAT: 'json' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const tail: string[] = [];
  const keep = (line: string) => {
    tail.push(line);
    if (tail.length > 50) tail.shift();
  };
  createInterface({ input: child.stderr! }).on('line', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await deadline(
    new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        keep(line);
        if (line.includes('"event":"listening"')) resolve((JSON.parse(line) as { url: string }).url);
      });
      void exited.then((code) =>
        reject(new Error(`ccload exited (${code}) before listening:\n${tail.join('\n')}`)),
      );
    }),
    20_000,
    'the ccload process to listen',
  );
  return { child, pid: child.pid!, url, dir, file, exited, tail };
}

/** Open file descriptors of a process (Linux /proc). */
export function fdCount(pid: number | 'self' = 'self'): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size of a process in MB (Linux /proc). */
export function rssMb(pid: number | 'self' = 'self'): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

/** Prometheus text exposition → value per series (`name` or `name{labels}` as written). */
export type MetricMap = Map<string, number>;

/** Scrapes `<url>/metrics`. */
export async function scrape(url: string): Promise<MetricMap> {
  const res = await request(`${url}/metrics`);
  const text = await res.body.text();
  const out: MetricMap = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const sp = line.lastIndexOf(' ');
    out.set(line.slice(0, sp), Number(line.slice(sp + 1)));
  }
  return out;
}

/** The sum of every series of metric `name` whose labels contain all of `labels` (`k="v"` strings). */
export function metricSum(m: MetricMap, name: string, ...labels: string[]): number {
  let sum = 0;
  for (const [series, v] of m) {
    const brace = series.indexOf('{');
    const base = brace < 0 ? series : series.slice(0, brace);
    if (base !== name) continue;
    if (labels.every((l) => series.includes(l))) sum += v;
  }
  return sum;
}

/** What `GET /health` answers. */
export interface Health {
  status: string;
  config: { generation: number; hash: string; last_reload_ok: boolean };
  database: string;
  log_queue: { depth: number; dropped: number; degraded: boolean };
}

/** `GET <url>/health` (200 or 503), parsed. */
export async function health(url: string): Promise<Health> {
  const res = await request(`${url}/health`);
  return (await res.body.json()) as Health;
}

/** A Messages API body of about `bytes` bytes (a padded user message). */
export function messagesBody(stream: boolean, bytes = 600, model = MODEL): Buffer {
  const pad = 'x'.repeat(Math.max(0, bytes - 120));
  return Buffer.from(
    JSON.stringify({ model, max_tokens: 64, stream, messages: [{ role: 'user', content: `hi ${pad}` }] }),
  );
}

/** The headers of a load request. */
export const loadHeaders = { 'content-type': 'application/json', 'x-api-key': TOKEN };

/** One request the load generator made. Times are `performance.now()` ms. */
export interface Sample {
  readonly at: number;
  readonly ms: number;
  readonly ok: boolean;
  readonly stream: boolean;
  readonly status: number;
  readonly error?: string;
}

/** Latency percentiles and counts of a set of samples. */
export interface Summary {
  n: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
  /** The first few failures, for messages. */
  failures: string[];
}

/** The `p`-th percentile (0–100) of `sorted` (ascending), nearest rank. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** Summarises samples (optionally only those started in [from, to)). */
export function summarise(samples: readonly Sample[], from = -Infinity, to = Infinity): Summary {
  const sel = samples.filter((s) => s.at >= from && s.at < to);
  const ms = sel.map((s) => s.ms).sort((a, b) => a - b);
  const bad = sel.filter((s) => !s.ok);
  return {
    n: sel.length,
    failed: bad.length,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: ms[ms.length - 1] ?? Number.NaN,
    failures: bad.slice(0, 5).map((s) => `${s.status} ${s.error ?? ''}`.trim()),
  };
}

/** `Summary` as one line for `t.comment`. */
export function fmt(s: Summary): string {
  return `${s.n} requests, ${s.failed} failed, latency p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, max ${s.max.toFixed(1)} ms`;
}

/** Options of `startLoad`. */
export interface LoadOptions {
  url: string;
  /** Requests in flight at once (closed loop: each worker sends its next when the last ended). */
  concurrency: number;
  /** Whether request `i` streams (default: every other one). */
  stream?: (i: number) => boolean;
  /** Bytes per request body (default 600). */
  bodyBytes?: number;
  /** Per-request limit; a request running longer counts as failed (default 10 s). */
  timeoutMs?: number;
}

/** A running closed-loop load. */
export interface Load {
  readonly samples: Sample[];
  /** Requests finished so far. */
  readonly count: number;
  /** Resolves after `n` more requests have finished (or rejects after `timeoutMs`). */
  after(n: number, timeoutMs?: number): Promise<void>;
  /** Stops sending and resolves once every request in flight has ended. */
  stop(): Promise<Sample[]>;
}

/**
 * Starts `concurrency` workers, each sending POST /v1/messages back to back through a keep-alive
 * dispatcher until `stop()`. A request is ok when it answered 200 with a complete body (a stream
 * ending in `message_stop`).
 */
export function startLoad(o: LoadOptions): Load {
  const dispatcher = new Agent({ connections: o.concurrency, keepAliveTimeout: 10_000 });
  const samples: Sample[] = [];
  const streamOf = o.stream ?? ((i: number) => i % 2 === 0);
  const bodies = [messagesBody(false, o.bodyBytes), messagesBody(true, o.bodyBytes)];
  const waiters: { until: number; resolve: () => void }[] = [];
  let stopping = false;
  let stopped: Promise<Sample[]> | undefined;
  let next = 0;
  const one = async (i: number): Promise<void> => {
    const stream = streamOf(i);
    const at = performance.now();
    let status = 0;
    let ok = false;
    let error: string | undefined;
    try {
      const res = await request(`${o.url}/v1/messages`, {
        method: 'POST',
        headers: loadHeaders,
        body: bodies[stream ? 1 : 0],
        dispatcher,
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
      status = res.statusCode;
      const text = await res.body.text();
      ok = status === 200 && (!stream || text.includes('event: message_stop'));
      if (!ok) error = text.slice(0, 200);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    samples.push({ at, ms: performance.now() - at, ok, stream, status, ...(error ? { error } : {}) });
    for (let k = waiters.length - 1; k >= 0; k--) {
      const w = waiters[k]!;
      if (samples.length >= w.until) {
        waiters.splice(k, 1);
        w.resolve();
      }
    }
  };
  const workers = Array.from({ length: o.concurrency }, async () => {
    while (!stopping) await one(next++);
  });
  return {
    samples,
    get count() {
      return samples.length;
    },
    after(n, timeoutMs = 20_000) {
      const until = samples.length + n;
      return deadline(
        new Promise<void>((resolve) => waiters.push({ until, resolve })),
        timeoutMs,
        `${n} more load requests`,
      );
    },
    stop() {
      stopping = true;
      stopped ??= Promise.all(workers)
        .then(() => dispatcher.close())
        .then(() => samples);
      return stopped;
    },
  };
}
