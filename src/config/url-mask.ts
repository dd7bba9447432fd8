/**
 * How a secret and a URL may be shown: a fingerprint, and a URL with its userinfo and query values
 * masked. Apart from secrets.ts (which knows the schema) so the store and its worker thread can use
 * it without loading the schema.
 */
import { formatReference, formatText, parseReferences } from './references.js';

/** How a secret may be shown: `…` and its last 4 characters (nothing of a short one). */
export function fingerprint(secret: string): string {
  return secret.length >= 8 ? `…${secret.slice(-4)}` : '…';
}

/** What replaces a masked part of a URL. A URL holding it is a masked copy and is not written back. */
export const URL_MASK = '…';

/** A marker for a reference inside a URL while its structure is read (references may hold `/?#@`). */
const HOLE = /^\uE000\d+\uE001$/;

/**
 * A URL as it may be shown: its userinfo (`user:password@`) and every query value (`?key=…`) and
 * fragment replaced by `…`, unless that part is exactly a `${…}` reference (shown as written,
 * defaults fingerprinted). Scheme, host, port and path stay. Works on the text as written in the
 * file and on an expanded URL alike; anything that does not look like a URL is returned as is.
 */
export function maskUrl(url: string): string {
  const refs: string[] = [];
  const text = parseReferences(url)
    .map((s) =>
      s.kind === 'text'
        ? formatText(s.text)
        : `\uE000${refs.push(formatReference(s, fingerprint)) - 1}\uE001`,
    )
    .join('');
  const part = (s: string) => (s === '' || HOLE.test(s) ? s : URL_MASK);
  let head = '';
  let rest = text;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:(\/\/)?/.exec(text);
  if (scheme) {
    head = scheme[0];
    rest = text.slice(head.length);
    if (scheme[1]) {
      const end = rest.search(/[/?#]/);
      const authority = end < 0 ? rest : rest.slice(0, end);
      const at = authority.lastIndexOf('@');
      if (at >= 0) {
        const info = authority.slice(0, at);
        const colon = info.indexOf(':');
        const user = colon < 0 ? info : info.slice(0, colon);
        head += `${part(user)}${colon < 0 ? '' : `:${part(info.slice(colon + 1))}`}@`;
        head += authority.slice(at + 1);
        rest = rest.slice(authority.length);
      }
    }
  }
  let fragment = '';
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    fragment = `#${part(rest.slice(hash + 1))}`;
    rest = rest.slice(0, hash);
  }
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = `?${rest
      .slice(q + 1)
      .split('&')
      .map((p) => {
        const eq = p.indexOf('=');
        return eq < 0 ? part(p) : `${p.slice(0, eq)}=${part(p.slice(eq + 1))}`;
      })
      .join('&')}`;
    rest = rest.slice(0, q);
  }
  return `${head}${rest}${query}${fragment}`.replace(
    /\uE000(\d+)\uE001/g,
    (_m, i: string) => refs[Number(i)]!,
  );
}

/** A part of an expanded URL that its shown form hides, and what stands for it in text. */
export interface HiddenUrlPart {
  readonly value: string;
  readonly shown: string;
}

/** A text as it may be shown: literal parts as they are, references as written (defaults fingerprinted). */
function shownText(text: string): string {
  return parseReferences(text)
    .map((s) => (s.kind === 'text' ? s.text : formatReference(s, fingerprint)))
    .join('');
}

/**
 * What of a channel's expanded URL `maskUrl` hides, so error texts can hide it too (the proxy's
 * scrubber, proxy/scrub.ts): the value of every `${…}` reference of the URL as written (shown as
 * the reference), its userinfo, query values and fragment (shown as `…`), and — when the URL holds
 * a reference — the expanded URL, origin and host wherever they are not literal text of the file
 * (shown as written: `https://${RELAY_HOST}`). So `getaddrinfo ENOTFOUND <host>` from a failed
 * connection reads `ENOTFOUND ${RELAY_HOST}`, as the channels page shows the URL.
 * `expandReference` expands one reference as the loader does.
 */
export function hiddenUrlParts(
  written: string,
  expanded: string,
  expandReference: (reference: string) => string,
): HiddenUrlPart[] {
  const out: HiddenUrlPart[] = [];
  // The first way a value is shown wins: a reference's name over `…`, over a whole-host form.
  // What is shown lands inside JSON strings and header values: printable ASCII (and `…`) only.
  const add = (value: string, written: string) => {
    const shown = written.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e…]/g, '_');
    if (value !== '' && value !== shown && !out.some((p) => p.value === value)) out.push({ value, shown });
  };
  const refs = parseReferences(written).filter((s) => s.kind === 'env' || s.kind === 'file');
  for (const s of refs) add(expandReference(formatReference(s)), formatReference(s, fingerprint));
  let url: URL;
  try {
    url = new URL(expanded);
  } catch {
    return out;
  }
  const decoded = (s: string) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  const masked = [url.username, url.password, url.hash.slice(1)];
  for (const pair of url.search.slice(1).split('&')) {
    const eq = pair.indexOf('=');
    if (eq >= 0) masked.push(pair.slice(eq + 1));
  }
  for (const m of masked) {
    add(m, URL_MASK);
    add(decoded(m), URL_MASK);
    add(decoded(m.replaceAll('+', ' ')), URL_MASK);
  }
  if (refs.length > 0) {
    const authority = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)/.exec(written);
    const shownUrl = maskUrl(written.replace(/\/+$/, ''));
    const host = authority ? shownText(authority[2]!.slice(authority[2]!.lastIndexOf('@') + 1)) : shownUrl;
    const origin = authority ? `${authority[1]}${host}` : shownUrl;
    const whole = expanded.replace(/\/+$/, '');
    const parts: [string, string][] = [
      [whole, shownUrl],
      [`${whole}/`, `${shownUrl}/`],
      [url.origin, origin],
      [url.host, host],
      [url.hostname, url.port === '' ? host : host.replace(/:\d+$/, '')],
    ];
    for (const [value, shown] of parts) if (!written.includes(value)) add(value, shown);
  }
  return out;
}
