/**
 * HTTP calls to a test daemon's admin side: one request with the body read whole and parsed as
 * JSON when it is JSON.
 */
import { request } from 'undici';

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
