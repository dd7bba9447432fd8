/**
 * Phase 2 of a text edit: what is structural (a channel added or removed, a list or map changed, a
 * key added or removed) is done on yaml's `Document`, and its rendering is merged line by line into
 * the original text so that untouched lines keep their exact bytes.
 */
import {
  type Document,
  isMap,
  isScalar,
  isSeq,
  type Node,
  Pair,
  parseDocument,
  type Scalar,
  type ToStringOptions,
  visit,
  YAMLMap,
  YAMLSeq,
} from 'yaml';
import { FIELD_ORDER } from './channel-edit.js';
import { channelMap, channelsSeq } from './channel-nodes.js';
import { isKept, type Kept, type OpValue, type Plan } from './edit-plan.js';
import { mergeRendering } from './line-merge.js';

/** Applies a structural plan to `text` and merges yaml's rendering of the result into it. */
export function applyStructural(text: string, p: Plan): { text: string; normalised: boolean } {
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
