/**
 * Request translation for `protocol: openai` channels: an Anthropic Messages API request body →
 * an OpenAI Chat Completions request body (docs/openai.md). Pure: parsed JSON in, JSON bytes out.
 *
 * This is the one place where ccload parses and re-serialises a request body, and only for OpenAI
 * channels: Chat Completions is a different format, so the bytes cannot pass through. The Anthropic
 * path never comes here and stays byte for byte.
 *
 * What has no equivalent is dropped, never sent (`cache_control`, `thinking`, `context_management`,
 * `output_config`, `top_k`, server tools, `thinking` / `redacted_thinking` blocks). What would change
 * the conversation's meaning if dropped (documents, file references, server tool results) is refused
 * with a message naming it; the caller answers 400 `invalid_request_error`.
 */
import { isRecord } from './json.js';

/** A Chat Completions message as sent. */
type ChatMessage = Record<string, unknown>;

/** The translated body, or why the request cannot be represented. */
export type ChatRequest =
  | { readonly ok: true; readonly body: Record<string, unknown>; readonly stream: boolean }
  | { readonly ok: false; readonly message: string };

class Unrepresentable extends Error {}

function refuse(message: string): never {
  throw new Unrepresentable(message);
}

/** Text of a `system` value: a string, or text blocks joined by a blank line. */
function systemText(system: unknown): string {
  if (typeof system === 'string') return system;
  if (!Array.isArray(system)) refuse('system must be a string or an array of text blocks');
  const parts: string[] = [];
  for (const b of system) {
    if (!isRecord(b) || b['type'] !== 'text' || typeof b['text'] !== 'string')
      refuse(
        `system blocks of type "${isRecord(b) ? String(b['type']) : typeof b}" cannot be sent to an OpenAI channel`,
      );
    parts.push(b['text']);
  }
  return parts.join('\n\n');
}

/** An Anthropic image block → a Chat Completions `image_url` part. */
function imagePart(block: Record<string, unknown>, where: string): Record<string, unknown> {
  const source = block['source'];
  if (isRecord(source)) {
    if (source['type'] === 'base64' && typeof source['data'] === 'string') {
      const mediaType = typeof source['media_type'] === 'string' ? source['media_type'] : 'image/png';
      return { type: 'image_url', image_url: { url: `data:${mediaType};base64,${source['data']}` } };
    }
    if (source['type'] === 'url' && typeof source['url'] === 'string') {
      return { type: 'image_url', image_url: { url: source['url'] } };
    }
  }
  return refuse(
    `${where}: image source type "${isRecord(source) ? String(source['type']) : typeof source}" cannot be sent to an OpenAI channel (only base64 and url)`,
  );
}

/** Content parts as a plain string when they are all text (what most local servers accept), else the part list. */
function contentOf(parts: Record<string, unknown>[]): string | Record<string, unknown>[] {
  if (parts.every((p) => p['type'] === 'text')) return parts.map((p) => p['text'] as string).join('\n');
  return parts;
}

/** A `tool_result` block → a `tool` message (and the images it carried, for a following user message). */
function toolResult(
  block: Record<string, unknown>,
  where: string,
): { msg: ChatMessage; images: Record<string, unknown>[] } {
  const id = block['tool_use_id'];
  if (typeof id !== 'string' || id === '') refuse(`${where}: tool_result without tool_use_id`);
  const texts: string[] = [];
  const images: Record<string, unknown>[] = [];
  const content = block['content'];
  if (typeof content === 'string') texts.push(content);
  else if (Array.isArray(content)) {
    for (const [i, c] of content.entries()) {
      if (!isRecord(c)) continue;
      if (c['type'] === 'text' && typeof c['text'] === 'string') texts.push(c['text']);
      else if (c['type'] === 'image') images.push(imagePart(c, `${where}.content[${i}]`));
      else
        refuse(
          `${where}.content[${i}]: tool_result content of type "${String(c['type'])}" cannot be sent to an OpenAI channel`,
        );
    }
  } else if (content !== undefined && content !== null)
    refuse(`${where}: tool_result content must be a string or blocks`);
  let text = texts.join('\n');
  // Chat Completions has no error flag on tool results: say it in the text.
  if (block['is_error'] === true) text = text ? `Error: ${text}` : 'Error';
  return { msg: { role: 'tool', tool_call_id: id, content: text }, images };
}

/** One Anthropic message → Chat Completions messages, appended to `out` in order. */
function translateMessage(m: unknown, i: number, out: ChatMessage[]): void {
  const where = `messages[${i}]`;
  if (!isRecord(m)) refuse(`${where} must be an object`);
  const role = m['role'];
  const content = m['content'];
  if (role === 'system') {
    // Claude Code sends reminders as `role: "system"` entries; they stay system messages in place.
    out.push({ role: 'system', content: typeof content === 'string' ? content : systemText(content) });
    return;
  }
  if (role !== 'user' && role !== 'assistant')
    refuse(`${where}: role "${String(role)}" cannot be sent to an OpenAI channel`);
  if (typeof content === 'string') {
    out.push({ role, content });
    return;
  }
  if (!Array.isArray(content)) refuse(`${where}.content must be a string or an array of blocks`);

  if (role === 'assistant') {
    const texts: string[] = [];
    const calls: Record<string, unknown>[] = [];
    for (const [k, b] of content.entries()) {
      if (!isRecord(b)) refuse(`${where}.content[${k}] must be an object`);
      const type = b['type'];
      if (type === 'text') {
        if (typeof b['text'] === 'string') texts.push(b['text']);
      } else if (type === 'tool_use') {
        calls.push({
          id: String(b['id'] ?? ''),
          type: 'function',
          function: { name: String(b['name'] ?? ''), arguments: JSON.stringify(b['input'] ?? {}) },
        });
      } else if (type === 'thinking' || type === 'redacted_thinking') {
        // Reasoning of an earlier turn: Chat Completions servers do not take it back. Dropped.
      } else
        refuse(
          `${where}.content[${k}]: assistant block of type "${String(type)}" cannot be sent to an OpenAI channel`,
        );
    }
    const msg: ChatMessage = { role: 'assistant', content: texts.length > 0 ? texts.join('\n') : null };
    if (calls.length > 0) msg['tool_calls'] = calls;
    else if (msg['content'] === null) msg['content'] = '';
    out.push(msg);
    return;
  }

  // A user turn: tool results first (they must follow the assistant's tool_calls), then the rest.
  const parts: Record<string, unknown>[] = [];
  const toolImages: Record<string, unknown>[] = [];
  for (const [k, b] of content.entries()) {
    const at = `${where}.content[${k}]`;
    if (!isRecord(b)) refuse(`${at} must be an object`);
    const type = b['type'];
    if (type === 'text') {
      if (typeof b['text'] === 'string') parts.push({ type: 'text', text: b['text'] });
    } else if (type === 'image') parts.push(imagePart(b, at));
    else if (type === 'tool_result') {
      const r = toolResult(b, at);
      out.push(r.msg);
      toolImages.push(...r.images);
    } else refuse(`${at}: block of type "${String(type)}" cannot be sent to an OpenAI channel`);
  }
  // Tool messages carry text only: images a tool returned follow as a user message.
  const all = toolImages.length > 0 ? [...toolImages, ...parts] : parts;
  if (all.length > 0) out.push({ role: 'user', content: contentOf(all) });
}

/** `tools` → function tools. Server tools (typed, without `input_schema`) have no equivalent: dropped. */
function translateTools(tools: unknown): Record<string, unknown>[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) refuse('tools must be an array');
  const out: Record<string, unknown>[] = [];
  for (const [i, t] of tools.entries()) {
    if (!isRecord(t)) refuse(`tools[${i}] must be an object`);
    const custom = t['type'] === undefined || t['type'] === 'custom';
    if (!custom || !isRecord(t['input_schema'])) continue;
    const fn: Record<string, unknown> = { name: t['name'], parameters: t['input_schema'] };
    if (typeof t['description'] === 'string') fn['description'] = t['description'];
    out.push({ type: 'function', function: fn });
  }
  return out;
}

function translateToolChoice(choice: unknown): unknown {
  if (!isRecord(choice)) return undefined;
  switch (choice['type']) {
    case 'auto':
      return 'auto';
    case 'any':
      return 'required';
    case 'none':
      return 'none';
    case 'tool':
      return { type: 'function', function: { name: String(choice['name'] ?? '') } };
    default:
      return refuse(`tool_choice of type "${String(choice['type'])}" cannot be sent to an OpenAI channel`);
  }
}

/**
 * Translates a parsed Anthropic Messages request for `model` (the name sent upstream, after
 * model_map). Never throws: an unrepresentable request gives `{ ok: false, message }`.
 */
export function toChatCompletions(req: unknown, model: string): ChatRequest {
  try {
    if (!isRecord(req)) refuse('the request body must be a JSON object');
    const messages: ChatMessage[] = [];
    if (req['system'] !== undefined && req['system'] !== null) {
      const text = systemText(req['system']);
      if (text !== '') messages.push({ role: 'system', content: text });
    }
    const input = req['messages'];
    if (!Array.isArray(input)) refuse('messages must be an array');
    for (const [i, m] of input.entries()) translateMessage(m, i, messages);

    const stream = req['stream'] === true;
    const body: Record<string, unknown> = { model, messages };
    if (typeof req['max_tokens'] === 'number') body['max_tokens'] = req['max_tokens'];
    if (Array.isArray(req['stop_sequences']) && req['stop_sequences'].length > 0)
      body['stop'] = req['stop_sequences'];
    if (typeof req['temperature'] === 'number') body['temperature'] = req['temperature'];
    if (typeof req['top_p'] === 'number') body['top_p'] = req['top_p'];
    const tools = translateTools(req['tools']);
    if (tools && tools.length > 0) {
      body['tools'] = tools;
      const choice = translateToolChoice(req['tool_choice']);
      if (choice !== undefined) body['tool_choice'] = choice;
      const tc = req['tool_choice'];
      if (isRecord(tc) && tc['disable_parallel_tool_use'] === true) body['parallel_tool_calls'] = false;
    }
    const metadata = req['metadata'];
    if (isRecord(metadata) && typeof metadata['user_id'] === 'string' && metadata['user_id'] !== '')
      body['user'] = metadata['user_id'];
    if (stream) {
      body['stream'] = true;
      body['stream_options'] = { include_usage: true };
    }
    return { ok: true, body, stream };
  } catch (err) {
    if (err instanceof Unrepresentable) return { ok: false, message: err.message };
    throw err;
  }
}
