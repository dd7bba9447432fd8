/**
 * Expansion of `${NAME}`, `${NAME:-default}` and `${file:PATH}` references (syntax: references.ts)
 * inside the string values of ccload.yaml that may hold them. Interpolation runs on the loaded copy
 * only; the YAML document keeps the reference, so write-back never bakes a secret into the file.
 *
 * `${file:…}` is read asynchronously before expansion (`readReferencedFiles`), never on the event
 * loop: the file must be a regular file of at most 64 KiB. It is opened with O_NONBLOCK (so a FIFO
 * cannot block the open) and judged by fstat of the opened descriptor (so what is checked is what
 * is read — no window between a stat of the path and the open). Symlinks are followed on purpose:
 * Kubernetes secret volumes and credential folders are symlinks to regular files.
 */
import { constants, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { parseReferences } from './references.js';

/** Largest file a `${file:…}` reference may read. */
export const FILE_REFERENCE_LIMIT = 64 * 1024;

/** The outcome of reading one referenced file. */
export type FileRead =
  | { readonly ok: true; readonly value: string }
  | { readonly ok: false; readonly reason: string };

/** The result of expanding one string. */
export interface Expansion {
  readonly value: string;
  /** True when the string held at least one reference. */
  readonly referenced: boolean;
  /** Problems, one per bad reference: unset variable, unreadable file, syntax. */
  readonly errors: readonly string[];
}

/** The absolute path a `${file:PATH}` names: relative paths resolve against `baseDir`. */
export function referencedPath(path: string, baseDir: string): string {
  return isAbsolute(path) ? path : resolve(baseDir, path);
}

/** Every absolute path the `${file:…}` references of `text` name. */
export function fileReferences(text: string, baseDir: string): string[] {
  if (!text.includes('${')) return [];
  return parseReferences(text).flatMap((s) => (s.kind === 'file' ? [referencedPath(s.path, baseDir)] : []));
}

function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a file';
}

const KIB = FILE_REFERENCE_LIMIT / 1024;

/** Reads one referenced file under the rules above; never throws, never blocks the event loop. */
export async function readReferencedFile(full: string): Promise<FileRead> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(full, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    if (code === 'ENOENT') return { ok: false, reason: 'no such file' };
    if (code === 'EACCES' || code === 'EPERM') return { ok: false, reason: `permission denied (${code})` };
    if (code === 'ENXIO') return { ok: false, reason: 'not a regular file (a socket or device)' };
    return { ok: false, reason: code };
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { ok: false, reason: `not a regular file (${kindOf(st)})` };
    if (st.size > FILE_REFERENCE_LIMIT) {
      return { ok: false, reason: `larger than ${KIB} KiB (${st.size} bytes)` };
    }
    // Read one byte past the limit: files whose size stat does not tell (/proc) are capped too.
    const buf = Buffer.alloc(FILE_REFERENCE_LIMIT + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > FILE_REFERENCE_LIMIT) return { ok: false, reason: `larger than ${KIB} KiB` };
    return {
      ok: true,
      value: buf
        .subarray(0, n)
        .toString('utf8')
        .replace(/\r?\n$/, ''),
    };
  } catch (err) {
    return { ok: false, reason: (err as NodeJS.ErrnoException).code ?? 'error' };
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Reads each path once, in parallel. */
export async function readReferencedFiles(paths: Iterable<string>): Promise<Map<string, FileRead>> {
  const unique = [...new Set(paths)];
  const reads = await Promise.all(unique.map((p) => readReferencedFile(p)));
  return new Map(unique.map((p, i) => [p, reads[i]!]));
}

/**
 * Expands every reference in `text`. `env` is the environment to read; `files` holds the reads of
 * the `${file:…}` references (see `readReferencedFiles`); `baseDir` resolves relative paths.
 */
export function expand(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
  files: ReadonlyMap<string, FileRead>,
  baseDir: string,
): Expansion {
  if (!text.includes('${')) return { value: text, referenced: false, errors: [] };
  const errors: string[] = [];
  let referenced = false;
  let value = '';
  for (const s of parseReferences(text)) {
    if (s.kind === 'text') {
      value += s.text;
    } else if (s.kind === 'invalid') {
      errors.push(s.message);
    } else if (s.kind === 'file') {
      referenced = true;
      const full = referencedPath(s.path, baseDir);
      const read = files.get(full) ?? { ok: false, reason: 'not read' };
      if (read.ok) value += read.value;
      else errors.push(`cannot read ${full} for \${file:${s.path}}: ${read.reason}`);
    } else {
      referenced = true;
      const set = env[s.name];
      if (set !== undefined && (set !== '' || s.fallback === undefined)) value += set;
      else if (s.fallback !== undefined) value += s.fallback;
      else
        errors.push(
          `environment variable ${s.name} is not set (write \${${s.name}:-} to allow it to be empty)`,
        );
    }
  }
  return { value, referenced, errors };
}
