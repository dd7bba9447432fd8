/**
 * Write-back: a dashboard or admin-API edit of a channel becomes a minimal, comment-preserving
 * change to ccload.yaml. The file stays the single source of truth; nothing is stored elsewhere.
 *
 * How an edit travels (one at a time per file, see `applyEdit`):
 *  1. refused (`forbidden`) when `admin.write_back` is false — in the applied snapshot or in the file;
 *  2. refused (`conflict`) when the caller's `expectedHash` is not the file's current hash: a concurrent
 *     edit (a `git pull`, a colleague, another tab) is never silently overwritten;
 *  3. the YAML text is edited (`editConfigText`, pure): scalar values in place through the CST
 *     (byte-exact: only the value changes, even the column of a trailing comment is kept); anything
 *     structural (a channel added or removed, a list or map changed, a key added or removed) through
 *     the `Document` API, whose output is then merged line by line into the original text so that
 *     untouched lines keep their exact bytes (yaml's printer would otherwise re-space every inline
 *     comment and flow collection of the file). The merge is verified and falls back to yaml's whole
 *     rendering when it cannot be proven equivalent, so the result is always the edited document;
 *  4. secrets: a new or changed key must be a `${NAME}`, `${NAME:-default}` or `${file:PATH}`
 *     reference. A literal typed into a form is refused with an explanation rather than written to
 *     a file meant for git. Keys the edit does not change stay exactly as they are in the file
 *     (literal or not); `{ keep: i }` names an existing key by its position;
 *  5. the edited text is validated by the one loader (`loadConfigText`); `invalid`, file untouched;
 *  6. written atomically: temp file in the target's folder, fsync, rename onto the real path (a
 *     symlinked ccload.yaml keeps its link; the target is replaced), the file's mode kept;
 *  7. the reloader runs (`request('write-back')`) and the edit answers after it applied; the
 *     watcher's later event finds the same hash and is 'unchanged' (one generation per edit);
 *  8. with `admin.git_commit: true`: `git commit --only -- <file>` in the file's repository, message
 *     naming the action and channel. A failed commit does not undo the write; it is reported.
 *
 * Unknown keys, comments, blank lines, key order, quoting, anchors and aliases of everything the
 * edit does not touch survive (claude-code-router's UI dropped unknown keys: its issue #749).
 *
 * This file holds the steps on the file; each part has its own file beside it: `channel-edit.ts`
 * (what an edit is), `text-edit.ts` (step 3) with `edit-plan.ts`, `channel-nodes.ts`,
 * `scalar-edit.ts`, `structural-edit.ts` and `line-merge.ts`; `atomic-write.ts` (step 6),
 * `git-commit.ts` (step 8), `serial-queue.ts` (one at a time), `key-sources.ts` (what views show).
 */
import { readFile, realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse } from 'yaml';
import type { Logger } from '../../observability/log.js';
import { hashContent, type LoadInput, loadConfigText } from '../load.js';
import type { Reloader } from '../reloader.js';
import type { ConfigIssue } from '../snapshot.js';
import { writeAtomically } from './atomic-write.js';
import { type ChannelEdit, describeEdit } from './channel-edit.js';
import { gitCommit } from './git-commit.js';
import { type ChannelKeySources, channelKeySources } from './key-sources.js';
import { serialised } from './serial-queue.js';
import { editConfigText, splitEncoding } from './text-edit.js';

/** What write-back needs from the daemon. */
export interface WriteBackDeps {
  /** The loader input the reloader uses (same path, env, cwd): validation must judge like a reload. */
  readonly input: Omit<LoadInput, 'generation' | 'source' | 'now'>;
  readonly reloader: Reloader;
  readonly log?: Logger;
  readonly now?: () => number;
  /** Bound of each git command (default 15 s). */
  readonly gitTimeoutMs?: number;
}

/** Options of one `applyEdit`. */
export interface ApplyEditOptions extends WriteBackDeps {
  readonly edit: ChannelEdit;
  /** The file hash the edit was based on (`If-Match`); a different current hash is a conflict. */
  readonly expectedHash?: string | undefined;
}

/**
 * Why an edit was refused, as a kind (`error`) and a message. Which HTTP status a kind answers with
 * is the admin API's business (`writeBackStatus` in admin/channel-routes.ts), not the config's.
 */
export type WriteBackError =
  | { readonly ok: false; readonly error: 'forbidden'; readonly message: string }
  | {
      readonly ok: false;
      readonly error: 'conflict';
      readonly message: string;
      /** The file's current hash, to re-base the edit on. */
      readonly hash: string;
    }
  | {
      readonly ok: false;
      readonly error: 'invalid';
      readonly message: string;
      readonly errors: readonly ConfigIssue[];
    }
  | { readonly ok: false; readonly error: 'secret' | 'not_found' | 'bad_request'; readonly message: string }
  | { readonly ok: false; readonly error: 'io'; readonly message: string };

/** The kinds of refusal an edit can get. */
export type WriteBackErrorKind = WriteBackError['error'];

/** A successful write-back. */
export interface WriteBackSuccess {
  readonly ok: true;
  /** False when the edit changed nothing: no write, no reload, no commit. */
  readonly changed: boolean;
  /** Hash of the file now (the written content). */
  readonly hash: string;
  /** The generation serving after the reload. */
  readonly generation: number;
  /** The reload's verdict (`rejected` only if something changed between validation and reload). */
  readonly reload: 'applied' | 'unchanged' | 'rejected' | 'skipped';
  readonly reloadErrors: readonly ConfigIssue[];
  /** Commit id when `admin.git_commit` is on and the commit succeeded. */
  readonly commit?: string;
  /** Why the commit failed (the write stands). */
  readonly commitError?: string;
  /** True when yaml's whole-file rendering was written because the minimal merge was not possible. */
  readonly normalised: boolean;
  /** The loader's warnings about the new file (literal secrets, keyless channels, ...). */
  readonly warnings: readonly ConfigIssue[];
}

/** The verdict of `applyEdit`. */
export type WriteBackResult = WriteBackSuccess | WriteBackError;

/**
 * Applies one edit to the config file (see the module comment for the steps). Write-backs of the
 * same file run one at a time. Never throws for a refused edit; I/O errors of the write itself
 * become `{ error: 'io' }` with the file untouched.
 */
export function applyEdit(opts: ApplyEditOptions): Promise<WriteBackResult> {
  const full = resolve(opts.input.cwd ?? process.cwd(), opts.input.path);
  return serialised(full, () => applyLocked(opts, full));
}

async function applyLocked(opts: ApplyEditOptions, full: string): Promise<WriteBackResult> {
  const now = opts.now ?? Date.now;
  const current = opts.reloader.current;
  const readOnly = (where: string): WriteBackError => ({
    ok: false,
    error: 'forbidden',
    message: `configuration write-back is off (admin.write_back: false ${where}): edit ccload.yaml itself, e.g. through git`,
  });
  if (current.config.admin.write_back === false) return readOnly('in the running config');

  let real: string;
  let bytes: Buffer;
  try {
    real = await realpath(full);
    bytes = await readFile(real);
  } catch (err) {
    return ioError(`cannot read ${full}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  const text = bytes.toString('utf8');
  const hash = hashContent(bytes);
  if (fileSaysReadOnly(text)) return readOnly('in the file');
  if (opts.expectedHash !== undefined && opts.expectedHash !== hash) {
    return {
      ok: false,
      error: 'conflict',
      hash,
      message:
        'ccload.yaml changed since this edit was prepared (its hash differs from If-Match): reload the channel list and apply the edit again',
    };
  }

  const loadInput = (t: number) => ({
    ...opts.input,
    generation: current.generation + 1,
    source: 'write-back' as const,
    now: t,
  });
  const edited = editConfigText(text, opts.edit);
  if (!edited.ok) {
    if (edited.error === 'unparsable') {
      const r = await loadConfigText(text, loadInput(now()), hash);
      return invalid(r.ok ? [] : r.errors, 'the current ccload.yaml does not parse; fix the file first');
    }
    return { ok: false, error: edited.error, message: edited.message };
  }
  if (!edited.changed) {
    return {
      ok: true,
      changed: false,
      hash,
      generation: current.generation,
      reload: 'skipped',
      reloadErrors: [],
      normalised: false,
      warnings: [],
    };
  }

  const newBytes = Buffer.from(edited.text, 'utf8');
  const newHash = hashContent(newBytes);
  const verdict = await loadConfigText(edited.text, loadInput(now()), newHash);
  if (!verdict.ok)
    return invalid(verdict.errors, 'the edited configuration would be invalid; nothing was written');

  try {
    const raced = await writeAtomically(real, newBytes, hash);
    if (raced) {
      return {
        ok: false,
        error: 'conflict',
        hash: raced,
        message: 'ccload.yaml changed while this edit was being applied; nothing was written',
      };
    }
  } catch (err) {
    return ioError(`cannot write ${real}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }

  const outcome = await opts.reloader.request('write-back');
  const summary = describeEdit(opts.edit);
  opts.log?.info(
    {
      event: 'config_write_back',
      action: opts.edit.action,
      file: opts.input.display ?? opts.input.path,
      hash: newHash,
      generation: outcome.generation,
      reload: outcome.result,
      normalised: edited.normalised,
    },
    `config write-back: ${summary}`,
  );

  let commit: string | undefined;
  let commitError: string | undefined;
  const admin = verdict.snapshot.config.admin;
  if (admin.git_commit) {
    const c = await gitCommit(real, `ccload: ${summary}`, admin.git_author, opts.gitTimeoutMs ?? 15_000);
    if ('commit' in c) commit = c.commit;
    else {
      commitError = c.error;
      opts.log?.warn({ event: 'config_git_commit_failed', error: c.error }, `git commit failed: ${c.error}`);
    }
  }
  return {
    ok: true,
    changed: true,
    hash: newHash,
    generation: outcome.generation,
    reload: outcome.result,
    reloadErrors: outcome.errors,
    ...(commit !== undefined ? { commit } : {}),
    ...(commitError !== undefined ? { commitError } : {}),
    normalised: edited.normalised,
    warnings: verdict.snapshot.warnings,
  };
}

function ioError(message: string): WriteBackError {
  return { ok: false, error: 'io', message };
}

function invalid(errors: readonly ConfigIssue[], message: string): WriteBackError {
  return { ok: false, error: 'invalid', message, errors };
}

/** `admin.write_back: false` in the file as it is now (even before a reload applied it). */
function fileSaysReadOnly(text: string): boolean {
  try {
    const data = parse(splitEncoding(text).body) as { admin?: { write_back?: unknown } } | null;
    return data?.admin?.write_back === false;
  } catch {
    return false;
  }
}

/**
 * Write-back bound to one daemon: what `App.writeBack` holds, so the admin API and the dashboard
 * apply edits the same way (and one at a time).
 */
export class WriteBack {
  readonly #deps: WriteBackDeps;

  constructor(deps: WriteBackDeps) {
    this.#deps = deps;
  }

  /** Applies an edit; `expectedHash` is the hash the caller's view was based on (optional). */
  apply(edit: ChannelEdit, expectedHash?: string): Promise<WriteBackResult> {
    return applyEdit({ ...this.#deps, edit, expectedHash });
  }

  /** How each channel's keys are written in the file now (references only; see `channelKeySources`). */
  async keySources(): Promise<{ hash: string; channels: Map<string, ChannelKeySources> } | undefined> {
    try {
      const full = resolve(this.#deps.input.cwd ?? process.cwd(), this.#deps.input.path);
      const bytes = await readFile(full);
      return { hash: hashContent(bytes), channels: channelKeySources(bytes.toString('utf8')) };
    } catch {
      return undefined;
    }
  }
}
