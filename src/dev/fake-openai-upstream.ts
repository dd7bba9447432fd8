/**
 * A scripted fake OpenAI-compatible upstream (Chat Completions) on loopback, for `protocol: openai`
 * channels in tests, the demo and benchmarks. It is a {@link FakeUpstream} — same queue, chooser,
 * recording and stream scripting (delays, cuts, stalls, chunking) — whose default answer is a Chat
 * Completions answer for the request's `model` and `stream`, and whose builders below make the
 * OpenAI shapes: streaming chunks with `[DONE]` and a final usage chunk, tool-call argument deltas
 * split across chunks, parallel (optionally interleaved) tool calls, reasoning deltas and
 * OpenAI-shaped errors. Everything is synthesized.
 */
import type { SseEvent } from './anthropic-shapes.js';
import {
  type Behaviour,
  FakeUpstream,
  type FakeUpstreamOptions,
  type JsonBehaviour,
  type StatusBehaviour,
  type StreamBehaviour,
} from './fake-upstream.js';

/** Token usage as Chat Completions reports it. */
export interface ChatUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number };
}

/** A tool call of a scripted answer; `args` is the arguments' JSON text in the pieces it streams in. */
export interface ChatToolCall {
  id: string;
  name: string;
  args: string[];
}

/** Options of {@link chatStreamEvents} and {@link chatCompletion}. */
export interface ChatAnswerOptions {
  id?: string;
  model: string;
  /** Text pieces, one delta each. */
  chunks?: string[];
  /** Reasoning pieces streamed before the text as `reasoning_content` deltas (or `reasoning`). */
  reasoning?: string[];
  reasoningField?: 'reasoning_content' | 'reasoning';
  toolCalls?: ChatToolCall[];
  /** Stream the tool calls' argument pieces round-robin (call 0 piece 0, call 1 piece 0, …). */
  interleave?: boolean;
  finishReason?: string;
  usage?: ChatUsage;
  /** Leave out the final usage chunk (a server that ignores `stream_options`). */
  noUsageChunk?: boolean;
  /** Leave out `data: [DONE]`. */
  noDone?: boolean;
}

/** Usage the default answers report: 2 112 prompt tokens of which 2 000 cached, 9 completion tokens. */
export const DEFAULT_CHAT_USAGE: ChatUsage = {
  prompt_tokens: 2112,
  completion_tokens: 9,
  total_tokens: 2121,
  prompt_tokens_details: { cached_tokens: 2000 },
};
/** The default answer's text pieces. */
export const DEFAULT_CHAT_CHUNKS = ['Hello from ', 'the fake OpenAI ', 'upstream.'];

const CREATED = 1_764_700_000;

function chunk(id: string, model: string, delta: Record<string, unknown>, finish: string | null): SseEvent {
  return {
    event: '',
    data: {
      id,
      object: 'chat.completion.chunk',
      created: CREATED,
      model,
      system_fingerprint: 'fp_fake',
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    },
  };
}

/** The SSE events of a streamed Chat Completions answer, like OpenAI sends with `stream_options.include_usage`. */
export function chatStreamEvents(o: ChatAnswerOptions): SseEvent[] {
  const id = o.id ?? 'chatcmpl-fake0001';
  const m = o.model;
  const events: SseEvent[] = [chunk(id, m, { role: 'assistant', content: '' }, null)];
  const field = o.reasoningField ?? 'reasoning_content';
  for (const r of o.reasoning ?? []) events.push(chunk(id, m, { [field]: r }, null));
  for (const c of o.chunks ?? []) events.push(chunk(id, m, { content: c }, null));
  const calls = o.toolCalls ?? [];
  const head = (k: number, args: string) => ({
    tool_calls: [
      { index: k, id: calls[k]!.id, type: 'function', function: { name: calls[k]!.name, arguments: args } },
    ],
  });
  const piece = (k: number, args: string) => ({ tool_calls: [{ index: k, function: { arguments: args } }] });
  if (o.interleave) {
    const longest = Math.max(0, ...calls.map((c) => c.args.length));
    for (let p = 0; p < longest; p++) {
      for (let k = 0; k < calls.length; k++) {
        const a = calls[k]!.args[p];
        if (a === undefined) continue;
        events.push(chunk(id, m, p === 0 ? head(k, a) : piece(k, a), null));
      }
    }
  } else {
    for (let k = 0; k < calls.length; k++) {
      const args = calls[k]!.args;
      events.push(chunk(id, m, head(k, args[0] ?? ''), null));
      for (const a of args.slice(1)) events.push(chunk(id, m, piece(k, a), null));
    }
  }
  const finish = o.finishReason ?? (calls.length > 0 ? 'tool_calls' : 'stop');
  events.push(chunk(id, m, {}, finish));
  if (!o.noUsageChunk) {
    events.push({
      event: '',
      data: {
        id,
        object: 'chat.completion.chunk',
        created: CREATED,
        model: m,
        choices: [],
        usage: o.usage ?? DEFAULT_CHAT_USAGE,
      },
    });
  }
  if (!o.noDone) events.push({ event: '', data: '[DONE]' });
  return events;
}

/** A non-streaming Chat Completions answer body. */
export function chatCompletion(o: ChatAnswerOptions): Record<string, unknown> {
  const message: Record<string, unknown> = { role: 'assistant', content: (o.chunks ?? []).join('') || null };
  if (o.reasoning) message[o.reasoningField ?? 'reasoning_content'] = o.reasoning.join('');
  if (o.toolCalls && o.toolCalls.length > 0) {
    message['tool_calls'] = o.toolCalls.map((c) => ({
      id: c.id,
      type: 'function',
      function: { name: c.name, arguments: c.args.join('') },
    }));
  }
  return {
    id: o.id ?? 'chatcmpl-fake0001',
    object: 'chat.completion',
    created: CREATED,
    model: o.model,
    choices: [
      {
        index: 0,
        message,
        logprobs: null,
        finish_reason: o.finishReason ?? (o.toolCalls?.length ? 'tool_calls' : 'stop'),
      },
    ],
    usage: o.usage ?? DEFAULT_CHAT_USAGE,
  };
}

/** An OpenAI error body. */
export function openaiErrorBody(
  message: string,
  type = 'invalid_request_error',
  code: string | null = null,
): Record<string, unknown> {
  return { error: { message, type, param: null, code } };
}

/** A failure status with an OpenAI-shaped body. */
export function openaiStatus(
  status: number,
  message: string,
  o: { type?: string; code?: string | null; headers?: Record<string, string> } = {},
): StatusBehaviour {
  const type =
    o.type ??
    (status === 429
      ? 'rate_limit_exceeded'
      : status === 401
        ? 'invalid_api_key'
        : status >= 500
          ? 'server_error'
          : 'invalid_request_error');
  return { kind: 'status', status, body: openaiErrorBody(message, type, o.code ?? null), headers: o.headers };
}

/** A 200 Chat Completions JSON answer. */
export function okChat(o: ChatAnswerOptions): JsonBehaviour {
  return { kind: 'json', status: 200, body: chatCompletion({ chunks: DEFAULT_CHAT_CHUNKS, ...o }) };
}

/** A streamed Chat Completions answer (with stream scripting options: delays, cuts, chunking …). */
export function okChatStream(
  o: ChatAnswerOptions & Omit<Partial<StreamBehaviour>, 'kind' | 'events'>,
): StreamBehaviour {
  const {
    id,
    model,
    chunks,
    reasoning,
    reasoningField,
    toolCalls,
    interleave,
    finishReason,
    usage,
    noUsageChunk,
    noDone,
    ...rest
  } = o;
  const events = chatStreamEvents({
    id,
    model,
    chunks: chunks ?? (toolCalls ? [] : DEFAULT_CHAT_CHUNKS),
    reasoning,
    reasoningField,
    toolCalls,
    interleave,
    finishReason,
    usage,
    noUsageChunk,
    noDone,
  });
  return { kind: 'stream', ...rest, events };
}

/**
 * Starts a fake OpenAI-compatible upstream on 127.0.0.1. Queued behaviours and a chooser set with
 * `handle()` win; otherwise `POST …/chat/completions` gets the default answer for its model (a stream
 * when asked for one), `GET …/models` the list `models` (default `deepseek-chat`, `fake-model`),
 * and any other path a 404 in OpenAI's shape.
 */
export async function startFakeOpenAIUpstream(
  opts: Omit<FakeUpstreamOptions, 'default'> & { models?: string[] } = {},
): Promise<FakeUpstream> {
  const list: JsonBehaviour = {
    kind: 'json',
    body: {
      object: 'list',
      data: (opts.models ?? ['deepseek-chat', 'fake-model']).map((id) => ({
        id,
        object: 'model',
        created: CREATED,
        owned_by: 'fake',
      })),
    },
  };
  const cache = new Map<string, Behaviour>();
  const notFound = openaiStatus(404, 'Unknown request URL', {
    type: 'invalid_request_error',
    code: 'unknown_url',
  });
  const fake = new FakeUpstream({ ...opts, default: notFound });
  const answer = (method: string, path: string, model: string | undefined, stream: boolean): Behaviour => {
    if (method === 'GET' && path.endsWith('/models')) return list;
    if (method !== 'POST' || !path.endsWith('/chat/completions')) return notFound;
    const m = model ?? 'fake-model';
    const key = `${stream ? 's' : 'j'}${m}`;
    let b = cache.get(key);
    if (!b) {
      b = stream ? okChatStream({ model: m }) : okChat({ model: m });
      if (cache.size >= 256) cache.clear();
      cache.set(key, b);
    }
    return b;
  };
  const base = fake.handle.bind(fake);
  // The default answer sits behind any chooser the test sets: a chooser returning undefined falls back to it.
  fake.handle = (chooser) =>
    base((req) => chooser?.(req) ?? answer(req.method, req.path, req.model, req.stream));
  fake.handle(undefined);
  return fake.listen();
}
