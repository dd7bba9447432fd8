/**
 * `ccload import-ccload PATH_TO_OLD_DB [--out FILE] [--env-file FILE] [--force]`: reads a Go ccLoad
 * database read-only, writes the channels as a ccload.yaml fragment (stdout or `--out`) and their
 * keys to an env file (mode 0600), and prints a summary on stderr. Key values go to the env file
 * only — never to the YAML, stdout or the summary.
 */
import { chmodSync, existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { type ImportPlan, planImport, renderChannelsYaml, renderEnvFile } from './ccload-convert.js';
import { CcloadDbError, readCcloadDb } from './ccload-db.js';

/** Where the command reads its working directory and writes its output. */
export interface CommandIo {
  readonly cwd: string;
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Usage text of the command. */
const IMPORT_USAGE = `usage: ccload import-ccload PATH_TO_OLD_DB [--out FILE] [--env-file FILE] [--force]
  Converts the channels of a Go ccLoad SQLite database (opened read-only) into ccload.yaml channels.
  --out FILE        write the channels YAML to FILE (default: stdout)
  --env-file FILE   write the keys to FILE, mode 0600 (default: FILE.env beside --out, else ./ccload-keys.env)
  --force           overwrite existing output files`;

interface Args {
  readonly db: string;
  readonly out?: string;
  readonly envFile?: string;
  readonly force: boolean;
}

function parse(argv: readonly string[]): Args | 'help' | string {
  const args = [...argv];
  let db: string | undefined;
  let out: string | undefined;
  let envFile: string | undefined;
  let force = false;
  while (args.length > 0) {
    const a = args.shift()!;
    const value = (flag: string): string | undefined => {
      if (a.startsWith(`${flag}=`)) return a.slice(flag.length + 1);
      return args.shift();
    };
    if (a === '--help' || a === '-h') return 'help';
    if (a === '--force' || a === '-f') force = true;
    else if (a === '--out' || a.startsWith('--out=') || a === '-o') {
      out = value(a === '-o' ? '-o' : '--out');
      if (!out) return '--out needs a FILE';
    } else if (a === '--env-file' || a.startsWith('--env-file=')) {
      envFile = value('--env-file');
      if (!envFile) return '--env-file needs a FILE';
    } else if (a.startsWith('-')) return `unknown option "${a}"`;
    else if (db === undefined) db = a;
    else return `unexpected argument "${a}"`;
  }
  if (!db) return 'the path of the Go ccLoad database is missing';
  return { db, out, envFile, force };
}

/** The env file's default path: beside `--out` with `.env` instead of `.yaml`, else `./ccload-keys.env`. */
function defaultEnvFile(out: string | undefined, cwd: string): string {
  if (!out) return resolve(cwd, 'ccload-keys.env');
  const full = resolve(cwd, out);
  return join(dirname(full), `${basename(full).replace(/\.ya?ml$/i, '')}.env`);
}

/** Writes `text` to `path` with `mode`, through a temp file and rename so the mode holds from the first byte. */
function writeFile(path: string, text: string, mode: number, force: boolean): void {
  if (!force && existsSync(path)) throw new Error(`${path} exists (use --force to overwrite it)`);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode, flag: 'wx' });
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

function summary(plan: ImportPlan, db: string, yamlTo: string, envTo: string, shown: (p: string) => string) {
  const lines: string[] = [];
  const keys = plan.channels.reduce((n, c) => n + c.keys.length, 0);
  const disabled = plan.channels.filter((c) => !c.enabled).length;
  lines.push(
    `ccload import-ccload: ${plan.channels.length} channel(s) imported${disabled ? ` (${disabled} disabled)` : ''}, ${keys} key(s), ${plan.skipped.length} skipped — from ${db}`,
  );
  for (const c of plan.channels) {
    const what = [
      `priority ${c.priority}`,
      c.models ? `${c.models.length} model(s)` : 'every model',
      `${c.keys.length} key(s)`,
      c.modelMap ? `${Object.keys(c.modelMap).length} redirect(s)` : '',
      c.enabled ? '' : 'disabled',
    ].filter(Boolean);
    lines.push(`  + ${c.name}: ${what.join(', ')}`);
  }
  for (const s of plan.skipped) {
    lines.push(`  - skipped "${s.sourceName}"${s.sourceId !== null ? ` (#${s.sourceId})` : ''}: ${s.reason}`);
  }
  for (const w of plan.warnings) lines.push(`warning: ${w}`);
  lines.push(`channels → ${yamlTo}`);
  lines.push(`keys     → ${shown(envTo)} (mode 0600; keep it out of git)`);
  lines.push(
    'next: merge the channels into ccload.yaml, load the env file (systemd EnvironmentFile=, or .env), run `ccload check`',
  );
  return `${lines.join('\n')}\n`;
}

/** Runs the command; resolves with the exit code (0 done, 1 failed, 64 usage). */
export async function importCcloadCommand(argv: readonly string[], io: CommandIo): Promise<number> {
  const args = parse(argv);
  if (args === 'help') {
    io.stdout(`${IMPORT_USAGE}\n`);
    return 0;
  }
  if (typeof args === 'string') {
    io.stderr(`ccload import-ccload: ${args}\n${IMPORT_USAGE}\n`);
    return 64;
  }
  const shown = (p: string) => {
    const rel = relative(io.cwd, p);
    return rel && !rel.startsWith('..') ? rel : p;
  };
  let plan: ImportPlan;
  let source: string;
  try {
    const rows = await readCcloadDb(resolve(io.cwd, args.db));
    source = rows.path;
    plan = planImport(rows);
  } catch (err) {
    const message = err instanceof CcloadDbError ? err.message : `cannot read ${args.db}: ${String(err)}`;
    io.stderr(`ccload import-ccload: ${message}\n`);
    return 1;
  }
  const envPath = args.envFile ? resolve(io.cwd, args.envFile) : defaultEnvFile(args.out, io.cwd);
  const outPath = args.out ? resolve(io.cwd, args.out) : undefined;
  if (outPath && outPath === envPath) {
    io.stderr('ccload import-ccload: --out and --env-file name the same file\n');
    return 64;
  }
  const yaml = renderChannelsYaml(plan, { source, envFile: shown(envPath) });
  if (!args.force) {
    const existing = [envPath, outPath].filter((p): p is string => p !== undefined && existsSync(p));
    if (existing.length > 0) {
      io.stderr(`ccload import-ccload: ${existing.join(' and ')} exist(s); use --force to overwrite\n`);
      return 1;
    }
  }
  try {
    // Keys first: a YAML that references an env file which failed to appear would mislead.
    writeFile(envPath, renderEnvFile(plan, { source }), 0o600, args.force);
    if (outPath) writeFile(outPath, yaml, 0o644, args.force);
  } catch (err) {
    io.stderr(`ccload import-ccload: ${(err as Error).message}\n`);
    return 1;
  }
  if (!outPath) io.stdout(yaml);
  io.stderr(summary(plan, source, outPath ? shown(outPath) : 'stdout', envPath, shown));
  return 0;
}
