/**
 * Builders of realistic Anthropic Messages API payloads — answers, SSE event sequences, error bodies and
 * Claude Code–shaped requests — for the fake upstream, tests, the demo and benchmarks. Everything here is
 * synthesized (shapes from docs/stack-notes.md#what-claude-code-sends); no real prompt text is used.
 */
import { createHash, randomUUID } from 'node:crypto';

/**
 * Token counts of an answer as the Messages API reports them; the cache fields default to 0. The
 * 2026 billing fields (`cache_creation` TTL split, `iterations`, `server_tool_use`, `speed`) are
 * reported only when given: in a stream they appear in the final `message_delta` usage.
 */
export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
  cache_creation?: { ephemeral_5m_input_tokens: number; ephemeral_1h_input_tokens: number };
  iterations?: Record<string, unknown>[];
  server_tool_use?: Record<string, number>;
  speed?: string;
}

/**
 * One server-sent event: its `event:` name and its `data:` payload (JSON-encoded unless already a
 * string). An empty name writes no `event:` line, as OpenAI-compatible streams do.
 */
export interface SseEvent {
  event: string;
  /** An object is written as JSON; a string is written verbatim (for malformed-payload tests). */
  data: unknown;
}

/** A tool call streamed after the text, as `tool_use` content with `input_json_delta` deltas. */
export interface ToolUse {
  id?: string;
  name: string;
  input: unknown;
}

/** Options of {@link messageResponse}. */
export interface MessageResponseOptions {
  id?: string;
  model: string;
  text: string;
  usage: Usage;
  stopReason?: string;
  /** A `diagnostics` object (the cache-diagnosis beta), at the top level of the answer. */
  diagnostics?: unknown;
}

/** Options of {@link messageStreamEvents}: either `text` (split into word groups) or explicit `chunks`. */
export interface MessageStreamOptions {
  id?: string;
  model: string;
  text?: string;
  chunks?: string[];
  usage: Usage;
  /** A thinking block streamed before the text, with `thinking_delta`s and a `signature_delta`. */
  thinking?: string;
  toolUse?: ToolUse;
  stopReason?: string;
  /** A `diagnostics` object (the cache-diagnosis beta), in `message_start.message`. */
  diagnostics?: unknown;
}

/** Options of {@link claudeCodeRequest}. */
export interface ClaudeCodeRequestOptions {
  model: string;
  stream: boolean;
  /**
   * Target size of the encoded body in bytes (default 49 000, a first turn's size). Sizes below the full
   * Claude Code shape (≈25 KB: system, 12 tools, …) yield a minimal body (model, messages, max_tokens, stream) instead.
   */
  bodyBytes?: number;
  sessionId?: string;
}

/** A request as Claude Code would send it: headers without host/length/auth, and the encoded JSON body. */
export interface ClaudeCodeRequest {
  headers: Record<string, string>;
  body: Buffer;
}

/** The version Claude Code reported when its traffic was observed (docs/stack-notes.md). */
export const CLAUDE_CODE_VERSION = '2.1.332';
/** The model Claude Code uses when none is chosen. */
export const DEFAULT_CLAUDE_CODE_MODEL = 'claude-opus-5-5';

/** A stable message id derived from the content, so pre-built answers are reproducible. */
function messageId(seed: string): string {
  return 'msg_01' + createHash('sha256').update(seed).digest('base64url').slice(0, 22);
}

type ClassicUsage = Required<
  Pick<Usage, 'input_tokens' | 'output_tokens' | 'cache_creation_input_tokens' | 'cache_read_input_tokens'>
>;

function fullUsage(u: Usage): ClassicUsage & Usage {
  return {
    ...u,
    input_tokens: u.input_tokens,
    output_tokens: u.output_tokens,
    cache_creation_input_tokens: u.cache_creation_input_tokens ?? 0,
    cache_read_input_tokens: u.cache_read_input_tokens ?? 0,
  };
}

/** The billing fields beyond the classic four, as given. */
function extraUsage(u: Usage): Partial<Usage> {
  const { input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, ...rest } = u;
  return rest;
}

/** The JSON body (as an object) of a non-streaming Messages API answer with one text block. */
export function messageResponse(o: MessageResponseOptions): Record<string, unknown> {
  return {
    id: o.id ?? messageId(o.model + '\0' + o.text),
    type: 'message',
    role: 'assistant',
    model: o.model,
    content: [{ type: 'text', text: o.text }],
    stop_reason: o.stopReason ?? 'end_turn',
    stop_sequence: null,
    usage: fullUsage(o.usage),
    ...(o.diagnostics === undefined ? {} : { diagnostics: o.diagnostics }),
  };
}

/** Word groups of about three words, the granularity at which the API streams text. */
function splitText(text: string): string[] {
  const words = text.match(/\S+\s*|\s+/g) ?? [];
  const out: string[] = [];
  for (let i = 0; i < words.length; i += 3) out.push(words.slice(i, i + 3).join(''));
  return out;
}

/** Splits a string into about `parts` pieces (at least one character each). */
function splitInto(s: string, parts: number): string[] {
  const size = Math.max(1, Math.ceil(s.length / parts));
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

/**
 * The standard SSE sequence of a streamed answer: message_start (input and cache usage, output_tokens 1) →
 * per block content_block_start (ping after the first) → content_block_delta × n → content_block_stop →
 * message_delta (stop_reason, usage.output_tokens) → message_stop.
 */
export function messageStreamEvents(o: MessageStreamOptions): SseEvent[] {
  const u = fullUsage(o.usage);
  const chunks = o.chunks ?? splitText(o.text ?? '');
  const events: SseEvent[] = [
    {
      event: 'message_start',
      data: {
        type: 'message_start',
        message: {
          id: o.id ?? messageId(o.model + '\0' + chunks.join('')),
          type: 'message',
          role: 'assistant',
          model: o.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: {
            input_tokens: u.input_tokens,
            cache_creation_input_tokens: u.cache_creation_input_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            output_tokens: 1,
          },
          ...(o.diagnostics === undefined ? {} : { diagnostics: o.diagnostics }),
        },
      },
    },
  ];
  let index = 0;
  const block = (start: unknown, deltas: unknown[]): void => {
    events.push({
      event: 'content_block_start',
      data: { type: 'content_block_start', index, content_block: start },
    });
    if (index === 0) events.push({ event: 'ping', data: { type: 'ping' } });
    for (const delta of deltas) {
      events.push({ event: 'content_block_delta', data: { type: 'content_block_delta', index, delta } });
    }
    events.push({ event: 'content_block_stop', data: { type: 'content_block_stop', index } });
    index++;
  };
  if (o.thinking !== undefined) {
    const deltas: unknown[] = splitText(o.thinking).map((thinking) => ({ type: 'thinking_delta', thinking }));
    deltas.push({ type: 'signature_delta', signature: 'ErUBCkYIBxgCIkB' + messageId(o.thinking).slice(6) });
    block({ type: 'thinking', thinking: '', signature: '' }, deltas);
  }
  block(
    { type: 'text', text: '' },
    chunks.map((text) => ({ type: 'text_delta', text })),
  );
  if (o.toolUse) {
    const id = o.toolUse.id ?? 'toolu_01' + messageId(o.toolUse.name).slice(6);
    const json = JSON.stringify(o.toolUse.input);
    block(
      { type: 'tool_use', id, name: o.toolUse.name, input: {} },
      splitInto(json, 3).map((partial_json) => ({ type: 'input_json_delta', partial_json })),
    );
  }
  events.push({
    event: 'message_delta',
    data: {
      type: 'message_delta',
      delta: { stop_reason: o.stopReason ?? (o.toolUse ? 'tool_use' : 'end_turn'), stop_sequence: null },
      usage: { output_tokens: u.output_tokens, ...extraUsage(o.usage) },
    },
  });
  events.push({ event: 'message_stop', data: { type: 'message_stop' } });
  return events;
}

/** The wire bytes of one SSE event: `event: <name>\ndata: <json>\n\n`. */
export function encodeSseEvent(ev: SseEvent): Buffer {
  const data = typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data);
  if (ev.event === '') return Buffer.from(`data: ${data}\n\n`);
  return Buffer.from(`event: ${ev.event}\ndata: ${data}\n\n`);
}

/** The wire bytes of a whole SSE sequence. */
export function encodeSse(events: SseEvent[]): Buffer {
  return Buffer.concat(events.map(encodeSseEvent));
}

/** An Anthropic error body: `{"type":"error","error":{"type":…,"message":…}}`. */
export function errorBody(type: string, message: string): Record<string, unknown> {
  return { type: 'error', error: { type, message } };
}

/** The answer of `POST /v1/messages/count_tokens`. */
export function countTokensResponse(n: number): { input_tokens: number } {
  return { input_tokens: n };
}

export { errorTypeForStatus } from '../errors.js';

// ---- Claude Code request ----------------------------------------------------------------------------

const TOOL_NAMES = [
  'Task',
  'Bash',
  'Glob',
  'Grep',
  'Read',
  'Edit',
  'Write',
  'NotebookEdit',
  'WebFetch',
  'TodoWrite',
  'WebSearch',
  'ExitPlanMode',
] as const;

const DESCRIPTION_SENTENCES = [
  'Use this tool when the task needs it; prefer the specialised tools over shell equivalents.',
  'Paths must be absolute, not relative, and must stay inside the working directory.',
  'The output is truncated when it exceeds the limit, so narrow the query before retrying.',
  'Always explain in one short sentence why the call is needed before making it.',
  'When several independent calls are needed, batch them in a single message to save round trips.',
  'Never use this tool to read secrets such as .env files or credentials.',
];

function tool(name: string, i: number): Record<string, unknown> {
  const description = Array.from(
    { length: 14 },
    (_, k) => DESCRIPTION_SENTENCES[(i + k) % DESCRIPTION_SENTENCES.length],
  ).join(' ');
  const t: Record<string, unknown> = {
    name,
    description: `${name}: ${description}`,
    input_schema: {
      type: 'object',
      properties: {
        path: { type: 'string', description: 'The absolute path to operate on' },
        pattern: { type: 'string', description: 'A glob or regular expression, depending on the tool' },
        limit: { type: 'number', description: 'The maximum number of lines or results to return' },
        description: { type: 'string', description: 'A short (3-5 word) description of the call' },
      },
      required: ['path'],
      additionalProperties: false,
      $schema: 'http://json-schema.org/draft-07/schema#',
    },
  };
  if (name === 'WebSearch') t['defer_loading'] = true;
  return t;
}

/** Conversation snippets carrying the escapes and unicode real traffic has (quotes, \n, \t, \\, U+2028, emoji). */
const SNIPPETS = [
  'Can you look at src/config/"snapshot".ts? It fails with:\n\tTypeError: Cannot read properties of undefined (reading \'fileExists\')\n    at Object.<anonymous> (dist/src/main.js:12:7)\n',
  'Here\'s the diff — note the Windows path C:\\Users\\dev\\ccload\\ccload.yaml and the “smart quotes”.\n```ts\nconst channel = { name: "primary", priority: 10 };\n```\n',
  'Résumé of the café’s naïve façade: 日本語のテキストも少し含みます。 Emoji too: 🚀 ✅ 🔥 and a ZWJ sequence 👩‍💻.\n',
  'The log shows \u001b[31mERROR\u001b[0m lines, a bell \u0007, carriage returns\r\n and a tab\tseparated table:\nname\tstatus\tms\nprimary\t529\t1204\n',
  'I checked the HTML template: </script><script>alert(1)</script> & < > are escaped, and so is the \u2028 line separator.\n',
  'Running `npm test` now.\n\n$ tap dist/test\n# { total: 42, pass: 41, fail: 1 }\nThe failing case is "cooldown doubles up to max".\n',
  'Ich habe die Änderung geprüft — sieht gut aus. Größe: 12 KiB; Übertragung in 0,3 s. Ελληνικά, русский, العربية.\n',
];
const PROSE =
  'Please review the failing test and explain the cause before changing any code, then propose a minimal fix. ';

function encodedLength(s: string): number {
  return Buffer.byteLength(JSON.stringify(s)) - 2;
}

const SNIPPET_LENGTHS = SNIPPETS.map(encodedLength);

/** Text whose JSON-string encoding is exactly `bytes` bytes long (snippets first, then ASCII prose). */
function filler(bytes: number, offset: number): string {
  let out = '';
  let left = bytes;
  for (let i = 0; i < SNIPPETS.length; i++) {
    const k = (offset + i) % SNIPPETS.length;
    if (SNIPPET_LENGTHS[k]! > left) continue;
    out += SNIPPETS[k];
    left -= SNIPPET_LENGTHS[k]!;
    if (left < 400) break;
  }
  while (left > 0) {
    const piece = PROSE.slice(0, left);
    out += piece;
    left -= piece.length;
  }
  return out;
}

function systemBlocks(): unknown[] {
  return [
    { type: 'text', text: "You are Claude Code, Anthropic's official CLI for Claude." },
    {
      type: 'text',
      text:
        'You are an interactive CLI tool that helps users with software engineering tasks.\n\n# Tone and style\n' +
        DESCRIPTION_SENTENCES.join('\n- ').repeat(6),
      cache_control: { type: 'ephemeral' },
    },
    {
      type: 'text',
      text: "Here is useful information about the environment you are running in:\n<env>\nWorking directory: /home/dev/ccload\nIs directory a git repo: Yes\nPlatform: linux\nOS Version: Linux 6.1.0-28-amd64\nToday's date: 2026-11-26\n</env>",
      cache_control: { type: 'ephemeral' },
    },
  ];
}

function firstUserMessage(prompt: string): unknown {
  return {
    role: 'user',
    content: [
      {
        type: 'text',
        text: "<system-reminder>\nAs you answer the user's questions, you can use the following context:\n# claudeMd\nCodebase and user instructions are shown below.\n- Use TypeScript strict.\n- Tests use tap.\n</system-reminder>\n",
      },
      { type: 'text', text: prompt, cache_control: { type: 'ephemeral' } },
    ],
  };
}

function historyPair(i: number): unknown[] {
  return [
    { role: 'user', content: [{ type: 'text', text: filler(700, i) }] },
    { role: 'assistant', content: [{ type: 'text', text: filler(900, i + 3) }] },
  ];
}

/** Bytes a JSON value adds when appended to a non-empty array (value + comma). */
function arrayItemBytes(v: unknown): number {
  return Buffer.byteLength(JSON.stringify(v)) + 1;
}

/**
 * Headers and body shaped like Claude Code's first turn (`POST /v1/messages?beta=true`), padded to about
 * `bodyBytes` with earlier conversation turns and prompt text. The body keys come in Claude Code's order,
 * `model` first and `stream` last. No auth header is included: callers add `x-api-key` or `authorization`.
 */
export function claudeCodeRequest(o: ClaudeCodeRequestOptions): ClaudeCodeRequest {
  const target = o.bodyBytes ?? 49_000;
  const sessionId = o.sessionId ?? randomUUID();
  const isDefault = o.model === DEFAULT_CLAUDE_CODE_MODEL;
  const headers: Record<string, string> = {
    accept: 'application/json',
    'anthropic-beta':
      'claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,fine-grained-tool-streaming-2025-05-14',
    'anthropic-dangerous-direct-browser-access': 'true',
    'anthropic-version': '2023-06-01',
    'content-type': 'application/json',
    'user-agent': `claude-cli/${CLAUDE_CODE_VERSION} (external, sdk-cli)`,
    'x-app': 'cli',
    'x-claude-code-session-id': sessionId,
    'x-stainless-arch': 'x64',
    'x-stainless-lang': 'js',
    'x-stainless-os': 'Linux',
    'x-stainless-package-version': '0.70.0',
    'x-stainless-retry-count': '0',
    'x-stainless-runtime': 'node',
    'x-stainless-runtime-version': 'v20.20.2',
    'x-stainless-timeout': '600',
  };
  const maxTokens = isDefault ? 128_000 : 32_000;

  const messages: unknown[] = [];
  const full: Record<string, unknown> = {
    model: o.model,
    messages,
    system: systemBlocks(),
    tools: TOOL_NAMES.map(tool),
    metadata: {
      user_id: JSON.stringify({
        device_id: createHash('sha256').update(sessionId).digest('hex'),
        account_uuid: '',
        session_id: sessionId,
      }),
    },
    max_tokens: maxTokens,
    thinking: isDefault
      ? { type: 'adaptive', display: 'omitted' }
      : { type: 'enabled', budget_tokens: 31_999 },
    context_management: { edits: [{ type: 'clear_thinking_20251015', keep: 'all' }] },
    output_config: { effort: 'medium' },
    stream: o.stream,
  };
  messages.push(firstUserMessage(''));
  let base = Buffer.byteLength(JSON.stringify(full));
  if (base <= target) {
    // Earlier turns first, then the prompt text takes the exact remainder.
    let left = target - base;
    const history: unknown[] = [];
    for (let i = 0; left > 4_000; i++) {
      const pair = historyPair(i);
      const bytes = pair.reduce<number>((n, m) => n + arrayItemBytes(m), 0);
      if (bytes > left - 2_000) break;
      history.push(...pair);
      left -= bytes;
    }
    messages.length = 0;
    messages.push(...history, firstUserMessage(filler(left, history.length)));
    return { headers, body: Buffer.from(JSON.stringify(full)) };
  }
  // Smaller than the full shape: the minimal valid request, as benchmarks with tiny bodies use.
  const minimal = (text: string): Record<string, unknown> => ({
    model: o.model,
    messages: [{ role: 'user', content: text }],
    max_tokens: maxTokens,
    stream: o.stream,
  });
  base = Buffer.byteLength(JSON.stringify(minimal('')));
  const text = target - base >= 2 ? filler(target - base, 0) : 'hi';
  return { headers, body: Buffer.from(JSON.stringify(minimal(text))) };
}
