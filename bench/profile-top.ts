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
