/**
 * What the benchmark reads about other processes, and how it starts them: CPU time and RSS from
 * /proc (Linux only), an RSS sampler, and Node children that report "ready" over IPC. Every server
 * and load generator runs in its own process, so /proc/<pid>/stat gives its CPU alone — all of its
 * threads (libuv pool, GC helpers) included.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Kernel clock ticks per second, the unit of utime/stime in /proc/<pid>/stat (100 on Linux x86). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** The resolution of {@link cpuMicros}: one clock tick, in µs. */
export const CPU_RESOLUTION_US = 1e6 / CLK_TCK;

/**
 * User + system CPU time the process `pid` has used so far, in µs; NaN when it is gone. With
 * `mainThread`, only its main thread's (the task whose id is the pid): the rest is worker threads,
 * the libuv pool, V8's GC helpers and native libraries' threads.
 */
export function cpuMicros(pid: number, mainThread = false): number {
  let stat: string;
  try {
    stat = readFileSync(mainThread ? `/proc/${pid}/task/${pid}/stat` : `/proc/${pid}/stat`, 'utf8');
  } catch {
    return Number.NaN;
  }
  // The command name (field 2) is in parentheses and may contain spaces: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name, field 3 (state) is index 0, so utime (14) is index 11 and stime (15) index 12.
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLK_TCK;
}

/** Resident set size of the process `pid` in bytes; NaN when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU µs all processes on the machine have used since boot, summed over every core (user, nice,
 * system, irq, softirq, steal from the first line of /proc/stat).
 */
export function machineBusyMicros(): number {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return ((user + nice + system + irq + softirq + steal) * 1e6) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** CPU snapshots of several processes at once, keyed by a role name ('target', 'upstream', 'load'). */
export type CpuSnapshot = Record<string, number>;

/** Reads {@link cpuMicros} of every named pid. */
export function snapshotCpu(pids: Record<string, number>): CpuSnapshot {
  const out: CpuSnapshot = {};
  for (const [name, pid] of Object.entries(pids)) out[name] = cpuMicros(pid);
  if (pids['target'] !== undefined) out['target-main'] = cpuMicros(pids['target'], true);
  const self = process.cpuUsage();
  out['bench'] = self.user + self.system;
  out['machine'] = machineBusyMicros();
  out['wall'] = performance.now() * 1000;
  // CLOCK_MONOTONIC in µs, the clock of V8's CPU profiles (in every process): lets a profile be cut
  // to the measured window (bench/profile-top.ts).
  out['mono'] = Number(process.hrtime.bigint() / 1000n);
  return out;
}

/**
 * Cores kept busy by processes outside the measurement (other people's work on a shared machine)
 * during a stretch, from a {@link cpuDelta}: the machine's busy time minus that of the measured
 * processes and of this script, over the wall time.
 */
export function foreignCores(delta: Record<string, number>): number {
  let ours = 0;
  for (const [k, v] of Object.entries(delta))
    if (k !== 'machine' && k !== 'wall' && k !== 'mono' && k !== 'target-main') ours += v;
  return Math.max(0, ((delta['machine'] ?? 0) - ours) / (delta['wall'] ?? 1));
}

/** Per-role CPU µs spent between two snapshots (and `machine`, `bench`, `wall`). */
export function cpuDelta(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of Object.keys(before)) out[k] = (after[k] ?? Number.NaN) - (before[k] ?? Number.NaN);
  return out;
}

/** RSS of one process before, at its peak during, and at the end of a measured stretch (bytes). */
export interface RssTrace {
  before: number;
  peak: number;
  after: number;
}

/** Samples the RSS of `pid` every `everyMs` until `stop()`; /proc reads cost the sampled process nothing. */
export function sampleRss(pid: number, everyMs = 100): { stop(): RssTrace } {
  const before = rssBytes(pid);
  let peak = before;
  const timer = setInterval(() => {
    const v = rssBytes(pid);
    if (v > peak) peak = v;
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      const after = rssBytes(pid);
      return { before, peak: Math.max(peak, after), after };
    },
  };
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A Node child started with an IPC channel; `ready` is the first message it sends. */
export interface NodeChild<Ready> {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly ready: Ready;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Waits for `child` to exit, up to `ms`; true when it did. */
export function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const onExit = () => {
      clearTimeout(timer);
      resolve(true);
    };
    const timer = setTimeout(() => {
      child.off('exit', onExit);
      resolve(false);
    }, ms);
    child.once('exit', onExit);
  });
}

/** Stops `child`: SIGTERM, and SIGKILL if it is still there after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await exited(child, graceMs))) {
    child.kill('SIGKILL');
    await exited(child, 2000);
  }
}

/**
 * V8 flags of every process the bench measures or talks to (proxies, fake upstreams, load
 * clients). V8's memory reducer shrinks a heap once its process has been idle for about 8 s; when
 * load returns, garbage collection runs more often (concurrent marking on V8's helper threads)
 * until the heap limits have grown again. In a bench where each target idles while the others are
 * measured, that made a ratio depend on how long the target had waited: ccload, 43 KB bodies, 261
 * µs per request measured right after the previous scenario and 385–410 µs after 25 s idle (200 KB:
 * 460 vs 940), the passthrough 124 vs 177. Off, every target is measured in its steady state.
 * README → Performance says what this means for a daemon that idles between bursts.
 */
export const STEADY_STATE_FLAGS: readonly string[] = ['--no-memory-reducer'];

/**
 * Forks the compiled module `modulePath` with `args`, and waits up to `timeoutMs` for its first IPC
 * message (its "ready" report). stdout is ignored, stderr passes through so crashes are visible.
 * Every child gets STEADY_STATE_FLAGS unless `noSteadyState`.
 */
export async function forkNode<Ready>(
  modulePath: string,
  args: string[],
  opts: { timeoutMs?: number; execArgv?: string[]; noSteadyState?: boolean } = {},
): Promise<NodeChild<Ready>> {
  const child = fork(modulePath, args, {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    execArgv: [...(opts.noSteadyState ? [] : STEADY_STATE_FLAGS), ...(opts.execArgv ?? [])],
  });
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const ready = await new Promise<Ready>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${modulePath} did not report ready within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as Ready);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${modulePath} exited before it was ready (${signal ?? code})`));
    });
  });
  child.removeAllListeners('exit');
  return { child, pid: child.pid!, ready, stop: (graceMs) => stopChild(child, graceMs) };
}
