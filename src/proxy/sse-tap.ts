/**
 * The SSE tap: an incremental observer of an upstream Messages API event stream. It is fed the
 * response chunks in order and finds the commit point (the first content event), the end of the
 * answer (`message_stop`), an `event: error`, the usage reports and the answering model — while the
 * bytes themselves pass through untouched.
 *
 * It keeps only what it must read: the unterminated last line when that line is short (a few hundred
 * bytes at most), and the `data:` of `message_start`, `message_delta` and `error` events (bounded).
 * `content_block_delta` data — nearly all of a stream's bytes — is never copied or parsed.
 *
 * Lines end in LF, CRLF or a lone CR (WHATWG HTML §9.2.5 "event stream interpretation"); a blank
 * line dispatches the event; an event without data lines is not dispatched; an event cut off by the
 * end of the stream is never dispatched (`midEvent` tells the caller). A leading BOM is not stripped:
 * the first line then reads as an unknown field and the event's type comes from its data instead.
 */
import { emptyUsage, mergeUsage, type Usage } from './usage.js';

/** An `event: error` the upstream sent, and whether the stream had already committed. */
export interface SseError {
  /** Anthropic error type, e.g. `overloaded_error`; `api_error` when the event could not be read. */
  readonly type: string;
  readonly message: string;
  readonly afterCommit: boolean;
}

/** Limits of an SseTap. */
export interface SseTapOptions {
  /** Data of one kept event beyond this many bytes is dropped and the event counted malformed. Default 1 MiB. */
  maxEventBytes?: number;
}

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const QUOTE = 0x22;
const COLON = 0x3a;

/** Longest partial line (at the end of a chunk) copied aside to read once its end arrives. */
const CARRY_MAX = 256;
const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

// Event kinds. NONE: no `event:` line yet, the type will come from the data's `type` field.
const KIND_NONE = 0;
const KIND_OTHER = 1;
const KIND_CONTENT_DELTA = 2;
const KIND_MESSAGE_START = 3;
const KIND_MESSAGE_DELTA = 4;
const KIND_MESSAGE_STOP = 5;
const KIND_ERROR = 6;

/** Event names the tap reads, and their kinds (parallel arrays); content_block_delta first, it is most of a stream. */
const NAMES: readonly Buffer[] = [
  'content_block_delta',
  'message_start',
  'message_delta',
  'message_stop',
  'error',
].map((name) => Buffer.from(name));
const NAME_KINDS: readonly number[] = [
  KIND_CONTENT_DELTA,
  KIND_MESSAGE_START,
  KIND_MESSAGE_DELTA,
  KIND_MESSAGE_STOP,
  KIND_ERROR,
];

/** Kind of the event name in b[s, e), compared byte by byte without making a string. */
function kindOfName(b: Buffer, s: number, e: number): number {
  const len = e - s;
  for (let i = 0; i < NAMES.length; i++) {
    const name = NAMES[i]!;
    if (name.length !== len) continue;
    // Compare from the end: the names that share a length differ in their last bytes.
    let k = len - 1;
    while (k >= 0 && b[s + k] === name[k]) k--;
    if (k < 0) return NAME_KINDS[i]!;
  }
  return KIND_OTHER;
}

function kindOfType(type: unknown): number {
  switch (type) {
    case 'content_block_delta':
      return KIND_CONTENT_DELTA;
    case 'message_start':
      return KIND_MESSAGE_START;
    case 'message_delta':
      return KIND_MESSAGE_DELTA;
    case 'message_stop':
      return KIND_MESSAGE_STOP;
    case 'error':
      return KIND_ERROR;
    default:
      return KIND_OTHER;
  }
}

function isWs(c: number | undefined): boolean {
  return c === SPACE || c === LF || c === CR || c === 0x09;
}

/**
 * Kind named by a data payload that starts `{"type":"<name>"` (whitespace allowed), read from the
 * bytes b[s, e) without parsing; KIND_NONE when it does not start that way (or is cut short).
 */
function kindOfData(b: Buffer, s: number, e: number): number {
  let i = s;
  while (i < e && isWs(b[i])) i++;
  if (i >= e || b[i] !== 0x7b) return KIND_NONE;
  i++;
  while (i < e && isWs(b[i])) i++;
  if (i + 6 > e || b[i] !== QUOTE || b[i + 1] !== 0x74 || b[i + 2] !== 0x79) return KIND_NONE;
  if (b[i + 3] !== 0x70 || b[i + 4] !== 0x65 || b[i + 5] !== QUOTE) return KIND_NONE;
  i += 6;
  while (i < e && isWs(b[i])) i++;
  if (i >= e || b[i] !== COLON) return KIND_NONE;
  i++;
  while (i < e && isWs(b[i])) i++;
  if (i >= e || b[i] !== QUOTE) return KIND_NONE;
  const start = i + 1;
  const limit = Math.min(e, start + 64);
  for (i = start; i < limit; i++) {
    const c = b[i];
    if (c === QUOTE) return kindOfName(b, start, i);
    if (c === 0x5c) return KIND_NONE;
  }
  return KIND_NONE;
}

function parseJson(data: Buffer | undefined): Record<string, unknown> | undefined {
  if (data === undefined) return undefined;
  try {
    return asRecord(JSON.parse(data.toString('utf8')));
  } catch {
    return undefined;
  }
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

/** Does b[s, e) start with `data:` (or is it exactly `data`, a data field with an empty value)? */
function dataValueStart(b: Buffer, s: number, e: number): number {
  if (s + 4 > e || b[s] !== 0x64 || b[s + 1] !== 0x61 || b[s + 2] !== 0x74 || b[s + 3] !== 0x61) return -1;
  if (s + 4 === e) return e;
  if (b[s + 4] !== COLON) return -1;
  return s + 5 < e && b[s + 5] === SPACE ? s + 6 : s + 5;
}

/** Like dataValueStart, for `event:` / `event`. */
function eventValueStart(b: Buffer, s: number, e: number): number {
  if (s + 5 > e || b[s] !== 0x65 || b[s + 1] !== 0x76 || b[s + 2] !== 0x65 || b[s + 3] !== 0x6e) return -1;
  if (b[s + 4] !== 0x74) return -1;
  if (s + 5 === e) return e;
  if (b[s + 5] !== COLON) return -1;
  return s + 6 < e && b[s + 6] === SPACE ? s + 7 : s + 6;
}

const LINE_FRESH = 0; // at the start of a line
const LINE_CARRY = 1; // a short partial line is in `carry`, to be read when it ends
const LINE_DATA = 2; // inside a data line's value (kept or skipped per `keep`)
const LINE_IGNORE = 3; // inside a line that does not matter

const LF_PART = Buffer.from('\n');

/**
 * The SSE tap of one upstream response (one attempt). Feed every chunk, in order, to `push`; read the
 * state from the getters. Never throws on stream content: unreadable events pass through and are
 * counted in `malformed`.
 *
 * Caller's pattern: hold chunks while `committed` is false; when `push` returns k ≥ 0, write the held
 * chunks and this whole chunk (bytes before k complete the committing event, bytes from k on already
 * belong to the committed answer) and from then on write every chunk as it comes, buffering nothing.
 * An `error` with `afterCommit: false` (or a stream ending before commit) means the attempt failed
 * with nothing sent, so failover is still allowed; an error before commit also stops the tap from
 * ever committing, so "held then failed" cannot turn into "committed" later in the same stream.
 */
export class SseTap {
  private readonly maxEventBytes: number;
  private _committed = false;
  private _stopped = false;
  private _error: SseError | undefined;
  private _usage: Usage | undefined;
  private _model: string | undefined;
  private _eventCount = 0;
  private _malformed = 0;
  private _errorEvents = 0;

  /** Stream offset of the current chunk's first byte. */
  private streamPos = 0;
  /** Stream offset where the event being read began; -1 before its first byte. */
  private eventStart = -1;

  private lineState = LINE_FRESH;
  private readonly carry = Buffer.allocUnsafe(CARRY_MAX);
  private carryLen = 0;
  /** A chunk ended in CR: an LF starting the next chunk belongs to that CRLF. */
  private skipLF = false;
  /** Set while reading a line out of `carry`: kept parts must be copied, `carry` gets reused. */
  private copyParts = false;

  // The event being read.
  private kind = KIND_NONE;
  private dataLines = 0;
  private keep = false;
  private overflow = false;
  private parts: Buffer[] = [];
  private dataLen = 0;
  /** parts[viewFrom..] are views into the current chunk, copied when `push` returns. */
  private viewFrom = 0;

  /** Offset in the current chunk where the committing event ended, or -1. */
  private commitAt = -1;

  constructor(options: SseTapOptions = {}) {
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  /** Whether the first content event (content_block_delta, or message_delta/message_stop) was seen. */
  get committed(): boolean {
    return this._committed;
  }
  /** Whether `message_stop` was seen: the answer is complete. */
  get stopped(): boolean {
    return this._stopped;
  }
  /** The first `event: error` of the stream, if any. */
  get error(): SseError | undefined {
    return this._error;
  }
  /** Token usage from message_start and message_delta (later non-null values win); undefined until reported. */
  get usage(): Usage | undefined {
    return this._usage;
  }
  /** The answering model, from `message_start.message.model`. */
  get model(): string | undefined {
    return this._model;
  }
  /** Events dispatched so far (an event is dispatched by its blank line and needs at least one data line). */
  get eventCount(): number {
    return this._eventCount;
  }
  /** Events whose data had to be read but could not be (bad JSON, or over `maxEventBytes`). */
  get malformed(): number {
    return this._malformed;
  }
  /** `event: error` events dispatched so far (every one, not only the first). */
  get errorEvents(): number {
    return this._errorEvents;
  }
  /**
   * Where the stream's undispatched tail begins (an offset in the whole stream) when that tail is
   * an event that is, or may still turn out to be, an `error` event (its type not known yet); -1
   * otherwise. A relay that must not pass error text unread holds the bytes from here until the
   * event is complete — a client cannot act on an incomplete event anyway.
   */
  get pendingErrorFrom(): number {
    return this.eventStart >= 0 && (this.kind === KIND_NONE || this.kind === KIND_ERROR)
      ? this.eventStart
      : -1;
  }
  /** Whether the stream so far ends inside an event (bytes after the last dispatching blank line). */
  get midEvent(): boolean {
    return this.lineState !== LINE_FRESH || this.dataLines > 0 || this.kind !== KIND_NONE;
  }

  /**
   * Observes the next chunk of the stream. Returns -1, unless this chunk crossed the commit point:
   * then the offset just past the blank line that ended the committing event (0 < k ≤ chunk.length).
   */
  push(chunk: Buffer): number {
    this.commitAt = -1;
    const n = chunk.length;
    let pos = 0;
    if (this.skipLF && n > 0) {
      this.skipLF = false;
      if (chunk[0] === LF) pos = 1;
    }
    let nextCR = chunk.indexOf(CR, pos);
    if (nextCR === -1) {
      // The usual case (the Messages API ends lines with LF): one memchr per line.
      while (pos < n) {
        const nl = chunk.indexOf(LF, pos);
        if (nl === -1) {
          this.segment(chunk, pos, n, false, n);
          break;
        }
        this.segment(chunk, pos, nl, true, nl + 1);
        pos = nl + 1;
      }
    } else {
      let nextLF = chunk.indexOf(LF, pos);
      while (pos < n) {
        if (nextCR !== -1 && nextCR < pos) nextCR = chunk.indexOf(CR, pos);
        if (nextLF !== -1 && nextLF < pos) nextLF = chunk.indexOf(LF, pos);
        if (nextCR === -1 && nextLF === -1) {
          this.segment(chunk, pos, n, false, n);
          break;
        }
        let end: number;
        let after: number;
        if (nextLF === -1 || (nextCR !== -1 && nextCR < nextLF)) {
          end = nextCR;
          after = end + 1;
          if (after === n) this.skipLF = true;
          else if (chunk[after] === LF) after++;
        } else {
          end = nextLF;
          after = end + 1;
        }
        this.segment(chunk, pos, end, true, after);
        pos = after;
      }
    }
    // Kept data of an event that continues in the next chunk must not alias the caller's buffer.
    for (let i = this.viewFrom; i < this.parts.length; i++) {
      const part = this.parts[i]!;
      if (part !== LF_PART) this.parts[i] = Buffer.from(part);
    }
    this.viewFrom = this.parts.length;
    this.streamPos += n;
    return this.commitAt;
  }

  /** A piece b[s, e) of the current line; `ends`: the line's terminator follows, and the next line starts at `after`. */
  private segment(b: Buffer, s: number, e: number, ends: boolean, after: number): void {
    switch (this.lineState) {
      case LINE_FRESH:
        if (this.eventStart < 0 && !(ends && s === e)) this.eventStart = this.streamPos + s;
        if (ends) {
          if (s === e) this.dispatch(after);
          else this.line(b, s, e);
        } else if (e - s > 5 && dataValueStart(b, s, e) >= 0) {
          // A data line cut by the chunk end (its colon and the optional space are visible): read it
          // in place rather than copying a possibly long value aside.
          this.beginData(b, dataValueStart(b, s, e), e);
          this.lineState = LINE_DATA;
        } else {
          this.carryLen = 0;
          this.toCarry(b, s, e, ends);
        }
        return;
      case LINE_CARRY:
        this.toCarry(b, s, e, ends);
        return;
      case LINE_DATA:
        if (this.keep) this.addPart(b, s, e);
        if (ends) this.lineState = LINE_FRESH;
        return;
      default:
        if (ends) this.lineState = LINE_FRESH;
    }
  }

  /** Appends b[s, e) to the carried partial line; reads it when it ends, or gives up on carrying when it grows long. */
  private toCarry(b: Buffer, s: number, e: number, ends: boolean): void {
    const room = CARRY_MAX - this.carryLen;
    if (e - s <= room) {
      b.copy(this.carry, this.carryLen, s, e);
      this.carryLen += e - s;
      if (!ends) {
        this.lineState = LINE_CARRY;
        return;
      }
      this.lineState = LINE_FRESH;
      this.copyParts = true;
      this.line(this.carry, 0, this.carryLen);
      this.copyParts = false;
      return;
    }
    // Longer than CARRY_MAX: enough to tell what the line is. Only a data line is worth following.
    b.copy(this.carry, this.carryLen, s, s + room);
    this.carryLen = CARRY_MAX;
    const value = dataValueStart(this.carry, 0, CARRY_MAX);
    if (value >= 0) {
      this.copyParts = true;
      this.beginData(this.carry, value, CARRY_MAX);
      this.copyParts = false;
      if (this.keep) this.addPart(b, s + room, e);
    } else if (eventValueStart(this.carry, 0, CARRY_MAX) >= 0) {
      this.kind = KIND_OTHER; // no event name we read is this long
    }
    this.lineState = ends ? LINE_FRESH : value >= 0 ? LINE_DATA : LINE_IGNORE;
  }

  /** A complete, non-empty line b[s, e). */
  private line(b: Buffer, s: number, e: number): void {
    const value = dataValueStart(b, s, e);
    if (value >= 0) {
      this.beginData(b, value, e);
      return;
    }
    const name = eventValueStart(b, s, e);
    if (name >= 0) this.kind = name === e ? KIND_NONE : kindOfName(b, name, e);
    // Anything else (`:` comments, id, retry, unknown fields) does not matter here.
  }

  /** The start of a data line whose value begins at b[s]; b[s, e) is as much of it as is known. */
  private beginData(b: Buffer, s: number, e: number): void {
    this.dataLines++;
    if (this.kind === KIND_NONE && this.dataLines === 1) {
      // No `event:` line: peek at the data's leading `type` so a content delta is still skipped.
      const kind = kindOfData(b, s, e);
      if (kind !== KIND_NONE) this.kind = kind;
    }
    const kind = this.kind;
    this.keep =
      !this.overflow &&
      (kind === KIND_NONE ||
        kind === KIND_MESSAGE_START ||
        kind === KIND_MESSAGE_DELTA ||
        kind === KIND_ERROR);
    if (!this.keep) return;
    if (this.dataLines > 1) this.addPart(LF_PART, 0, 1);
    this.addPart(b, s, e);
  }

  private addPart(b: Buffer, s: number, e: number): void {
    if (s === e) return;
    this.dataLen += e - s;
    if (this.dataLen > this.maxEventBytes) {
      // Bounded memory: drop what was kept, note the event as unreadable, keep following the stream.
      this.overflow = true;
      this.keep = false;
      this.parts = [];
      this.viewFrom = 0;
      return;
    }
    if (b === LF_PART) this.parts.push(LF_PART);
    else this.parts.push(this.copyParts ? Buffer.from(b.subarray(s, e)) : b.subarray(s, e));
  }

  /** A blank line: the event is complete. `after` is the offset just past that line in the current chunk. */
  private dispatch(after: number): void {
    let kind = this.kind;
    const dataLines = this.dataLines;
    const overflow = this.overflow;
    const parts = this.parts;
    const dataLen = this.dataLen;
    this.kind = KIND_NONE;
    this.dataLines = 0;
    this.keep = false;
    this.overflow = false;
    this.dataLen = 0;
    this.viewFrom = 0;
    this.eventStart = -1;
    if (parts.length > 0) this.parts = [];
    if (dataLines === 0) return;
    this._eventCount++;

    let data: Buffer | undefined;
    if (overflow) this._malformed++;
    else if (parts.length === 1) data = parts[0];
    else if (parts.length > 1) data = Buffer.concat(parts, dataLen);

    let parsed: Record<string, unknown> | undefined;
    let unreadable = overflow;
    if (kind === KIND_NONE && data !== undefined) {
      kind = kindOfData(data, 0, data.length);
      if (kind === KIND_NONE) {
        parsed = parseJson(data);
        if (parsed === undefined) unreadable = true;
        else kind = kindOfType(parsed['type']);
      }
    }
    if (kind === KIND_MESSAGE_START || kind === KIND_MESSAGE_DELTA || kind === KIND_ERROR) {
      if (parsed === undefined && !unreadable) {
        parsed = parseJson(data);
        if (parsed === undefined) unreadable = true;
      }
    }
    if (unreadable && !overflow) this._malformed++;

    switch (kind) {
      case KIND_CONTENT_DELTA:
        this.commit(after);
        return;
      case KIND_MESSAGE_START: {
        const message = asRecord(parsed?.['message']);
        if (message === undefined) return;
        if (typeof message['model'] === 'string') this._model = message['model'];
        this.addUsage(message['usage']);
        return;
      }
      case KIND_MESSAGE_DELTA:
        if (parsed !== undefined) this.addUsage(parsed['usage']);
        this.commit(after);
        return;
      case KIND_MESSAGE_STOP:
        this._stopped = true;
        this.commit(after);
        return;
      case KIND_ERROR: {
        this._errorEvents++;
        if (this._error !== undefined) return;
        const error = asRecord(parsed?.['error']);
        const type = error?.['type'];
        const message = error?.['message'];
        this._error = {
          type: typeof type === 'string' && type !== '' ? type : 'api_error',
          message: typeof message === 'string' ? message : 'the upstream sent an unreadable error event',
          afterCommit: this._committed,
        };
        return;
      }
    }
  }

  private addUsage(raw: unknown): void {
    const usage = this._usage ?? emptyUsage();
    if (mergeUsage(usage, raw)) this._usage = usage;
  }

  private commit(after: number): void {
    if (this._committed || this._error !== undefined) return;
    this._committed = true;
    this.commitAt = after;
  }
}

/**
 * A client-facing SSE error frame: `event: error` with the Anthropic error shape as its data, the
 * way the Messages API itself reports a failure mid-stream.
 */
export function sseErrorFrame(type: string, message: string): Buffer {
  const data = JSON.stringify({ type: 'error', error: { type, message } });
  return Buffer.from(`event: error\ndata: ${data}\n\n`, 'utf8');
}
