/**
 * The SSE tap: an incremental observer of an upstream Messages API event stream. It is fed the
 * response chunks in order and finds the commit point (the first content event), the end of the
 * answer (`message_stop`, or the `stop_reason` of `message_delta`), an `event: error`, the usage
 * reports, the answering model and the cache diagnostics. It judges every event (json-check.ts,
 * without building anything, for the events it does not read): one whose `data:`
 * is not valid JSON is reported as a byte range to drop, or — when the client cannot stay
 * consistent without it — as `fatal`, so that nothing unparseable reaches a client.
 *
 * What it keeps: the unterminated last line when that line is short (a few hundred bytes at most)
 * and the `data:` of the event being read, bounded by `maxEventBytes`. A data line inside one chunk
 * is read in place (a view, no copy). Only message_start, message_delta and error are parsed.
 *
 * Commit point: the first event that is neither preamble (`message_start`, `content_block_start`,
 * `ping`) nor `error`. Unknown event types count as content: the API may add event types within a
 * version, and a stream made only of new events must neither be held until `first_token` expires
 * nor failed over for them.
 *
 * Lines end in LF, CRLF or a lone CR (WHATWG HTML §9.2.5 "event stream interpretation"); a blank
 * line dispatches the event; an event without data lines is not dispatched; an event cut off by the
 * end of the stream is never dispatched (`midEvent` tells the caller). A leading BOM is not stripped:
 * the first line then reads as an unknown field and the event's type comes from its data instead.
 */
import { isJson } from './json-check.js';
import { cacheMissReason, emptyUsage, mergeUsage, type Usage } from './usage.js';

/** An `event: error` the upstream sent, and whether the stream had already committed. */
export interface SseError {
  /** Anthropic error type, e.g. `overloaded_error`; `api_error` when the event could not be read. */
  readonly type: string;
  readonly message: string;
  readonly afterCommit: boolean;
}

/** Limits of an SseTap. */
export interface SseTapOptions {
  /** Data of one event beyond this many bytes makes the event unreadable. Default 16 MiB. */
  maxEventBytes?: number;
}

/** Why an event was dropped: its data was not JSON, or it was larger than `maxEventBytes`. */
export type DropReason = 'invalid_json' | 'oversize';

/** An unreadable event the client needs (its stream cannot go on without it), and where it starts. */
export interface SseFatal {
  /** The event's name, e.g. `content_block_start`. */
  readonly event: string;
  readonly reason: DropReason;
  /** Stream offset (bytes since the first chunk) where the event starts. */
  readonly at: number;
  readonly afterCommit: boolean;
}

const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const COLON = 0x3a;

/** Longest partial line (at the end of a chunk) copied aside to read once its end arrives. */
const CARRY_MAX = 256;
/** Default `maxEventBytes`: far above any real event (a web fetch result block can be several MB). */
export const DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024;

// Event kinds. NONE: no `event:` line yet, the type will come from the data's `type` field.
const KIND_NONE = 0;
const KIND_OTHER = 1;
const KIND_CONTENT_DELTA = 2;
const KIND_MESSAGE_START = 3;
const KIND_MESSAGE_DELTA = 4;
const KIND_MESSAGE_STOP = 5;
const KIND_ERROR = 6;
const KIND_BLOCK_START = 7;
const KIND_BLOCK_STOP = 8;
const KIND_PING = 9;

/** Event names the tap knows, and their kinds (parallel arrays); content_block_delta first, it is most of a stream. */
const NAME_STRINGS = [
  'content_block_delta',
  'content_block_start',
  'content_block_stop',
  'ping',
  'message_start',
  'message_delta',
  'message_stop',
  'error',
] as const;
const NAMES: readonly Buffer[] = NAME_STRINGS.map((name) => Buffer.from(name));
const NAME_KINDS: readonly number[] = [
  KIND_CONTENT_DELTA,
  KIND_BLOCK_START,
  KIND_BLOCK_STOP,
  KIND_PING,
  KIND_MESSAGE_START,
  KIND_MESSAGE_DELTA,
  KIND_MESSAGE_STOP,
  KIND_ERROR,
];

/**
 * Kinds a client cannot do without: dropping a block start or stop shifts the content block indices,
 * dropping message_start or message_delta loses the message or its ending, and an error must be
 * reported. An unreadable one ends the stream (fails over before commit) instead of being dropped.
 */
function isNeeded(kind: number): boolean {
  return (
    kind === KIND_MESSAGE_START ||
    kind === KIND_BLOCK_START ||
    kind === KIND_BLOCK_STOP ||
    kind === KIND_MESSAGE_DELTA ||
    kind === KIND_ERROR
  );
}

/** Preamble kinds: held before the commit point (a stream of nothing else has no answer yet). */
function isPreamble(kind: number): boolean {
  return kind === KIND_MESSAGE_START || kind === KIND_BLOCK_START || kind === KIND_PING;
}

function kindName(kind: number): string {
  const i = NAME_KINDS.indexOf(kind);
  return i >= 0 ? NAME_STRINGS[i]! : 'unknown';
}

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
  if (typeof type !== 'string') return KIND_OTHER;
  const i = (NAME_STRINGS as readonly string[]).indexOf(type);
  return i >= 0 ? NAME_KINDS[i]! : KIND_OTHER;
}

/** The data parsed as JSON: an object, `null` for valid JSON that is not an object, undefined when not JSON. */
function parseJson(data: Buffer, from: number, to: number): Record<string, unknown> | null | undefined {
  try {
    return asRecord(JSON.parse(data.toString('utf8', from, to))) ?? null;
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
 * state from the getters. Never throws on stream content: unreadable events are counted in
 * `malformed` and reported in `drops` or `fatal`.
 *
 * Caller's pattern (stream offsets count bytes since the first chunk): hold bytes while `committed`
 * is false. Once committed, write the bytes up to `safeAt` — the end of the last complete event (or
 * line outside an event) — leaving out the ranges listed in `drops` (flat `[start, end)` pairs, in
 * order; the caller empties the list once it has applied them), and hold the rest: an event is
 * written only when complete and judged. With `fatal` set, write up to `fatal.at` and end the stream
 * with an `event: error` (before commit: fail over). An `error` with `afterCommit: false` (or a
 * stream ending before commit) means the attempt failed with nothing sent, so failover is still
 * allowed; an error before commit also stops the tap from ever committing, so "held then failed"
 * cannot turn into "committed" later in the same stream.
 */
export class SseTap {
  private readonly maxEventBytes: number;
  private _committed = false;
  private _stopped = false;
  private _stopReason: string | undefined;
  private _error: SseError | undefined;
  private _fatal: SseFatal | undefined;
  private _usage: Usage | undefined;
  private _model: string | undefined;
  private _cacheMissReason: string | undefined;
  private _eventCount = 0;
  private _malformed = 0;
  private _errorEvents = 0;
  private _droppedInvalid = 0;
  private _droppedOversize = 0;
  /** Dropped event ranges not yet applied by the caller: flat [start, end) stream offsets. */
  readonly drops: number[] = [];

  private lineState = LINE_FRESH;
  private readonly carry = Buffer.allocUnsafe(CARRY_MAX);
  private carryLen = 0;
  /** A chunk ended in CR: an LF starting the next chunk belongs to that CRLF. */
  private skipLF = false;
  /** Set while reading a line out of `carry`: kept parts must be copied, `carry` gets reused. */
  private copyParts = false;
  /** Stream offset of the current chunk's first byte. */
  private base = 0;
  private _safeAt = 0;

  // The event being read.
  private kind = KIND_NONE;
  private dataLines = 0;
  private overflow = false;
  private parts: Buffer[] = [];
  /**
   * The usual event's data — one line, inside one chunk — is kept as a range of that chunk
   * (`oneBuf[oneStart, oneEnd)`) instead of a view in `parts`: no Buffer object and no array per
   * event, which with hundreds of streams open was garbage the young generation kept copying.
   * Set only while `parts` is empty; moved into `parts` when a second piece comes or the chunk ends.
   */
  private oneBuf: Buffer | undefined;
  private oneStart = 0;
  private oneEnd = 0;
  private dataLen = 0;
  /** parts[viewFrom..] are views into the current chunk, copied when `push` returns. */
  private viewFrom = 0;

  /** Offset in the current chunk where the committing event ended, or -1. */
  private commitAt = -1;

  constructor(options: SseTapOptions = {}) {
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  /** Whether the first content event (anything but message_start, content_block_start, ping, error) was seen. */
  get committed(): boolean {
    return this._committed;
  }
  /** Whether `message_stop` was seen: the answer is complete. */
  get stopped(): boolean {
    return this._stopped;
  }
  /** The `stop_reason` of a `message_delta`, once one carried it: the answer's content is complete. */
  get stopReason(): string | undefined {
    return this._stopReason;
  }
  /** The first `event: error` of the stream, if any. */
  get error(): SseError | undefined {
    return this._error;
  }
  /** An unreadable event the client cannot do without; the tap reads nothing after it. */
  get fatal(): SseFatal | undefined {
    return this._fatal;
  }
  /** Token usage from message_start and message_delta (later non-null values win); undefined until reported. */
  get usage(): Usage | undefined {
    return this._usage;
  }
  /** The answering model, from `message_start.message.model`. */
  get model(): string | undefined {
    return this._model;
  }
  /** `diagnostics.cache_miss_reason` of message_start or message_delta (later wins). */
  get cacheMissReason(): string | undefined {
    return this._cacheMissReason;
  }
  /** Events dispatched so far (an event is dispatched by its blank line and needs at least one data line). */
  get eventCount(): number {
    return this._eventCount;
  }
  /** Events whose data could not be read (not JSON, or over `maxEventBytes`), dropped or fatal. */
  get malformed(): number {
    return this._malformed;
  }
  /** `event: error` events dispatched so far (every one, not only the first). */
  get errorEvents(): number {
    return this._errorEvents;
  }
  /** Events dropped so far, by reason. */
  get dropped(): Readonly<Record<DropReason, number>> {
    return { invalid_json: this._droppedInvalid, oversize: this._droppedOversize };
  }
  /** Stream offset just past the last complete event (or line outside an event): what may be written. */
  get safeAt(): number {
    return this._safeAt;
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
    // Data of an event that continues in the next chunk must not alias the caller's buffer.
    if (this.oneBuf !== undefined) this.keepOne();
    for (let i = this.viewFrom; i < this.parts.length; i++) {
      const part = this.parts[i]!;
      if (part !== LF_PART) this.parts[i] = Buffer.from(part);
    }
    this.viewFrom = this.parts.length;
    this.base += n;
    return this.commitAt;
  }

  /** A piece b[s, e) of the current line; `ends`: the line's terminator follows, and the next line starts at `after`. */
  private segment(b: Buffer, s: number, e: number, ends: boolean, after: number): void {
    switch (this.lineState) {
      case LINE_FRESH:
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
        break;
      case LINE_CARRY:
        this.toCarry(b, s, e, ends);
        break;
      case LINE_DATA:
        this.addPart(b, s, e);
        if (ends) this.lineState = LINE_FRESH;
        break;
      default:
        if (ends) this.lineState = LINE_FRESH;
    }
    // A line ended outside any event (a blank line, a comment): the bytes so far may be written.
    if (ends && this.lineState === LINE_FRESH && this.kind === KIND_NONE && this.dataLines === 0) {
      this._safeAt = this.base + after;
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
      this.addPart(b, s + room, e);
    } else if (eventValueStart(this.carry, 0, CARRY_MAX) >= 0) {
      this.kind = KIND_OTHER; // no event name we know is this long
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
    if (this.dataLines > 1) this.addPart(LF_PART, 0, 1);
    this.addPart(b, s, e);
  }

  private addPart(b: Buffer, s: number, e: number): void {
    if (s === e || this.overflow) return;
    this.dataLen += e - s;
    if (this.dataLen > this.maxEventBytes) {
      // Bounded memory: drop what was kept, note the event as unreadable, keep following the stream.
      this.overflow = true;
      this.parts = [];
      this.oneBuf = undefined;
      this.viewFrom = 0;
      return;
    }
    if (this.oneBuf === undefined && this.parts.length === 0 && b !== LF_PART && !this.copyParts) {
      this.oneBuf = b;
      this.oneStart = s;
      this.oneEnd = e;
      return;
    }
    if (this.oneBuf !== undefined) this.keepOne();
    if (b === LF_PART) this.parts.push(LF_PART);
    else this.parts.push(this.copyParts ? Buffer.from(b.subarray(s, e)) : b.subarray(s, e));
  }

  /** Moves the in-place first piece into `parts`, as a view of the current chunk (`push` copies views). */
  private keepOne(): void {
    this.parts.push(this.oneBuf!.subarray(this.oneStart, this.oneEnd));
    this.oneBuf = undefined;
  }

  /** A blank line: the event is complete. `after` is the offset just past that line in the current chunk. */
  private dispatch(after: number): void {
    let kind = this.kind;
    const dataLines = this.dataLines;
    const overflow = this.overflow;
    const parts = this.parts;
    const one = this.oneBuf;
    this.oneBuf = undefined;
    const dataLen = this.dataLen;
    this.kind = KIND_NONE;
    this.dataLines = 0;
    this.overflow = false;
    this.dataLen = 0;
    this.viewFrom = 0;
    if (parts.length > 0) this.parts = [];
    if (dataLines === 0 || this._fatal !== undefined) return;
    this._eventCount++;
    const start = this._safeAt;

    // Every event's data is judged: the official SDK JSON-parses every event it does not skip, and
    // one unparseable event fails the client's whole turn. Empty data is skipped by clients: fine.
    // Events the tap reads are parsed; the rest (deltas: nearly all of a stream) only validated.
    let parsed: Record<string, unknown> | null | undefined = null;
    let bad: DropReason | undefined;
    if (overflow) bad = 'oversize';
    else if (dataLen > 0) {
      let data: Buffer;
      let from = 0;
      let to = dataLen;
      if (one !== undefined) {
        data = one;
        from = this.oneStart;
        to = this.oneEnd;
      } else data = parts.length === 1 ? parts[0]! : Buffer.concat(parts, dataLen);
      if (
        kind === KIND_NONE ||
        kind === KIND_MESSAGE_START ||
        kind === KIND_MESSAGE_DELTA ||
        kind === KIND_ERROR
      ) {
        parsed = parseJson(data, from, to);
        if (parsed === undefined) bad = 'invalid_json';
      } else if (!isJson(data, from, to)) bad = 'invalid_json';
    }
    if (kind === KIND_NONE) kind = parsed ? kindOfType(parsed['type']) : KIND_OTHER;
    if (bad !== undefined) {
      this._malformed++;
      if (isNeeded(kind)) {
        this._fatal = { event: kindName(kind), reason: bad, at: start, afterCommit: this._committed };
        if (kind === KIND_ERROR && this._error === undefined) {
          this._error = {
            type: 'api_error',
            message: 'the upstream sent an unreadable error event',
            afterCommit: this._committed,
          };
        }
        return;
      }
      // Droppable: a delta, ping, message_stop (the ending is then synthesised from message_delta's
      // stop_reason) or an event type ccload does not know.
      if (bad === 'oversize') this._droppedOversize++;
      else this._droppedInvalid++;
      this.drops.push(start, this.base + after);
      return;
    }

    const obj = parsed ?? undefined;
    switch (kind) {
      case KIND_MESSAGE_START: {
        const message = asRecord(obj?.['message']);
        if (message === undefined) return;
        if (typeof message['model'] === 'string') this._model = message['model'];
        this.addUsage(message['usage']);
        this._cacheMissReason = cacheMissReason(message) ?? this._cacheMissReason;
        return;
      }
      case KIND_MESSAGE_DELTA: {
        if (obj !== undefined) {
          this.addUsage(obj['usage']);
          const delta = asRecord(obj['delta']);
          const stop = delta?.['stop_reason'];
          if (typeof stop === 'string' && stop !== '') this._stopReason = stop;
          this._cacheMissReason = cacheMissReason(obj) ?? cacheMissReason(delta) ?? this._cacheMissReason;
        }
        this.commit(after);
        return;
      }
      case KIND_MESSAGE_STOP:
        this._stopped = true;
        this.commit(after);
        return;
      case KIND_ERROR: {
        this._errorEvents++;
        if (this._error !== undefined) return;
        const error = asRecord(obj?.['error']);
        const type = error?.['type'];
        const message = error?.['message'];
        this._error = {
          type: typeof type === 'string' && type !== '' ? type : 'api_error',
          message: typeof message === 'string' ? message : 'the upstream sent an unreadable error event',
          afterCommit: this._committed,
        };
        return;
      }
      default:
        if (!isPreamble(kind)) this.commit(after);
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
