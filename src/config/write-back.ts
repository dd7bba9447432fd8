/**
 * Write-back: a dashboard or admin-API edit of a channel becomes a minimal, comment-preserving
 * change to ccload.yaml. The file stays the single source of truth; nothing is stored elsewhere.
 *
 * How an edit travels (one at a time per file, see `applyEdit`):
 *  1. refused (403) when `admin.write_back` is false — in the applied snapshot or in the file;
 *  2. refused (412) when the caller's `expectedHash` is not the file's current hash: a concurrent
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
 *  5. the edited text is validated by the one loader (`loadConfigText`); invalid → 422, file untouched;
 *  6. written atomically: temp file in the target's folder, fsync, rename onto the real path (a
 *     symlinked ccload.yaml keeps its link; the target is replaced), the file's mode kept;
 *  7. the reloader runs (`request('write-back')`) and the edit answers after it applied; the
 *     watcher's later event finds the same hash and is 'unchanged' (one generation per edit);
 *  8. with `admin.git_commit: true`: `git commit --only -- <file>` in the file's repository, message
 *     naming the action and channel. A failed commit does not undo the write; it is reported.
 *
 * Unknown keys, comments, blank lines, key order, quoting, anchors and aliases of everything the
 * edit does not touch survive (claude-code-router's UI dropped unknown keys: its issue #749).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, open, readFile, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import {
  Composer,
  CST,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  type Node,
  Pair,
  Parser,
  parse,
  parseDocument,
  type Scalar,
  type ToStringOptions,
  visit,
  YAMLMap,
  YAMLSeq,
} from 'yaml';
import type { Logger } from '../log.js';
import { hashContent, type LoadInput, loadConfigText } from './load.js';
import type { Reloader } from './reloader.js';
import { isSecretPath } from './secrets.js';
import type { ConfigIssue } from './snapshot.js';

// --- What an edit is ----------------------------------------------------------------------------

/**
 * A key as an edit gives it: a string — which must be a `${...}` reference unless it equals a key
 * already in this channel — or `{ keep: i }`, the channel's existing key at file position `i`
 * (position in `keys:`, or 0 for `api_key:`), kept exactly as written even when it is a literal.
 * The admin API never shows key values, so `keep` is how a form keeps a key it cannot see.
 */
export type KeyInput = string | { readonly keep: number };

/** How a channel's key is sent upstream (`auth:` in the file). */
export type ChannelAuth = 'x-api-key' | 'bearer' | 'both';

/**
 * Fields of a channel an update may change. An absent field is left alone; `null` removes the key
 * from the file (the schema default applies again: every model, no map, enabled, priority 0, ...).
 * Setting `api_key` removes `keys` and the other way round (a channel has one or the other).
 */
export interface ChannelChanges {
  /** A rename. Runtime state (cooldowns, stats) is keyed by name, so it starts afresh. */
  readonly name?: string;
  readonly url?: string;
  readonly api_key?: KeyInput | null;
  readonly keys?: readonly KeyInput[] | null;
  readonly auth?: ChannelAuth | null;
  readonly priority?: number | null;
  readonly models?: readonly string[] | null;
  readonly model_map?: Readonly<Record<string, string>> | null;
  readonly enabled?: boolean | null;
}

/** A channel to add. Keys must be references (there is nothing to keep yet). */
export interface NewChannel {
  readonly name: string;
  readonly url: string;
  readonly api_key?: string;
  readonly keys?: readonly string[];
  readonly auth?: ChannelAuth;
  readonly priority?: number;
  readonly models?: readonly string[];
  readonly model_map?: Readonly<Record<string, string>>;
  readonly enabled?: boolean;
}

/** One write-back action on the `channels` list. */
export type ChannelEdit =
  | { readonly action: 'add'; readonly channel: NewChannel }
  | { readonly action: 'update'; readonly name: string; readonly changes: ChannelChanges }
  | { readonly action: 'delete'; readonly name: string }
  | { readonly action: 'enable'; readonly name: string }
  | { readonly action: 'disable'; readonly name: string }
  | { readonly action: 'set-priority'; readonly name: string; readonly priority: number };

/** The channel fields in the order they are written (a new key goes after its predecessor here). */
const FIELD_ORDER = [
  'name',
  'url',
  'api_key',
  'keys',
  'auth',
  'priority',
  'models',
  'model_map',
  'enabled',
] as const;

/** What an edit does, in words: the git commit message after `ccload: `, and the log line. */
export function describeEdit(edit: ChannelEdit): string {
  switch (edit.action) {
    case 'add':
      return `add channel ${JSON.stringify(edit.channel.name)}`;
    case 'delete':
    case 'enable':
    case 'disable':
      return `${edit.action} channel ${JSON.stringify(edit.name)}`;
    case 'set-priority':
      return `set priority of channel ${JSON.stringify(edit.name)} to ${edit.priority}`;
    case 'update': {
      const fields = FIELD_ORDER.filter((k) => edit.changes[k] !== undefined);
      const rename =
        edit.changes.name !== undefined && edit.changes.name !== edit.name
          ? ` (renamed to ${JSON.stringify(edit.changes.name)})`
          : '';
      return `update channel ${JSON.stringify(edit.name)}${fields.length ? `: ${fields.join(', ')}` : ''}${rename}`;
    }
  }
}

const REFERENCE = /^\$\{(?:file:[^}]+|[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?)\}$/;

/**
 * True when `value` is exactly one `${NAME}`, `${NAME:-default}` or `${file:PATH}` reference — the
 * only form in which write-back accepts a new secret. Mixed text (`sk-${X}`) is not a reference.
 * The default of `${NAME:-default}` is written as given: it is meant for a non-secret fallback
 * (an empty default, for instance), and the operator typed it on purpose.
 */
export function isReference(value: string): boolean {
  return REFERENCE.test(value);
}

// --- Editing the text (pure) --------------------------------------------------------------------

/** Why an edit of the text was refused before validation. */
export type EditRefusal =
  | 'not_found' // no channel of that name
  | 'secret' // a literal key was given
  | 'bad_request' // the edit itself is malformed (keep index out of range, no channels list, ...)
  | 'unparsable'; // the current file is not valid YAML: nothing can be located in it

/** The result of `editConfigText`. */
export type TextEditResult =
  | {
      readonly ok: true;
      readonly text: string;
      /** False when the edit changes nothing (e.g. disabling a disabled channel). */
      readonly changed: boolean;
      /** True when the minimal line merge failed and yaml's whole-file rendering was used. */
      readonly normalised: boolean;
    }
  | { readonly ok: false; readonly error: EditRefusal; readonly message: string };

/** A key kept from the file: its node (cloned into the new place) and its value. */
interface Kept {
  readonly kept: Node;
  readonly js: unknown;
}

type OpValue =
  | string
  | number
  | boolean
  | Kept
  | readonly (string | Kept)[]
  | Readonly<Record<string, string>>;

/** One change to a channel map. */
type FieldOp =
  | { readonly key: string; readonly value: OpValue }
  | { readonly key: string; readonly remove: true };

/** The resolved plan of an edit on one file. */
type Plan =
  | { readonly kind: 'add'; readonly channel: Readonly<Record<string, OpValue>> }
  | { readonly kind: 'delete'; readonly index: number }
  | { readonly kind: 'fields'; readonly index: number; readonly ops: readonly FieldOp[] };

type Refusal = { readonly ok: false; readonly error: EditRefusal; readonly message: string };
const refuse = (error: EditRefusal, message: string): Refusal => ({ ok: false, error, message });

const isKept = (v: unknown): v is Kept => typeof v === 'object' && v !== null && 'kept' in v;

/** The plain value an op value stands for. */
function jsOf(value: OpValue): unknown {
  if (isKept(value)) return value.js;
  if (Array.isArray(value)) return value.map((v: string | Kept) => (isKept(v) ? v.js : v));
  return value;
}

/**
 * Applies `edit` to the config text and returns the new text, or why it was refused. Pure: no
 * file access, no validation by the loader (see `applyEdit`). Everything the edit does not touch
 * keeps its exact bytes.
 */
export function editConfigText(text: string, edit: ChannelEdit): TextEditResult {
  const { body, restore } = splitEncoding(text);
  const doc = parseDocument(body, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    return refuse('unparsable', `the file is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  }
  const planned = plan(doc, edit);
  if ('ok' in planned) return planned;
  const before = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  const expected = expectedData(before, planned);
  if (isDeepStrictEqual(before, expected)) return { ok: true, text, changed: false, normalised: false };

  // Phase 1: scalar values in place, through the CST (byte-exact).
  const { text: afterScalars, rest } = applyScalarOps(body, planned);
  // Phase 2: what is left is structural: edit the Document and merge its rendering into the text.
  let out = afterScalars;
  let normalised = false;
  if (rest) {
    const merged = applyStructural(afterScalars, rest);
    out = merged.text;
    normalised = merged.normalised;
  }
  // The result must be exactly the edited data; anything else is a bug, never a silent write.
  const check = parseDocument(out, { uniqueKeys: true });
  if (check.errors.length > 0 || !isDeepStrictEqual(check.toJS({ maxAliasCount: 1000 }), expected)) {
    throw new Error(`write-back produced text that does not hold the edited data (${describeEdit(edit)})`);
  }
  return { ok: true, text: restore(out), changed: true, normalised };
}

/** Strips a BOM and CRLF line ends for editing; `restore` puts them back. */
function splitEncoding(text: string): { body: string; restore: (s: string) => string } {
  const bom = text.startsWith('\uFEFF') ? '\uFEFF' : '';
  const noBom = bom ? text.slice(1) : text;
  const crlf = /\r\n/.test(noBom) && !/(^|[^\r])\n/.test(noBom);
  const body = crlf ? noBom.replace(/\r\n/g, '\n') : noBom;
  return { body, restore: (s) => bom + (crlf ? s.replace(/\n/g, '\r\n') : s) };
}

/** The `channels` sequence of a document, or undefined when the file has none (or no list). */
function channelsSeq(doc: Document): YAMLSeq | undefined {
  const node = doc.get('channels', true);
  return isSeq(node) ? node : undefined;
}

/** Index of the channel named `name` (first match), or -1. */
function findChannel(doc: Document, name: string): number {
  const seq = channelsSeq(doc);
  if (!seq) return -1;
  return seq.items.findIndex((item) => {
    const node = isAlias(item) ? item.resolve(doc) : item;
    return isMap(node) && node.get('name') === name;
  });
}

/** The channel map at `index` (an alias is not editable in place). */
function channelMap(doc: Document, index: number): YAMLMap | undefined {
  const item = channelsSeq(doc)?.items[index];
  return isMap(item) ? item : undefined;
}

/** The channel's keys as written: the nodes of `keys:`, or `api_key:` alone, and their values. */
function fileKeys(doc: Document, map: YAMLMap): { field: 'api_key' | 'keys' | undefined; nodes: Node[] } {
  const keys = map.get('keys', true);
  if (isSeq(keys)) return { field: 'keys', nodes: keys.items as Node[] };
  const apiKey = map.get('api_key', true);
  if (apiKey !== undefined && apiKey !== null) return { field: 'api_key', nodes: [apiKey as Node] };
  void doc;
  return { field: undefined, nodes: [] };
}

/** Resolves an edit against the document: which channel, which key values, and the secret rule. */
function plan(doc: Document, edit: ChannelEdit): Plan | Refusal {
  if (edit.action === 'add') {
    const node = doc.get('channels', true);
    if (node !== undefined && node !== null && !isSeq(node) && !(isScalar(node) && node.value === null)) {
      return refuse('bad_request', '`channels` in the file is not a list');
    }
    const c = edit.channel;
    const channel: Record<string, OpValue> = {};
    const index = isSeq(node) ? node.items.length : 0;
    for (const field of FIELD_ORDER) {
      const v = c[field];
      if (v === undefined) continue;
      if (field === 'api_key' || field === 'keys') {
        const list = field === 'keys' ? (v as readonly string[]) : [v as string];
        for (const [i, s] of list.entries()) {
          const path = field === 'keys' ? ['channels', index, 'keys', i] : ['channels', index, 'api_key'];
          const bad = secretRefusal(s, path, []);
          if (bad) return bad;
        }
      }
      channel[field] = v as OpValue;
    }
    return { kind: 'add', channel };
  }

  const index = findChannel(doc, edit.name);
  if (index < 0) return refuse('not_found', `no channel named ${JSON.stringify(edit.name)} in the file`);
  if (edit.action === 'delete') return { kind: 'delete', index };
  const map = channelMap(doc, index);
  if (!map) {
    return refuse(
      'bad_request',
      `channel ${JSON.stringify(edit.name)} is an alias and cannot be edited here`,
    );
  }
  if (edit.action === 'enable') {
    // Absent `enabled` already means enabled: nothing to write.
    return { kind: 'fields', index, ops: map.has('enabled') ? [{ key: 'enabled', value: true }] : [] };
  }
  if (edit.action === 'disable') return { kind: 'fields', index, ops: [{ key: 'enabled', value: false }] };
  if (edit.action === 'set-priority') {
    return { kind: 'fields', index, ops: [{ key: 'priority', value: edit.priority }] };
  }

  const ch = edit.changes;
  const existing = fileKeys(doc, map);
  const existingValues = existing.nodes.map((n) => nodeJs(doc, n));
  const key = (input: KeyInput, path: (string | number)[]): Kept | string | Refusal => {
    if (typeof input === 'string') {
      const i = existingValues.indexOf(input);
      if (i >= 0) return { kept: existing.nodes[i]!, js: input };
      return secretRefusal(input, path, existingValues) ?? input;
    }
    const node = existing.nodes[input.keep];
    if (!Number.isInteger(input.keep) || !node) {
      return refuse(
        'bad_request',
        `{keep: ${input.keep}}: channel ${JSON.stringify(edit.name)} has ${existing.nodes.length} key(s) in the file`,
      );
    }
    return { kept: node, js: existingValues[input.keep] };
  };

  const ops: FieldOp[] = [];
  for (const field of FIELD_ORDER) {
    const v = ch[field];
    if (v === undefined) continue;
    if (v === null) {
      if (field !== 'name' && field !== 'url') ops.push({ key: field, remove: true });
      continue;
    }
    if (field === 'api_key') {
      const k = key(v as KeyInput, ['channels', index, 'api_key']);
      if (typeof k === 'object' && 'ok' in k) return k;
      ops.push({ key: 'api_key', value: k });
      if (ch.keys === undefined && map.has('keys')) ops.push({ key: 'keys', remove: true });
    } else if (field === 'keys') {
      const list: (string | Kept)[] = [];
      for (const [i, input] of (v as readonly KeyInput[]).entries()) {
        const k = key(input, ['channels', index, 'keys', i]);
        if (typeof k === 'object' && 'ok' in k) return k;
        list.push(k);
      }
      ops.push({ key: 'keys', value: list });
      if (ch.api_key === undefined && map.has('api_key')) ops.push({ key: 'api_key', remove: true });
    } else {
      ops.push({ key: field, value: v as OpValue });
    }
  }
  // A form sends every field back: a field whose value does not change is not touched at all
  // (re-creating an anchored list would needlessly expand the aliases that share it).
  const current = nodeJs(doc, map) as Record<string, unknown>;
  const changing = ops.filter((op) =>
    'remove' in op ? Object.hasOwn(current, op.key) : !isDeepStrictEqual(jsOf(op.value), current[op.key]),
  );
  return { kind: 'fields', index, ops: changing };
}

/** The refusal for a key value that is neither a reference nor one of the channel's current keys. */
function secretRefusal(value: string, path: (string | number)[], current: unknown[]): Refusal | undefined {
  if (value === '' || isReference(value) || current.includes(value)) return undefined;
  if (!isSecretPath(path)) return undefined;
  const where = path
    .map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`))
    .join('')
    .slice(1);
  return refuse(
    'secret',
    `${where}: a key typed as plain text is not written to ccload.yaml (the file is meant for git). ` +
      'Put the key in an environment variable or a file and give a reference instead: ${NAME}, ' +
      '${NAME:-default} or ${file:/path/to/key}.',
  );
}

/** The plain value of a node (aliases resolved). */
function nodeJs(doc: Document, node: Node): unknown {
  return (node as { toJS(doc: Document, opts?: object): unknown }).toJS(doc, { maxAliasCount: 1000 });
}

/** The document's data after the plan, computed on plain data: what the edited text must hold. */
function expectedData(before: unknown, p: Plan): unknown {
  const data = structuredClone(before) as Record<string, unknown> | null;
  const root: Record<string, unknown> = data ?? {};
  if (!Array.isArray(root['channels'])) root['channels'] = [];
  const channels = root['channels'] as Record<string, unknown>[];
  if (p.kind === 'add') {
    const c: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(p.channel)) c[k] = structuredClone(jsOf(v));
    channels.push(c);
  } else if (p.kind === 'delete') {
    channels.splice(p.index, 1);
  } else {
    const c = channels[p.index]!;
    for (const op of p.ops) {
      if ('remove' in op) delete c[op.key];
      else c[op.key] = structuredClone(jsOf(op.value));
    }
  }
  return root;
}

// --- Phase 1: scalar values through the CST -----------------------------------------------------

/**
 * Applies the plan's scalar-over-scalar field ops byte-exactly with `CST.setScalarValue` and
 * returns the text and the plan of what is left. A value goes this way when the node in the file
 * is a plain or quoted scalar without an anchor (an anchored value may be shared by an alias,
 * which must keep the old value) and the new value is a string, number or boolean.
 */
function applyScalarOps(text: string, p: Plan): { text: string; rest: Plan | undefined } {
  if (p.kind !== 'fields') return { text, rest: p };
  const tokens = [...new Parser().parse(text)];
  const doc = [...new Composer({ keepSourceTokens: true, uniqueKeys: true }).compose(tokens)][0]!;
  const map = channelMap(doc, p.index)!;
  const rest: FieldOp[] = [];
  let edited = false;
  for (const op of p.ops) {
    if ('remove' in op || !isPrimitive(op.value)) {
      rest.push(op);
      continue;
    }
    const node = map.get(op.key, true);
    if (
      !isScalar(node) ||
      node.anchor ||
      !node.srcToken ||
      !(node.type === 'PLAIN' || node.type === 'QUOTE_DOUBLE' || node.type === 'QUOTE_SINGLE')
    ) {
      rest.push(op);
      continue;
    }
    if (node.value === op.value) continue;
    setScalar(node.srcToken, op.value, node.type, map.flow === true);
    edited = true;
  }
  const out = edited ? tokens.map((t) => CST.stringify(t)).join('') : text;
  return { text: out, rest: rest.length > 0 ? { kind: 'fields', index: p.index, ops: rest } : undefined };
}

function isPrimitive(v: OpValue): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
}

/**
 * Replaces a scalar token's value. Strings keep their quoting style when it can hold them; a plain
 * string that would read back as something else (a number, `true`, `a: b`, `x # y`) is
 * double-quoted. When a comment follows on the line, the padding before it is adjusted so the
 * comment stays in its column (aligned comments stay aligned).
 */
function setScalar(
  token: CST.Token,
  value: string | number | boolean,
  type: Scalar.Type,
  inFlow: boolean,
): void {
  const oldLength = 'source' in token && typeof token.source === 'string' ? token.source.length : 0;
  let source: string;
  let newType: Scalar.Type = 'PLAIN';
  if (typeof value === 'string') {
    source = value;
    newType = type === 'PLAIN' && !plainSafe(value, inFlow) ? 'QUOTE_DOUBLE' : type;
  } else {
    source = String(value);
  }
  CST.setScalarValue(token, source, { afterKey: true, inFlow, type: newType });
  const newLength = 'source' in token && typeof token.source === 'string' ? token.source.length : oldLength;
  const end = 'end' in token ? token.end : undefined;
  const space = end?.[0];
  if (space?.type === 'space' && end?.[1]?.type === 'comment' && newLength !== oldLength) {
    const width = Math.max(1, space.source.length - (newLength - oldLength));
    space.source = ' '.repeat(width);
  }
}

/** Whether `value` reads back as the same string when written as a plain scalar. */
function plainSafe(value: string, inFlow: boolean): boolean {
  if (value === '' || value !== value.trim() || /[\n\r\t]/.test(value)) return false;
  if (inFlow && /[,[\]{}]/.test(value)) return false;
  try {
    return parse(value) === value;
  } catch {
    return false;
  }
}

// --- Phase 2: structural edits through the Document, merged back line by line ------------------

/** Applies a structural plan to `text` and merges yaml's rendering of the result into it. */
function applyStructural(text: string, p: Plan): { text: string; normalised: boolean } {
  const doc = parseDocument(text, { uniqueKeys: true });
  const options = renderOptions(doc, text);
  const base = doc.toString(options);
  editDocument(doc, p);
  const edited = doc.toString(options);
  const merged = mergeRendering(text, base, edited);
  if (merged !== undefined && sameRendering(merged, edited, options))
    return { text: merged, normalised: false };
  return { text: edited, normalised: true };
}

/** True when `text` re-renders exactly like `rendered` (same nodes, comments and styles). */
function sameRendering(text: string, rendered: string, options: ToStringOptions): boolean {
  const a = parseDocument(text, { uniqueKeys: true });
  const b = parseDocument(rendered, { uniqueKeys: true });
  if (a.errors.length > 0 || b.errors.length > 0) return false;
  return a.toString(options) === b.toString(options);
}

/**
 * yaml's rendering options matched to the file's own conventions, so lines yaml renders for the
 * edit sit in the file like the lines around them: the indentation step, whether sequences under a
 * key are indented, whether flow collections are padded (`[ a ]`). yaml cannot be told "like the
 * source", so each combination renders the unedited document and the one that reproduces the most
 * original lines exactly wins. Long values are never folded (`lineWidth: 0`).
 */
function renderOptions(doc: Document, text: string): ToStringOptions {
  const original = new Map<string, number>();
  for (const line of text.split('\n')) original.set(line, (original.get(line) ?? 0) + 1);
  let best: ToStringOptions | undefined;
  let bestScore = -1;
  for (const indentSeq of [true, false]) {
    for (const indent of [2, 4, 3]) {
      for (const flowCollectionPadding of [false, true]) {
        const options: ToStringOptions = { lineWidth: 0, indent, indentSeq, flowCollectionPadding };
        const left = new Map(original);
        let score = 0;
        for (const line of doc.toString(options).split('\n')) {
          const n = left.get(line) ?? 0;
          if (n > 0) {
            score++;
            left.set(line, n - 1);
          }
        }
        if (score > bestScore) {
          best = options;
          bestScore = score;
        }
      }
    }
  }
  return best!;
}

/** Performs a structural plan on the document. */
function editDocument(doc: Document, p: Plan): void {
  if (p.kind === 'add') {
    let seq = channelsSeq(doc);
    if (!seq) {
      seq = new YAMLSeq();
      doc.set('channels', seq);
    }
    if (seq.flow && seq.items.length === 0) seq.flow = false;
    const map = new YAMLMap();
    for (const [key, value] of Object.entries(p.channel))
      map.add(new Pair(doc.createNode(key), toNode(doc, key, value, undefined)));
    // Items separated by blank lines get a new one in the same style.
    map.spaceBefore = seq.items.slice(1).some((n) => (n as Node).spaceBefore === true);
    seq.items.push(map);
    return;
  }
  const seq = channelsSeq(doc)!;
  if (p.kind === 'delete') {
    const item = seq.items[p.index] as Node;
    detachAnchors(doc, item);
    if (p.index === 0) {
      // yaml hangs a comment right above the first item on the list; it describes that item.
      if (seq.commentBefore && !item.spaceBefore) seq.commentBefore = undefined;
      const next = seq.items[1] as Node | undefined;
      if (next) next.spaceBefore = item.spaceBefore;
    }
    seq.items.splice(p.index, 1);
    return;
  }
  const map = channelMap(doc, p.index)!;
  for (const op of p.ops) {
    const pair = map.items.find((it) => isScalar(it.key) && it.key.value === op.key);
    if ('remove' in op) {
      if (!pair) continue;
      if (pair.value) detachAnchors(doc, pair.value as Node);
      map.items.splice(map.items.indexOf(pair), 1);
      continue;
    }
    if (pair) {
      const old = pair.value as Node | null;
      if (old) detachAnchors(doc, old);
      pair.value = toNode(doc, op.key, op.value, old ?? undefined);
    } else {
      insertPair(map, new Pair(doc.createNode(op.key), toNode(doc, op.key, op.value, undefined)));
    }
  }
}

/** Adds a pair after the last key that precedes it in FIELD_ORDER (else at the end). */
function insertPair(map: YAMLMap, pair: Pair): void {
  const rank = (k: unknown) => FIELD_ORDER.indexOf(k as (typeof FIELD_ORDER)[number]);
  const mine = rank((pair.key as Scalar).value);
  let at = -1;
  map.items.forEach((it, i) => {
    const r = isScalar(it.key) ? rank(it.key.value) : -1;
    if (r >= 0 && r < mine) at = i;
  });
  if (at < 0) map.items.push(pair);
  else map.items.splice(at + 1, 0, pair);
}

/**
 * The node for a new value. An existing collection is edited in place where that keeps more of
 * the file: list items equal to old ones reuse the old nodes (their quoting and comments), a map
 * keeps the entries whose value is unchanged. New `models` lists are flow (`[a, b]`), other new
 * collections block style. A replaced node's trailing comment moves to the new one.
 */
function toNode(doc: Document, key: string, value: OpValue, old: Node | undefined): Node {
  let node: Node;
  if (isKept(value)) {
    node = value.kept.clone() as Node;
    stripAnchors(node);
  } else if (Array.isArray(value)) {
    const items = value as readonly (string | Kept)[];
    const pool = isSeq(old) ? [...(old.items as Node[])] : [];
    const seq = isSeq(old) && !old.anchor ? old : new YAMLSeq();
    if (seq !== old) seq.flow = isSeq(old) ? old.flow === true : key === 'models';
    seq.items = items.map((item) => {
      if (isKept(item)) {
        const n = item.kept.clone() as Node;
        stripAnchors(n);
        return n;
      }
      const reuse = pool.findIndex((n) => isScalar(n) && n.value === item);
      if (reuse >= 0) return pool.splice(reuse, 1)[0]!;
      return doc.createNode(item) as Node;
    });
    node = seq;
  } else if (typeof value === 'object') {
    const entries = value as Readonly<Record<string, string>>;
    const map = isMap(old) && !old.anchor ? old : new YAMLMap();
    if (map !== old && isMap(old)) map.flow = old.flow === true;
    if (map === old) {
      map.items = map.items.filter(
        (pair) => isScalar(pair.key) && Object.hasOwn(entries, String(pair.key.value)),
      );
    }
    for (const [from, to] of Object.entries(entries)) {
      const pair = map.items.find((it) => isScalar(it.key) && String(it.key.value) === from);
      if (!pair) map.add(new Pair(doc.createNode(from), doc.createNode(to)));
      else if (!(isScalar(pair.value) && pair.value.value === to)) {
        const comment = (pair.value as Node | null)?.comment;
        const n = doc.createNode(to) as Scalar;
        if (comment) n.comment = comment;
        pair.value = n;
      }
    }
    node = map;
  } else {
    node = doc.createNode(value) as Node;
  }
  if (old && node !== old && old.comment && !node.comment) node.comment = old.comment;
  return node;
}

/** Removes every anchor inside `node` (a clone must not redefine an anchor later aliases resolve to). */
function stripAnchors(node: Node): void {
  visit(node, {
    Node(_k, n) {
      if (n.anchor) n.anchor = undefined;
    },
  });
}

/**
 * Before `node` is replaced or removed: every alias elsewhere in the document that points at an
 * anchor inside `node` becomes a copy of the value it pointed at, so the other places keep their
 * value (editing one channel's anchored `models` must not change the channel that aliases it).
 */
function detachAnchors(doc: Document, node: Node): void {
  const anchored = new Set<Node>();
  const inside = new Set<unknown>();
  visit(node, {
    Node(_k, n) {
      inside.add(n);
      if (n.anchor) anchored.add(n);
    },
  });
  if (anchored.size === 0) return;
  visit(doc, {
    Alias(_k, alias) {
      if (inside.has(alias)) return undefined;
      const target = alias.resolve(doc);
      if (!target || !anchored.has(target as Node)) return undefined;
      const copy = (target as Node).clone() as Node;
      stripAnchors(copy);
      return copy;
    },
  });
}

// --- The line merge -----------------------------------------------------------------------------

/**
 * Merges yaml's rendering of the edited document into the original text, three-way: `base` is the
 * rendering of the unedited document, `edited` that of the edited one. Lines the edit did not
 * change come from the original (its exact bytes: comment alignment, flow padding, ...); lines it
 * changed come from `edited`. Original and base are matched with whitespace normalised (their
 * differences are yaml's re-spacing), base and edited exactly. Undefined when the diff is too big
 * to be worth it (the caller then uses `edited` as is).
 */
function mergeRendering(original: string, base: string, edited: string): string | undefined {
  const O = original.split('\n');
  const B = base.split('\n');
  const T = edited.split('\n');
  const bo = matchLines(B.map(normalise), O.map(normalise));
  const bt = matchLines(B, T);
  if (!bo || !bt) return undefined;
  const out: string[] = [];
  // yaml indents the blank line inside a comment block; a blank line is written blank.
  const theirs = (k: number) => (/^\s+$/.test(T[k]!) ? '' : T[k]!);
  let b0 = 0;
  let o0 = 0;
  let t0 = 0;
  const chunk = (b1: number, o1: number, t1: number) => {
    const oursSame = o1 - o0 === b1 - b0 && range(b0, b1).every((j) => bo[j] === o0 + (j - b0));
    const theirsSame = t1 - t0 === b1 - b0 && range(b0, b1).every((j) => bt[j] === t0 + (j - b0));
    if (oursSame) {
      // Unchanged in the original; changed by the edit (or not at all).
      for (let k = t0; k < t1; k++) {
        const j = bt.indexOf(k, b0);
        out.push(j >= b0 && j < b1 && bo[j] !== -1 ? O[bo[j]!]! : theirs(k));
      }
    } else if (theirsSame) {
      out.push(...O.slice(o0, o1));
    } else if (o1 - o0 === b1 - b0) {
      // Both sides changed: keep the original's line wherever the edit kept the base line.
      for (let k = t0; k < t1; k++) {
        const j = bt.indexOf(k, b0);
        out.push(j >= b0 && j < b1 ? O[o0 + (j - b0)]! : theirs(k));
      }
    } else {
      for (let k = t0; k < t1; k++) out.push(theirs(k));
    }
  };
  for (let j = 0; j < B.length; j++) {
    const o = bo[j]!;
    const t = bt[j]!;
    if (o < 0 || t < 0) continue;
    chunk(j, o, t);
    out.push(O[o]!);
    b0 = j + 1;
    o0 = o + 1;
    t0 = t + 1;
  }
  chunk(B.length, O.length, T.length);
  return out.join('\n');
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** A line with yaml's re-spacing undone: runs of blanks collapsed, flow padding and trailing blanks dropped. */
function normalise(line: string): string {
  return line
    .replace(/\s+/g, ' ')
    .replace(/([[{]) /g, '$1')
    .replace(/ ([\]}])/g, '$1')
    .trimEnd();
}

/** Largest diff (in changed lines) the merge attempts; beyond it yaml's rendering is used. */
const MAX_DIFF = 2000;

/**
 * A longest-common-subsequence matching of two line lists (Myers' O(ND) diff): for each line of
 * `a`, the index of its partner in `b`, or -1. Undefined when they differ in more than MAX_DIFF lines.
 */
function matchLines(a: readonly string[], b: readonly string[]): Int32Array | undefined {
  const match = new Int32Array(a.length).fill(-1);
  let start = 0;
  while (start < a.length && start < b.length && a[start] === b[start]) {
    match[start] = start;
    start++;
  }
  let endA = a.length;
  let endB = b.length;
  while (endA > start && endB > start && a[endA - 1] === b[endB - 1]) {
    endA--;
    endB--;
    match[endA] = endB;
  }
  const n = endA - start;
  const m = endB - start;
  if (n === 0 || m === 0) return match;
  const max = Math.min(n + m, MAX_DIFF);
  const off = max + 1;
  const v = new Int32Array(2 * max + 3);
  // Per step d only the diagonals -d..d matter: O(D²) memory instead of O(D·(N+M)).
  const trace: Int32Array[] = [];
  for (let d = 0; d <= max; d++) {
    trace.push(v.slice(off - d, off + d + 1));
    for (let k = -d; k <= d; k += 2) {
      let x =
        k === -d || (k !== d && v[off + k - 1]! < v[off + k + 1]!) ? v[off + k + 1]! : v[off + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[start + x] === b[start + y]) {
        x++;
        y++;
      }
      v[off + k] = x;
      if (x >= n && y >= m) {
        backtrack(trace, d, n, m, (xa, yb) => {
          match[start + xa] = start + yb;
        });
        return match;
      }
    }
  }
  return undefined;
}

/** Walks Myers' trace back from (n, m), reporting every diagonal (matched) step. */
function backtrack(
  trace: Int32Array[],
  dEnd: number,
  n: number,
  m: number,
  matched: (x: number, y: number) => void,
): void {
  let x = n;
  let y = m;
  for (let d = dEnd; d > 0; d--) {
    // trace[d] holds diagonals -d..d of the state before step d, at index k + d.
    const v = trace[d]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && v[d + k - 1]! < v[d + k + 1]!) ? k + 1 : k - 1;
    const prevX = v[d + prevK]!;
    const prevY = prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      matched(x, y);
    }
    x = prevX;
    y = prevY;
  }
  while (x > 0 && y > 0) {
    x--;
    y--;
    matched(x, y);
  }
}

// --- Key references, for views ------------------------------------------------------------------

/** How a channel's keys are written in the file, without their values. */
export interface ChannelKeySources {
  /** Which field holds the keys. */
  readonly field: 'api_key' | 'keys' | undefined;
  /** Per file position: the `${...}` reference as written, or null for a literal (never shown). */
  readonly refs: readonly (string | null)[];
}

/**
 * For each channel name in the config text, how its keys are written: references are shown (they
 * name a variable or file, not a value), literals are not. An edit form can show the references
 * and keep the rest with `{ keep: i }`. Empty when the text is not valid YAML.
 */
export function channelKeySources(text: string): Map<string, ChannelKeySources> {
  const out = new Map<string, ChannelKeySources>();
  const doc = parseDocument(splitEncoding(text).body, { uniqueKeys: true });
  if (doc.errors.length > 0) return out;
  for (const item of channelsSeq(doc)?.items ?? []) {
    if (!isMap(item)) continue;
    const name = item.get('name');
    if (typeof name !== 'string' || out.has(name)) continue;
    const { field, nodes } = fileKeys(doc, item);
    const refs = nodes.map((n) => {
      const v = nodeJs(doc, n);
      return typeof v === 'string' && isReference(v) ? v : null;
    });
    out.set(name, { field, refs });
  }
  return out;
}

// --- Applying an edit to the file ---------------------------------------------------------------

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

/** Why an edit was refused; `status` is the HTTP status the admin API answers with. */
export type WriteBackError =
  | { readonly ok: false; readonly error: 'forbidden'; readonly status: 403; readonly message: string }
  | {
      readonly ok: false;
      readonly error: 'conflict';
      readonly status: 412;
      readonly message: string;
      /** The file's current hash, to re-base the edit on. */
      readonly hash: string;
    }
  | {
      readonly ok: false;
      readonly error: 'invalid';
      readonly status: 422;
      readonly message: string;
      readonly errors: readonly ConfigIssue[];
    }
  | { readonly ok: false; readonly error: 'secret'; readonly status: 422; readonly message: string }
  | { readonly ok: false; readonly error: 'not_found'; readonly status: 404; readonly message: string }
  | { readonly ok: false; readonly error: 'bad_request'; readonly status: 400; readonly message: string }
  | { readonly ok: false; readonly error: 'io'; readonly status: 500; readonly message: string };

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

const locks = new Map<string, Promise<unknown>>();

/** Runs `fn` after every earlier write-back of the same file has finished. */
function serialised<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const prev = locks.get(key) ?? Promise.resolve();
  const run = prev.then(fn, fn);
  const tail = run.catch(() => undefined);
  locks.set(key, tail);
  void tail.then(() => {
    if (locks.get(key) === tail) locks.delete(key);
  });
  return run;
}

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
    status: 403,
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
      status: 412,
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
      const r = loadConfigText(text, loadInput(now()), hash);
      return invalid(r.ok ? [] : r.errors, 'the current ccload.yaml does not parse; fix the file first');
    }
    const status = edited.error === 'not_found' ? 404 : edited.error === 'secret' ? 422 : 400;
    return { ok: false, error: edited.error, status, message: edited.message } as WriteBackError;
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
  const verdict = loadConfigText(edited.text, loadInput(now()), newHash);
  if (!verdict.ok)
    return invalid(verdict.errors, 'the edited configuration would be invalid; nothing was written');

  try {
    const raced = await writeAtomically(real, newBytes, hash);
    if (raced) {
      return {
        ok: false,
        error: 'conflict',
        status: 412,
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
  return { ok: false, error: 'io', status: 500, message };
}

function invalid(errors: readonly ConfigIssue[], message: string): WriteBackError {
  return { ok: false, error: 'invalid', status: 422, message, errors };
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
 * Replaces `target` with `bytes`: a temp file in the same folder (same filesystem, so the rename is
 * atomic), written, chmod'ed to the target's mode, fsync'ed, then — if the target still has the hash
 * the edit was based on — renamed over it, and the folder fsync'ed so the rename itself is durable.
 * Returns the target's unexpected hash when it changed meanwhile (nothing is written then). The
 * temp name starts with `.` and does not start with `..`, so the config watcher ignores it.
 */
async function writeAtomically(target: string, bytes: Buffer, expected: string): Promise<string | undefined> {
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

/** Runs git with a time bound; resolves with its output or the reason it failed. */
function git(
  args: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ ok: true; out: string } | { ok: false; err: string }> {
  return new Promise((done) => {
    execFile(
      'git',
      args,
      { cwd, timeout: timeoutMs, env: { ...process.env, GIT_TERMINAL_PROMPT: '0' }, maxBuffer: 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = String(stderr).trim().split('\n').slice(-3).join(' ') || err.message;
          done({ ok: false, err: detail });
        } else done({ ok: true, out: String(stdout).trim() });
      },
    );
  });
}

/**
 * Commits exactly `file` (`git commit --only`, so whatever else is staged stays staged and
 * uncommitted) in the repository holding it. An untracked file is added first. `author` is
 * `Name <email>`; when git has no committer identity configured it is used as committer too.
 */
async function gitCommit(
  file: string,
  message: string,
  author: string | undefined,
  timeoutMs: number,
): Promise<{ commit: string } | { error: string }> {
  const dir = dirname(file);
  const top = await git(['rev-parse', '--show-toplevel'], dir, timeoutMs);
  if (!top.ok) return { error: `not in a git repository (${top.err})` };
  const tracked = await git(['ls-files', '--error-unmatch', '--', file], dir, timeoutMs);
  if (!tracked.ok) {
    const added = await git(['add', '--', file], dir, timeoutMs);
    if (!added.ok) return { error: `git add failed: ${added.err}` };
  }
  const identity: string[] = [];
  const m = author ? /^([^<>]+?) <([^<>]+)>$/.exec(author) : null;
  if (m && !(await git(['var', 'GIT_COMMITTER_IDENT'], dir, timeoutMs)).ok) {
    identity.push('-c', `user.name=${m[1]}`, '-c', `user.email=${m[2]}`);
  }
  const args = [...identity, 'commit', '--only', '--quiet', '-m', message];
  if (author) args.push(`--author=${author}`);
  args.push('--', file);
  const c = await git(args, dir, timeoutMs);
  if (!c.ok) return { error: `git commit failed: ${c.err}` };
  const head = await git(['rev-parse', 'HEAD'], dir, timeoutMs);
  if (!head.ok) return { error: `git rev-parse failed: ${head.err}` };
  return { commit: head.out };
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
