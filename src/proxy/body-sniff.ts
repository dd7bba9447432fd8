/**
 * The request fields the proxy reads — top-level `model` and `stream`, and the session in the
 * top-level `metadata.user_id` — found in the raw body bytes without building the JSON tree, and the
 * one edit it may make (a channel's model_map).
 *
 * Claude Code sends 40–300 KB bodies (`model` first, `stream` last, `messages`/`system`/`tools` in
 * between) and long conversations reach several MB, so JSON.parse + re-serialise would dominate the
 * proxy's CPU. Instead one pass walks the top-level object and jumps over nested values: strings
 * via memchr (Buffer#indexOf) for the closing quote, containers by counting brackets outside strings.
 *
 * Validation is deliberately partial: the top level is checked token by token, nested values only
 * for balanced brackets and terminated strings. Number literals, string escapes and the grammar
 * inside nested values are not validated — the upstream parses the body and answers 400 for
 * anything this pass lets through, and that answer is returned to the client as is.
 */

const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const COMMA = 0x2c;
const MINUS = 0x2d;
const COLON = 0x3a;
const LBRACKET = 0x5b;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;

/**
 * Bytes of a string scanned in a plain loop before falling back to Buffer#indexOf: a native call
 * costs about as much as looping over a dozen bytes, and most keys and enum values are shorter.
 * Measured with bench/micro-parse.ts.
 */
const INLINE_STRING_SCAN = 16;

/**
 * What sniffRequest found: the model (decoded) with its token's byte range, the stream flag, and the
 * byte range of the top-level `metadata` object (-1/-1 when absent or not an object).
 */
export type SniffResult =
  | {
      ok: true;
      model: string;
      modelStart: number;
      modelEnd: number;
      stream: boolean;
      metadataStart: number;
      metadataEnd: number;
    }
  | { ok: false; message: string };

/** A reason to reject the body, thrown inside the scanner and turned into `{ ok: false }`. */
class BodyError extends Error {}

const INVALID = 'request body is not valid JSON: ';

function unexpectedEnd(at: number): BodyError {
  return new BodyError(`${INVALID}unexpected end of input at byte ${at}`);
}

function unexpected(b: Buffer, at: number, expected?: string): BodyError {
  if (at >= b.length) return unexpectedEnd(b.length);
  const c = b[at]!;
  const shown =
    c > SPACE && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`;
  return new BodyError(
    `${INVALID}unexpected ${shown} at byte ${at}${expected ? `, expected ${expected}` : ''}`,
  );
}

/** The index of the first byte at or after `i` that is not JSON whitespace (space, LF, CR, tab). */
export function skipWs(b: Buffer, i: number): number {
  const n = b.length;
  while (i < n) {
    const c = b[i];
    if (c !== SPACE && c !== LF && c !== CR && c !== TAB) break;
    i++;
  }
  return i;
}

/**
 * Index of the quote closing the string whose opening quote is at `open`. A quote preceded by an odd
 * run of backslashes is escaped; the run cannot reach past the opening quote, so counting back is safe.
 */
function stringEnd(b: Buffer, open: number): number {
  const n = b.length;
  let j = open + 1;
  const lim = Math.min(j + INLINE_STRING_SCAN, n);
  for (; j < lim; j++) {
    const c = b[j];
    if (c === QUOTE) return j;
    if (c === BACKSLASH) j++;
  }
  for (;;) {
    j = b.indexOf(QUOTE, j);
    if (j === -1) throw unexpectedEnd(n);
    if (b[j - 1] !== BACKSLASH) return j;
    let k = j - 2;
    while (b[k] === BACKSLASH) k--;
    if (((j - 1 - k) & 1) === 0) return j;
    j++;
  }
}

/** Expected closing bytes of the open containers; grown on demand, shared (the scan is synchronous). */
let closers = new Uint8Array(256);
const MAX_KEPT_DEPTH = 4096;

/**
 * Index just past the container (object or array) opening at `open`. `(c | 0x20)` folds `[`/`]`
 * onto `{`/`}` so one compare finds either, and `c + 2` is the matching closer of an opener.
 */
function containerEnd(b: Buffer, open: number): number {
  const n = b.length;
  let depth = 0;
  closers[0] = b[open]! + 2;
  for (let i = open + 1; i < n; i++) {
    const c = b[i]!;
    if (c === QUOTE) {
      i = stringEnd(b, i);
    } else if ((c | 0x20) === LBRACE) {
      if (++depth === closers.length) {
        const grown = new Uint8Array(closers.length * 2);
        grown.set(closers);
        closers = grown;
      }
      closers[depth] = c + 2;
    } else if ((c | 0x20) === RBRACE) {
      if (closers[depth] !== c) throw unexpected(b, i);
      if (depth-- === 0) return i + 1;
    }
  }
  throw unexpectedEnd(n);
}

/** Does `b` hold the ASCII `word` at `at`? */
function hasWord(b: Buffer, at: number, word: string): boolean {
  if (at + word.length > b.length) return false;
  for (let k = 0; k < word.length; k++) if (b[at + k] !== word.charCodeAt(k)) return false;
  return true;
}

const LITERALS = ['true', 'false', 'null'];

/** Index just past a top-level literal (true, false, null or a number) starting at `i`. */
function literalEnd(b: Buffer, i: number): number {
  const c = b[i];
  for (const word of LITERALS) {
    if (c !== word.charCodeAt(0)) continue;
    if (hasWord(b, i, word)) return i + word.length;
    const rest = b.length - i;
    throw rest < word.length && hasWord(b, i, word.slice(0, rest))
      ? unexpectedEnd(b.length)
      : unexpected(b, i);
  }
  if (c === MINUS || (c !== undefined && c >= 0x30 && c <= 0x39)) {
    // Only the number's extent matters here; its syntax is left to the upstream.
    let j = i + 1;
    for (; j < b.length; j++) {
      const d = b[j]!;
      if (!((d >= 0x30 && d <= 0x39) || d === 0x2e || d === 0x2b || d === MINUS || (d | 0x20) === 0x65))
        break;
    }
    return j;
  }
  throw unexpected(b, i, 'a value');
}

const KEY_OTHER = 0;
const KEY_MODEL = 1;
const KEY_STREAM = 2;
const KEY_METADATA = 3;

/** Which key the string token [start, end] (quotes included) names; escaped keys are decoded like JSON.parse would. */
function keyId(b: Buffer, start: number, end: number): number {
  const len = end - start - 1;
  if (len === 5 && hasWord(b, start + 1, 'model')) return KEY_MODEL;
  if (len === 6 && hasWord(b, start + 1, 'stream')) return KEY_STREAM;
  if (len === 8 && hasWord(b, start + 1, 'metadata')) return KEY_METADATA;
  // An escaped spelling of any of the names needs at least one six-byte \uXXXX escape.
  if (len < 10) return KEY_OTHER;
  let escaped = false;
  for (let k = start + 1; k < end; k++) if (b[k] === BACKSLASH) escaped = true;
  if (!escaped) return KEY_OTHER;
  let key: unknown;
  try {
    key = JSON.parse(b.toString('utf8', start, end + 1));
  } catch {
    throw new BodyError(`${INVALID}bad property name at byte ${start}`);
  }
  return key === 'model'
    ? KEY_MODEL
    : key === 'stream'
      ? KEY_STREAM
      : key === 'metadata'
        ? KEY_METADATA
        : KEY_OTHER;
}

function topLevelKind(c: number | undefined): string | undefined {
  if (c === LBRACKET) return 'an array';
  if (c === QUOTE) return 'a string';
  if (c === MINUS || (c !== undefined && c >= 0x30 && c <= 0x39)) return 'a number';
  if (c === 0x74 || c === 0x66) return 'a boolean';
  if (c === 0x6e) return 'null';
  return undefined;
}

function sniff(b: Buffer): SniffResult {
  const n = b.length;
  let i = skipWs(b, 0);
  if (i >= n) return { ok: false, message: 'request body is empty' };
  if (b[i] !== LBRACE) {
    const kind = topLevelKind(b[i]);
    if (kind) return { ok: false, message: `request body must be a JSON object, not ${kind}` };
    throw unexpected(b, i);
  }
  let modelStart = -1;
  let modelEnd = -1;
  let modelIsString = false;
  let stream = false;
  let metadataStart = -1;
  let metadataEnd = -1;
  i = skipWs(b, i + 1);
  if (b[i] === RBRACE) {
    i++;
  } else {
    for (;;) {
      if (b[i] !== QUOTE) throw unexpected(b, i, 'a property name');
      const keyStart = i;
      const keyEnd = stringEnd(b, i);
      const key = keyId(b, keyStart, keyEnd);
      i = skipWs(b, keyEnd + 1);
      if (b[i] !== COLON) throw unexpected(b, i, "':'");
      i = skipWs(b, i + 1);
      const valueStart = i;
      const c = b[i];
      if (c === QUOTE) i = stringEnd(b, i) + 1;
      else if (c !== undefined && (c | 0x20) === LBRACE) i = containerEnd(b, i);
      else i = literalEnd(b, i);
      // Duplicate keys: the last one wins, as with JSON.parse.
      if (key === KEY_MODEL) {
        modelStart = valueStart;
        modelEnd = i;
        modelIsString = c === QUOTE;
      } else if (key === KEY_STREAM) {
        // Anything but `true` (false, null, a string) means "not streaming"; the upstream judges the rest.
        stream = c === 0x74;
      } else if (key === KEY_METADATA) {
        const isObject = c === LBRACE;
        metadataStart = isObject ? valueStart : -1;
        metadataEnd = isObject ? i : -1;
      }
      i = skipWs(b, i);
      if (b[i] === COMMA) {
        i = skipWs(b, i + 1);
        continue;
      }
      if (b[i] === RBRACE) {
        i++;
        break;
      }
      throw unexpected(b, i, "',' or '}'");
    }
  }
  i = skipWs(b, i);
  if (i < n) throw unexpected(b, i, 'nothing after the top-level object');
  if (modelStart < 0) return { ok: false, message: 'request body has no "model" field' };
  if (!modelIsString) return { ok: false, message: 'request body "model" field must be a string' };
  let model: unknown;
  try {
    model = JSON.parse(b.toString('utf8', modelStart, modelEnd));
  } catch {
    return { ok: false, message: `${INVALID}bad string in "model" at byte ${modelStart}` };
  }
  if (model === '') return { ok: false, message: 'request body "model" field is empty' };
  return { ok: true, model: model as string, modelStart, modelEnd, stream, metadataStart, metadataEnd };
}

/**
 * The top-level `model` (decoded, with the byte range of its JSON string token, quotes included) and
 * `stream` (true only for a literal `true`; absent means false) of a Messages API request body,
 * found in one pass over the bytes. Rejects an empty body, a non-object top level, unbalanced or
 * truncated JSON and a missing, non-string or empty model, with a message fit for the client.
 */
export function sniffRequest(body: Buffer): SniffResult {
  try {
    return sniff(body);
  } catch (err) {
    if (err instanceof BodyError) return { ok: false, message: err.message };
    throw err;
  } finally {
    // A pathologically deep body grew the stack; do not keep megabytes of it for the next request.
    if (closers.length > MAX_KEPT_DEPTH) closers = new Uint8Array(256);
  }
}

/**
 * A copy of `body` with the model token at [modelStart, modelEnd) (from sniffRequest) replaced by
 * `newModel` as a JSON string; every other byte is kept as it was.
 */
export function rewriteModel(body: Buffer, modelStart: number, modelEnd: number, newModel: string): Buffer {
  const token = Buffer.from(JSON.stringify(newModel), 'utf8');
  return Buffer.concat(
    [body.subarray(0, modelStart), token, body.subarray(modelEnd)],
    body.length - (modelEnd - modelStart) + token.length,
  );
}

/** Longest `metadata.user_id` decoded (bytes of its JSON token); Claude Code's is about 150. */
const MAX_USER_ID_BYTES = 4096;

/**
 * The string value of `user_id` directly inside the object at [start, end) — the top-level
 * `metadata` that sniffRequest located — or undefined when there is none, it is not a string, or it
 * is implausibly long. Only the members of that one object are looked at: a `user_id` (or a
 * session id) anywhere deeper in the body, e.g. inside a message, is never picked up. Duplicate
 * keys: the last one wins, as with JSON.parse.
 */
export function metadataUserId(b: Buffer, start: number, end: number): string | undefined {
  const found = objectMembers(b, start, end, USER_ID)?.[0];
  if (!found || b[found[0]] !== QUOTE || found[1] - found[0] > MAX_USER_ID_BYTES) return undefined;
  try {
    return JSON.parse(b.toString('utf8', found[0], found[1])) as string;
  } catch {
    return undefined;
  }
}

const USER_ID = ['user_id'] as const;

/**
 * The byte ranges of the values of the members `names` (escaped spellings decoded) directly inside
 * the object at [start, end) — one entry per name, undefined when absent; the last occurrence wins,
 * as with JSON.parse — or undefined when the bytes there are not one well-formed object at the top
 * level (nested values are only checked for balanced brackets and terminated strings). Values are
 * skipped without being built: strings via memchr, containers by counting brackets.
 */
export function objectMembers(
  b: Buffer,
  start: number,
  end: number,
  names: readonly string[],
): ([number, number] | undefined)[] | undefined {
  if (start < 0 || end > b.length) return undefined;
  return members(b.subarray(0, end), start, names)?.found;
}

/** The member ranges of the object opening at `start` in `obj`, and the index just past it. */
function members(
  obj: Buffer,
  start: number,
  names: readonly string[],
): { found: ([number, number] | undefined)[]; end: number } | undefined {
  if (obj[start] !== LBRACE) return undefined;
  const found: ([number, number] | undefined)[] = names.map(() => undefined);
  try {
    let i = skipWs(obj, start + 1);
    if (obj[i] === RBRACE) return { found, end: i + 1 };
    for (;;) {
      if (obj[i] !== QUOTE) return undefined;
      const keyEnd = stringEnd(obj, i);
      let which = -1;
      for (let k = 0; k < names.length && which < 0; k++) if (isKey(obj, i, keyEnd, names[k]!)) which = k;
      i = skipWs(obj, keyEnd + 1);
      if (obj[i] !== COLON) return undefined;
      i = skipWs(obj, i + 1);
      const valueStart = i;
      const c = obj[i];
      if (c === QUOTE) i = stringEnd(obj, i) + 1;
      else if (c !== undefined && (c | 0x20) === LBRACE) i = containerEnd(obj, i);
      else i = literalEnd(obj, i);
      if (which >= 0) found[which] = [valueStart, i];
      i = skipWs(obj, i);
      if (obj[i] === COMMA) {
        i = skipWs(obj, i + 1);
        continue;
      }
      if (obj[i] === RBRACE) return { found, end: i + 1 };
      return undefined;
    }
  } catch (err) {
    if (err instanceof BodyError) return undefined;
    throw err;
  } finally {
    // A pathologically deep value grew the stack; do not keep megabytes of it.
    if (closers.length > MAX_KEPT_DEPTH) closers = new Uint8Array(256);
  }
}

/** Is the string token [start, end] (quotes included) the ASCII `word`, escapes decoded? */
function isKey(b: Buffer, start: number, end: number, word: string): boolean {
  const len = end - start - 1;
  if (len === word.length) return hasWord(b, start + 1, word);
  if (len < word.length || len > word.length * 6) return false;
  // Only an escape can make a longer token spell `word`; keys are short, so look in a plain loop
  // (an indexOf from `start` would scan the rest of the body when there is none).
  let escaped = false;
  for (let k = start + 1; k < end && !escaped; k++) escaped = b[k] === BACKSLASH;
  if (!escaped) return false;
  try {
    return JSON.parse(b.toString('utf8', start, end + 1)) === word;
  } catch {
    return false;
  }
}
