/**
 * Scrubbing secrets out of text an upstream wrote. A relay that answers `invalid x-api-key: sk-…`
 * echoes the channel key, and ccload passes upstream error bodies, error events and their messages
 * on to the client, the log, the cooldown table and the dashboard (issue 10). Every such text goes
 * through the snapshot's Scrubber first, which replaces each secret the snapshot holds — every
 * channel key (of every channel: a relay shared by two channels has seen both), client token, the
 * admin password and the database token — with its fingerprint (`…abcd`). What a channel's shown
 * URL hides is scrubbed too, replaced by what the URL shows in its place (`${RELAY_HOST}`, `…`):
 * the expanded values of its references and its userinfo and query values (url-mask.ts).
 *
 * Only error texts are scrubbed (bounded, and rare): the success path never pays for it. A secret
 * is also found in the forms an error text may quote it in: JSON-escaped (with `\/` too) and
 * percent-encoded. Secrets shorter than 8 characters are not searched for: they would match
 * ordinary words, and no real key is that short.
 *
 * One regular expression of literal alternatives (for strings, and for bytes read as latin1 so that
 * a Buffer round-trips unchanged): V8 scans it far faster than one search per secret. Measured on
 * a 2-core machine, 1000 keys: an ordinary 1 MiB body about 5 ms, a small error body 14 µs (3 keys:
 * 1 µs); a 1 MiB body made of near-misses (the keys' common prefix repeated) 35–70 ms — the bound
 * a hostile upstream can impose, once per attempt.
 */
import { fingerprint } from '../config/secrets.js';
import type { Snapshot } from '../config/snapshot.js';
import type { HiddenUrlPart } from '../config/url-mask.js';

/** A secret (shown as its fingerprint) or a hidden part of a URL (shown as given). */
export type Scrubbed = string | HiddenUrlPart;

/** Shorter secrets are not scrubbed (see the module comment). */
export const MIN_SCRUBBED_LENGTH = 8;
/** The shortest start of a secret removed from the end of a truncated text. */
const PARTIAL_MIN = 4;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The forms an error text may quote a secret in. */
function forms(secret: string): string[] {
  const json = JSON.stringify(secret).slice(1, -1);
  return [secret, json, json.replaceAll('/', '\\/'), encodeURIComponent(secret)];
}

/** One search: the alternatives (longest first, so a secret that extends another wins) and their replacements. */
function compile<R>(pairs: Map<string, R>): { re: RegExp; replacement: Map<string, R> } | undefined {
  if (pairs.size === 0) return undefined;
  const alternatives = [...pairs.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
  return { re: new RegExp(alternatives.join('|'), 'g'), replacement: pairs };
}

/** Replaces secret values in upstream-supplied text with their fingerprints. */
export class Scrubber {
  /** True when there is nothing to scrub (no secret of scrubbable length). */
  readonly empty: boolean;
  readonly #text: { re: RegExp; replacement: Map<string, { text: string; ascii: string }> } | undefined;
  readonly #bytes: { re: RegExp; replacement: Map<string, string> } | undefined;

  constructor(secrets: Iterable<Scrubbed>) {
    const text = new Map<string, { text: string; ascii: string }>();
    const bytes = new Map<string, string>();
    // Hidden URL parts first, so a secret that is also one (a key in a URL) shows as a secret.
    const ordered = [...secrets].sort(
      (a, b) => Number(typeof a === 'string') - Number(typeof b === 'string'),
    );
    for (const item of ordered) {
      const secret = typeof item === 'string' ? item : item.value;
      if (secret.length < MIN_SCRUBBED_LENGTH) continue;
      const shown = typeof item === 'string' ? fingerprint(secret) : item.shown;
      const shownBytes = Buffer.from(shown, 'utf8').toString('latin1');
      const ascii = shown.replaceAll('…', '...');
      for (const form of forms(secret)) {
        text.set(form, { text: shown, ascii });
        bytes.set(Buffer.from(form, 'utf8').toString('latin1'), shownBytes);
      }
    }
    this.#text = compile(text);
    this.#bytes = compile(bytes);
    this.empty = text.size === 0;
  }

  /** The text with every secret replaced by its fingerprint. */
  text(s: string): string {
    const t = this.#text;
    if (t === undefined || s.length < MIN_SCRUBBED_LENGTH) return s;
    return s.replace(t.re, (m) => t.replacement.get(m)!.text);
  }

  /** A header value with every secret replaced by its fingerprint spelled in ASCII (`...abcd`). */
  header(s: string): string {
    const t = this.#text;
    if (t === undefined || s.length < MIN_SCRUBBED_LENGTH) return s;
    return s.replace(t.re, (m) => t.replacement.get(m)!.ascii);
  }

  /** The bytes with every secret replaced by its fingerprint; the same Buffer when none occurs. */
  bytes(b: Buffer): Buffer {
    const t = this.#bytes;
    if (t === undefined || b.length < MIN_SCRUBBED_LENGTH) return b;
    // latin1 maps each byte to one code unit and back, so bytes that are not UTF-8 survive.
    let found = false;
    const out = b.toString('latin1').replace(t.re, (m) => {
      found = true;
      return t.replacement.get(m)!;
    });
    return found ? Buffer.from(out, 'latin1') : b;
  }

  /**
   * Like `bytes`, for text that was cut off after `b` (a body truncated at its bound): also drops a
   * tail that is the start of a secret, which the cut would otherwise leave half shown.
   */
  truncatedBytes(b: Buffer): Buffer {
    const t = this.#bytes;
    const out = this.bytes(b);
    if (t === undefined) return out;
    const forms = [...t.replacement.keys()];
    const longest = Math.max(...forms.map((f) => f.length));
    const tail = out.toString('latin1', Math.max(0, out.length - longest));
    let cut = 0;
    for (const form of forms) {
      for (let k = Math.min(form.length - 1, tail.length); k > cut && k >= PARTIAL_MIN; k--) {
        if (tail.endsWith(form.slice(0, k))) {
          cut = k;
          break;
        }
      }
    }
    return cut === 0 ? out : out.subarray(0, out.length - cut);
  }
}

const bySnapshot = new WeakMap<Snapshot, Scrubber>();

/**
 * Every secret value a snapshot holds — channel keys, client tokens, admin password, database
 * token — and what the channels' shown URLs hide.
 */
export function snapshotSecrets(snapshot: Snapshot): Scrubbed[] {
  const out: Scrubbed[] = [];
  for (const c of snapshot.channels) for (const k of c.keys) out.push(k.value);
  for (const c of snapshot.channels) out.push(...c.hiddenUrlParts);
  for (const t of snapshot.tokens) out.push(t.value);
  // An outbound proxy's password (from a reference, in a URL), as written and percent-decoded.
  for (const c of snapshot.channels) {
    const password = c.proxy ? new URL(c.proxy.url).password : '';
    if (password) out.push(password, decodeURIComponent(password));
  }
  if (snapshot.adminPassword) out.push(snapshot.adminPassword);
  const dbToken = snapshot.config.server.database_token;
  if (dbToken) out.push(dbToken);
  return out;
}

/** The Scrubber of a snapshot (built once per snapshot). */
export function scrubberFor(snapshot: Snapshot): Scrubber {
  let s = bySnapshot.get(snapshot);
  if (!s) {
    s = new Scrubber(snapshotSecrets(snapshot));
    bySnapshot.set(snapshot, s);
  }
  return s;
}
