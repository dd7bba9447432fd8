/**
 * Replacing a file atomically and durably: temp file in the same folder, fsync, rename, folder fsync.
 */
import { randomBytes } from 'node:crypto';
import { chmod, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { hashContent } from '../load.js';

/**
 * Replaces `target` with `bytes`: a temp file in the same folder (same filesystem, so the rename is
 * atomic), written, chmod'ed to the target's mode, fsync'ed, then — if the target still has the hash
 * the edit was based on — renamed over it, and the folder fsync'ed so the rename itself is durable.
 * Returns the target's unexpected hash when it changed meanwhile (nothing is written then). The
 * temp name starts with `.` and does not start with `..`, so the config watcher ignores it.
 */
export async function writeAtomically(
  target: string,
  bytes: Buffer,
  expected: string,
): Promise<string | undefined> {
  const st = await stat(target);
  const tmp = join(dirname(target), `.${basename(target)}.ccload-${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', st.mode & 0o7777);
  let renamed = false;
  try {
    try {
      await fh.writeFile(bytes);
      await fh.chmod(st.mode & 0o7777);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const now = hashContent(await readFile(target));
    if (now !== expected) return now;
    await rename(tmp, target);
    renamed = true;
  } finally {
    if (!renamed) await unlink(tmp).catch(() => {});
  }
  await chmod(target, st.mode & 0o7777).catch(() => {});
  try {
    const dir = await open(dirname(target), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // Some filesystems cannot fsync a directory; the rename is still atomic.
  }
  return undefined;
}
