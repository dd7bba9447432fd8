/**
 * Where the first content event's time goes: a stream's time to first token split into legs, each
 * timed by the process that sees it, through ccload, the bare passthrough and its control modes.
 *
 *   node dist/bench/first-event.js [--concurrency=200] [--delay=50] [--rounds=5] [--seconds=5]
 *       [--body=43000] [--think=0] [--levels=warn] [--controls=hold-buffer] [--pin] [--raw=FILE]
 *       [--node-flags='--flag=value …']
 *
 * The defaults are the bench's `200 streams` scenario (43 KB bodies, 50 ms between events).
 * The client (this process) and a stamping fake upstream (this module forked with `--upstream`)
 * read the same clock, CLOCK_MONOTONIC (`process.hrtime`), so their stamps compare across
 * processes. Each request carries `x-probe-id`; per request:
 *  - request leg: client dispatch → the upstream has the whole body (the proxy reads, routes and
 *    sends it on);
 *  - upstream: the whole body → the first `content_block_delta` written (3 × `--delay` by design);
 *  - response leg: that write → the client has the bytes (the proxy relays them).
 * The upstream answers as the bench's does (message_start at once, then content_block_start, ping
 * and the first delta `--delay` ms apart). Targets take turns, each round starting one target
 * later, so drift on a shared machine and a target's place in the round fall on all of them.
 *
 * Targets: the plain passthrough (every row is compared with it), the passthrough's modes named in
 * `--controls` (bench/passthrough.ts: `hold`, `buffer`, `hold-buffer`, and `plain` again as a null
 * control), and ccload at each of `--levels`. `hold-buffer` does the two things a proxy that
 * routes on the body and fails over invisibly must do before the first token, and nothing else:
 * it is the floor ccload's gap is measured against.
 *
 * `--node-flags` runs each ccload level a second time, started with those node/V8 flags.
 *
 * `--think` waits that many ms between a worker's requests, as Claude Code does while a tool runs
 * (in a closed loop without it, the next request meets the proxy still busy recording the previous
 * one). `--pin` gives the proxies core 1 and the client and upstream core 0 (taskset), so they no
 * longer compete for CPU. `--raw` writes every request's stamps (µs, CLOCK_MONOTONIC) as JSON, to
 * join with stamps taken elsewhere. Prints medians and p90 in µs, and each proxy's CPU per stream
 * (utime + stime of all its threads from /proc over its load, warm-up included, ÷ the streams it
 * completed); asserts nothing.
 */
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Dispatcher } from 'undici';
import { Pool } from 'undici';
import { claudeCodeRequest, encodeSseEvent, messageStreamEvents } from '../src/dev/anthropic-shapes.js';
import { DEFAULT_USAGE } from '../src/dev/fake-upstream.js';
import { type CcloadProc, startCcload } from './ccload-proc.js';
import type { PassthroughMode } from './passthrough.js';
import { cpuMicros, forkNode, type NodeChild } from './proc.js';
import { BENCH_MODEL, BENCH_TOKEN, MESSAGES_PATH, type PassthroughReady } from './protocol.js';
import { summarize } from './stats.js';

const PROBE_HEADER = 'x-probe-id';
const FIRST_TOKEN = Buffer.from('event: content_block_delta');

/** CLOCK_MONOTONIC in µs, the same clock in every process of the machine. */
function monoUs(): number {
  const [s, ns] = process.hrtime();
  return s * 1e6 + ns / 1e3;
}

interface UpStamps {
  hdr: number;
  body: number;
  delta: number;
}

// ---- the stamping upstream (a child process) -------------------------------------------------------

function upstream(delayMs: number): void {
  const events = messageStreamEvents({
    model: BENCH_MODEL,
    text: 'a b c d e f g h',
    usage: DEFAULT_USAGE,
  }).map(encodeSseEvent);
  const firstDelta = events.findIndex((e) => e.includes(FIRST_TOKEN));
  const stamps = new Map<string, UpStamps>();
  const server = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    const hdr = monoUs();
    const id = String(req.headers[PROBE_HEADER] ?? '');
    req.on('data', () => {});
    req.on('end', () => {
      const s: UpStamps = { hdr, body: monoUs(), delta: 0 };
      stamps.set(id, s);
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      const write = (i: number): void => {
        if (res.destroyed) return;
        if (i >= events.length) {
          res.end();
          return;
        }
        if (i === firstDelta) s.delta = monoUs();
        res.write(events[i]!);
        setTimeout(write, delayMs, i + 1);
      };
      write(0);
    });
  });
  process.on('message', (m: { type?: string }) => {
    if (m.type !== 'dump') return;
    process.send?.({ type: 'stamps', stamps: [...stamps] });
    stamps.clear();
  });
  process.once('disconnect', () => process.exit(0));
  server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => {
    process.send?.({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  });
}

// ---- the client --------------------------------------------------------------------------------------

interface ClientStamps {
  send: number;
  first: number;
}

class Probe implements Dispatcher.DispatchHandler {
  readonly send = monoUs();
  first = 0;
  readonly done: Promise<void>;
  #resolve!: () => void;
  constructor(pool: Pool, opts: Dispatcher.DispatchOptions) {
    this.done = new Promise((r) => {
      this.#resolve = r;
    });
    pool.dispatch(opts, this);
  }
  onRequestStart(): void {}
  onResponseData(_c: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.first === 0 && chunk.includes(FIRST_TOKEN)) this.first = monoUs();
  }
  onResponseEnd(): void {
    this.#resolve();
  }
  onResponseError(_c: Dispatcher.DispatchController, err: Error): void {
    console.error(`probe request failed: ${err.message}`);
    this.#resolve();
  }
}

async function load(
  url: string,
  tag: string,
  concurrency: number,
  ms: number,
  body: Buffer,
  headers: string[],
  thinkMs: number,
  pid: number,
): Promise<{ stamps: Map<string, ClientStamps>; cpuUs: number; completed: number }> {
  const pool = new Pool(url, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const out = new Map<string, ClientStamps>();
  const cpu0 = cpuMicros(pid);
  let n = 0;
  let completed = 0;
  const warmUntil = monoUs() + 1e6;
  const until = warmUntil + ms * 1e3;
  const worker = async (): Promise<void> => {
    while (monoUs() < until) {
      const id = `${tag}-${n++}`;
      const p = new Probe(pool, {
        path: MESSAGES_PATH,
        method: 'POST',
        headers: [...headers, PROBE_HEADER, id],
        body,
      });
      await p.done;
      completed++;
      if (p.send >= warmUntil && p.first > 0) out.set(id, { send: p.send, first: p.first });
      if (thinkMs > 0) await new Promise((r) => setTimeout(r, thinkMs));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpuUs = cpuMicros(pid) - cpu0;
  await pool.close();
  return { stamps: out, cpuUs, completed };
}

async function main(): Promise<void> {
  const args = new Map(
    process.argv.slice(2).map((a) => {
      // At the first '=' only: a value may hold more (--node-flags=--max-semi-space-size=4).
      const at = a.indexOf('=');
      const k = a.slice(2, at < 0 ? undefined : at);
      return [k, at < 0 ? '' : a.slice(at + 1)] as [string, string];
    }),
  );
  if (args.has('upstream')) return upstream(Number(args.get('delay') ?? 50));
  const concurrencies = (args.get('concurrency') ?? '200').split(',').map(Number);
  const seconds = Number(args.get('seconds') ?? 5);
  const rounds = Number(args.get('rounds') ?? 5);
  const bodyBytes = Number(args.get('body') ?? 43_000);
  const delay = Number(args.get('delay') ?? 50);
  const think = Number(args.get('think') ?? 0);
  const levels = (args.get('levels') ?? 'warn').split(',') as ('warn' | 'info')[];
  // Node/V8 flags to try: each level also runs as a second ccload started with them.
  const nodeFlags = (args.get('node-flags') ?? '').split(' ').filter((f) => f !== '');
  const controls = (args.get('controls') ?? 'hold-buffer')
    .split(',')
    .filter((c) => c !== '') as PassthroughMode[];

  const self = fileURLToPath(import.meta.url);
  const up = fork(self, ['--upstream', `--delay=${delay}`], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const upUrl = await new Promise<string>((r) => up.once('message', (m: { url: string }) => r(m.url)));
  const dump = (): Promise<Map<string, UpStamps>> =>
    new Promise((r) => {
      up.once('message', (m: { stamps: [string, UpStamps][] }) => r(new Map(m.stamps)));
      up.send({ type: 'dump' });
    });

  const dir = mkdtempSync(join(tmpdir(), 'ccload-first-event-'));
  const pids: number[] = [];
  const targets: { name: string; url: string; pid: number; stop(): Promise<unknown> }[] = [];
  // The passthrough first (every other row is compared with it), then its controls.
  for (const mode of ['plain', ...controls]) {
    const p: NodeChild<PassthroughReady> = await forkNode(
      fileURLToPath(new URL('./passthrough.js', import.meta.url)),
      [upUrl, mode],
    );
    const name =
      targets.length === 0 ? 'passthrough' : mode === 'plain' ? 'passthrough-again' : `passthrough-${mode}`;
    targets.push({ name, url: p.ready.url, pid: p.pid, stop: () => p.stop() });
    pids.push(p.pid);
  }
  for (const level of levels) {
    const c: CcloadProc = await startCcload(`ccload-${level}`, join(dir, level), {
      channels: [{ name: 'main', url: upUrl, priority: 10 }],
      logLevel: level,
    });
    targets.push({ name: `ccload-${level}`, url: c.url, pid: c.pid, stop: () => c.stop() });
    pids.push(c.pid);
    if (nodeFlags.length === 0) continue;
    const f: CcloadProc = await startCcload(
      `ccload-${level}-flags`,
      join(dir, `${level}-flags`),
      { channels: [{ name: 'main', url: upUrl, priority: 10 }], logLevel: level },
      { nodeFlags },
    );
    targets.push({
      name: `ccload-${level} ${nodeFlags.join(' ')}`,
      url: f.url,
      pid: f.pid,
      stop: () => f.stop(),
    });
    pids.push(f.pid);
  }

  if (args.has('pin')) {
    // -a: every thread (V8's helpers and ccload's write thread with the main thread).
    for (const pid of [process.pid, up.pid!]) execFileSync('taskset', ['-a', '-cp', '0', String(pid)]);
    for (const pid of pids) execFileSync('taskset', ['-a', '-cp', '1', String(pid)]);
  }

  const shaped = claudeCodeRequest({ model: BENCH_MODEL, stream: true, bodyBytes });
  const headers = ['x-api-key', BENCH_TOKEN, 'accept', 'text/event-stream'];
  for (const [k, v] of Object.entries(shaped.headers)) headers.push(k, v);
  const body = Buffer.from(shaped.body);

  const raw: { id: string; target: string; concurrency: number; client: ClientStamps; upstream: UpStamps }[] =
    [];
  try {
    for (const c of concurrencies) {
      const legs = new Map<
        string,
        {
          ttft: number[];
          req: number[];
          hdr: number[];
          up: number[];
          resp: number[];
          cpuUs: number;
          completed: number;
        }
      >();
      for (let round = 0; round < rounds; round++) {
        // Each round starts one target later, so no target always runs right after the same one
        // or always first (a target's place in the round showed in its numbers).
        const order = targets.map((_, i) => targets[(i + round) % targets.length]!);
        for (const t of order) {
          const client = await load(
            t.url,
            `${t.name}-${c}-${round}`,
            c,
            seconds * 1000,
            body,
            headers,
            think,
            t.pid,
          );
          const ups = await dump();
          let l = legs.get(t.name);
          if (!l) {
            l = { ttft: [], req: [], hdr: [], up: [], resp: [], cpuUs: 0, completed: 0 };
            legs.set(t.name, l);
          }
          l.cpuUs += client.cpuUs;
          l.completed += client.completed;
          for (const [id, s] of client.stamps) {
            const u = ups.get(id);
            if (!u || u.delta === 0) continue;
            raw.push({ id, target: t.name, concurrency: c, client: s, upstream: u });
            l.ttft.push(s.first - s.send);
            l.hdr.push(u.hdr - s.send);
            l.req.push(u.body - s.send);
            l.up.push(u.delta - u.body);
            l.resp.push(s.first - u.delta);
          }
        }
      }
      console.log(
        `\n${c} concurrent stream(s), ${bodyBytes} B bodies, ${delay} ms between events, ${rounds} × ${seconds} s per target — µs, p50 (p90)`,
      );
      const cols = [
        'target',
        'n',
        'TTFT',
        'upstream has headers',
        'request leg (has body)',
        'upstream (3 × delay)',
        'response leg',
        'proxy CPU µs/stream',
      ];
      console.log(cols.join(' | '));
      const base = legs.get('passthrough');
      for (const [name, l] of legs) {
        const cell = (xs: number[], b?: number[]) => {
          const s = summarize(xs);
          const d = b ? ` [${(s.p50 - summarize(b).p50).toFixed(0)}]` : '';
          return `${s.p50.toFixed(0)} (${s.p90.toFixed(0)})${d}`;
        };
        const cmp = name === 'passthrough' ? undefined : base;
        console.log(
          [
            name,
            l.ttft.length,
            cell(l.ttft, cmp?.ttft),
            cell(l.hdr, cmp?.hdr),
            cell(l.req, cmp?.req),
            cell(l.up, cmp?.up),
            cell(l.resp, cmp?.resp),
            (l.cpuUs / l.completed).toFixed(0),
          ].join(' | '),
        );
      }
      console.log("[n]: p50 minus the passthrough's p50");
      const floor = legs.get('passthrough-hold-buffer');
      for (const [name, l] of legs) {
        if (!floor || !name.startsWith('ccload')) continue;
        const over = (xs: number[], b: number[]) => (summarize(xs).p50 - summarize(b).p50).toFixed(0);
        console.log(
          `${name} over passthrough-hold-buffer (p50): TTFT ${over(l.ttft, floor.ttft)} µs, request leg ${over(l.req, floor.req)}, response leg ${over(l.resp, floor.resp)}; CPU per stream ${(l.cpuUs / l.completed / (floor.cpuUs / floor.completed)).toFixed(2)}×`,
        );
      }
    }
    const rawFile = args.get('raw');
    if (rawFile) writeFileSync(rawFile, JSON.stringify(raw));
  } finally {
    for (const t of targets) await t.stop();
    up.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
