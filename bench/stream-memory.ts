/**
 * `node dist/bench/stream-memory.js [streams] [spacing-ms]`: what ccload holds per open stream,
 * measured with little CPU so a busy machine does not distort it. `streams` (default 1000) slow
 * streams (26 events, `spacing-ms` apart, default 600, so a stream outlasts the 10 s ramp) are
 * opened through ccload at
 * `log_level: warn`; once all are open, RSS, V8 heap in use and external memory are read and
 * compared with the idle process (after one warm-up stream, so code and pools are loaded), and RSS
 * again 20 s after the last stream ended (V8's memory reducer left on, as in production). Prints
 * KiB per open stream. Loopback only, bounded in time.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { metricSum, startCcload } from './ccload-proc.js';
import { forkNode, rssBytes, sleep } from './proc.js';
import type { LoadClientMessage, LoadResult, PassthroughReady, UpstreamReady } from './protocol.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));

/** How long after the last stream ended memory is read again ("back to baseline after"). */
const AFTER_MS = 20_000;

async function main(): Promise<void> {
  const streams = Math.max(1, Number(process.argv[2] ?? 1000));
  const spacing = Math.max(50, Number(process.argv[3] ?? 600));
  const dir = mkdtempSync(join(tmpdir(), 'ccload-stream-memory-'));
  const upstream = await forkNode<UpstreamReady>(join(HERE, 'upstream.js'), []);
  const p = await startCcload(
    'ccload-warn',
    join(dir, 'ccload'),
    {
      channels: [{ name: 'main', url: upstream.ready.main, priority: 10 }],
      logLevel: 'warn',
    },
    // The memory reducer stays on, as in production: it is what gives memory back after a burst.
    { timeoutMs: 60_000, steadyState: false },
  );
  const mem = async () => {
    const text = await p.scrape();
    return {
      rss: rssBytes(p.pid),
      heap: metricSum(text, 'ccload_nodejs_heap_size_used_bytes'),
      external: metricSum(text, 'ccload_nodejs_external_memory_bytes'),
    };
  };
  const run = async (
    url: string,
    n: number,
    rampMs: number,
    onOpen?: () => Promise<void>,
  ): Promise<LoadResult> => {
    const client = await forkNode<LoadClientMessage>(join(HERE, 'stream-client.js'), []);
    const streamMs = 25 * spacing;
    const result = await new Promise<LoadResult>((resolve) => {
      client.child.on('message', (m: LoadClientMessage) => {
        if (m.type === 'window-start') void onOpen?.();
        else if (m.type === 'result') resolve(m.result);
      });
      client.child.send({
        type: 'run',
        spec: {
          url,
          bodyBytes: 43_000,
          stream: true,
          streamDelayMs: spacing,
          concurrency: n,
          rampMs,
          // The window opens 2 s after the last stream started (the streams outlast the ramp).
          warmupMs: rampMs + 2000,
          durationMs: 1000,
          drainMs: streamMs + 5000,
          requestTimeoutMs: streamMs + 30_000,
        },
      });
    });
    await client.stop(2000);
    return result;
  };
  const ramp = Math.min(10_000, streams * 10);
  const kib = (a: number, b: number) => ((b - a) / streams / 1024).toFixed(1);
  const mb = (v: number) => (v / 1048576).toFixed(0);
  try {
    await run(p.url, 4, 10);
    await sleep(1000);
    const before = await mem();
    let during = before;
    const r = await run(p.url, streams, ramp, async () => {
      during = await mem();
    });
    // V8's memory reducer starts about 8 s after the process went quiet; give it time to act.
    await sleep(AFTER_MS);
    const after = await mem();
    process.stdout.write(
      `${streams} open streams (${spacing} ms between events), ccload at log_level warn; failed ${r.failed}\n` +
        `RSS ${mb(before.rss)} → ${mb(during.rss)} → ${mb(after.rss)} MB (before → all open → ${AFTER_MS / 1000} s after the last ended): ${kib(before.rss, during.rss)} KiB per open stream, ${kib(before.rss, after.rss)} KiB per stream left after\n` +
        `V8 heap in use ${mb(before.heap)} → ${mb(during.heap)} MB: ${kib(before.heap, during.heap)} KiB per stream\n` +
        `external (buffers) ${mb(before.external)} → ${mb(during.external)} MB: ${kib(before.external, during.external)} KiB per stream\n`,
    );
    // Stopped here so it uses no memory or CPU while the passthrough is measured (the stop in
    // `finally` then finds it gone).
    await p.stop();
    // The floor: the same streams through the bare passthrough (node:http in, undici out, the
    // request body streamed rather than held for a failover), RSS only.
    const pass = await forkNode<PassthroughReady>(join(HERE, 'passthrough.js'), [upstream.ready.main], {
      noSteadyState: true,
    });
    try {
      await run(pass.ready.url, 4, 10);
      await sleep(1000);
      const pBefore = rssBytes(pass.pid);
      let pDuring = pBefore;
      const pr = await run(pass.ready.url, streams, ramp, async () => {
        pDuring = rssBytes(pass.pid);
      });
      await sleep(AFTER_MS);
      const pAfter = rssBytes(pass.pid);
      process.stdout.write(
        `passthrough, same streams; failed ${pr.failed}\n` +
          `RSS ${mb(pBefore)} → ${mb(pDuring)} → ${mb(pAfter)} MB: ${kib(pBefore, pDuring)} KiB per open stream, ${kib(pBefore, pAfter)} KiB per stream left after\n`,
      );
    } finally {
      await pass.stop();
    }
  } finally {
    await p.stop();
    await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench/stream-memory: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
