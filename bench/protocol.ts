/**
 * What the benchmark's processes share: the constants every request and answer uses, and the IPC
 * messages between bench/run.ts and its children (fake upstreams, passthrough, load client).
 */
import type { Summary } from './stats.js';

/** The model every benchmark request names (the fake's answers name it too, without reading the body). */
export const BENCH_MODEL = 'claude-sonnet-4-5';
/** Request header asking the fake upstream for an SSE answer with this many ms between events. */
export const STREAM_DELAY_HEADER = 'x-bench-stream-delay';
/** Text deltas per streamed answer; with message_start, content_block_start, ping and the 4 closing events, 26 events. */
export const STREAM_DELTAS = 20;
/** The client token ccload is configured with; the load generators send it as `x-api-key`. */
export const BENCH_TOKEN = 'bench-client-token-000000000001';
/** The channel key ccload and the passthrough send upstream (the fake does not check it). */
export const CHANNEL_KEY = 'sk-ant-bench-channel-key-0001';
/** The request path, as Claude Code sends it. */
export const MESSAGES_PATH = '/v1/messages?beta=true';

/** What the fake-upstream child reports when its servers listen: their base URLs. */
export interface UpstreamReady {
  main: string;
  alt: string;
  flaky: string;
  /** An OpenAI-compatible (Chat Completions) fake: base URL without `/v1`. */
  openai: string;
}

/** Pause between the OpenAI fake's stream chunks (it cannot see the delay header: ccload does not forward it). */
export const OPENAI_STREAM_DELAY_MS = 50;

/** What the passthrough child reports when it listens. */
export interface PassthroughReady {
  url: string;
}

/** The passthrough's answer to a `{ type: 'lag' }` message: event-loop delay since the last one, in ms. */
export interface LagReport {
  type: 'lag';
  p50: number;
  p99: number;
  max: number;
}

/** One run of the load client: closed-loop workers against one target. */
export interface LoadSpec {
  /** Origin of the target, e.g. `http://127.0.0.1:8080`. */
  url: string;
  /** Encoded request body size in bytes (claudeCodeRequest's `bodyBytes`). */
  bodyBytes: number;
  /** Ask for SSE: sets `stream: true` in the body and {@link STREAM_DELAY_HEADER} to `streamDelayMs`. */
  stream: boolean;
  streamDelayMs: number;
  /** Workers, each with its own connection, each sending its next request when the previous ended. */
  concurrency: number;
  /** Workers start spread over this long, so 1000 connections do not arrive in one burst. */
  rampMs: number;
  /** Unmeasured time from the first worker's start (ramp included). */
  warmupMs: number;
  /** Longest measured window; a `{ type: 'stop' }` message ends it earlier. */
  durationMs: number;
  /** After the window, how long requests in flight may take to finish before they are abandoned. */
  drainMs: number;
  /** A request still unfinished after this long counts as an error (`timeout`). */
  requestTimeoutMs: number;
}

/** What the load client measured; times in ms. Errors count every request ended after warm-up. */
export interface LoadResult {
  /** Requests completed successfully inside the measured window. */
  completed: number;
  /** Length of the measured window (ms). */
  windowMs: number;
  /** Requests that ended after warm-up (window and drain), by outcome: `ok`, `status-529`, `broken`, `timeout`, `net-ECONNRESET`, ... */
  outcomes: Record<string, number>;
  /** Requests after warm-up that did not succeed (everything in `outcomes` but `ok`). */
  failed: number;
  /** Requests still unfinished when the drain time ran out (also counted in `failed`). */
  abandoned: number;
  /** Response headers (inside the window). */
  ttfb: Summary;
  /** First `content_block_delta` bytes for streams; the whole response for JSON (inside the window). */
  ttft: Summary;
  /** Request start to the last byte (inside the window). */
  total: Summary;
}

/** Messages the load client sends to bench/run.ts. */
export type LoadClientMessage =
  | { type: 'ready' }
  | { type: 'window-start' }
  | { type: 'window-end' }
  | { type: 'result'; result: LoadResult };

/** Messages bench/run.ts sends to the load client. */
export type LoadClientCommand = { type: 'run'; spec: LoadSpec } | { type: 'stop' };
