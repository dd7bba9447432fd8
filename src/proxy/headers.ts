/**
 * Header rules of the proxy (docs/proxy.md#transparency): what goes upstream and what comes back.
 * Hop-by-hop headers (RFC 9110 §7.6.1: `connection` and the names it lists, `keep-alive`, `te`,
 * `trailer`, `transfer-encoding`, `upgrade`, `proxy-*`) are dropped both ways; undici also rejects
 * `expect` and would forward a client `host`, so those go too. Client credentials are replaced by
 * the channel key; timeout hints are honoured by ccload and not forwarded. The client's `cookie` is
 * never forwarded (the dashboard's session cookie lives on the same origin as the proxy), and the
 * client-address headers (`x-forwarded-*`, `forwarded`, `x-real-ip`, ...) only with
 * `server.forward_client_address`. Everything else passes unchanged, in order, with its original
 * spelling.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ChannelAuth } from '../config/schema.js';

/** Request headers never forwarded upstream (lower-case). */
const DROP_UPSTREAM = new Set([
  'host',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'content-length',
  'x-api-key',
  'authorization',
  'accept-encoding',
  'x-timeout-ms',
  'x-timeout-s',
  'http2-settings',
  // Same-origin cookies (the dashboard session among them) are not the upstream's business.
  'cookie',
]);

/**
 * Headers that name the client's address or the address it reached ccload at (RFC 7239 and the
 * de-facto `x-forwarded-*` family, plus the single-address headers CDNs and reverse proxies set).
 * Forwarded only with `server.forward_client_address: true` (lower-case).
 */
const CLIENT_ADDRESS_HEADERS: ReadonlySet<string> = new Set([
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'x-forwarded-port',
  'x-forwarded-server',
  'x-forwarded-prefix',
  'x-real-ip',
  'x-client-ip',
  'x-cluster-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'fastly-client-ip',
]);

/** DROP_UPSTREAM and the client-address headers: the default. */
const DROP_UPSTREAM_WITH_ADDRESS = new Set([...DROP_UPSTREAM, ...CLIENT_ADDRESS_HEADERS]);

/** Response headers never passed back to the client (lower-case). */
const DROP_DOWNSTREAM = new Set([
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/**
 * The upstream request headers as a flat `[name, value, ...]` list (undici's fastest form), from
 * the client's raw headers. `accept-encoding: identity` is sent so error bodies and SSE can be read
 * (Claude Code asks for gzip/br/zstd; an identity answer is always acceptable to it).
 * `forwardClientAddress` keeps the client-address headers (`server.forward_client_address`).
 */
export function upstreamHeaders(
  rawHeaders: readonly string[],
  key: string,
  style: ChannelAuth,
  length: number,
  forwardClientAddress = false,
): string[] {
  const drop = forwardClientAddress ? DROP_UPSTREAM : DROP_UPSTREAM_WITH_ADDRESS;
  let listed: Set<string> | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length === 10 && rawHeaders[i]!.toLowerCase() === 'connection') {
      listed ??= new Set();
      for (const token of rawHeaders[i + 1]!.split(',')) listed.add(token.trim().toLowerCase());
    }
  }
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const lower = name.toLowerCase();
    if (drop.has(lower) || lower.startsWith('proxy-') || listed?.has(lower)) continue;
    out.push(name, rawHeaders[i + 1]!);
  }
  if (style !== 'bearer') out.push('x-api-key', key);
  if (style !== 'x-api-key') out.push('authorization', `Bearer ${key}`);
  out.push('accept-encoding', 'identity', 'content-length', String(length));
  return out;
}

/**
 * The upstream response headers to send to the client, as a flat list for `writeHead`.
 * `keepLength: false` drops `content-length` (a stream re-chunked by Node).
 */
export function downstreamHeaders(headers: IncomingHttpHeaders, keepLength: boolean): string[] {
  const listed = headers.connection
    ? new Set(
        String(headers.connection)
          .split(',')
          .map((s) => s.trim().toLowerCase()),
      )
    : undefined;
  const out: string[] = [];
  for (const name in headers) {
    if (DROP_DOWNSTREAM.has(name) || name.startsWith('proxy-') || listed?.has(name)) continue;
    if (!keepLength && name === 'content-length') continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else out.push(name, value);
  }
  return out;
}

/** Lower-case single-valued view of response headers, for outcome classification. */
export function flatHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined) out[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/**
 * The request's timeout hint in ms (`x-timeout-ms` / `x-timeout-s` headers, `timeout_ms` /
 * `timeout_s` query), or undefined. Invalid or non-positive values are ignored.
 */
export function timeoutHint(
  headers: IncomingHttpHeaders,
  query: URLSearchParams | undefined,
): number | undefined {
  const pick = (ms: unknown, s: unknown): number | undefined => {
    const a = Number(ms);
    if (ms !== undefined && ms !== null && Number.isFinite(a) && a > 0) return a;
    const b = Number(s);
    if (s !== undefined && s !== null && Number.isFinite(b) && b > 0) return b * 1000;
    return undefined;
  };
  return (
    pick(headers['x-timeout-ms'], headers['x-timeout-s']) ??
    pick(query?.get('timeout_ms') ?? undefined, query?.get('timeout_s') ?? undefined)
  );
}

/**
 * The client's path+query without the timeout-hint parameters (they are ccload's, not the
 * upstream's), and those hints for `timeoutHint`. The channel's base path is prepended per attempt.
 */
export function stripHintQuery(clientUrl: string): { target: string; hints: URLSearchParams | undefined } {
  const q = clientUrl.indexOf('?');
  if (q < 0 || !clientUrl.includes('timeout_', q)) return { target: clientUrl, hints: undefined };
  const query = new URLSearchParams(clientUrl.slice(q + 1));
  const hints = new URLSearchParams();
  for (const k of ['timeout_ms', 'timeout_s']) {
    const v = query.get(k);
    if (v !== null) hints.set(k, v);
    query.delete(k);
  }
  const rest = query.toString();
  return { target: clientUrl.slice(0, q) + (rest ? `?${rest}` : ''), hints };
}
