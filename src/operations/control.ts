/**
 * The control file: how `ccload reload` finds and authenticates to the daemon serving the same
 * config. The daemon writes `{pid, url, token}` at start and removes it at exit; the token is
 * random per start and only allows `POST /admin/reload` and `GET /admin/config/status`. Being able
 * to read the file = being the operator.
 *
 * It lives in `$RUNTIME_DIRECTORY` (systemd's RuntimeDirectory=) or else in a folder of this user's
 * own under the temp folder (`ccload-<uid>`, mode 0700), which is refused when it is a symlink,
 * belongs to someone else or is writable by others. The file is created exclusively (O_EXCL,
 * O_NOFOLLOW, mode 0600) under a temporary name and renamed into place, so a symlink or file
 * planted at its name is replaced, never written through, and never lends its mode.
 */
import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

/** What the control file holds. */
export interface ControlInfo {
  readonly pid: number;
  readonly url: string;
  readonly token: string;
}

/** The private folder under the temp folder used outside systemd. */
function privateDir(env: Readonly<Record<string, string | undefined>>): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(env['TMPDIR'] || tmpdir(), `ccload-${uid}`);
}

/**
 * Where the control file of a daemon serving the config at `configPath` lives:
 * `$RUNTIME_DIRECTORY` or the private folder under the temp folder (`$TMPDIR` or the system's),
 * named after the config's real path — so `ccload reload` finds it even while the file is invalid.
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
  const dir = env['RUNTIME_DIRECTORY']?.split(':')[0] || privateDir(env);
  return join(dir, `ccload-${tag}.control`);
}

/**
 * Makes sure `dir` is a folder only this user controls: a real directory (not a symlink), owned by
 * this user, not writable by group or others. A missing one is created with mode 0700.
 */
function ensurePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} is not a directory (a symlink or file is in its place)`);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (st.uid !== uid) throw new Error(`${dir} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o022) !== 0) {
    throw new Error(`${dir} is writable by other users (mode ${(st.mode & 0o777).toString(8)})`);
  }
}

/** A fresh random control token. */
export function newControlToken(): string {
  return randomBytes(24).toString('base64url');
}

/**
 * Writes the control file: in a private folder (checked, or created 0700), through a temporary
 * file created exclusively with mode 0600 and renamed over the name — never through whatever
 * already is there.
 */
export function writeControlFile(path: string, info: ControlInfo): void {
  const dir = dirname(path);
  ensurePrivateDir(dir);
  const tmp = join(dir, `.${randomBytes(8).toString('hex')}.control.tmp`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, `${JSON.stringify(info)}\n`);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/**
 * Reads the control file, or undefined when there is none — or when it is not a regular file of
 * this user in a private folder (so a planted file cannot point `ccload reload` elsewhere).
 */
export function readControlFile(path: string): ControlInfo | undefined {
  try {
    ensureOwnedRegular(path);
    const v = JSON.parse(readFileSync(path, 'utf8')) as ControlInfo;
    return typeof v.url === 'string' && typeof v.token === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

function ensureOwnedRegular(path: string): void {
  const st = lstatSync(path);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isFile() || (st.uid !== uid && uid !== 0))
    throw new Error(`${path} is not this user's control file`);
  const dir = lstatSync(dirname(path));
  if (!dir.isDirectory() || (dir.uid !== uid && uid !== 0) || (dir.mode & 0o022) !== 0) {
    throw new Error(`${dirname(path)} is not a private folder`);
  }
}

/** Removes the control file if it is still ours. */
export function removeControlFile(path: string, token: string): void {
  if (readControlFile(path)?.token === token) rmSync(path, { force: true });
}
