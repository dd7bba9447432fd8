/**
 * Upstream protocols (docs/openai.md): what one attempt sends to a channel and how its answer is
 * read back, per the channel's `protocol`. `anthropic` forwards the client's request byte for byte
 * (docs/proxy.md#transparency); `openai` translates to Chat Completions and back. The handler calls
 * `adapterFor(channel).prepare()` once per attempt and is otherwise the same for both.
 */
import type { Channel } from '../config/snapshot.js';
import { rewriteModel } from './body-sniff.js';
import type { ResponseTranslation } from './forward.js';
import { upstreamHeaders } from './headers.js';
import { translateError } from './openai/errors.js';
import { estimateInputTokens } from './openai/estimate.js';
import { toChatCompletions } from './openai/request.js';
import { translateCompletion } from './openai/response.js';
import { ChatStreamTranslator } from './openai/stream.js';
import type { Endpoint } from './outcome.js';

/** The client's request as every attempt sees it. */
export interface ClientCall {
  readonly endpoint: Endpoint;
  readonly rawHeaders: readonly string[];
  /** The client's path and query, timeout hints removed. */
  readonly target: string;
  readonly body: Buffer;
  /** The requested model and its byte range in `body`. */
  readonly model: string;
  readonly modelStart: number;
  readonly modelEnd: number;
  /** `server.forward_client_address` of the request's snapshot. */
  readonly forwardClientAddress: boolean;
  /** The body parsed, by the first adapter that needed it (the Anthropic path never parses). */
  parsed?: { readonly value: unknown } | { readonly error: string } | undefined;
}

/** What one attempt does. */
export type Prepared =
  /** Send this upstream; `translate` reads the answer back into Anthropic form. */
  | {
      readonly kind: 'upstream';
      readonly path: string;
      readonly headers: string[];
      readonly body: Buffer;
      readonly translate?: ResponseTranslation | undefined;
    }
  /** Answer locally without an upstream request (count_tokens on an OpenAI channel). */
  | { readonly kind: 'local'; readonly status: number; readonly body: Buffer }
  /** This channel cannot take the request (400 `invalid_request_error` unless another channel can). */
  | { readonly kind: 'refuse'; readonly message: string };

/** One upstream protocol. */
export interface ProtocolAdapter {
  prepare(call: ClientCall, channel: Channel, key: string, sentModel: string): Prepared;
}

/** The Messages API: the body byte for byte (model_map rewrites the model in place), headers per headers.ts. */
export const anthropicAdapter: ProtocolAdapter = {
  prepare(call, channel, key, sent) {
    const body =
      sent === call.model ? call.body : rewriteModel(call.body, call.modelStart, call.modelEnd, sent);
    return {
      kind: 'upstream',
      path: channel.basePath + call.target,
      headers: upstreamHeaders(call.rawHeaders, key, channel.auth, body.length, call.forwardClientAddress),
      body,
    };
  },
};

function parsedBody(call: ClientCall): { value: unknown } | { error: string } {
  if (call.parsed === undefined) {
    try {
      call.parsed = { value: JSON.parse(call.body.toString('utf8')) };
    } catch (err) {
      call.parsed = { error: `the request body is not valid JSON (${(err as Error).message})` };
    }
  }
  return call.parsed;
}

/**
 * Chat Completions: POST `{url}/chat/completions` with the key as `Authorization: Bearer`. Only the
 * headers a Chat Completions server needs are sent: the client's Anthropic headers (`anthropic-*`,
 * `x-stainless-*`, session ids) mean nothing there and are not passed to a third party.
 */
export const openaiAdapter: ProtocolAdapter = {
  prepare(call, channel, key, sent) {
    const parsed = parsedBody(call);
    if ('error' in parsed) return { kind: 'refuse', message: parsed.error };
    if (call.endpoint === 'count_tokens') {
      const body = Buffer.from(JSON.stringify({ input_tokens: estimateInputTokens(parsed.value) }));
      return { kind: 'local', status: 200, body };
    }
    const chat = toChatCompletions(parsed.value, sent);
    if (!chat.ok) return { kind: 'refuse', message: chat.message };
    const body = Buffer.from(JSON.stringify(chat.body));
    const model = call.model;
    let stream: ChatStreamTranslator | undefined;
    const translate: ResponseTranslation = {
      sse: (chunk) => {
        stream ??= new ChatStreamTranslator(model);
        return stream.push(chunk);
      },
      sseEnd: () => stream?.end() ?? Buffer.alloc(0),
      json: (b) => {
        // A server that ignored `stream: true` and answered JSON: the client still gets a stream.
        const out = translateCompletion(b, model, chat.stream);
        return out && { body: out, sse: chat.stream };
      },
      error: (status, b) => translateError(status, b, key),
    };
    return {
      kind: 'upstream',
      path: `${channel.basePath}/chat/completions`,
      headers: [
        'content-type',
        'application/json',
        'accept',
        chat.stream ? 'text/event-stream' : 'application/json',
        'authorization',
        `Bearer ${key}`,
        'user-agent',
        'ccload',
        'accept-encoding',
        'identity',
        'content-length',
        String(body.length),
      ],
      body,
      translate,
    };
  },
};

/** The adapter of a channel's protocol. */
export function adapterFor(channel: Channel): ProtocolAdapter {
  return channel.protocol === 'openai' ? openaiAdapter : anthropicAdapter;
}
