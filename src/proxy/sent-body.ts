/**
 * Whether undici has handed a request body completely to the kernel, so its pooled buffer
 * (body-reader.ts) can go back to the pool while the answer is still streaming.
 *
 * Why: an open stream would otherwise keep its request body — 40 KB to several MB for Claude Code
 * — until the stream ends, and at 1000 open streams those buffers were most of ccload's memory
 * (about 50 of 65 KiB per stream, `node dist/bench/stream-memory.js`). undici keeps a reference
 * to the body until the request completes and writes a Buffer body without copying it: while a
 * write is pending in the socket, the memory must not be reused, or another request's bytes would
 * go upstream. The `undici:client:sendHeaders` diagnostics channel names the socket a request is
 * written to; when that socket has nothing queued (`writableLength === 0`: Node counts a write
 * until libuv has completed it), every byte of the body has been written.
 */
import { subscribe } from 'node:diagnostics_channel';

interface WrittenTo {
  readonly writableLength: number;
  readonly destroyed: boolean;
}

/** The socket each body was last written to, by the body object undici was given. */
const sockets = new WeakMap<object, WrittenTo>();
let watching = false;

/** Starts recording the sockets request bodies are written to (idempotent). */
export function watchSentBodies(): void {
  if (watching) return;
  watching = true;
  subscribe('undici:client:sendHeaders', (message) => {
    const { request, socket } = message as { request?: { body?: unknown }; socket?: WrittenTo };
    const body = request?.body;
    if (body !== null && typeof body === 'object' && socket) sockets.set(body, socket);
  });
}

/**
 * True when `body` was written to a socket (by undici, since `watchSentBodies`) and that socket
 * has no write pending; false when unknown. Called after the upstream answered, when the socket
 * carries nothing but this request.
 */
export function bodyWritten(body: Buffer): boolean {
  const s = sockets.get(body);
  return s !== undefined && !s.destroyed && s.writableLength === 0;
}
