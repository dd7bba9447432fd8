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
