/**
 * Per-channel request header rules (`channels[].headers` in ccload.yaml): filter the
 * `anthropic-beta` tokens (drop some, or allow only some — relays and cloud gateways reject betas
 * they do not know), set headers, remove headers. Compiled once per snapshot by the Runtime and
 * applied to the flat header list `upstreamHeaders` built, so a channel without rules costs a map
 * lookup and the body is never touched. The credential and framing headers are refused by the
 * schema (`RESERVED_HEADERS`) and skipped here as well, so they stay ccload's whatever the rules say.
 */
import { compileGlob } from '../config/glob.js';
import { type ChannelHeaders, reservedHeader } from '../config/schema.js';

/** The compiled rules of one channel. */
export interface HeaderRules {
  /** Keep an anthropic-beta token? Undefined when the channel has no beta rule. */
  readonly keepBeta: ((token: string) => boolean) | undefined;
  /** Lower-case names whose client values are not forwarded (removed, or replaced by `set`). */
  readonly drop: ReadonlySet<string>;
  /** Headers to add, as a flat `[name, value, ...]` list. */
  readonly set: readonly string[];
}

/** Compiles a channel's `headers` section; undefined when it has no rule at all. */
export function compileHeaderRules(h: ChannelHeaders | undefined): HeaderRules | undefined {
  if (!h || (!h.beta && !h.set && !h.remove)) return undefined;
  let keepBeta: HeaderRules['keepBeta'];
  if (h.beta) {
    const listed = ('drop' in h.beta ? h.beta.drop : h.beta.allow).map(compileGlob);
    const matches = (token: string) => listed.some((m) => m(token));
    keepBeta = 'drop' in h.beta ? (token) => !matches(token) : matches;
  }
  const drop = new Set<string>();
  const set: string[] = [];
  for (const name of h.remove ?? []) if (!reservedHeader(name)) drop.add(name.toLowerCase());
  for (const [name, value] of Object.entries(h.set ?? {})) {
    if (reservedHeader(name)) continue;
    drop.add(name.toLowerCase());
    set.push(name, value);
  }
  return { keepBeta, drop, set };
}

/**
 * The anthropic-beta value with the tokens the rule refuses left out, or undefined when none is
 * left. A value the rule keeps whole is returned unchanged (byte for byte).
 */
export function filterBeta(value: string, keep: (token: string) => boolean): string | undefined {
  const tokens = value.split(',');
  let kept = 0;
  for (const t of tokens) if (keep(t.trim())) kept++;
  if (kept === tokens.length) return value;
  if (kept === 0) return undefined;
  return tokens
    .filter((t) => keep(t.trim()))
    .map((t) => t.trim())
    .join(',');
}

/**
 * Applies `rules` to the flat upstream header list (`[name, value, ...]`, as `upstreamHeaders`
 * returns it). Returns a new list; ccload's own headers (the key, content-length, ...) pass as
 * they are because no rule can name them.
 */
export function applyHeaderRules(headers: readonly string[], rules: HeaderRules): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    let value = headers[i + 1]!;
    const lower = name.toLowerCase();
    if (rules.drop.has(lower)) continue;
    if (rules.keepBeta && lower === 'anthropic-beta') {
      const kept = filterBeta(value, rules.keepBeta);
      if (kept === undefined) continue;
      value = kept;
    }
    out.push(name, value);
  }
  for (const h of rules.set) out.push(h);
  return out;
}
