/**
 * Where the channels and their keys are in a parsed ccload.yaml document (yaml's `Document`), for
 * the edit plan, both edit phases and the key-source view.
 */
import { type Document, isAlias, isMap, isSeq, type Node, type YAMLMap, type YAMLSeq } from 'yaml';
import type { KeyField } from './channel-edit.js';

/** The `channels` sequence of a document, or undefined when the file has none (or no list). */
export function channelsSeq(doc: Document): YAMLSeq | undefined {
  const node = doc.get('channels', true);
  return isSeq(node) ? node : undefined;
}

/** Index of the channel named `name` (first match), or -1. */
export function findChannel(doc: Document, name: string): number {
  const seq = channelsSeq(doc);
  if (!seq) return -1;
  return seq.items.findIndex((item) => {
    const node = isAlias(item) ? item.resolve(doc) : item;
    return isMap(node) && node.get('name') === name;
  });
}

/** The channel map at `index` (an alias is not editable in place). */
export function channelMap(doc: Document, index: number): YAMLMap | undefined {
  const item = channelsSeq(doc)?.items[index];
  return isMap(item) ? item : undefined;
}

/** The channel's keys as written: the nodes of `keys:`, or `api_key:` alone. */
export function fileKeys(map: YAMLMap): { field: KeyField | undefined; nodes: Node[] } {
  const keys = map.get('keys', true);
  if (isSeq(keys)) return { field: 'keys', nodes: keys.items as Node[] };
  const apiKey = map.get('api_key', true);
  if (apiKey !== undefined && apiKey !== null) return { field: 'api_key', nodes: [apiKey as Node] };
  return { field: undefined, nodes: [] };
}

/** The plain value of a node (aliases resolved). */
export function nodeJs(doc: Document, node: Node): unknown {
  return node.toJS(doc, { maxAliasCount: 1000 });
}
