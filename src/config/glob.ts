/**
 * Model-name globs: `*` matches any run of characters (the empty run too), `?` exactly one
 * character (a UTF-16 code unit), everything else is literal — `[`, `\`, `.` included; there are
 * no classes or escapes. Used by `channels[].models` and `pricing` keys, and the one place that
 * decides whether a name is a glob at all.
 *
 * Matching runs in time linear in the name for a given pattern, whatever the pattern: a pattern is
 * split at its stars into segments; the first is anchored at the start, the last at the end, and
 * each one between is placed at its leftmost occurrence after the previous one. Leftmost placement
 * is always right for star-separated segments (a later placement only leaves less room for the
 * rest), so nothing is ever retried. The regular expression this replaces backtracked: the
 * pattern `*a*a*a*a*a*a*a*a*b` against 40 `a`s held the event loop for about a second (issue 10).
 *
 * As with that regular expression, a wildcard never matches a line break (LF, CR, U+2028,
 * U+2029): a name containing one matches no glob. Model names never hold one legitimately.
 */

/** True when the pattern contains a wildcard (`*` or `?`). */
export function isGlob(pattern: string): boolean {
  return pattern.includes('*') || pattern.includes('?');
}

const QUESTION = 0x3f;
const LINE_BREAK = /[\n\r\u2028\u2029]/;

/** One star-free piece of a pattern: literal characters and `?`. */
interface Segment {
  readonly text: string;
  /** Whether it holds a `?` (otherwise `indexOf` finds it). */
  readonly wild: boolean;
}

/** Does `seg` match `name` at offset `at` (the caller checked that it fits)? */
function matchesAt(name: string, at: number, seg: Segment): boolean {
  if (!seg.wild) return name.startsWith(seg.text, at);
  const t = seg.text;
  for (let i = 0; i < t.length; i++) {
    const c = t.charCodeAt(i);
    if (c !== QUESTION && c !== name.charCodeAt(at + i)) return false;
  }
  return true;
}

/** The leftmost offset ≥ `from` where `seg` matches and ends at or before `end`, or -1. */
function find(name: string, seg: Segment, from: number, end: number): number {
  const last = end - seg.text.length;
  if (!seg.wild) {
    const i = name.indexOf(seg.text, from);
    return i >= 0 && i <= last ? i : -1;
  }
  for (let i = from; i <= last; i++) if (matchesAt(name, i, seg)) return i;
  return -1;
}

/** A compiled matcher for one pattern; exact names compare with `===`. */
export function compileGlob(pattern: string): (name: string) => boolean {
  if (!isGlob(pattern)) return (name) => name === pattern;
  const segments: Segment[] = pattern.split('*').map((text) => ({ text, wild: text.includes('?') }));
  const first = segments[0]!;
  const minLength = segments.reduce((n, s) => n + s.text.length, 0);
  if (segments.length === 1) {
    // `?` only: a fixed length.
    return (name) => name.length === minLength && matchesAt(name, 0, first) && !LINE_BREAK.test(name);
  }
  const lastSeg = segments[segments.length - 1]!;
  const middle = segments.slice(1, -1).filter((s) => s.text !== '');
  return (name) => {
    if (name.length < minLength) return false;
    const end = name.length - lastSeg.text.length;
    if (!matchesAt(name, 0, first) || !matchesAt(name, end, lastSeg)) return false;
    let pos = first.text.length;
    for (const seg of middle) {
      const i = find(name, seg, pos, end);
      if (i < 0) return false;
      pos = i + seg.text.length;
    }
    return !LINE_BREAK.test(name);
  };
}
