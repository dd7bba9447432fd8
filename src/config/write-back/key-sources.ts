/**
 * How a channel's keys are written in the file, for views: references are shown, literals never.
 */
import { isMap, parseDocument } from 'yaml';
import { isReference, type KeyField } from './channel-edit.js';
import { channelsSeq, fileKeys, nodeJs } from './channel-nodes.js';
import { splitEncoding } from './text-edit.js';

/** How a channel's keys are written in the file, without their values. */
export interface ChannelKeySources {
  /** Which field holds the keys. */
  readonly field: KeyField | undefined;
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
    const { field, nodes } = fileKeys(item);
    const refs = nodes.map((n) => {
      const v = nodeJs(doc, n);
      return typeof v === 'string' && isReference(v) ? v : null;
    });
    out.set(name, { field, refs });
  }
  return out;
}
