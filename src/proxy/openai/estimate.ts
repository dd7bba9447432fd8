/**
 * The local `count_tokens` answer for models an OpenAI channel serves (docs/openai.md#count_tokens):
 * Chat Completions has no token-counting route, and a client (Claude Code's `/context`) only needs a
 * size estimate. The estimate counts the text that reaches the model — system, message text, tool
 * calls and results, tool definitions — at a fixed rate per character class, plus a fixed cost per
 * image and per message. It is a heuristic, not a tokenizer: docs/openai.md states its measured error.
 */
import { isRecord } from './json.js';

/** Characters per token of ASCII text (prose, code and JSON mixed, as Claude Code's requests are). */
const ASCII_CHARS_PER_TOKEN = 3.6;
/** Tokens per non-ASCII character (accented Latin is cheaper, CJK dearer; one is the middle). */
const NON_ASCII_TOKENS = 1;
/** Tokens counted per image: a full-size image costs about 1,600 on Claude. */
const IMAGE_TOKENS = 1600;
/** Framing tokens per message (role, separators). */
const MESSAGE_TOKENS = 4;

class Tally {
  ascii = 0;
  other = 0;
  fixed = 0;

  text(s: string): void {
    for (let i = 0; i < s.length; i++) {
      if (s.charCodeAt(i) < 0x80) this.ascii++;
      else {
        this.other++;
        // A surrogate pair is one character.
        const c = s.charCodeAt(i);
        if (c >= 0xd800 && c < 0xdc00) i++;
      }
    }
  }

  json(v: unknown): void {
    if (v !== undefined) this.text(JSON.stringify(v));
  }

  blocks(content: unknown): void {
    if (typeof content === 'string') return this.text(content);
    if (!Array.isArray(content)) return;
    for (const b of content) {
      if (!isRecord(b)) continue;
      switch (b['type']) {
        case 'text':
          if (typeof b['text'] === 'string') this.text(b['text']);
          break;
        case 'image':
        case 'document':
          this.fixed += IMAGE_TOKENS;
          break;
        case 'tool_use':
          if (typeof b['name'] === 'string') this.text(b['name']);
          this.json(b['input']);
          break;
        case 'tool_result':
          this.blocks(b['content']);
          break;
        case 'thinking':
          if (typeof b['thinking'] === 'string') this.text(b['thinking']);
          break;
        default:
          this.json(b);
      }
    }
  }

  get tokens(): number {
    return Math.ceil(this.ascii / ASCII_CHARS_PER_TOKEN + this.other * NON_ASCII_TOKENS + this.fixed);
  }
}

/** Estimated input tokens of a parsed Messages (or count_tokens) request. */
export function estimateInputTokens(req: unknown): number {
  const t = new Tally();
  if (!isRecord(req)) return 0;
  t.blocks(req['system']);
  if (Array.isArray(req['messages'])) {
    for (const m of req['messages']) {
      t.fixed += MESSAGE_TOKENS;
      if (isRecord(m)) t.blocks(m['content']);
    }
  }
  if (Array.isArray(req['tools'])) {
    for (const tool of req['tools']) {
      if (!isRecord(tool)) continue;
      if (typeof tool['name'] === 'string') t.text(tool['name']);
      if (typeof tool['description'] === 'string') t.text(tool['description']);
      t.json(tool['input_schema']);
    }
  }
  return t.tokens;
}
