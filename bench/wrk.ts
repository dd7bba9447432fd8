/**
 * Non-streaming load with wrk (Debian's `wrk` package): a bounded closed loop of `connections`
 * keep-alive connections for a fixed time, POSTing one Claude Code–shaped body. wrk is C on one
 * thread, so it takes far less of the 2 shared cores than a Node load generator would. A Lua
 * `done` hook prints the summary as one JSON line, which is all this module reads.
 */
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { claudeCodeRequest } from '../src/dev/anthropic-shapes.js';
import { CPU_RESOLUTION_US } from './proc.js';
import { BENCH_MODEL, BENCH_TOKEN, MESSAGES_PATH } from './protocol.js';
import type { Summary } from './stats.js';

/** Whether a `wrk` binary is on PATH. */
export function haveWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (err) {
    // wrk --version prints its usage and exits 1: it exists when the error is not ENOENT.
    return (err as { code?: string }).code !== 'ENOENT';
  }
}

/** One wrk run's summary; latencies in ms. */
export interface WrkResult {
  requests: number;
  durationMs: number;
  /** Socket errors by kind, and `status`: responses that were not 2xx/3xx. */
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
  latency: Summary;
  /** CPU µs wrk itself used (user + system). */
  loadCpuUs: number;
}

const MARK = 'WRKJSON ';

/** Writes the Lua script and body file for `bodyBytes` into `dir`; returns the script's path. */
export function writeWrkScript(dir: string, bodyBytes: number): string {
  const req = claudeCodeRequest({ model: BENCH_MODEL, stream: false, bodyBytes });
  const bodyFile = join(dir, `body-${bodyBytes}.json`);
  writeFileSync(bodyFile, req.body);
  const headers = { ...req.headers, 'x-api-key': BENCH_TOKEN };
  const lua = [
    `local f = assert(io.open(${JSON.stringify(bodyFile)}, "rb"))`,
    'wrk.body = f:read("*a")',
    'f:close()',
    'wrk.method = "POST"',
    `wrk.path = ${JSON.stringify(MESSAGES_PATH)}`,
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
    'done = function(s, latency, requests)',
    '  local e = s.errors',
    `  io.write(string.format('${MARK}{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,' ..`,
    `    '"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%f,"n":%d}\\n',`,
    '    s.requests, s.duration, e.connect, e.read, e.write, e.timeout, e.status,',
    '    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,',
    '    s.requests))',
    'end',
    '',
  ].join('\n');
  const script = join(dir, `wrk-${bodyBytes}.lua`);
  writeFileSync(script, lua);
  return script;
}

const STAT = 'WRKSTAT ';

/**
 * Runs wrk against `url` for `seconds` with `connections` connections on one thread. `onStart` runs
 * right after the process is spawned. wrk runs under `sh`, which prints its own /proc stat after
 * wrk ended: the cutime/cstime fields there are wrk's CPU (a reaped child's /proc entry is gone).
 */
export function runWrk(
  url: string,
  script: string,
  o: { seconds: number; connections: number; onStart?: (pid: number) => void },
): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const args = ['-t1', `-c${o.connections}`, `-d${o.seconds}s`, '--timeout', '10s', '-s', script, url];
    const sh = `wrk "$@"; code=$?; echo "${STAT}$(cat /proc/$$/stat)"; exit $code`;
    const child = spawn('sh', ['-c', sh, 'sh', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid) o.onStart?.(child.pid);
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    // wrk stops by itself after -d; this only guards against a hung process.
    const guard = setTimeout(() => child.kill('SIGKILL'), (o.seconds + 15) * 1000);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(guard);
      const line = out.split('\n').find((l) => l.startsWith(MARK));
      if (!line) return reject(new Error(`wrk exited ${code} without a summary: ${err || out}`));
      const j = JSON.parse(line.slice(MARK.length)) as Record<string, number>;
      // cutime and cstime are fields 16 and 17; after the ')' that ends field 2 they are at 13 and 14.
      const stat = out.split('\n').find((l) => l.startsWith(STAT)) ?? '';
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const loadCpuUs = (Number(f[13]) + Number(f[14])) * CPU_RESOLUTION_US;
      const ms = (us: number | undefined) => (us ?? 0) / 1000;
      resolve({
        requests: j['requests']!,
        durationMs: ms(j['duration_us']),
        errors: {
          connect: j['connect']!,
          read: j['read']!,
          write: j['write']!,
          timeout: j['timeout']!,
          status: j['status']!,
        },
        latency: {
          n: j['n']!,
          p50: ms(j['p50']),
          p90: ms(j['p90']),
          p99: ms(j['p99']),
          max: ms(j['max']),
          mean: ms(j['mean']),
        },
        loadCpuUs,
      });
    });
  });
}
