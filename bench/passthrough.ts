/**
 * The benchmark's baseline: a bare proxy with no logic — node:http in, undici `Pool.dispatch` out,
 * body streamed both ways, SSE relayed as it arrives with backpressure. It does only what any
 * Anthropic proxy must: drop hop-by-hop headers and `host`, swap the client credential for the
 * channel key. Server and pool settings are ccload's (server keep-alive 65 s, no request timeout;
 * pool keep-alive 30 s, pipelining 1, unlimited connections), so the difference to ccload is its logic.
 *
 *   node dist/bench/passthrough.js <upstream base URL> [plain|hold|buffer|hold-buffer]
 *
 * The modes other than `plain` (the default) are controls for bench/first-event.ts: they add, one
 * by one, the two things a proxy that routes on the body and fails over invisibly must do before
 * the first token, with no other logic — `buffer` reads the whole request body before starting
 * the upstream request (the model is in the body, and a failover resends it); `hold` keeps the
 * status, headers and SSE events back until the first `content_block_delta` (ccload's commit
 * point), then writes them at once.
 *
 * Reports `{ url }` over IPC when listening; answers `{ type: 'lag' }` with the event-loop delay
 * since the previous question (the same 10 ms-resolution histogram prom-client gives ccload).
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import { CHANNEL_KEY, type LagReport, type PassthroughReady } from './protocol.js';

/** Request headers not forwarded: hop-by-hop (RFC 9110 §7.6.1), `host`, and the client's credentials. */
const DROP_REQUEST = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'x-api-key',
  'authorization',
]);
/** Response headers node:http sets itself. */
const DROP_RESPONSE = new Set(['connection', 'keep-alive', 'transfer-encoding', 'trailer', 'upgrade']);

/** What the passthrough does beyond relaying (see the header). */
export type PassthroughMode = 'plain' | 'hold' | 'buffer' | 'hold-buffer';
const MODES: readonly PassthroughMode[] = ['plain', 'hold', 'buffer', 'hold-buffer'];

const FIRST_TOKEN = Buffer.from('event: content_block_delta');

/** Relays one upstream answer into `res` (undici's controller handler API). */
class Relay implements Dispatcher.DispatchHandler {
  #controller: Dispatcher.DispatchController | undefined;
  #done = false;
  /** `hold` mode, SSE: the status, headers and bytes kept back until the first content event. */
  #held: { status: number; headers: Record<string, string | string[]>; chunks: Buffer[] } | undefined;

  constructor(
    readonly res: ServerResponse,
    readonly hold: boolean,
  ) {
    res.once('close', () => {
      if (!this.#done) this.#controller?.abort(new Error('client closed'));
    });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) return;
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(headers)) if (v !== undefined && !DROP_RESPONSE.has(k)) out[k] = v;
    if (this.hold && String(headers['content-type'] ?? '').startsWith('text/event-stream')) {
      this.#held = { status: statusCode, headers: out, chunks: [] };
      return;
    }
    this.res.writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const held = this.#held;
    if (held) {
      held.chunks.push(chunk);
      // A marker split across two chunks is found in the next one's concatenation at the latest.
      if (Buffer.concat(held.chunks.slice(-2)).indexOf(FIRST_TOKEN) < 0) return;
      this.#held = undefined;
      this.res.writeHead(held.status, held.headers);
      chunk = Buffer.concat(held.chunks);
    }
    if (!this.res.write(chunk)) {
      controller.pause();
      this.res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    this.#done = true;
    const held = this.#held;
    if (held) {
      this.#held = undefined;
      this.res.writeHead(held.status, held.headers);
      this.res.end(Buffer.concat(held.chunks));
      return;
    }
    this.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#done = true;
    if (this.res.headersSent) {
      this.res.destroy(err);
      return;
    }
    this.res.writeHead(502, { 'content-type': 'text/plain' });
    this.res.end(`passthrough: ${err.message}`);
  }
}

function main(): void {
  const upstream = process.argv[2];
  const mode = (process.argv[3] ?? 'plain') as PassthroughMode;
  if (!upstream || !MODES.includes(mode))
    throw new Error(`usage: passthrough.js <upstream base URL> [${MODES.join('|')}]`);
  const hold = mode === 'hold' || mode === 'hold-buffer';
  const buffer = mode === 'buffer' || mode === 'hold-buffer';
  const base = new URL(upstream);
  const prefix = base.pathname === '/' ? '' : base.pathname.replace(/\/$/, '');
  const pool = new Pool(base.origin, {
    connect: { timeout: 10_000 },
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
    keepAliveTimeout: 30_000,
    pipelining: 1,
  });
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const raw = req.rawHeaders;
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (!DROP_REQUEST.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
    }
    headers.push('x-api-key', CHANNEL_KEY);
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const send = (body: IncomingMessage | Buffer | null) =>
      pool.dispatch(
        {
          path: prefix + (req.url ?? '/'),
          method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
          headers,
          body,
        },
        new Relay(res, hold),
      );
    if (!buffer || !hasBody) return void send(hasBody ? req : null);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.once('end', () => send(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
  };
  const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handle);
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'lag') return;
    const report: LagReport = {
      type: 'lag',
      p50: lag.percentile(50) / 1e6,
      p99: lag.percentile(99) / 1e6,
      max: lag.max / 1e6,
    };
    lag.reset();
    process.send?.(report);
  });
  const close = () => {
    server.closeAllConnections();
    server.close();
    void pool.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', close);
  process.once('disconnect', close);
  // The same listen backlog as ccload's (src/daemon.ts), so 5000 connections opening meet the same queue.
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    const ready: PassthroughReady = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
    process.send?.(ready);
  });
}

main();
