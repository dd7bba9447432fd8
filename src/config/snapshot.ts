/**
 * The frozen snapshot: everything the daemon needs from one validated ccload.yaml, with secrets
 * resolved, matchers compiled and identities computed. Built only by `load.ts`; never mutated.
 */
import type { OutboundProxy } from './outbound-proxy.js';
import type { ChannelAuth, ChannelProtocol, Config } from './schema.js';
import type { HiddenUrlPart } from './url-mask.js';

/** What made the reloader run. */
export type ReloadSource = 'startup' | 'file' | 'signal' | 'api' | 'write-back';

/** A config finding with its place in the file. `severity: 'warning'` findings do not block a load. */
export interface ConfigIssue {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** Dotted path with indices, e.g. `channels[1].url`; empty for the document itself. */
  readonly path: string;
  readonly message: string;
  readonly severity: 'error' | 'warning';
}

/** One key of a channel. `fingerprint` (`…abcd`) is the only form of it that may be shown. */
export interface ChannelKey {
  /** Position in the channel's key list; keys are identified by channel name + index + fingerprint. */
  readonly index: number;
  readonly value: string;
  readonly fingerprint: string;
}

/** A channel ready for routing. */
export interface Channel {
  readonly name: string;
  /** Position in the file's `channels` list. */
  readonly index: number;
  /** The base URL as configured (interpolated), without a trailing slash. Never shown: see `shownUrl`. */
  readonly url: string;
  /**
   * The base URL as pages, the API and logs show it: as written in the file (references, not their
   * values), userinfo and query values masked.
   */
  readonly shownUrl: string;
  /**
   * What `shownUrl` hides of `url` (reference values, userinfo, query values; url-mask.ts), with
   * what stands for each: error texts are scrubbed of them (proxy/scrub.ts).
   */
  readonly hiddenUrlParts: readonly HiddenUrlPart[];
  /** `scheme://host:port` — the undici Pool key. */
  readonly origin: string;
  /** Path prefix of the base URL (`''` or e.g. `/relay`), prepended to the client's path. */
  readonly basePath: string;
  /** Usable keys (empty strings removed). A channel without keys is skipped and reported. */
  readonly keys: readonly ChannelKey[];
  readonly auth: ChannelAuth;
  /** `anthropic`: the Messages API, forwarded as is; `openai`: Chat Completions, translated (docs/openai.md). */
  readonly protocol: ChannelProtocol;
  readonly priority: number;
  /** Patterns as configured; undefined = every model. */
  readonly models: readonly string[] | undefined;
  readonly modelMap: Readonly<Record<string, string>>;
  readonly enabled: boolean;
  /** Attempts in flight at once on this instance (`max_concurrency`); undefined = no cap. */
  readonly maxConcurrency: number | undefined;
  /** Attempts started per rolling minute on this instance (`rpm`); undefined = no cap. */
  readonly rpm: number | undefined;
  /** The outbound proxy (own `proxy:` or the environment's); undefined = direct. */
  readonly proxy: OutboundProxy | undefined;
  /** Hash of url + key values (+ proxy): runtime state (cooldowns) is dropped when it changes across reloads. */
  readonly identity: string;
  /** Why this channel cannot serve even when enabled (e.g. no key); empty when usable. */
  readonly problems: readonly string[];
  /** Does this channel serve the (requested) model? */
  serves(model: string): boolean;
  /** The model name to send upstream for a requested model (model_map applied). */
  mapModel(model: string): string;
}

/** A client token allowed to use the proxy. */
export interface ClientToken {
  readonly name: string;
  readonly value: string;
  /** Where it came from: the file or the CCLOAD_AUTH variable. */
  readonly source: 'file' | 'env';
  /** Its limits (`auth.tokens[]`); a CCLOAD_AUTH token has none. */
  readonly policy: TokenPolicy;
}

/** What one client token may do (docs/proxy.md#client-token-policy). */
export interface TokenPolicy {
  /** Model patterns as configured; undefined = every model. */
  readonly models: readonly string[] | undefined;
  /** Channel names or globs as configured; undefined = every channel. */
  readonly channels: readonly string[] | undefined;
  readonly maxConcurrency: number | undefined;
  /** USD per day / per month; undefined = no budget for that window. */
  readonly daily: number | undefined;
  readonly monthly: number | undefined;
  allowsModel(model: string): boolean;
  allowsChannel(name: string): boolean;
}

/** One validated, applied configuration. */
export interface Snapshot {
  readonly generation: number;
  /** `sha256:<hex>` of the file's bytes. */
  readonly hash: string;
  readonly loadedAt: number;
  readonly source: ReloadSource;
  /** The config path as the user gave it (used in messages) and resolved. */
  readonly file: string;
  readonly path: string;
  /** The parsed config, defaults applied, env overrides (PORT, SQLITE_PATH, CCLOAD_PASS) applied. */
  readonly config: Config;
  readonly channels: readonly Channel[];
  readonly tokens: readonly ClientToken[];
  /** The admin password (file or CCLOAD_PASS); undefined: only the login link logs in (admin/login-link.ts). */
  readonly adminPassword: string | undefined;
  readonly listen: { readonly host: string; readonly port: number };
  /** The libSQL URL with relative file paths resolved against the config's folder. */
  readonly database: string;
  /** Non-blocking findings: literal secrets, channels without keys, an open proxy, ... */
  readonly warnings: readonly ConfigIssue[];
}

/** `FILE:LINE:COL path: message` — the one way an issue is printed. */
export function formatIssue(issue: ConfigIssue): string {
  const where = `${issue.file}:${issue.line}:${issue.col}`;
  return issue.path ? `${where} ${issue.path}: ${issue.message}` : `${where} ${issue.message}`;
}
