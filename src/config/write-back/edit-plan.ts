/**
 * The plan of an edit: the edit resolved against the document (which channel, which key nodes are
 * kept, which fields change), with the secret rule applied, and the data the edited file must hold.
 */
import { isDeepStrictEqual } from 'node:util';
import { type Document, isScalar, isSeq, type Node } from 'yaml';
import { formatPath } from '../locate.js';
import { isSecretPath } from '../secrets.js';
import { type ChannelEdit, FIELD_ORDER, isReference, type KeyInput } from './channel-edit.js';
import { channelMap, fileKeys, findChannel, nodeJs } from './channel-nodes.js';

/** Why an edit of the text was refused before validation. */
export type EditRefusal =
  | 'not_found' // no channel of that name
  | 'secret' // a literal key was given
  | 'bad_request' // the edit itself is malformed (keep index out of range, no channels list, ...)
  | 'unparsable'; // the current file is not valid YAML: nothing can be located in it

/** A key kept from the file: its node (cloned into the new place) and its value. */
export interface Kept {
  readonly kept: Node;
  readonly js: unknown;
}

export type OpValue =
  | string
  | number
  | boolean
  | Kept
  | readonly (string | Kept)[]
  | Readonly<Record<string, string>>;

/** One change to a channel map. */
export type FieldOp =
  | { readonly key: string; readonly value: OpValue }
  | { readonly key: string; readonly remove: true };

/** The resolved plan of an edit on one file. */
export type Plan =
  | { readonly kind: 'add'; readonly channel: Readonly<Record<string, OpValue>> }
  | { readonly kind: 'delete'; readonly index: number }
  | { readonly kind: 'fields'; readonly index: number; readonly ops: readonly FieldOp[] };

type Refusal = { readonly ok: false; readonly error: EditRefusal; readonly message: string };
export const refuse = (error: EditRefusal, message: string): Refusal => ({ ok: false, error, message });

export const isKept = (v: unknown): v is Kept => typeof v === 'object' && v !== null && 'kept' in v;

/** The plain value an op value stands for. */
function jsOf(value: OpValue): unknown {
  if (isKept(value)) return value.js;
  if (Array.isArray(value)) return value.map((v: string | Kept) => (isKept(v) ? v.js : v));
  return value;
}

/** Resolves an edit against the document: which channel, which key values, and the secret rule. */
export function plan(doc: Document, edit: ChannelEdit): Plan | Refusal {
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
  const existing = fileKeys(map);
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
  const where = formatPath(path);
  return refuse(
    'secret',
    `${where}: a key typed as plain text is not written to ccload.yaml (the file is meant for git). ` +
      'Put the key in an environment variable or a file and give a reference instead: ${NAME}, ' +
      '${NAME:-default} or ${file:/path/to/key}.',
  );
}

/** The document's data after the plan, computed on plain data: what the edited text must hold. */
export function expectedData(before: unknown, p: Plan): unknown {
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
