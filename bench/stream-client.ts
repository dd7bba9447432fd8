/**
 * The benchmark's own load client, a child process of bench/run.ts (so its CPU is measured apart
 * from the proxy's): closed-loop workers, one connection each (undici Pool.dispatch, the cheapest
 * client path), sending Claude Code–shaped requests. For streams it timestamps the first
 * `content_block_delta` bytes — the first token a user sees — and checks that every stream ends
 * with `message_stop` and carries no `event: error`. It drives all streaming scenarios, and the
 * non-streaming ones when wrk is not installed.
 *
 * Protocol (IPC): sends `ready`; receives `run` with a {@link LoadSpec}; sends `window-start` after the
 * warm-up and `window-end` when the window is over (or on `stop`), then `result` after the drain.
 */
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import { claudeCodeRequest } from '../src/dev/anthropic-shapes.js';
import {
  BENCH_MODEL,
  BENCH_TOKEN,
  type LoadClientCommand,
  type LoadClientMessage,
  type LoadResult,
  type LoadSpec,
  MESSAGES_PATH,
  STREAM_DELAY_HEADER,
} from './protocol.js';
import { summarize } from './stats.js';

const FIRST_TOKEN = Buffer.from('event: content_block_delta');
const STREAM_ERROR = Buffer.from('event: error');
const STREAM_STOP = Buffer.from('event: message_stop');
/** Longest marker, minus one: the bytes of a previous chunk a marker split across chunks can start in. */
const CARRY = Math.max(FIRST_TOKEN.length, STREAM_ERROR.length, STREAM_STOP.length) - 1;

/** Whether `marker` occurs in `chunk`, or straddles the end of `prev` (the previous chunk's last bytes) and `chunk`. */
function seen(prev: Buffer | undefined, chunk: Buffer, marker: Buffer): boolean {
  if (chunk.indexOf(marker) >= 0) return true;
  if (!prev || prev.length === 0) return false;
  const n = marker.length - 1;
  const joint = Buffer.concat([prev.subarray(Math.max(0, prev.length - n)), chunk.subarray(0, n)]);
  return joint.indexOf(marker) >= 0;
}

/** How one request ended. */
interface Ended {
  outcome: string;
  ttfb: number;
  ttft: number;
  total: number;
}

/** One request: an undici dispatch handler that resolves `done` with its timings and outcome. */
class Exchange implements Dispatcher.DispatchHandler {
  readonly start = performance.now();
  readonly done: Promise<Ended>;
  #resolve!: (e: Ended) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #timer: NodeJS.Timeout;
  #status = 0;
  #sse = false;
  #ttfb = -1;
  #ttft = -1;
  #prev: Buffer | undefined;
  #brokenBy = '';
  #stopped = false;
  #settled = false;

  constructor(pool: Pool, opts: Dispatcher.DispatchOptions, timeoutMs: number) {
    this.done = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    this.#timer = setTimeout(() => this.#controller?.abort(new Error('timeout')), timeoutMs);
    pool.dispatch(opts, this);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(
    _c: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, unknown>,
  ): void {
    if (statusCode < 200) return;
    this.#ttfb = performance.now() - this.start;
    this.#status = statusCode;
    this.#sse = String(headers['content-type'] ?? '').startsWith('text/event-stream');
  }

  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#sse) return;
    const prev = this.#prev;
    if (this.#ttft < 0 && seen(prev, chunk, FIRST_TOKEN)) this.#ttft = performance.now() - this.start;
    if (!this.#brokenBy && seen(prev, chunk, STREAM_ERROR)) this.#brokenBy = 'stream-error';
    if (!this.#stopped && seen(prev, chunk, STREAM_STOP)) this.#stopped = true;
    // Keep only the tail a split marker can start in (a copy: undici may reuse the chunk's memory).
    this.#prev = Buffer.from(chunk.subarray(Math.max(0, chunk.length - CARRY)));
  }

  onResponseEnd(): void {
    const total = performance.now() - this.start;
    let outcome = 'ok';
    if (this.#status < 200 || this.#status >= 300) outcome = `status-${this.#status}`;
    else if (this.#sse && this.#brokenBy) outcome = this.#brokenBy;
    else if (this.#sse && (!this.#stopped || this.#ttft < 0)) outcome = 'broken';
    this.#settle({ outcome, ttfb: this.#ttfb, ttft: this.#sse ? this.#ttft : total, total });
  }

  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    const code = (err as { code?: string }).code;
    const outcome = err.message === 'timeout' ? 'timeout' : `net-${code ?? err.name}`;
    this.#settle({ outcome, ttfb: this.#ttfb, ttft: -1, total: performance.now() - this.start });
  }

  #settle(e: Ended): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    this.#resolve(e);
  }
}

function send(m: LoadClientMessage): void {
  process.send?.(m);
}

async function run(spec: LoadSpec): Promise<LoadResult> {
  const shaped = claudeCodeRequest({ model: BENCH_MODEL, stream: spec.stream, bodyBytes: spec.bodyBytes });
  const headers: string[] = ['x-api-key', BENCH_TOKEN];
  for (const [k, v] of Object.entries(shaped.headers)) headers.push(k, v);
  if (spec.stream)
    headers.push('accept', 'text/event-stream', STREAM_DELAY_HEADER, String(spec.streamDelayMs));
  const opts: Dispatcher.DispatchOptions = {
    path: MESSAGES_PATH,
    method: 'POST',
    headers,
    body: shaped.body,
  };
  const pool = new Pool(spec.url, {
    connections: spec.concurrency,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 0,
    bodyTimeout: 0,
    connect: { timeout: 10_000 },
  });

  let phase: 'warmup' | 'window' | 'drain' = 'warmup';
  let windowStart = 0;
  let windowEnd = 0;
  let completed = 0;
  let inflight = 0;
  const outcomes: Record<string, number> = {};
  const ttfb: number[] = [];
  const ttft: number[] = [];
  const total: number[] = [];
  const record = (e: Ended) => {
    if (phase === 'warmup') return;
    outcomes[e.outcome] = (outcomes[e.outcome] ?? 0) + 1;
    if (phase !== 'window' || e.outcome !== 'ok') return;
    completed++;
    ttfb.push(e.ttfb);
    ttft.push(e.ttft);
    total.push(e.total);
  };

  let endWindow: () => void = () => {};
  const windowOver = new Promise<void>((resolve) => {
    endWindow = resolve;
  });
  const onCommand = (m: LoadClientCommand) => {
    if (m.type === 'stop') endWindow();
  };
  process.on('message', onCommand);

  const started = performance.now();
  const worker = async (i: number): Promise<void> => {
    await new Promise((r) => setTimeout(r, (i * spec.rampMs) / spec.concurrency));
    while (phase !== 'drain') {
      inflight++;
      const e = await new Exchange(pool, opts, spec.requestTimeoutMs).done;
      inflight--;
      record(e);
    }
  };
  const workers = Promise.all(Array.from({ length: spec.concurrency }, (_, i) => worker(i)));

  await new Promise((r) => setTimeout(r, Math.max(0, started + spec.warmupMs - performance.now())));
  phase = 'window';
  windowStart = performance.now();
  send({ type: 'window-start' });
  const timer = setTimeout(endWindow, spec.durationMs);
  await windowOver;
  clearTimeout(timer);
  phase = 'drain';
  windowEnd = performance.now();
  send({ type: 'window-end' });
  process.off('message', onCommand);

  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([workers, new Promise((r) => (drainTimer = setTimeout(r, spec.drainMs)))]);
  clearTimeout(drainTimer);
  const abandoned = inflight;
  if (abandoned > 0) outcomes['abandoned'] = abandoned;
  await pool.destroy().catch(() => {});

  let failed = 0;
  for (const [k, v] of Object.entries(outcomes)) if (k !== 'ok') failed += v;
  return {
    completed,
    windowMs: windowEnd - windowStart,
    outcomes,
    failed,
    abandoned,
    ttfb: summarize(ttfb),
    ttft: summarize(ttft),
    total: summarize(total),
  };
}

process.once('message', (m: LoadClientCommand) => {
  if (m.type !== 'run') return;
  run(m.spec).then(
    (result) => {
      send({ type: 'result', result });
      process.disconnect?.();
      setTimeout(() => process.exit(0), 100).unref();
    },
    (err: unknown) => {
      process.stderr.write(`stream-client: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
});
send({ type: 'ready' });
