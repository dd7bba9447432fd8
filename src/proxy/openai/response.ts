/**
 * Non-streaming response translation for `protocol: openai` channels: one Chat Completions answer
 * → one Anthropic `message` object (docs/openai.md). Block order: reasoning (as `thinking`), text,
 * then tool calls in their order.
 */
import { randomBytes } from 'node:crypto';
import { isRecord, reasoningOf } from './json.js';
import { anthropicUsage, messageId, stopReason } from './stream.js';

/** Tool arguments as the object Anthropic's `input` is; text that is not a JSON object is kept under `_raw`. */
function toolInput(args: unknown): unknown {
  if (isRecord(args)) return args;
  if (typeof args !== 'string' || args.trim() === '') return {};
  try {
    const v: unknown = JSON.parse(args);
    return isRecord(v) ? v : { _raw: args };
  } catch {
    return { _raw: args };
  }
}

/**
 * Translates a 2xx Chat Completions body for the client that asked for `model`: one `message`, or
 * with `asStream` the Anthropic event stream of that message (for a client that asked for a stream
 * from a server that answered JSON). Undefined when the body is not a completion (no
 * `choices[0].message`): the attempt then counts as an empty answer.
 */
export function translateCompletion(body: Buffer, model: string, asStream = false): Buffer | undefined {
  let j: unknown;
  try {
    j = JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(j) || !Array.isArray(j['choices'])) return undefined;
  const choice = j['choices'][0];
  if (!isRecord(choice) || !isRecord(choice['message'])) return undefined;
  const msg = choice['message'];
  const content: Record<string, unknown>[] = [];
  const reasoning = reasoningOf(msg);
  if (reasoning !== '') content.push({ type: 'thinking', thinking: reasoning, signature: '' });
  // No whitespace-only text block: the Messages API refuses one when the client sends the turn back.
  if (typeof msg['content'] === 'string' && /\S/.test(msg['content']))
    content.push({ type: 'text', text: msg['content'] });
  let tools = 0;
  if (Array.isArray(msg['tool_calls'])) {
    for (const c of msg['tool_calls']) {
      if (!isRecord(c)) continue;
      const fn = isRecord(c['function']) ? c['function'] : {};
      tools++;
      content.push({
        type: 'tool_use',
        id:
          typeof c['id'] === 'string' && c['id'] !== ''
            ? c['id']
            : `toolu_${randomBytes(12).toString('hex')}`,
        name: typeof fn['name'] === 'string' ? fn['name'] : '',
        input: toolInput(fn['arguments']),
      });
    }
  }
  const finish = typeof choice['finish_reason'] === 'string' ? choice['finish_reason'] : null;
  const out = {
    id: messageId(j['id']),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: tools > 0 && finish === 'stop' ? 'tool_use' : stopReason(finish),
    stop_sequence: null,
    usage: anthropicUsage(j['usage']) ?? { input_tokens: 0, output_tokens: 0 },
  };
  return Buffer.from(asStream ? messageEvents(out) : JSON.stringify(out));
}

function sse(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** The Anthropic event stream of a whole message, each block in one delta. */
function messageEvents(
  m: { content: Record<string, unknown>[]; usage: unknown; stop_reason: string } & Record<string, unknown>,
): string {
  let out = sse('message_start', {
    type: 'message_start',
    message: { ...m, content: [], stop_reason: null, usage: { input_tokens: 0, output_tokens: 0 } },
  });
  for (const [index, b] of m.content.entries()) {
    let start: Record<string, unknown>;
    let delta: Record<string, unknown>;
    if (b['type'] === 'text') {
      start = { type: 'text', text: '' };
      delta = { type: 'text_delta', text: b['text'] };
    } else if (b['type'] === 'thinking') {
      start = { type: 'thinking', thinking: '', signature: '' };
      delta = { type: 'thinking_delta', thinking: b['thinking'] };
    } else {
      start = { ...b, input: {} };
      delta = { type: 'input_json_delta', partial_json: JSON.stringify(b['input']) };
    }
    out += sse('content_block_start', { type: 'content_block_start', index, content_block: start });
    out += sse('content_block_delta', { type: 'content_block_delta', index, delta });
    out += sse('content_block_stop', { type: 'content_block_stop', index });
  }
  out += sse('message_delta', {
    type: 'message_delta',
    delta: { stop_reason: m.stop_reason, stop_sequence: null },
    usage: m.usage,
  });
  return out + sse('message_stop', { type: 'message_stop' });
}
