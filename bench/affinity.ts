/**
 * `npm run bench -- --only=affinity` (or `node dist/bench/affinity.js`): what session affinity does
 * for the prompt cache, measured on loopback (a script that prints numbers; it asserts nothing).
 *
 * Fake upstreams model Anthropic's prompt cache per account and key: a prefix written on one
 * account is read only there, within its TTL (5 minutes, refreshed by each read), and a read
 * covers the longest prefix cached for the conversation. Dozens of simulated Claude Code sessions
 * (`x-claude-code-session-id`, a prompt that grows turn by turn, think time between turns; a
 * finished session is replaced by a new one) run through ccload over three equal-priority
 * channels. Every turn is also sent, at the same moment, to a twin session on one direct channel
 * with its own cache: the direct cache-read share of exactly the same turns, in the same run.
 *
 * Phases of one run (about 60 s): steady (affinity on), a transient outage of one channel (it
 * answers 529 for 10 s), recovery; then the same steady load through a ccload with affinity off,
 * for contrast. Reported: the cache-read share through ccload ÷ direct, the spread of requests over
 * the channels (max/min), the share per 2-s bucket after the outage (and when it recovered to
 * ≥ 0.9 of direct), and failed requests. Targets (issue 12): ≥ 0.95 of direct, spread ≤ 1.3,
 * recovery to ≥ 0.9 within a minute, 0 failures.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import type { Usage } from '../src/dev/anthropic-shapes.js';
import {
  type Behaviour,
  type FakeRequest,
  type FakeUpstream,
  ok,
  startFakeUpstream,
} from '../src/dev/fake-upstream.js';
import { prng } from '../src/dev/random.js';
import { type CcloadProc, metricSum, startCcload } from './ccload-proc.js';
import { sleep } from './proc.js';
import { BENCH_MODEL, BENCH_TOKEN, MESSAGES_PATH } from './protocol.js';

const RESULTS_DIR = fileURLToPath(new URL('../../bench/results/', import.meta.url));

/** The shape of the simulated load. */
const SESSIONS = 36;
/** Tokens of a first turn's prompt (system + tools + first message) and what each turn adds. */
const BASE_TOKENS = 12_000;
const TURN_TOKENS = 1_500;
/** Uncached tail of each prompt (the newest user message after the last cache breakpoint). */
const TAIL_TOKENS = 100;
/** Turns of one session before it ends and a new session takes its place. */
const TURNS = { min: 12, max: 30 };
/** Think time between turns (ms). */
const THINK = { min: 250, max: 650 };
/** Prompt-cache TTL of the fake accounts (Anthropic's default 5 minutes). */
const CACHE_TTL_MS = 5 * 60_000;

/** Timeline of the main run (ms from its start). */
const OUTAGE_START = 16_000;
const OUTAGE_MS = 10_000;
const RUN_MS = 45_000;
/** The contrast run with affinity off. */
const CONTRAST_MS = 12_000;
const BUCKET_MS = 2_000;

/** One fake account (channel): its prompt cache per key and session, and whether it is down. */
class Account {
  readonly cache = new Map<string, { tokens: number; expires: number }>();
  down = false;
  requests = 0;
  failed = 0;
  fake!: FakeUpstream;

  /** The usage of one turn: read the longest cached prefix, write the rest, refresh the TTL. */
  usage(key: string, session: string, promptTokens: number, now: number): Usage {
    const id = `${key}\u0000${session}`;
    const hit = this.cache.get(id);
    const cached = hit && hit.expires > now ? Math.min(hit.tokens, promptTokens - TAIL_TOKENS) : 0;
    this.cache.set(id, { tokens: promptTokens - TAIL_TOKENS, expires: now + CACHE_TTL_MS });
    return {
      input_tokens: TAIL_TOKENS,
      output_tokens: 300,
      cache_read_input_tokens: cached,
      cache_creation_input_tokens: promptTokens - TAIL_TOKENS - cached,
    };
  }

  async start(): Promise<string> {
    this.fake = await startFakeUpstream({ record: false });
    this.fake.handle((rec: FakeRequest): Behaviour => {
      this.requests++;
      if (this.down) {
        this.failed++;
        return { kind: 'status', status: 529 };
      }
      const body = rec.json as { metadata?: { user_id?: string }; messages?: unknown[] } | undefined;
      const session = JSON.parse(body?.metadata?.user_id ?? '{}').session_id ?? 'none';
      const turn = ((body?.messages?.length ?? 1) - 1) / 2;
      const key = String(rec.headers['x-api-key'] ?? '');
      return ok(BENCH_MODEL, {
        usage: this.usage(key, session, BASE_TOKENS + turn * TURN_TOKENS, Date.now()),
      });
    });
    return this.fake.url;
  }
}

/** Prompt-token totals of a set of answers. */
interface Totals {
  input: number;
  read: number;
  write: number;
  requests: number;
}

const zero = (): Totals => ({ input: 0, read: 0, write: 0, requests: 0 });
const share = (t: Totals) => (t.input + t.read + t.write > 0 ? t.read / (t.input + t.read + t.write) : 0);

function add(t: Totals, u: Usage | undefined): void {
  if (!u) return;
  t.input += u.input_tokens;
  t.read += u.cache_read_input_tokens ?? 0;
  t.write += u.cache_creation_input_tokens ?? 0;
  t.requests++;
}

/** One turn's body: the session in metadata.user_id, as Claude Code sends it, and 2n+1 messages. */
function turnBody(session: string, n: number): string {
  return JSON.stringify({
    model: BENCH_MODEL,
    max_tokens: 1024,
    metadata: {
      user_id: JSON.stringify({ device_id: 'bench', account_uuid: '', session_id: session }),
    },
    messages: Array.from({ length: 2 * n + 1 }, (_, i) => ({
      role: i % 2 === 0 ? 'user' : 'assistant',
      content: `turn ${i}`,
    })),
    stream: false,
  });
}

/** What one run measured, per bucket of BUCKET_MS by the time each turn was sent. */
interface RunResult {
  proxied: Totals[];
  direct: Totals[];
  failed: number;
  failures: string[];
}

/**
 * Runs SESSIONS simulated sessions for `ms`: every turn goes to `proxyUrl` and, at the same moment,
 * to the direct account as the twin session. `onTick` runs every 250 ms with the elapsed time.
 */
async function runSessions(
  proxyUrl: string,
  directUrl: string,
  ms: number,
  random: () => number,
  onTick: (elapsed: number) => void = () => {},
): Promise<RunResult> {
  const agent = new Agent({ connections: SESSIONS * 2, keepAliveTimeout: 10_000 });
  const buckets = Math.ceil(ms / BUCKET_MS);
  const r: RunResult = {
    proxied: Array.from({ length: buckets }, zero),
    direct: Array.from({ length: buckets }, zero),
    failed: 0,
    failures: [],
  };
  const start = Date.now();
  const ticker = setInterval(() => onTick(Date.now() - start), 250);
  const post = async (
    url: string,
    session: string,
    n: number,
    token?: string,
  ): Promise<Usage | undefined> => {
    try {
      const res = await request(`${url}${MESSAGES_PATH}`, {
        method: 'POST',
        dispatcher: agent,
        headers: {
          'content-type': 'application/json',
          'anthropic-version': '2023-06-01',
          'x-claude-code-session-id': session,
          ...(token ? { 'x-api-key': token } : { 'x-api-key': 'direct' }),
        },
        body: turnBody(session, n),
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`${res.statusCode} ${text.slice(0, 200)}`);
      return (JSON.parse(text) as { usage: Usage }).usage;
    } catch (err) {
      if (token) {
        r.failed++;
        if (r.failures.length < 5) r.failures.push(String(err));
      }
      return undefined;
    }
  };
  const worker = async (w: number) => {
    await sleep(Math.floor((w / SESSIONS) * 1000));
    while (Date.now() - start < ms) {
      const session = randomUUID();
      const turns = TURNS.min + Math.floor(random() * (TURNS.max - TURNS.min + 1));
      for (let n = 0; n < turns && Date.now() - start < ms; n++) {
        const b = Math.min(buckets - 1, Math.floor((Date.now() - start) / BUCKET_MS));
        const [p, d] = await Promise.all([
          post(proxyUrl, session, n, BENCH_TOKEN),
          post(directUrl, session, n),
        ]);
        // Only turns both sides answered are compared.
        if (p && d) {
          add(r.proxied[b]!, p);
          add(r.direct[b]!, d);
        }
        await sleep(THINK.min + Math.floor(random() * (THINK.max - THINK.min)));
      }
    }
  };
  await Promise.all(Array.from({ length: SESSIONS }, (_, w) => worker(w)));
  clearInterval(ticker);
  await agent.close();
  return r;
}

function sum(ts: readonly Totals[]): Totals {
  const t = zero();
  for (const x of ts) {
    t.input += x.input;
    t.read += x.read;
    t.write += x.write;
    t.requests += x.requests;
  }
  return t;
}

const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);

/** Runs the affinity benchmark; prints the report and writes bench/results/affinity-<time>.json. */
export async function runAffinityBench(): Promise<void> {
  const startedAt = new Date();
  const load0 = loadavg();
  const dir = mkdtempSync(join(tmpdir(), 'ccload-bench-affinity-'));
  const accounts = [new Account(), new Account(), new Account()];
  const direct = new Account();
  const urls = await Promise.all(accounts.map((a) => a.start()));
  const directUrl = await direct.start();
  const channels = urls.map((url, i) => ({ name: `ch${i}`, url, priority: 10 }));
  process.stdout.write(
    `ccload affinity bench: node ${process.version}, ${cpus().length}× ${cpus()[0]?.model ?? '?'}, load average ${load0.map(f2).join(' ')}\n` +
      `  ${SESSIONS} concurrent sessions (${TURNS.min}-${TURNS.max} turns, ${BASE_TOKENS} + ${TURN_TOKENS}/turn prompt tokens, think ${THINK.min}-${THINK.max} ms), 3 equal-priority channels, cache TTL 5 min\n`,
  );
  let on: CcloadProc | undefined;
  let off: CcloadProc | undefined;
  try {
    // ---- affinity on: steady, outage of ch0, recovery
    on = await startCcload('affinity-on', join(dir, 'on'), { channels, logLevel: 'warn' });
    const before = accounts.map((a) => a.requests);
    let steadyCounts: number[] = [];
    const main = await runSessions(on.url, directUrl, RUN_MS, prng(12), (elapsed) => {
      if (elapsed >= OUTAGE_START && steadyCounts.length === 0) {
        steadyCounts = accounts.map((a, i) => a.requests - before[i]!);
        accounts[0]!.down = true;
      }
      if (elapsed >= OUTAGE_START + OUTAGE_MS) accounts[0]!.down = false;
    });
    const totalCounts = accounts.map((a, i) => a.requests - before[i]! - a.failed);
    const metrics = await on.scrape();
    const b0 = Math.floor(OUTAGE_START / BUCKET_MS);
    const b1 = Math.ceil((OUTAGE_START + OUTAGE_MS) / BUCKET_MS);
    const steadyP = sum(main.proxied.slice(0, b0));
    const steadyD = sum(main.direct.slice(0, b0));
    const ratio = share(steadyP) / share(steadyD);
    const spread = Math.max(...steadyCounts) / Math.max(1, Math.min(...steadyCounts));
    const after = main.proxied.slice(b1).map((p, i) => {
      const d = main.direct[b1 + i]!;
      // A bucket without turns (the run's tail) counts as recovered: there is nothing to miss.
      const ratio = p.requests > 0 ? share(p) / (share(d) || 1) : 1;
      return { at: (i * BUCKET_MS) / 1000, turns: p.requests, proxied: share(p), direct: share(d), ratio };
    });
    let recoveredAt: number | null = null;
    for (let i = 0; i < after.length; i++) {
      if (after.slice(i).every((x) => x.ratio >= 0.9)) {
        recoveredAt = after[i]!.at;
        break;
      }
    }
    const outageP = sum(main.proxied.slice(b0, b1));
    const outageD = sum(main.direct.slice(b0, b1));
    const afterP = sum(main.proxied.slice(b1));
    const afterD = sum(main.direct.slice(b1));
    await on.stop();
    on = undefined;

    // ---- affinity off, for contrast: the same steady load, per-request rotation
    off = await startCcload('affinity-off', join(dir, 'off'), {
      channels,
      logLevel: 'warn',
      affinity: false,
    });
    const contrast = await runSessions(off.url, directUrl, CONTRAST_MS, prng(12));
    await off.stop();
    off = undefined;
    const offRatio = share(sum(contrast.proxied)) / share(sum(contrast.direct));

    const report = {
      steady: {
        requests: steadyP.requests,
        cacheReadShareCcload: share(steadyP),
        cacheReadShareDirect: share(steadyD),
        ratioToDirect: ratio,
        requestsPerChannel: steadyCounts,
        spreadMaxMin: spread,
      },
      outage: {
        channel: 'ch0',
        seconds: OUTAGE_MS / 1000,
        shareDuring: share(outageP),
        directDuring: share(outageD),
        ratioDuring: share(outageP) / (share(outageD) || 1),
        shareAfter: share(afterP),
        ratioAfter: share(afterP) / (share(afterD) || 1),
        recoveredToPoint9AfterSeconds: recoveredAt,
        buckets: after,
      },
      wholeRun: {
        requestsPerChannel: totalCounts,
        spreadMaxMin: Math.max(...totalCounts) / Math.max(1, Math.min(...totalCounts)),
        failedRequests: main.failed,
        failures: main.failures,
        ccloadAffinity: Object.fromEntries(
          ['pinned', 'new', 'moved', 'kept', 'none'].map((r) => [
            r,
            metricSum(
              metrics
                .split('\n')
                .filter((l) => l.includes(`result="${r}"`))
                .join('\n'),
              'ccload_affinity_total',
            ),
          ]),
        ),
        ccloadFailovers: metricSum(metrics, 'ccload_failovers_total'),
      },
      affinityOff: {
        requests: sum(contrast.proxied).requests,
        cacheReadShareCcload: share(sum(contrast.proxied)),
        cacheReadShareDirect: share(sum(contrast.direct)),
        ratioToDirect: offRatio,
        failedRequests: contrast.failed,
      },
    };
    const gate = (ok: boolean) => (ok ? 'ok  ' : 'MISS');
    const s = report.steady;
    const o = report.outage;
    const w = report.wholeRun;
    process.stdout.write(
      `\nsteady (${s.requests} turns): cache-read share ccload ${f3(s.cacheReadShareCcload)} vs direct ${f3(s.cacheReadShareDirect)} = ${f3(s.ratioToDirect)} of direct; ` +
        `requests per channel ${s.requestsPerChannel.join(' / ')} (max/min ${f2(s.spreadMaxMin)})\n` +
        `outage of ch0 for ${o.seconds} s: share ${f3(o.shareDuring)} (${f3(o.ratioDuring)} of direct); after it ${f3(o.shareAfter)} (${f3(o.ratioAfter)} of direct); ` +
        `≥ 0.9 of direct from ${o.recoveredToPoint9AfterSeconds === null ? 'never' : `${o.recoveredToPoint9AfterSeconds} s`} after the outage ended\n` +
        `  per ${BUCKET_MS / 1000} s after the outage: ${o.buckets.map((b) => f2(b.ratio)).join(' ')}\n` +
        `whole run: requests per channel ${w.requestsPerChannel.join(' / ')} (max/min ${f2(w.spreadMaxMin)}), failed ${w.failedRequests}, ` +
        `affinity ${Object.entries(w.ccloadAffinity)
          .map(([k, v]) => `${k} ${Number.isNaN(v) ? 0 : v}`)
          .join(', ')}, failovers ${w.ccloadFailovers}\n` +
        `affinity off (per-request rotation, ${report.affinityOff.requests} turns): share ${f3(report.affinityOff.cacheReadShareCcload)} = ${f3(report.affinityOff.ratioToDirect)} of direct\n\n` +
        `${gate(s.ratioToDirect >= 0.95)} cache-read share ≥ 0.95 of direct: ${f3(s.ratioToDirect)}\n` +
        `${gate(s.spreadMaxMin <= 1.3)} spread max/min ≤ 1.3: ${f2(s.spreadMaxMin)}\n` +
        `${gate(o.recoveredToPoint9AfterSeconds !== null && o.recoveredToPoint9AfterSeconds <= 60)} recovery to ≥ 0.9 of direct within 60 s: ${o.recoveredToPoint9AfterSeconds ?? 'never'}\n` +
        `${gate(w.failedRequests === 0)} failed requests: ${w.failedRequests}${w.failures.length ? ` (${w.failures.join('; ')})` : ''}\n` +
        `load average ${load0.map(f2).join(' ')} → ${loadavg().map(f2).join(' ')}\n`,
    );
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `affinity-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ startedAt: startedAt.toISOString(), node: process.version, loadavg: load0, ...report }, null, 2)}\n`,
    );
    process.stdout.write(`wrote ${file}\n`);
  } finally {
    await on?.stop();
    await off?.stop();
    await Promise.all([...accounts, direct].map((a) => a.fake?.close()));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runAffinityBench().catch((err: unknown) => {
    process.stderr.write(`bench/affinity: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
