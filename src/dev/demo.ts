/**
 * `npm run demo`: ccload on a copy of demo/ccload.yaml, in front of three fake Anthropic upstreams on
 * 127.0.0.1 (one flaky, one steady, one slow), with a gentle synthetic traffic generator, so the
 * dashboard fills with real requests, failovers and cooldowns within a minute. Bounded (Ctrl-C or
 * `--duration`), loopback only, and labelled demo everywhere: banner, `[demo]` lines, `"demo":true`
 * on every daemon log line, the config's comments. Randomness is seeded (`--seed`).
 *
 *   npm run demo -- [--port 8080] [--duration 60s] [--rps 4] [--seed 1] [--dir DIR] [--verbose]
 */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseDuration } from '../config/values.js';
import { type Daemon, startDaemon } from '../daemon.js';
import { createLogger } from '../observability/log.js';
import { claudeCodeRequest } from './anthropic-shapes.js';
import {
  type Behaviour,
  type FakeRequest,
  type FakeUpstream,
  type JsonBehaviour,
  ok,
  okStream,
  type StreamBehaviour,
  startFakeUpstream,
} from './fake-upstream.js';
import { prng } from './random.js';

/** The demo's admin password (printed in the banner). */
export const DEMO_PASSWORD = 'demo';
/** The demo's client tokens, by name (as in demo/ccload.yaml). */
export const DEMO_TOKENS = {
  'alice-laptop': 'demo-token-alice',
  'bob-desktop': 'demo-token-bob',
  'ci-runner': 'demo-token-ci',
} as const;

/** Options of {@link startDemo}. */
export interface DemoOptions {
  /** Port of ccload on 127.0.0.1 (default 8080; 0 = any free port). */
  readonly port?: number;
  /** Requests per second of the traffic generator, on average (default 4). */
  readonly rps?: number;
  /** Seed of every random choice (default 1). */
  readonly seed?: number;
  /** Folder for the config copy and the database (default: a temp folder, removed at stop). */
  readonly dir?: string;
  /** Daemon log level (default `warn`: the demo's own status lines are the readable view). */
  readonly logLevel?: string;
  /** Where `[demo]` lines go (default stdout). */
  readonly print?: (line: string) => void;
}

/** What the traffic generator has seen so far. */
export interface DemoStats {
  sent: number;
  ok: number;
  failed: number;
  /** Streams that ended with an `event: error` frame (cut after the first token). */
  streamErrors: number;
  inFlight: number;
}

/** A running demo. */
export interface Demo {
  readonly url: string;
  readonly dir: string;
  readonly configPath: string;
  readonly daemon: Daemon;
  readonly stats: DemoStats;
  /** Stops traffic, ccload and the upstreams (in that order); removes a temp folder. Idempotent. */
  stop(): Promise<void>;
}

/** Per-model token usage, so cost and token charts differ by model. */
function usageFor(model: string) {
  if (model.includes('opus'))
    return {
      input_tokens: 40,
      output_tokens: 420,
      cache_creation_input_tokens: 900,
      cache_read_input_tokens: 21000,
    };
  if (model.includes('haiku'))
    return {
      input_tokens: 8,
      output_tokens: 60,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 3000,
    };
  return {
    input_tokens: 20,
    output_tokens: 180,
    cache_creation_input_tokens: 300,
    cache_read_input_tokens: 12000,
  };
}

const TEXT = 'This answer comes from a fake upstream of the ccload demo. Nothing left 127.0.0.1.';

const COUNT_TOKENS = '/v1/messages/count_tokens';

/**
 * A chooser answering like Anthropic would, per (model, stream), built once per key so the fake
 * upstream's per-behaviour encoding cache works; `shape` adds the channel's timing.
 */
function answers(
  shape: (b: StreamBehaviour | JsonBehaviour) => Behaviour,
): (req: FakeRequest) => Behaviour | undefined {
  const cache = new Map<string, Behaviour>();
  return (req) => {
    // count_tokens gets the fake's own `{"input_tokens": N}` (the dashboard's channel test uses it).
    if (req.path === COUNT_TOKENS) return undefined;
    const model = req.model ?? 'claude-sonnet-4-5';
    const key = `${req.stream ? 's' : 'j'}${model}`;
    let b = cache.get(key);
    if (!b) {
      const o = { text: TEXT, usage: usageFor(model) };
      b = shape(req.stream ? okStream(model, { ...o, delayMs: 40 }) : ok(model, o));
      if (cache.size < 64) cache.set(key, b);
    }
    return b;
  };
}

/** The flaky channel: 30% 529 overloaded, some cut streams, its second key sometimes rate-limited. */
function flakyChooser(random: () => number): (req: FakeRequest) => Behaviour | undefined {
  const normal = answers((b) => b);
  const overloaded: Behaviour = { kind: 'status', status: 529 };
  const limited: Behaviour = { kind: 'status', status: 429, headers: { 'retry-after': '3' } };
  const cuts = new Map<string, Behaviour>();
  const cut = (req: FakeRequest, after: number): Behaviour => {
    const model = req.model ?? 'claude-sonnet-4-5';
    const key = `${after}${model}`;
    let b = cuts.get(key);
    if (!b) {
      b = okStream(model, { text: TEXT, usage: usageFor(model), delayMs: 40, cutAfter: after });
      if (cuts.size < 64) cuts.set(key, b);
    }
    return b;
  };
  return (req) => {
    if (req.path === COUNT_TOKENS) return undefined;
    const r = random();
    if (r < 0.3) return overloaded;
    // message_start, content_block_start, ping | deltas…: after 2 events nothing was committed
    // (ccload fails over); after 5 the client has text, so ccload ends the stream with an error.
    if (req.stream && r < 0.36) return cut(req, 2);
    if (req.stream && r < 0.38) return cut(req, 5);
    if (r < 0.42 && req.headers['x-api-key']?.toString().endsWith('flaky-2')) return limited;
    return normal(req);
  };
}

/** The demo's environment: only what demo/ccload.yaml references, never the caller's variables. */
function demoEnv(
  upstreams: Record<'flaky' | 'steady' | 'slow', FakeUpstream>,
  dir: string,
  port: number,
): Record<string, string> {
  return {
    PORT: String(port),
    SQLITE_PATH: join(dir, 'ccload.db'),
    RUNTIME_DIRECTORY: dir,
    DEMO_ADMIN_PASSWORD: DEMO_PASSWORD,
    DEMO_TOKEN_ALICE: DEMO_TOKENS['alice-laptop'],
    DEMO_TOKEN_BOB: DEMO_TOKENS['bob-desktop'],
    DEMO_TOKEN_CI: DEMO_TOKENS['ci-runner'],
    DEMO_URL_FLAKY: upstreams.flaky.url,
    DEMO_URL_STEADY: upstreams.steady.url,
    DEMO_URL_SLOW: upstreams.slow.url,
    DEMO_KEY_FLAKY_1: 'demo-key-flaky-1',
    DEMO_KEY_FLAKY_2: 'demo-key-flaky-2',
    DEMO_KEY_STEADY: 'demo-key-steady',
    DEMO_KEY_SLOW: 'demo-key-slow',
  };
}

/** The traffic mix: models with weights, streaming share, count_tokens share. */
const MODELS: readonly [string, number][] = [
  ['claude-sonnet-4-5', 0.5],
  ['claude-opus-4-1', 0.25],
  ['claude-3-5-haiku-latest', 0.25],
];
const STREAM_SHARE = 0.75;
const COUNT_TOKENS_SHARE = 0.08;
const MAX_IN_FLIGHT = 16;

function pick<T>(items: readonly [T, number][], r: number): T {
  let acc = 0;
  for (const [item, w] of items) {
    acc += w;
    if (r < acc) return item;
  }
  return items[items.length - 1]![0];
}

/** Sends synthetic client traffic to `url` until stopped; at most MAX_IN_FLIGHT at a time. */
function startTraffic(url: string, rps: number, random: () => number, stats: DemoStats) {
  const bodies = new Map<string, { headers: Record<string, string>; body: Buffer }>();
  const request = (model: string, stream: boolean) => {
    const key = `${model}${stream}`;
    let r = bodies.get(key);
    // A small body (no padding): the demo shows routing, not upload throughput.
    if (!r) {
      r = claudeCodeRequest({ model, stream, bodyBytes: 2000 });
      bodies.set(key, r);
    }
    return r;
  };
  const controller = new AbortController();
  const pending = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const one = async () => {
    const model = pick(MODELS, random());
    const stream = random() < STREAM_SHARE;
    const countTokens = random() < COUNT_TOKENS_SHARE;
    const tokenIndex = Math.floor(random() * 3);
    const token = Object.values(DEMO_TOKENS)[tokenIndex]!;
    const { headers, body } = request(model, stream && !countTokens);
    // Claude Code sends its key as x-api-key (ANTHROPIC_API_KEY) or Bearer (ANTHROPIC_AUTH_TOKEN): both.
    const auth: Record<string, string> =
      tokenIndex === 0 ? { 'x-api-key': token } : { authorization: `Bearer ${token}` };
    const path = countTokens ? '/v1/messages/count_tokens?beta=true' : '/v1/messages?beta=true';
    stats.sent++;
    stats.inFlight++;
    try {
      const res = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { ...headers, ...auth },
        body: new Uint8Array(body),
        signal: controller.signal,
      });
      const text = await res.text();
      if (res.status === 200 && !text.includes('event: error')) stats.ok++;
      else if (res.status === 200) stats.streamErrors++;
      else stats.failed++;
    } catch {
      if (!controller.signal.aborted) stats.failed++;
    } finally {
      stats.inFlight--;
    }
  };
  const tick = () => {
    if (stopped) return;
    if (stats.inFlight < MAX_IN_FLIGHT) {
      const p = one();
      pending.add(p);
      void p.finally(() => pending.delete(p));
    }
    // Exponential gaps: Poisson arrivals at `rps` on average.
    const gap = (-Math.log(1 - random()) / rps) * 1000;
    timer = setTimeout(tick, Math.min(gap, 5000));
  };
  tick();
  return {
    /** Stops sending; waits up to `graceMs` for answers in flight, then aborts them. */
    async stop(graceMs: number): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      const grace = new Promise<void>((r) => setTimeout(r, graceMs).unref());
      await Promise.race([Promise.allSettled([...pending]), grace]);
      controller.abort();
      await Promise.allSettled([...pending]);
    },
  };
}

/** Starts the demo: upstreams, ccload on a copy of demo/ccload.yaml, then traffic. */
export async function startDemo(opts: DemoOptions = {}): Promise<Demo> {
  const random = prng(opts.seed ?? 1);
  const print = opts.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ? resolve(opts.dir) : mkdtempSync(join(tmpdir(), 'ccload-demo-'));
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'ccload.yaml');
  copyFileSync(fileURLToPath(new URL('../../../demo/ccload.yaml', import.meta.url)), configPath);

  const started: FakeUpstream[] = [];
  const closeAll = async () => {
    await Promise.allSettled(started.map((u) => u.close()));
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  let daemon: Daemon;
  try {
    const flaky = await startFakeUpstream({ record: false });
    started.push(flaky);
    const steady = await startFakeUpstream({ record: false });
    started.push(steady);
    const slow = await startFakeUpstream({ record: false });
    started.push(slow);
    flaky.handle(flakyChooser(random));
    steady.handle(answers((b) => b));
    slow.handle(
      answers((b) =>
        b.kind === 'stream' ? { ...b, firstDelayMs: 1500, delayMs: 150 } : { ...b, headersDelayMs: 1800 },
      ),
    );
    const log = createLogger({ level: opts.logLevel ?? 'warn' }).child({ demo: true });
    daemon = await startDaemon({
      configPath,
      display: 'demo/ccload.yaml (copy)',
      env: demoEnv({ flaky, steady, slow }, dir, opts.port ?? 8080),
      log,
      processMetrics: false,
    });
  } catch (err) {
    await closeAll();
    throw err;
  }

  const stats: DemoStats = { sent: 0, ok: 0, failed: 0, streamErrors: 0, inFlight: 0 };
  const traffic = startTraffic(daemon.url, opts.rps ?? 4, random, stats);
  const startedAt = Date.now();
  const report = setInterval(() => {
    void statusLine(daemon, stats, Date.now() - startedAt).then(print, () => {});
  }, 5000);
  let stopping: Promise<void> | undefined;
  return {
    url: daemon.url,
    dir,
    configPath,
    daemon,
    stats,
    stop() {
      stopping ??= (async () => {
        clearInterval(report);
        await traffic.stop(4000);
        print(await statusLine(daemon, stats, Date.now() - startedAt).catch(() => '[demo] stopped'));
        await daemon.close();
        await closeAll();
      })();
      return stopping;
    },
  };
}

/** `[demo] 0:35 requests … · failovers … · cooling …`, from the generator and the database. */
async function statusLine(daemon: Daemon, s: DemoStats, elapsedMs: number): Promise<string> {
  const db = daemon.app.db.client;
  const failovers = await db.execute(
    "SELECT count(DISTINCT request_id) AS n FROM attempts WHERE attempt > 1 AND endpoint = 'messages'",
  );
  const cooling = await db.execute({
    sql: 'SELECT channel, model, until FROM cooldowns WHERE until > ? ORDER BY until DESC LIMIT 3',
    args: [Date.now()],
  });
  const secs = Math.floor(elapsedMs / 1000);
  const clock = `${Math.floor(secs / 60)}:${String(secs % 60).padStart(2, '0')}`;
  const cool = cooling.rows.map((r) => `${r['channel']}${r['model'] ? `/${r['model']}` : ''}`).join(', ');
  return `[demo] ${clock} requests ${s.sent} (ok ${s.ok}, failed ${s.failed}, cut streams ${s.streamErrors}) · failovers ${failovers.rows[0]?.['n'] ?? 0} · cooling now: ${cool || 'none'}`;
}

/** The banner: what runs, where to look, how to log in. */
export function banner(
  demo: Pick<Demo, 'url' | 'configPath'>,
  rps: number,
  durationMs: number | undefined,
): string {
  const until = durationMs ? `for ${Math.round(durationMs / 1000)} s (or Ctrl-C)` : 'until Ctrl-C';
  return [
    '======================================================================',
    ' ccload DEMO — fake upstreams and synthetic traffic; nothing leaves 127.0.0.1',
    '======================================================================',
    ` dashboard   ${demo.url}/    password: ${DEMO_PASSWORD}`,
    ` proxy       ANTHROPIC_BASE_URL=${demo.url} ANTHROPIC_AUTH_TOKEN=${DEMO_TOKENS['alice-laptop']}`,
    ` config      ${demo.configPath}`,
    '             (a copy of demo/ccload.yaml: edit it to watch a hot reload)',
    ' channels    flaky-primary (30% 529, cut streams, 429s) -> steady-relay + slow-backup',
    ` traffic     ~${rps} req/s, streaming and not, 3 models, 3 client tokens, ${until}`,
    '======================================================================',
  ].join('\n');
}

interface CliArgs {
  port: number;
  rps: number;
  seed: number;
  durationMs?: number;
  dir?: string;
  verbose: boolean;
}

function parseArgs(argv: readonly string[]): CliArgs | string {
  const out: CliArgs = { port: 8080, rps: 4, seed: 1, verbose: false };
  const args = [...argv];
  while (args.length > 0) {
    const a = args.shift()!;
    const [flag, inline] = a.includes('=')
      ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)]
      : [a, undefined];
    const value = () => inline ?? args.shift() ?? '';
    if (flag === '--verbose' || flag === '-v') out.verbose = true;
    else if (flag === '--port') out.port = Number(value());
    else if (flag === '--rps') out.rps = Number(value());
    else if (flag === '--seed') out.seed = Number(value());
    else if (flag === '--dir') out.dir = value();
    else if (flag === '--duration') {
      const ms = parseDuration(value());
      if (ms === undefined || ms === 0) return '--duration needs a duration such as 60s or 5m';
      out.durationMs = ms;
    } else return `unknown argument "${a}"`;
  }
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) return '--port needs 0..65535';
  if (!(out.rps > 0 && out.rps <= 200)) return '--rps needs a number in (0, 200]';
  if (!Number.isInteger(out.seed)) return '--seed needs an integer';
  return out;
}

async function main(argv: readonly string[]): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    process.stderr.write(
      `ccload demo: ${args}\nusage: npm run demo -- [--port 8080] [--duration 60s] [--rps 4] [--seed 1] [--dir DIR] [--verbose]\n`,
    );
    return 64;
  }
  let demo: Demo;
  try {
    demo = await startDemo({
      port: args.port,
      rps: args.rps,
      seed: args.seed,
      dir: args.dir,
      logLevel: args.verbose ? 'info' : 'warn',
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const hint = e.code === 'EADDRINUSE' ? ` (try: npm run demo -- --port ${args.port + 1})` : '';
    process.stderr.write(`ccload demo: cannot start: ${e.message}${hint}\n`);
    return 1;
  }
  process.stdout.write(`${banner(demo, args.rps, args.durationMs)}\n`);
  await new Promise<void>((resolve) => {
    const timer = args.durationMs ? setTimeout(resolve, args.durationMs) : undefined;
    const onSignal = () => {
      clearTimeout(timer);
      resolve();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  process.stdout.write('[demo] stopping…\n');
  await demo.stop();
  process.stdout.write('[demo] stopped\n');
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  void main(process.argv.slice(2)).then((code) => process.exit(code));
}
