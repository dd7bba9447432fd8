/**
 * HTTP calls to a test daemon's admin side: one request with the body read whole and parsed as
 * JSON when it is JSON, and logging in for a session cookie.
 */
import { request } from 'undici';
import { testEnv } from './config.js';

/** What a call got back. */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are inspected field by field
  json: any;
}

/** One HTTP request to the daemon; an object body is sent as JSON. */
export async function call(
  base: string,
  method: 'GET' | 'POST' | 'PUT' | 'DELETE',
  path: string,
  opts: { headers?: Record<string, string>; body?: unknown; cookie?: string } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  let body: string | undefined;
  if (typeof opts.body === 'string') body = opts.body;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  if (opts.cookie) headers['cookie'] = opts.cookie;
  const res = await request(`${base}${path}`, { method, headers, body });
  const text = await res.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: res.headers, text, json };
}

/** The single Set-Cookie header of an answer ('' when there is none). */
export function setCookie(a: Answer): string {
  const h = a.headers['set-cookie'];
  return Array.isArray(h) ? (h[0] ?? '') : (h ?? '');
}

/** `name=value` of a Set-Cookie header, ready to send back as `Cookie`. */
export function cookiePair(setCookieHeader: string): string {
  return setCookieHeader.split(';')[0] ?? '';
}

/** Logs in to the daemon at `base` with JSON and returns the `Cookie` value to send back. */
export async function login(base: string, password = testEnv.TEST_PASS): Promise<string> {
  const a = await call(base, 'POST', '/login', { body: { password } });
  if (a.status !== 200) throw new Error(`login failed: ${a.status} ${a.text}`);
  return cookiePair(setCookie(a));
}
