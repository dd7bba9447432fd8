/** Messages API request bodies for tests that send through ccload. */

/** The model most tests request. */
export const MODEL = 'claude-sonnet-5-5';

/** Options of `messagesBody`. */
export interface MessagesBodyOptions {
  /** Default `MODEL`. */
  model?: string;
  /** Default false. */
  stream?: boolean;
  /** Pad the user message so the body is about this many bytes; default a bare "hi". */
  bytes?: number;
}

/** A small Messages API body: one user message, `max_tokens` 64. */
export function messagesBody(o: MessagesBodyOptions = {}): Buffer {
  const content = o.bytes === undefined ? 'hi' : `hi ${'x'.repeat(Math.max(0, o.bytes - 120))}`;
  return Buffer.from(
    JSON.stringify({
      model: o.model ?? MODEL,
      max_tokens: 64,
      stream: o.stream ?? false,
      messages: [{ role: 'user', content }],
    }),
  );
}
