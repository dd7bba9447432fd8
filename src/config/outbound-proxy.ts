/**
 * Which outbound proxy a channel's connections go through (docs/proxy.md#outbound-proxies): its own
 * `proxy:` URL, else the standard environment variables — `HTTPS_PROXY` for an https upstream,
 * `HTTP_PROXY` for an http one (lower-case names too, upper case first) — unless `NO_PROXY` names
 * the upstream's host. The `NO_PROXY` rules are undici's `EnvHttpProxyAgent`'s, so ccload and
 * Node's own tooling agree: entries separated by commas or spaces; `*` alone bypasses every host;
 * `host` matches that host exactly, `.host` or `*.host` any host ending in it; `host:port` only
 * that port. Pure: the environment is a parameter.
 */

import { maskUrl } from './url-mask.js';

/** Where a channel's proxy came from. */
export type ProxySource = 'channel' | 'HTTPS_PROXY' | 'HTTP_PROXY';

/** A channel's effective outbound proxy. */
export interface OutboundProxy {
  /** The proxy URL as used, credentials included: never shown, never logged. */
  readonly url: string;
  /**
   * What pages and the API show: the URL as written in the file (a reference names its variable,
   * never its value) or the environment's, userinfo and query masked (`http://…:…@proxy:3128`).
   */
  readonly shown: string;
  readonly source: ProxySource;
}

type Env = Readonly<Record<string, string | undefined>>;

function envValue(env: Env, name: string): string | undefined {
  const v = env[name] ?? env[name.toLowerCase()];
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

/** Does `NO_PROXY` exempt this host and port? */
export function bypassesProxy(noProxy: string | undefined, hostname: string, port: string): boolean {
  if (!noProxy) return false;
  const entries = noProxy
    .split(/[,\s]+/)
    .map((e) => e.trim().toLowerCase())
    .filter(Boolean);
  if (entries.includes('*')) return true;
  const host = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  for (const entry of entries) {
    const m = /^(.*?)(?::(\d+))?$/.exec(entry)!;
    const name = m[1]!.replace(/^\[(.*)\]$/, '$1');
    if (m[2] !== undefined && m[2] !== port) continue;
    if (/^[.*]/.test(name)) {
      if (host.endsWith(name.replace(/^\*/, ''))) return true;
    } else if (host === name) return true;
  }
  return false;
}

/**
 * The proxy for a channel whose base URL is `upstream`: its own `proxy` (given: always used), else
 * the environment's, else none (direct).
 */
export function resolveOutboundProxy(
  upstream: string,
  own: string | undefined,
  ownWritten: string | undefined,
  env: Env,
): OutboundProxy | undefined {
  if (own) return { url: own, shown: maskUrl(ownWritten ?? own), source: 'channel' };
  const u = new URL(upstream);
  const name = u.protocol === 'https:' ? 'HTTPS_PROXY' : 'HTTP_PROXY';
  const url = envValue(env, name);
  if (!url) return undefined;
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  if (bypassesProxy(envValue(env, 'NO_PROXY'), u.hostname, port)) return undefined;
  return { url, shown: maskUrl(url), source: name };
}
