#!/usr/bin/env node
/**
 * The command line (docs/interfaces.md#command-line): `ccload [serve] [--config FILE]`,
 * `ccload check [FILE]`, `ccload reload [--config FILE]`. The only module that reads argv, handles
 * signals and calls `process.exit`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';
import { loadConfigFile } from './config/load.js';
import { formatIssue } from './config/snapshot.js';
import { ConfigInvalidError, type Daemon, startDaemon } from './daemon.js';
import { importCcloadCommand } from './import/import-command.js';
import { eventLog } from './observability/log.js';
import { controlFilePath, readControlFile } from './operations/control.js';
import { attachSystemd } from './operations/systemd.js';

/** Exit codes: sysexits.h where one fits. */
const EXIT = { ok: 0, fail: 1, usage: 64, software: 70, config: 78 } as const;

const USAGE = `usage:
  ccload [serve] [--config FILE]    run the daemon (FILE: --config, else $CCLOAD_CONFIG, else ./ccload.yaml)
  ccload check [FILE]               validate a config like a reload would; exit 0 valid, 1 invalid
  ccload reload [--config FILE]     ask the running daemon to reload; exit 0 applied/unchanged, 1 rejected
  ccload import-ccload DB [--out FILE] [--env-file FILE] [--force]
                                    convert a Go ccLoad database's channels to ccload.yaml (keys to an env file)
  ccload --help | --version`;

/** Loads `.env` from the working directory; variables already set win (docs/config.md). */
function loadDotEnv(): void {
  let text: string;
  try {
    text = readFileSync('.env', 'utf8');
  } catch {
    return;
  }
  for (const [k, v] of Object.entries(parseEnv(text))) if (process.env[k] === undefined) process.env[k] = v;
}

function parseArgs(argv: string[]): { command: string; file?: string } | string {
  const args = [...argv];
  let command = 'serve';
  if (args[0] && !args[0].startsWith('-')) command = args.shift()!;
  let file: string | undefined;
  while (args.length > 0) {
    const a = args.shift()!;
    if (a === '--config' || a === '-c') {
      file = args.shift();
      if (!file) return '--config needs a FILE';
    } else if (a.startsWith('--config=')) file = a.slice(9);
    else if (a === '--help' || a === '-h') return 'help';
    else if (a === '--version' || a === '-V') return 'version';
    else if (command === 'check' && !a.startsWith('-') && file === undefined) file = a;
    else return `unexpected argument "${a}"`;
  }
  if (!['serve', 'check', 'reload'].includes(command)) return `unknown command "${command}"`;
  return { command, file };
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

async function check(file: string): Promise<number> {
  const r = await loadConfigFile({
    path: file,
    env: process.env,
    generation: 1,
    source: 'api',
    now: Date.now(),
  });
  const warnings = r.ok ? r.snapshot.warnings : r.warnings;
  for (const w of warnings) process.stderr.write(`warning: ${formatIssue(w)}\n`);
  if (!r.ok) {
    for (const e of r.errors) process.stdout.write(`${formatIssue(e)}\n`);
    return EXIT.fail;
  }
  process.stdout.write(`ok ${r.hash}\n`);
  return EXIT.ok;
}

async function reload(file: string): Promise<number> {
  const path = controlFilePath(file, process.env);
  const control = readControlFile(path);
  if (!control) {
    process.stderr.write(`ccload reload: no running daemon found for ${file} (no control file at ${path})\n`);
    return EXIT.fail;
  }
  let res: Response;
  try {
    res = await fetch(`${control.url}/admin/reload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${control.token}` },
      signal: AbortSignal.timeout(60_000),
    });
  } catch (err) {
    process.stderr.write(
      `ccload reload: the daemon at ${control.url} did not answer: ${(err as Error).message}\n`,
    );
    return EXIT.fail;
  }
  const body = (await res.json().catch(() => ({}))) as {
    result?: string;
    generation?: number;
    hash?: string;
    loaded_at?: string;
    source?: string;
    errors?: { file: string; line: number; col: number; path: string; message: string }[];
  };
  if (res.status === 200) {
    process.stdout.write(`${body.result} generation ${body.generation} ${body.hash}\n`);
    // The file watcher usually applies an edit before this command even starts: say so.
    if (body.result === 'unchanged' && body.source && body.source !== 'startup') {
      process.stderr.write(`(this config was applied at ${body.loaded_at} after a ${body.source} trigger)\n`);
    }
    return EXIT.ok;
  }
  if (res.status === 422) {
    process.stdout.write('rejected: the previous config keeps serving\n');
    for (const e of body.errors ?? []) {
      process.stdout.write(`${formatIssue({ ...e, severity: 'error' })}\n`);
    }
    return EXIT.fail;
  }
  process.stderr.write(`ccload reload: unexpected answer ${res.status} from ${control.url}\n`);
  return EXIT.fail;
}

async function serve(file: string): Promise<void> {
  let daemon: Daemon;
  try {
    daemon = await startDaemon({ configPath: file, env: process.env });
  } catch (err) {
    if (err instanceof ConfigInvalidError) {
      process.stderr.write(`ccload: cannot start, the configuration is invalid:\n`);
      for (const e of err.errors) process.stderr.write(`${formatIssue(e)}\n`);
      process.exit(EXIT.config);
    }
    process.stderr.write(`ccload: cannot start: ${(err as Error).message}\n`);
    process.exit(EXIT.software);
  }
  const systemd = attachSystemd(daemon, process.env);
  process.on('SIGHUP', () => {
    void systemd?.reloading();
    void daemon.app.reloader.request('signal').then(() => systemd?.reloaded());
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      eventLog(daemon.app.log, 'shutdown_forced').warn({ signal }, 'second signal: exiting at once');
      process.exit(EXIT.fail);
    }
    stopping = true;
    eventLog(daemon.app.log, 'shutdown').info({ signal }, 'shutting down');
    const told = systemd?.stopping();
    void daemon.close().then(
      async () => {
        await told;
        process.exit(EXIT.ok);
      },
      () => process.exit(EXIT.software),
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

async function main(): Promise<void> {
  if (process.argv[2] === 'import-ccload') {
    const io = {
      cwd: process.cwd(),
      stdout: (s: string) => process.stdout.write(s),
      stderr: (s: string) => process.stderr.write(s),
    };
    process.exitCode = await importCcloadCommand(process.argv.slice(3), io);
    return;
  }
  const parsed = parseArgs(process.argv.slice(2));
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (parsed === 'version') {
    process.stdout.write(`ccload ${version()}\n`);
    return;
  }
  if (typeof parsed === 'string') {
    process.stderr.write(`ccload: ${parsed}\n${USAGE}\n`);
    process.exit(EXIT.usage);
  }
  loadDotEnv();
  const file = resolve(parsed.file ?? process.env['CCLOAD_CONFIG'] ?? 'ccload.yaml');
  const shown = parsed.file ?? process.env['CCLOAD_CONFIG'] ?? 'ccload.yaml';
  if (parsed.command === 'check') process.exit(await check(shown));
  if (parsed.command === 'reload') process.exit(await reload(file));
  await serve(shown);
}

void main();
