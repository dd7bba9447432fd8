/**
 * OpenAI-shaped errors → Anthropic-shaped errors (docs/openai.md#errors). The status decides the
 * Anthropic error type, as the Messages API itself does, so the outcome table treats both protocols
 * alike. Two OpenAI errors change status on the way: a context-length error (any status) becomes 400
 * `invalid_request_error` "prompt is too long: …" — the request's fault, never failed over, and the
 * wording Claude Code recognises — and a 429 `insufficient_quota` becomes 402 `billing_error`, a key
 * whose balance is spent (cooled long, like a relay's 402).
 */
import { type AnthropicErrorType, anthropicError, errorTypeForStatus } from '../../errors.js';
import { isRecord } from './json.js';

/** The Anthropic error type for an HTTP status, or (status 0: a mid-stream error) from the OpenAI error's type/code. */
export function anthropicErrorType(status: number, err?: Record<string, unknown>): AnthropicErrorType {
  if (status === 0) {
    const what = `${String(err?.['type'] ?? '')} ${String(err?.['code'] ?? '')}`.toLowerCase();
    if (what.includes('rate_limit')) return 'rate_limit_error';
    if (what.includes('overload')) return 'overloaded_error';
    if (what.includes('invalid_request')) return 'invalid_request_error';
    return 'api_error';
  }
  // OpenAI-compatible servers also answer 422 (a request they cannot process) and 503 (overloaded).
  if (status === 422) return 'invalid_request_error';
  if (status === 503) return 'overloaded_error';
  return errorTypeForStatus(status);
}

const CONTEXT_LENGTH =
  /context[_ ]length|context window|maximum context|prompt is too long|too many tokens|exceeds? the (model'?s )?(maximum|max)/i;

/** Longest upstream message passed on to the client. */
const MAX_MESSAGE = 2000;

/**
 * An OpenAI-compatible failure answer → the status and Anthropic error body the client gets.
 * Bodies in other shapes (`{"message"}`, `{"detail"}`, `{"error":"text"}`, plain text or HTML from
 * a gateway) keep their text as the message. The channel key, should a server echo it, is replaced
 * by its last four characters: the message is rebuilt here anyway, so scrubbing it costs nothing.
 */
export function translateError(status: number, body: Buffer, key?: string): { status: number; body: Buffer } {
  const raw = body.toString('utf8');
  let message = '';
  let code = '';
  let type = '';
  try {
    const j: unknown = JSON.parse(raw);
    if (isRecord(j)) {
      const e = j['error'];
      if (isRecord(e)) {
        message = typeof e['message'] === 'string' ? e['message'] : '';
        code = typeof e['code'] === 'string' ? e['code'] : '';
        type = typeof e['type'] === 'string' ? e['type'] : '';
      } else if (typeof e === 'string') message = e;
      if (!message && typeof j['message'] === 'string') message = j['message'];
      if (!message && typeof j['detail'] === 'string') message = j['detail'];
    }
  } catch {
    message = raw
      .replace(/<[^>]*>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
  }
  if (key && key.length >= 8 && message.includes(key)) message = message.split(key).join(`…${key.slice(-4)}`);
  if (message.length > MAX_MESSAGE) message = `${message.slice(0, MAX_MESSAGE)}…`;
  if (!message) message = `the OpenAI-compatible upstream answered ${status}`;

  let out = status;
  let anthropicType: AnthropicErrorType;
  if (code === 'context_length_exceeded' || (status !== 429 && CONTEXT_LENGTH.test(message))) {
    out = 400;
    anthropicType = 'invalid_request_error';
    if (!/prompt is too long/i.test(message)) message = `prompt is too long: ${message}`;
  } else if (status === 429 && (code === 'insufficient_quota' || type === 'insufficient_quota')) {
    out = 402;
    anthropicType = 'billing_error';
  } else anthropicType = anthropicErrorType(status);
  return { status: out, body: Buffer.from(anthropicError(anthropicType, message)) };
}
