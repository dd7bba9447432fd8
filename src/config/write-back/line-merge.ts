/**
 * A three-way merge of line lists, on text alone (nothing here knows YAML): Myers' diff matches the
 * lines, and lines the edit did not change are taken from the original.
 */

/**
 * Merges yaml's rendering of the edited document into the original text, three-way: `base` is the
 * rendering of the unedited document, `edited` that of the edited one. Lines the edit did not
 * change come from the original (its exact bytes: comment alignment, flow padding, ...); lines it
 * changed come from `edited`. Original and base are matched with whitespace normalised (their
 * differences are yaml's re-spacing), base and edited exactly. Undefined when the diff is too big
 * to be worth it (the caller then uses `edited` as is).
 */
export function mergeRendering(original: string, base: string, edited: string): string | undefined {
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
