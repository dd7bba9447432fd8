/**
 * The control file: how `ccload reload` finds and authenticates to the daemon serving the same
 * config. The daemon writes `{pid, url, token}` (mode 0600) beside its state at start and removes
 * it at exit; the token is random per start and only allows `POST /admin/reload` and
 * `GET /admin/config/status`. Being able to read the file = being the operator.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** What the control file holds. */
export interface ControlInfo {
  readonly pid: number;
  readonly url: string;
  readonly token: string;
}

/**
 * Where the control file of a daemon serving the config at `configPath` lives:
 * `$RUNTIME_DIRECTORY` (systemd's RuntimeDirectory=) or the temp folder, named after the config's
 * real path — so `ccload reload` finds it even while the file is invalid.
 */
export function controlFilePath(
  configPath: string,
  env: Readonly<Record<string, string | undefined>>,
): string {
  let real = resolve(configPath);
  try {
    real = realpathSync(real);
  } catch {
    // a missing file still has a well-defined control path
  }
  const tag = createHash('sha256').update(real).digest('hex').slice(0, 12);
  const dir = env['RUNTIME_DIRECTORY']?.split(':')[0] || tmpdir();
  return join(dir, `ccload-${tag}.control`);
}

/** A fresh random control token. */
export function newControlToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Writes the control file (mode 0600). */
export function writeControlFile(path: string, info: ControlInfo): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(info)}\n`, { mode: 0o600 });
}

/** Reads the control file, or undefined when there is none. */
export function readControlFile(path: string): ControlInfo | undefined {
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as ControlInfo;
    return typeof v.url === 'string' && typeof v.token === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Removes the control file if it is still ours. */
export function removeControlFile(path: string, token: string): void {
  if (readControlFile(path)?.token === token) rmSync(path, { force: true });
}
