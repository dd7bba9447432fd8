/** The one writer of a client-facing error answer on the data path. */
import type { ServerResponse } from 'node:http';
import { anthropicError, type ErrorCode, PROXY_ERRORS } from '../errors.js';

/**
 * Sends the client-facing error for a proxy code — the one way the proxy answers an error: the
 * catalogue's status and Anthropic type (src/errors.ts), `message` or the catalogue's text. After
 * the headers went out there is nothing to say: the connection is destroyed.
 */
export function sendError(
  res: ServerResponse,
  code: ErrorCode,
  message: string = PROXY_ERRORS[code].message,
  headers: string[] = [],
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const e = PROXY_ERRORS[code];
  const body = anthropicError(e.type, message);
  res.writeHead(e.status, [
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
    ...headers,
  ]);
  res.end(body);
}
