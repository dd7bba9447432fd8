/**
 * The admin side's response and request helpers: JSON and text answers, the one admin error
 * renderer, bounded body reading and small form/JSON bodies. (The proxy writes its own answers on
 * the hot path; see proxy/send-error.ts.)
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ADMIN_ERRORS, type AdminErrorCode, adminErrorBody } from '../errors.js';

/** Writes a JSON response. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string | number | string[]> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/**
 * Answers an admin error — the one way the admin side does: the catalogue's status for `code`
 * (src/errors.ts) and the one body shape `{error, code, message, …extra}`.
 */
export function sendAdminError(
  res: ServerResponse,
  code: AdminErrorCode,
  message: string,
  extra: Readonly<Record<string, unknown>> = {},
): void {
  sendJson(res, ADMIN_ERRORS[code].status, adminErrorBody(code, message, extra));
}

/** Writes a text or HTML response. */
export function sendText(
  res: ServerResponse,
  status: number,
  body: string,
  type = 'text/plain; charset=utf-8',
  headers: Record<string, string | number | string[]> = {},
): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

/** Thrown by `readBody` when the body exceeds the limit. */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`request body is larger than ${limit} bytes`);
  }
}

/**
 * Reads a whole request body up to `limit` bytes. A declared `content-length` above the limit is
 * refused before reading; an undeclared one is counted as it arrives.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.reject(new BodyTooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.resume();
        reject(new BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.on('error', reject);
  });
}

/** Parses a small JSON or form-encoded body into a string map (login, admin forms). */
export function parseFormOrJson(
  body: Buffer,
  contentType: string | undefined,
): Record<string, unknown> | undefined {
  const text = body.toString('utf8');
  if (contentType?.includes('application/x-www-form-urlencoded')) {
    return Object.fromEntries(new URLSearchParams(text));
  }
  try {
    const v = JSON.parse(text) as unknown;
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
