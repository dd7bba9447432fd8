/**
 * Top self-time functions (and files) of a V8 `.cpuprofile` written by `node --cpu-prof`, as text.
 * bench/run.ts prints it for ccload when run with `--cpu-prof`; it also runs alone:
 *
 *   node dist/bench/profile-top.js <file.cpuprofile> [rows=25]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** One row of the summary: a function (or file) and its self time. */
export interface SelfTime {
  name: string;
  ms: number;
  /** Share of the busy (non-idle) time, in %. */
  share: number;
}

/** A short location: the path from `node_modules/` or the project folders on, or `node:` internals. */
function shortUrl(url: string): string {
  if (url === '') return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const m = /\/(dist\/(?:src|bench)\/.*)$/.exec(url);
  if (m) return m[1]!;
  return url.replace(/^file:\/\//, '');
}

/** Busy time (ms) and the top `rows` functions and files by self time, from the profile at `path`. */
export function topSelfTime(
  path: string,
  rows = 25,
): { busyMs: number; totalMs: number; functions: SelfTime[]; files: SelfTime[] } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // Each sample's time is the gap to the next sample (DevTools' convention).
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i + 1] ?? 0;
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt);
  }
  const fns = new Map<string, number>();
  const files = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const [id, us] of self) {
    const f = byId.get(id)!.callFrame;
    total += us;
    if (f.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const file = shortUrl(f.url) || f.functionName;
    const name = f.url ? `${f.functionName || '(anonymous)'} ${file}:${f.lineNumber + 1}` : f.functionName;
    fns.set(name, (fns.get(name) ?? 0) + us);
    files.set(file, (files.get(file) ?? 0) + us);
  }
  const busy = total - idle;
  const top = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, rows)
      .map(([name, us]) => ({ name, ms: us / 1000, share: busy > 0 ? (100 * us) / busy : 0 }));
  return { busyMs: busy / 1000, totalMs: total / 1000, functions: top(fns), files: top(files) };
}

/**
 * The area a sample's function belongs to, for the comparison of a proxy with the passthrough:
 * our own code by folder, the libraries the request path uses, Node's HTTP and stream internals,
 * the socket writes (kernel time on loopback), the garbage collector, and start-up work (module
 * loading and compilation), which is left out of the per-request shares.
 */
export function areaOf(functionName: string, url: string): string {
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(garbage collector)') return 'garbage collector';
  if (functionName === '(program)') return 'V8 / native (program)';
  if (
    functionName === 'writev' ||
    functionName === 'writeString' ||
    functionName === 'writeBuffer' ||
    functionName === 'writeUtf8String' ||
    functionName === 'writeLatin1String'
  )
    return 'socket and file writes (syscalls)';
  const src = /\/dist\/src\/(.+)\.js$/.exec(url);
  if (src) return `ccload ${src[1]!}`;
  if (url.includes('/dist/bench/')) return 'bench harness';
  if (/node_modules\/undici\//.test(url) || url.startsWith('wasm://')) return 'undici (incl. llhttp wasm)';
  if (
    /node_modules\/(pino|sonic-boom|thread-stream|fast-redact|quick-format|atomic-sleep|on-exit-leak-free)/.test(
      url,
    )
  )
    return 'pino (log line)';
  if (/node_modules\/(prom-client|tdigest|bintrees)/.test(url)) return 'prom-client (metrics)';
  if (/node_modules\/(libsql|@libsql)/.test(url)) return 'libsql';
  if (url.includes('node_modules/')) return `other library (${shortUrl(url).split('/')[0]})`;
  if (
    /^node:internal\/(modules|bootstrap|deps\/cjs-module-lexer)|^node:internal\/vm/.test(url) ||
    /^(compile|internalModuleStat|readFileUtf8|wrapSafe)/.test(functionName)
  )
    return 'start-up (module loading)';
  if (/^node:(_http_|internal\/http)/.test(url)) return 'node http';
  if (/^node:(net|internal\/stream_base_commons|internal\/streams|stream)/.test(url))
    return 'node net + streams';
  if (
    /^node:(events|internal\/(timers|process\/task_queues|async_hooks))|^node:timers/.test(url) ||
    functionName === 'runMicrotasks'
  )
    return 'node events, timers, promises';
  if (url.startsWith('node:')) return 'node other';
  return url === '' ? 'native (unattributed)' : 'other';
}

/**
 * Self time per {@link areaOf} area; shares are of the busy time without start-up. With `cut`
 * (CLOCK_MONOTONIC µs, the clock of the profile's timestamps), only samples inside it count.
 */
export function areaTimes(
  path: string,
  cut?: { startUs: number; endUs: number },
): { busyMs: number; areas: SelfTime[] } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const areas = new Map<string, number>();
  let at = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    at += p.timeDeltas[i] ?? 0;
    if (cut && (at < cut.startUs || at > cut.endUs)) continue;
    const f = byId.get(p.samples[i]!)!.callFrame;
    const a = areaOf(f.functionName, f.url);
    areas.set(a, (areas.get(a) ?? 0) + (p.timeDeltas[i + 1] ?? 0));
  }
  areas.delete('idle');
  areas.delete('start-up (module loading)');
  let busy = 0;
  for (const us of areas.values()) busy += us;
  return {
    busyMs: busy / 1000,
    areas: [...areas]
      .sort((a, b) => b[1] - a[1])
      .map(([name, us]) => ({ name, ms: us / 1000, share: busy > 0 ? (100 * us) / busy : 0 })),
  };
}

/**
 * Profiles side by side by area, in µs per request: the samples inside each measured window
 * (`cuts`, same order as `paths`) divided by the requests completed in it. The last line is the
 * main thread's CPU per request read from /proc in the same window, for comparison.
 */
export function formatAreas(
  labels: string[],
  paths: string[],
  mainUsPerReq: number[],
  cuts: { startUs: number; endUs: number; requests: number }[],
): string {
  const all = paths.map((p, i) => areaTimes(p, cuts[i]));
  const names = new Set<string>();
  for (const a of all) for (const r of a.areas) if (r.share >= 0.3) names.add(r.name);
  const per = (i: number, name: string) => {
    const r = all[i]!.areas.find((x) => x.name === name);
    return r ? (r.ms * 1000) / cuts[i]!.requests : 0;
  };
  const order = [...names].sort((a, b) => per(all.length - 1, b) - per(all.length - 1, a));
  const w = Math.max(...order.map((n) => n.length), 10);
  const head = `${'main thread, µs per request'.padEnd(w)} | ${labels.map((l) => l.padStart(12)).join(' | ')}`;
  const lines = order.map(
    (n) => `${n.padEnd(w)} | ${labels.map((_, i) => per(i, n).toFixed(1).padStart(12)).join(' | ')}`,
  );
  const sampled = `${'sum of the profile'.padEnd(w)} | ${all.map((a, i) => ((a.busyMs * 1000) / cuts[i]!.requests).toFixed(1).padStart(12)).join(' | ')}`;
  const total = `${'main thread CPU from /proc'.padEnd(w)} | ${mainUsPerReq.map((v) => v.toFixed(1).padStart(12)).join(' | ')}`;
  return [head, '-'.repeat(head.length), ...lines, '-'.repeat(head.length), sampled, total].join('\n');
}

/** The summary as printable text. */
export function formatTop(path: string, rows = 25): string {
  const t = topSelfTime(path, rows);
  const line = (r: SelfTime) =>
    `${r.ms.toFixed(1).padStart(9)} ms ${r.share.toFixed(1).padStart(5)}%  ${r.name}`;
  return [
    `profile ${path}: busy ${t.busyMs.toFixed(0)} ms of ${t.totalMs.toFixed(0)} ms sampled`,
    'top functions by self time (share of busy time):',
    ...t.functions.map(line),
    'top files by self time:',
    ...t.files.slice(0, 12).map(line),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: profile-top.js <file.cpuprofile> [rows]\n');
    process.exit(64);
  }
  process.stdout.write(`${formatTop(file, Number(process.argv[3] ?? 25))}\n`);
}
