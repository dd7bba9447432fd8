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
import { Agent, request, WebSocket } from 'undici';
import { controlFilePath, readControlFile } from '../../src/operations/control.js';
import { type ChannelSpec, testConfig } from '../helpers/config.js';
import { messagesBody } from '../helpers/messages.js';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';
import { deadline, waitFor } from '../helpers/wait.js';

const MAIN = fileURLToPath(new URL('../../src/main.js', import.meta.url));

/** The client token every reliability config accepts. */
export const TOKEN = 'ccl-reliability-token-4b1d';
/** The key every channel of a reliability config sends upstream. */
export const CHANNEL_KEY = 'sk-ant-reliability-0000c0ffee';

/**
 * A ccload.yaml for the suite (`testConfig` with its defaults): open loopback listen, a database in
 * `state/`, literal secrets (the child process gets no test environment), short timeouts. Each
 * channel's key defaults to `CHANNEL_KEY`.
 */
export function reliabilityConfig(o: {
  channels: ChannelSpec[];
  firstToken?: string;
  idle?: string;
  cooldown?: { base: string; max: string };
  logLevel?: 'info' | 'warn' | 'error';
  /** Written as a comment on the first line: makes every edit a distinct file. */
  edit?: number;
}): string {
  return testConfig({
    comment: `reliability suite${o.edit === undefined ? '' : ` edit ${o.edit}`}`,
    server: { log_level: o.logLevel ?? 'warn', drain_timeout: '2s' },
    adminPassword: 'reliability-admin-pass',
    tokens: [{ name: 'load', token: TOKEN }],
    routing: {
      base: o.cooldown?.base ?? '1s',
      max: o.cooldown?.max ?? '30s',
      connect: '1s',
      first_token: o.firstToken ?? '5s',
      idle: o.idle ?? '5s',
      max_attempts: 3,
      when_all_cooling: 'soonest',
      cooling_wait: '2s',
    },
    channels: o.channels.map((c) => (c.keys || c.apiKey ? c : { ...c, apiKey: CHANNEL_KEY })),
  });
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
  /** The inspector's WebSocket URL, when started with `inspect`. */
  readonly inspectorUrl: string | undefined;
}

/**
 * Starts `node dist/src/main.js serve` on `text` (written to `<dir>/ccload.yaml`) and resolves once
 * it listens; SIGKILLed at teardown if still running. Its stdout (JSON lines) is read continuously,
 * so a chatty daemon never blocks on a full pipe.
 */
export async function startChildDaemon(
  t: Teardownable,
  text: string,
  o: { dir?: string; inspect?: boolean } = {},
): Promise<ChildDaemon> {
  const dir = o.dir ?? tmpDir(t, 'ccload-rel-');
  const file = join(dir, 'ccload.yaml');
  writeFileSync(file, text);
  const nodeArgs = o.inspect ? ['--inspect=127.0.0.1:0'] : [];
  const child = spawn(process.execPath, [...nodeArgs, MAIN, 'serve', '--config', file], {
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
  let inspectorUrl: string | undefined;
  const inspectorSeen = new Promise<void>((resolve) => {
    createInterface({ input: child.stderr! }).on('line', (line) => {
      keep(line);
      const m = /Debugger listening on (ws:\/\/\S+)/.exec(line);
      if (m) {
        inspectorUrl = m[1];
        resolve();
      }
    });
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  createInterface({ input: child.stdout! }).on('line', keep);
  // The daemon logs `listening` at info; at warn it says nothing, so the control file it writes
  // once it listens (beside its state, in RUNTIME_DIRECTORY) tells the URL.
  const control = controlFilePath(file, { RUNTIME_DIRECTORY: dir });
  let url = '';
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  await waitFor(
    () => {
      if (exitCode !== undefined)
        throw new Error(`ccload exited (${exitCode}) before listening:\n${tail.join('\n')}`);
      const info = readControlFile(control);
      if (info && info.pid === child.pid) url = info.url;
      return url !== '';
    },
    { timeoutMs: 20_000, message: 'the ccload process to listen' },
  );
  if (o.inspect) await deadline(inspectorSeen, 5000, 'the inspector URL');
  return { child, pid: child.pid!, url, dir, file, exited, tail, inspectorUrl };
}

/** A DevTools-protocol session with a process started with `--inspect`. */
export interface Inspector {
  /** Forces full garbage collections, then returns the V8 heap in use (MB). */
  heapAfterGcMb(): Promise<number>;
  close(): void;
}

/** Connects to the inspector at `wsUrl` (a ccload child started with `inspect: true`). */
export async function openInspector(wsUrl: string): Promise<Inspector> {
  const ws = new WebSocket(wsUrl);
  const replies = new Map<number, (result: unknown) => void>();
  ws.addEventListener('message', (ev) => {
    const m = JSON.parse(String(ev.data)) as { id?: number; result?: unknown };
    if (m.id !== undefined) replies.get(m.id)?.(m.result);
  });
  await deadline(
    new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error(`inspector connection to ${wsUrl} failed`)));
    }),
    5000,
    'the inspector connection',
  );
  let seq = 0;
  const call = (method: string): Promise<unknown> => {
    const id = ++seq;
    const reply = new Promise<unknown>((resolve) => replies.set(id, resolve));
    ws.send(JSON.stringify({ id, method }));
    return deadline(reply, 10_000, `inspector ${method}`);
  };
  return {
    async heapAfterGcMb() {
      // Twice: objects with finalizers (sockets, weak refs) need a second pass to go.
      await call('HeapProfiler.collectGarbage');
      await call('HeapProfiler.collectGarbage');
      const usage = (await call('Runtime.getHeapUsage')) as { usedSize: number };
      return usage.usedSize / 2 ** 20;
    },
    close() {
      ws.close();
    },
  };
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

/** CPU time (user + system) a process has used so far, in ms (Linux /proc). */
export function cpuMs(pid: number | 'self' = 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may contain spaces) start after the last ')'.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
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

/** The headers of a load request. */
export const loadHeaders = { 'content-type': 'application/json', 'x-api-key': TOKEN };

/** One request the load generator made. Times are `performance.now()` ms. */
export interface Sample {
  readonly at: number;
  readonly ms: number;
  readonly ok: boolean;
  readonly tag: string;
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

/** Summarises the samples started in [from, to), only those tagged `tag` when given. */
export function summarise(
  samples: readonly Sample[],
  from = -Infinity,
  to = Infinity,
  tag?: string,
): Summary {
  const sel = samples.filter((s) => s.at >= from && s.at < to && (tag === undefined || s.tag === tag));
  const ms = sel.map((s) => s.ms).sort((a, b) => a - b);
  const bad = sel.filter((s) => !s.ok);
  return {
    n: sel.length,
    failed: bad.length,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: ms[ms.length - 1] ?? Number.NaN,
    failures: bad.slice(0, 5).map((s) => `${s.tag}: ${s.status} ${s.error ?? ''}`.trim()),
  };
}

/** `Summary` as one line for `t.comment`. */
export function fmt(s: Summary): string {
  return `${s.n} requests, ${s.failed} failed, latency p50 ${s.p50.toFixed(1)} ms, p99 ${s.p99.toFixed(1)} ms, max ${s.max.toFixed(1)} ms`;
}

/** What the load sends as request `i`, and what counts as a good answer to it. */
export interface Planned {
  readonly tag: string;
  readonly body: Buffer;
  /** Whether the answer is good; default: 200 with a complete body (a stream ending in `message_stop`). */
  readonly accept?: (status: number, text: string) => boolean;
}

/** The default plan: every other request streams, `bodyBytes` per body. */
export function alternating(bodyBytes = 600): (i: number) => Planned {
  const plans = [
    { tag: 'json', body: messagesBody({ bytes: bodyBytes }) },
    { tag: 'stream', body: messagesBody({ stream: true, bytes: bodyBytes }) },
  ];
  return (i) => plans[i % 2]!;
}

/** A complete, successful answer: 200, and for a stream its `message_stop`. */
export function completeAnswer(status: number, text: string): boolean {
  return status === 200 && (!text.startsWith('event:') || text.includes('event: message_stop'));
}

/** Options of `startLoad`. */
export interface LoadOptions {
  url: string;
  /** Requests in flight at once (closed loop: each worker sends its next when the last ended). */
  concurrency: number;
  /** What request `i` is (default `alternating()`). */
  plan?: (i: number) => Planned;
  /** Per-request limit; a request running longer counts as failed (default 10 s). */
  timeoutMs?: number;
  /** Pause of each worker between its requests (pacing, so a test leaves CPU to its neighbours). */
  paceMs?: number;
}

/** A running closed-loop load. */
export interface Load {
  readonly samples: Sample[];
  /** Requests finished so far. */
  readonly count: number;
  /** Requests in flight now, by tag. */
  inflight(tag: string): number;
  /** Resolves after `n` more requests have finished (or rejects after `timeoutMs`). */
  after(n: number, timeoutMs?: number): Promise<void>;
  /** Stops sending and resolves once every request in flight has ended. Idempotent. */
  stop(): Promise<Sample[]>;
}

/**
 * Starts `concurrency` workers, each sending POST /v1/messages back to back through a keep-alive
 * dispatcher until `stop()`, recording every request as a `Sample`.
 */
export function startLoad(o: LoadOptions): Load {
  const dispatcher = new Agent({ connections: o.concurrency, keepAliveTimeout: 10_000 });
  const samples: Sample[] = [];
  const plan = o.plan ?? alternating();
  const waiters: { until: number; resolve: () => void }[] = [];
  let stopping = false;
  let stopped: Promise<Sample[]> | undefined;
  let next = 0;
  const running = new Map<string, number>();
  const one = async (i: number): Promise<void> => {
    const p = plan(i);
    const at = performance.now();
    running.set(p.tag, (running.get(p.tag) ?? 0) + 1);
    let status = 0;
    let ok = false;
    let error: string | undefined;
    try {
      const res = await request(`${o.url}/v1/messages`, {
        method: 'POST',
        headers: loadHeaders,
        body: p.body,
        dispatcher,
        signal: AbortSignal.timeout(o.timeoutMs ?? 10_000),
      });
      status = res.statusCode;
      const text = await res.body.text();
      ok = (p.accept ?? completeAnswer)(status, text);
      if (!ok) error = text.slice(0, 200);
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
    }
    running.set(p.tag, (running.get(p.tag) ?? 1) - 1);
    samples.push({ at, ms: performance.now() - at, ok, tag: p.tag, status, ...(error ? { error } : {}) });
    for (let k = waiters.length - 1; k >= 0; k--) {
      const w = waiters[k]!;
      if (samples.length >= w.until) {
        waiters.splice(k, 1);
        w.resolve();
      }
    }
  };
  const workers = Array.from({ length: o.concurrency }, async () => {
    while (!stopping) {
      await one(next++);
      if (o.paceMs) await new Promise((resolve) => setTimeout(resolve, o.paceMs));
    }
  });
  return {
    samples,
    get count() {
      return samples.length;
    },
    inflight: (tag) => running.get(tag) ?? 0,
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
