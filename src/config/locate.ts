/**
 * Maps a config path (keys and indices, as zod reports it) to a line:col in the YAML source, so
 * every error can read `ccload.yaml:LINE:COL channels[1].url: message`.
 */
import { type Document, isMap, isPair, isScalar, isSeq, type LineCounter, type Node } from 'yaml';

/** A path as zod and the interpolator report it. */
export type ConfigPath = readonly (string | number)[];

/** `channels[1].url` style rendering of a path. */
export function formatPath(path: ConfigPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/**
 * The 1-based line and column of the deepest node on `path` that exists. With `atKey`, a map entry
 * is located at its key rather than its value (used for unknown keys).
 */
export function locate(
  doc: Document.Parsed,
  lineCounter: LineCounter,
  path: ConfigPath,
  atKey = false,
): { line: number; col: number } {
  let node: Node | null | undefined = doc.contents as Node | null;
  let offset = node?.range?.[0] ?? 0;
  for (let i = 0; i < path.length && node; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
      );
      if (!pair) break;
      const key = pair.key as Node;
      const value = pair.value as Node | null;
      if ((last && atKey) || !value?.range) {
        offset = key.range?.[0] ?? offset;
        node = last && atKey ? null : value;
        if (!value?.range) break;
        continue;
      }
      node = value;
      offset = value.range[0];
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (!item?.range) break;
      node = item;
      offset = item.range[0];
    } else {
      break;
    }
  }
  return lineCounter.linePos(offset);
}
