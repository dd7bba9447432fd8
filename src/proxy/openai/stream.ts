/**
 * Streaming response translation for `protocol: openai` channels: Chat Completions SSE chunks in,
 * Anthropic Messages SSE events out (docs/openai.md). Incremental: each upstream chunk is turned into
 * the events it completes, right away; only an unterminated last line is carried to the next chunk.
 *
 * Output sequence: `message_start` and `ping` at the first chunk; per content block
 * `content_block_start` → `content_block_delta`* → `content_block_stop`; at the end `message_delta`
 * (stop_reason, usage) and `message_stop`. `message_stop` is only written once the upstream said the
 * answer is complete (a `finish_reason`, then `[DONE]` or the end of the body): a stream cut before
 * that stays incomplete, and ccload's commit point and broken-stream handling see it as such.
 *
 * Blocks are strictly sequential, as Anthropic streams are. Text and reasoning stream live. The first
 * tool call streams live too; a tool call (or text) that starts while another tool call is open is
 * held, with its later argument deltas, until the open one ends at `finish_reason` — so servers that
 * interleave the deltas of parallel tool calls still give every call its complete arguments. Only
 * those held tool arguments are buffered, never the answer.
 *
 * Reasoning (`reasoning_content` / `reasoning` deltas) becomes a `thinking` block with an empty
 * signature: see docs/openai.md for what that means when a conversation moves to an Anthropic channel.
 */
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import { anthropicErrorType } from './errors.js';
import { reasoningOf } from './json.js';

/** What a translated stream reports to its caller (also visible in the events themselves). */
export interface StreamState {
  /** `finish_reason` seen: the answer is complete once `[DONE]` or the body's end arrives. */
  readonly finished: boolean;
  /** `message_stop` written. */
  readonly stopped: boolean;
}

/** Longest line carried over to the next chunk; a longer unterminated line is a broken stream. */
const MAX_LINE = 8 * 1024 * 1024;
/** Most text and tool arguments held while another tool call is open (characters). */
const MAX_HELD = 16 * 1024 * 1024;

const STOP_REASON: Readonly<Record<string, string>> = {
  stop: 'end_turn',
  length: 'max_tokens',
  tool_calls: 'tool_use',
  function_call: 'tool_use',
  content_filter: 'refusal',
};

/** Anthropic stop_reason for an OpenAI finish_reason (unknown ones end the turn). */
export function stopReason(finish: string | null | undefined): string {
  return (finish && STOP_REASON[finish]) || 'end_turn';
}

/** Anthropic usage from an OpenAI usage object: prompt tokens without the cached ones, cached as cache reads. */
export function anthropicUsage(u: unknown): Record<string, number> | undefined {
  if (typeof u !== 'object' || u === null) return undefined;
  const r = u as Record<string, unknown>;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.round(v) : 0);
  const prompt = num(r['prompt_tokens']);
  const details = r['prompt_tokens_details'] as Record<string, unknown> | undefined | null;
  const cached = Math.min(prompt, num(details?.['cached_tokens']));
  return {
    input_tokens: prompt - cached,
    output_tokens: num(r['completion_tokens']),
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: cached,
  };
}

/** A message id for a translated answer: `msg_` + the upstream's id when it is tame, else random. */
export function messageId(upstreamId: unknown): string {
  if (typeof upstreamId === 'string' && /^[A-Za-z0-9_-]{1,100}$/.test(upstreamId)) return `msg_${upstreamId}`;
  return `msg_${randomBytes(12).toString('hex')}`;
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

interface ToolState {
  /** Anthropic block index once started; -1 while held. */
  block: number;
  id: string;
  name: string;
  /** Argument text held while another block is open. */
  held: string;
}

/** Translates one upstream Chat Completions stream (one attempt). Feed chunks to `push`, then call `end`. */
export class ChatStreamTranslator implements StreamState {
  readonly #model: string;
  readonly #decoder = new StringDecoder('utf8');
  #carry = '';
  #started = false;
  #finished = false;
  #stopped = false;
  #failed = false;
  #stopReason = 'end_turn';
  #usage: Record<string, number> | undefined;
  #nextBlock = 0;
  /** The open block: its index and what it is (`text`, `thinking`, or a tool's OpenAI index). */
  #open: { index: number; kind: 'text' | 'thinking' | number } | undefined;
  readonly #tools = new Map<number, ToolState>();
  /** Held tool calls and text, in order of first appearance, flushed when the open tool call ends. */
  readonly #held: (ToolState | { text: string })[] = [];
  #heldText: { text: string } | undefined;
  /** Whitespace that arrived while no block of its kind was open, waiting for real text. */
  readonly #leading = { text: '', thinking: '' };
  /** Characters held in `#held` (bounded by MAX_HELD). */
  #heldBytes = 0;
  #sawTool = false;

  /** `model`: the model the client asked for, reported in `message_start`. */
  constructor(model: string) {
    this.#model = model;
  }

  get finished(): boolean {
    return this.#finished;
  }
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Translates the next upstream chunk; returns the Anthropic SSE bytes it completes (maybe none). */
  push(chunk: Buffer): Buffer {
    if (this.#stopped || this.#failed) return EMPTY;
    // The decoder keeps a UTF-8 sequence split between chunks for the next one.
    let text = this.#carry + this.#decoder.write(chunk);
    let out = '';
    let pos = 0;
    for (;;) {
      const nl = text.indexOf('\n', pos);
      if (nl < 0) break;
      let line = text.slice(pos, nl);
      pos = nl + 1;
      if (line.endsWith('\r')) line = line.slice(0, -1);
      out += this.#line(line);
      if (this.#stopped || this.#failed) {
        pos = text.length;
        break;
      }
    }
    text = text.slice(pos);
    if (text.length > MAX_LINE) {
      this.#failed = true;
      text = '';
      out += event('error', {
        type: 'error',
        error: { type: 'api_error', message: 'the upstream sent an over-long line' },
      });
    }
    this.#carry = text;
    return out === '' ? EMPTY : Buffer.from(out, 'utf8');
  }

  /**
   * The upstream body ended: what is still due. A stream that reported its `finish_reason` is
   * complete even without `[DONE]`; one that did not gets nothing more (it is incomplete).
   */
  end(): Buffer {
    if (this.#stopped || this.#failed) return EMPTY;
    let out = '';
    if (this.#carry !== '') {
      out += this.#line(this.#carry.replace(/\r$/, ''));
      this.#carry = '';
    }
    if (this.#finished && !this.#stopped && !this.#failed) out += this.#finish();
    return out === '' ? EMPTY : Buffer.from(out, 'utf8');
  }

  #line(line: string): string {
    if (!line.startsWith('data:')) return ''; // comments (`: keep-alive`), `event:`, `id:`, blank lines
    const data = line.slice(line.charCodeAt(5) === 0x20 ? 6 : 5).trim();
    if (data === '') return '';
    if (data === '[DONE]') return this.#finished ? this.#finish() : '';
    let chunk: Record<string, unknown>;
    try {
      const v: unknown = JSON.parse(data);
      if (typeof v !== 'object' || v === null || Array.isArray(v)) return '';
      chunk = v as Record<string, unknown>;
    } catch {
      return '';
    }
    let out = '';
    const err = chunk['error'];
    if (err !== undefined && err !== null) {
      this.#failed = true;
      const e = (typeof err === 'object' ? err : { message: String(err) }) as Record<string, unknown>;
      const message = typeof e['message'] === 'string' ? e['message'] : 'the upstream reported an error';
      return event('error', { type: 'error', error: { type: anthropicErrorType(0, e), message } });
    }
    if (!this.#started) out += this.#start(chunk['id']);
    const usage = anthropicUsage(chunk['usage']);
    if (usage) this.#usage = usage;
    const choices = chunk['choices'];
    if (!Array.isArray(choices)) return out;
    for (const c of choices) {
      if (typeof c !== 'object' || c === null) continue;
      const choice = c as Record<string, unknown>;
      if (choice['index'] !== undefined && choice['index'] !== 0) continue; // n > 1 is not asked for
      const delta = choice['delta'];
      if (typeof delta === 'object' && delta !== null) out += this.#delta(delta as Record<string, unknown>);
      if (this.#heldBytes > MAX_HELD) {
        // Bounded memory: an answer whose held blocks grow this large is given up as broken.
        this.#failed = true;
        return `${out}${event('error', { type: 'error', error: { type: 'api_error', message: 'the upstream sent too much interleaved tool-call data' } })}`;
      }
      const finish = choice['finish_reason'];
      if (typeof finish === 'string' && finish !== '' && !this.#finished) {
        out += this.#closeAll();
        this.#finished = true;
        this.#stopReason = this.#sawTool && finish === 'stop' ? 'tool_use' : stopReason(finish);
      }
    }
    return out;
  }

  #start(id: unknown): string {
    this.#started = true;
    return (
      event('message_start', {
        type: 'message_start',
        message: {
          id: messageId(id),
          type: 'message',
          role: 'assistant',
          model: this.#model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 0, output_tokens: 0 },
        },
      }) + event('ping', { type: 'ping' })
    );
  }

  #delta(delta: Record<string, unknown>): string {
    let out = '';
    const reasoning = reasoningOf(delta);
    if (reasoning !== '') out += this.#textLike('thinking', reasoning);
    const content = delta['content'];
    if (typeof content === 'string' && content !== '') out += this.#textLike('text', content);
    const calls = delta['tool_calls'];
    if (Array.isArray(calls)) {
      for (const [pos, c] of calls.entries()) {
        if (typeof c === 'object' && c !== null) out += this.#toolDelta(c as Record<string, unknown>, pos);
      }
    }
    return out;
  }

  /** Text or reasoning: continue the open block of that kind, or open a new one. */
  #textLike(kind: 'text' | 'thinking', text: string): string {
    const open = this.#open;
    if (open?.kind === kind) return this.#blockDelta(open.index, kind, text);
    if (open !== undefined && typeof open.kind === 'number') {
      // A tool call is open: text waits until it ends (reasoning after a tool call is not kept).
      if (kind === 'text') {
        if (!this.#heldText) {
          this.#heldText = { text: '' };
          this.#held.push(this.#heldText);
        }
        this.#heldText.text += text;
        this.#heldBytes += text.length;
      }
      return '';
    }
    // No block of only whitespace (a server's "\n\n" before its tool calls): the Messages API
    // refuses such a block when the client sends the turn back. Leading whitespace waits for text.
    if (/^\s*$/.test(text)) {
      this.#leading[kind] += text;
      return '';
    }
    text = this.#leading[kind] + text;
    this.#leading[kind] = '';
    let out = this.#close();
    const index = this.#nextBlock++;
    this.#open = { index, kind };
    const block =
      kind === 'text' ? { type: 'text', text: '' } : { type: 'thinking', thinking: '', signature: '' };
    out += event('content_block_start', { type: 'content_block_start', index, content_block: block });
    return out + this.#blockDelta(index, kind, text);
  }

  #blockDelta(index: number, kind: 'text' | 'thinking', text: string): string {
    const delta = kind === 'text' ? { type: 'text_delta', text } : { type: 'thinking_delta', thinking: text };
    return event('content_block_delta', { type: 'content_block_delta', index, delta });
  }

  #toolDelta(c: Record<string, unknown>, pos: number): string {
    const idx = typeof c['index'] === 'number' ? c['index'] : pos;
    const fn = (typeof c['function'] === 'object' && c['function'] !== null ? c['function'] : {}) as Record<
      string,
      unknown
    >;
    const args = typeof fn['arguments'] === 'string' ? fn['arguments'] : '';
    let tool = this.#tools.get(idx);
    if (!tool) {
      this.#sawTool = true;
      tool = {
        block: -1,
        id:
          typeof c['id'] === 'string' && c['id'] !== ''
            ? c['id']
            : `toolu_${randomBytes(12).toString('hex')}`,
        name: typeof fn['name'] === 'string' ? fn['name'] : '',
        held: '',
      };
      this.#tools.set(idx, tool);
      const open = this.#open;
      if (open !== undefined && typeof open.kind === 'number') {
        // Another tool call is open: this one waits (its deltas may interleave with the open one's).
        tool.held = args;
        this.#heldBytes += args.length;
        this.#held.push(tool);
        return '';
      }
      let out = this.#close();
      out += this.#startTool(tool, idx);
      if (args !== '') out += this.#argsDelta(tool.block, args);
      return out;
    }
    if (tool.name === '' && typeof fn['name'] === 'string') tool.name = fn['name'];
    if (args === '') return '';
    if (tool.block >= 0 && this.#open?.index === tool.block) return this.#argsDelta(tool.block, args);
    tool.held += args;
    this.#heldBytes += args.length;
    return '';
  }

  #startTool(tool: ToolState, idx: number): string {
    tool.block = this.#nextBlock++;
    this.#open = { index: tool.block, kind: idx };
    return event('content_block_start', {
      type: 'content_block_start',
      index: tool.block,
      content_block: { type: 'tool_use', id: tool.id, name: tool.name, input: {} },
    });
  }

  #argsDelta(index: number, json: string): string {
    return event('content_block_delta', {
      type: 'content_block_delta',
      index,
      delta: { type: 'input_json_delta', partial_json: json },
    });
  }

  #close(): string {
    const open = this.#open;
    if (!open) return '';
    this.#open = undefined;
    return event('content_block_stop', { type: 'content_block_stop', index: open.index });
  }

  /** Closes the open block and writes every held block, each complete. */
  #closeAll(): string {
    let out = this.#close();
    for (const h of this.#held) {
      if ('text' in h) {
        if (/^\s*$/.test(h.text)) continue;
        const index = this.#nextBlock++;
        out += event('content_block_start', {
          type: 'content_block_start',
          index,
          content_block: { type: 'text', text: '' },
        });
        out += this.#blockDelta(index, 'text', h.text);
        out += event('content_block_stop', { type: 'content_block_stop', index });
        continue;
      }
      const idx = [...this.#tools.entries()].find(([, t]) => t === h)![0];
      out += this.#startTool(h, idx);
      if (h.held !== '') out += this.#argsDelta(h.block, h.held);
      h.held = '';
      out += this.#close();
    }
    this.#held.length = 0;
    this.#heldText = undefined;
    this.#heldBytes = 0;
    return out;
  }

  #finish(): string {
    this.#stopped = true;
    const usage = this.#usage ?? { input_tokens: 0, output_tokens: 0 };
    return (
      event('message_delta', {
        type: 'message_delta',
        delta: { stop_reason: this.#stopReason, stop_sequence: null },
        usage,
      }) + event('message_stop', { type: 'message_stop' })
    );
  }
}

const EMPTY = Buffer.alloc(0);
