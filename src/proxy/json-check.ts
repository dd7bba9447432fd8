/**
 * A JSON validator over bytes: does `b[s, e)` hold exactly one JSON value (RFC 8259 §2–7), with
 * only whitespace around it? It builds nothing — no string, no object — so the SSE tap can check
 * every `content_block_delta` of a stream for a fraction of what `JSON.parse` costs (measured in
 * bench/micro-parse.ts). It agrees with `JSON.parse(buf.toString('utf8'))` on whether a value
 * parses: bytes ≥ 0x80 in strings are accepted as they are, because decoders replace invalid UTF-8
 * rather than fail on it (test/proxy/json-check.test.ts compares the two on mutated inputs).
 */

const MAX_DEPTH = 512;
/** Open containers of the value being checked: 1 = object, 2 = array. Checks never interleave. */
const stack = new Uint8Array(MAX_DEPTH);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;

function ws(b: Uint8Array, i: number, e: number): number {
  while (i < e) {
    const c = b[i]!;
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
    i++;
  }
  return i;
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** The offset past the string starting at b[i] (a quote), or -1 when it is not a valid string. */
function str(b: Uint8Array, i: number, e: number): number {
  for (let j = i + 1; j < e; j++) {
    const c = b[j]!;
    if (c === QUOTE) return j + 1;
    if (c === BACKSLASH) {
      if (j + 1 >= e) return -1;
      const x = b[j + 1]!;
      if (x === 0x75) {
        if (j + 5 >= e || !isHex(b[j + 2]!) || !isHex(b[j + 3]!) || !isHex(b[j + 4]!) || !isHex(b[j + 5]!))
          return -1;
        j += 5;
      } else if (
        x === QUOTE ||
        x === BACKSLASH ||
        x === 0x2f ||
        x === 0x62 ||
        x === 0x66 ||
        x === 0x6e ||
        x === 0x72 ||
        x === 0x74
      ) {
        j++;
      } else return -1;
    } else if (c < 0x20) return -1;
  }
  return -1;
}

function digits(b: Uint8Array, i: number, e: number): number {
  const start = i;
  while (i < e && b[i]! >= 0x30 && b[i]! <= 0x39) i++;
  return i > start ? i : -1;
}

/** The offset past the number starting at b[i], or -1. */
function num(b: Uint8Array, i: number, e: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= e) return -1;
  if (b[i] === 0x30) i++;
  else {
    i = digits(b, i, e);
    if (i < 0) return -1;
  }
  if (i < e && b[i] === 0x2e) {
    i = digits(b, i + 1, e);
    if (i < 0) return -1;
  }
  if (i < e && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < e && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    i = digits(b, i, e);
  }
  return i;
}

function literal(b: Uint8Array, i: number, e: number, word: readonly number[]): number {
  if (i + word.length > e) return -1;
  for (let k = 0; k < word.length; k++) if (b[i + k] !== word[k]) return -1;
  return i + word.length;
}
const TRUE = [0x74, 0x72, 0x75, 0x65];
const FALSE = [0x66, 0x61, 0x6c, 0x73, 0x65];
const NULL = [0x6e, 0x75, 0x6c, 0x6c];

/** An object key and its colon at b[i] (after whitespace): the offset of the value, or -1. */
function key(b: Uint8Array, i: number, e: number): number {
  if (i >= e || b[i] !== QUOTE) return -1;
  i = ws(b, str(b, i, e), e);
  if (i < 0 || i >= e || b[i] !== COLON) return -1;
  return ws(b, i + 1, e);
}

/** Whether b[s, e) is one JSON value with only JSON whitespace around it. */
export function isJson(b: Uint8Array, s: number, e: number): boolean {
  let depth = 0;
  let i = ws(b, s, e);
  for (;;) {
    // A value starts at b[i].
    if (i < 0 || i >= e) return false;
    const c = b[i]!;
    if (c === 0x7b || c === 0x5b) {
      const close = c === 0x7b ? 0x7d : 0x5d;
      i = ws(b, i + 1, e);
      if (i < e && b[i] === close) i++;
      else {
        if (depth === MAX_DEPTH) return false;
        stack[depth++] = c === 0x7b ? 1 : 2;
        if (c === 0x7b) i = key(b, i, e);
        continue;
      }
    } else if (c === QUOTE) i = str(b, i, e);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) i = num(b, i, e);
    else if (c === 0x74) i = literal(b, i, e, TRUE);
    else if (c === 0x66) i = literal(b, i, e, FALSE);
    else if (c === 0x6e) i = literal(b, i, e, NULL);
    else return false;
    if (i < 0) return false;
    // After a value: a comma and the next member, or the close of containers.
    for (;;) {
      i = ws(b, i, e);
      if (depth === 0) return i === e;
      if (i >= e) return false;
      const top = stack[depth - 1];
      const d = b[i];
      if (d === COMMA) {
        i = ws(b, i + 1, e);
        if (top === 1) i = key(b, i, e);
        break;
      }
      if ((top === 1 && d === 0x7d) || (top === 2 && d === 0x5d)) {
        i++;
        depth--;
        continue;
      }
      return false;
    }
  }
}
