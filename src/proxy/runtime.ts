/**
 * The runtime of one snapshot: what the data path derives from it once rather than per request
 * (token digests, each token's allowed channels, the /v1/models answer, the price book, the
 * channels' header rules) and the undici dispatchers it owns, one per (upstream origin, outbound
 * proxy): a Pool for a direct origin, a ProxyAgent for one reached through a proxy. A request
 * enters the runtime current at its start and keeps it; a reload
 * retires the old runtime, whose pools close once its last request has left.
 */
import { timingSafeEqual } from 'node:crypto';
import { type Dispatcher, Pool, ProxyAgent } from 'undici';
import { isGlob } from '../config/glob.js';
import type { Channel, ClientToken, Snapshot } from '../config/snapshot.js';
import { PriceBook } from './cost.js';
import { compileHeaderRules, type HeaderRules } from './header-rules.js';
import { type Scrubber, scrubberFor } from './scrub.js';

/** Extra slack of undici's own timeouts over ours: they are only a backstop. */
const BACKSTOP_MS = 5000;

/**
 * How long an idle upstream connection is kept for reuse when the upstream names no keep-alive
 * time of its own (undici's default is 4 s). A client works in turns a few seconds to tens of
 * seconds apart; keeping the connection that long saves a TCP + TLS handshake per turn, and 30 s
 * stays under the 60 s idle timeout common upstream front ends use, so the upstream rarely closes a
 * connection just as it is reused.
 */
const UPSTREAM_KEEP_ALIVE_MS = 30_000;

/** The metric label of every model the configuration does not name. */
export const OTHER_MODEL = 'other';

/** Per-snapshot data-path state. */
export class Runtime {
  readonly snapshot: Snapshot;
  readonly prices: PriceBook;
  /** True when no client token is configured at all: the proxy is open (warned at load). */
  readonly open: boolean;
  /** The `GET /v1/models` body. */
  readonly modelsBody: Buffer;
  /** Removes this snapshot's secrets from upstream error text. */
  readonly scrubber: Scrubber;
  /** Compiled `channels[].headers` rules by channel name (channels without rules are absent). */
  readonly headerRules: ReadonlyMap<string, HeaderRules>;
  readonly #tokens: { token: ClientToken; bytes: Buffer }[];
  readonly #namedModels: ReadonlySet<string>;
  readonly #pools = new Map<string, Dispatcher>();
  readonly #allowed = new Map<string, readonly Channel[]>();
  #inflight = 0;
  #retired = false;
  #closing: Promise<void> | undefined;

  constructor(snapshot: Snapshot) {
    this.snapshot = snapshot;
    this.prices = new PriceBook(snapshot.config.pricing);
    this.#tokens = snapshot.tokens.map((token) => ({ token, bytes: Buffer.from(token.value) }));
    this.open = snapshot.tokens.length === 0 && snapshot.config.auth.tokens.length === 0;
    this.modelsBody = Buffer.from(JSON.stringify(modelList(snapshot)));
    const rules = new Map<string, HeaderRules>();
    for (const c of snapshot.config.channels) {
      const compiled = compileHeaderRules(c.headers);
      if (compiled) rules.set(c.name, compiled);
    }
    this.headerRules = rules;
    this.#namedModels = namedModels(snapshot);
    this.scrubber = scrubberFor(snapshot);
  }

  /**
   * The model as a metric label: the name itself when the configuration names it, else `other`.
   * Clients choose the model freely; labelling it as sent would let any client token holder add
   * series to the public `/metrics` without bound (issue 10).
   */
  metricModel(model: string): string {
    return this.#namedModels.has(model) ? model : OTHER_MODEL;
  }

  /** Requests using this runtime now. */
  get inflight(): number {
    return this.#inflight;
  }

  /**
   * The client token matching `given`, compared with every configured token in constant time
   * (`timingSafeEqual`, no early exit over the list). Only whether some token has the given
   * length can leak; hashing each request's token to hide that too cost more than the rest of
   * authentication together (measured with `npm run bench -- --cpu-prof`).
   */
  authenticate(given: string | undefined): ClientToken | undefined {
    if (given === undefined || given === '') return undefined;
    const g = Buffer.from(given);
    let found: ClientToken | undefined;
    for (const t of this.#tokens) {
      const same =
        g.length === t.bytes.length ? timingSafeEqual(g, t.bytes) : !timingSafeEqual(t.bytes, t.bytes);
      if (same && !found) found = t.token;
    }
    return found;
  }

  /** The channels a client token may use, in file order (computed once per token and snapshot). */
  channelsFor(token: ClientToken): readonly Channel[] {
    if (token.policy.channels === undefined) return this.snapshot.channels;
    let list = this.#allowed.get(token.name);
    if (!list) {
      list = this.snapshot.channels.filter((c) => token.policy.allowsChannel(c.name));
      this.#allowed.set(token.name, list);
    }
    return list;
  }

  /** Does any enabled channel serve the model (whoever may use it)? */
  servesModel(model: string): boolean {
    return this.snapshot.channels.some((c) => c.enabled && c.serves(model));
  }

  /**
   * The dispatcher for a channel's connections, created on first use with this snapshot's
   * timeouts: one per (origin, proxy). Through a proxy, an http upstream is sent as absolute-form
   * requests and an https one through a CONNECT tunnel; the connect timeout covers reaching the
   * proxy and, in a tunnel, the TLS handshake with the upstream.
   */
  dispatcher(channel: Channel): Dispatcher {
    return this.#dispatcher(channel.origin, channel.proxy?.url);
  }

  #dispatcher(origin: string, proxy: string | undefined): Dispatcher {
    const key = proxy === undefined ? origin : `${origin}\u0000${proxy}`;
    let d = this.#pools.get(key);
    if (!d) {
      const t = this.snapshot.config.routing.timeouts;
      const common = {
        headersTimeout: t.first_token + BACKSTOP_MS,
        bodyTimeout: t.idle + BACKSTOP_MS,
        keepAliveTimeout: UPSTREAM_KEEP_ALIVE_MS,
        pipelining: 1,
      };
      d =
        proxy === undefined
          ? new Pool(origin, { ...common, connect: { timeout: t.connect } })
          : new ProxyAgent({
              uri: proxy,
              proxyTunnel: false,
              proxyTls: { timeout: t.connect },
              requestTls: { timeout: t.connect },
              ...common,
            });
      this.#pools.set(key, d);
    }
    return d;
  }

  /** A request starts using this runtime. */
  enter(): void {
    this.#inflight++;
  }

  /** A request is done with this runtime; the last one out of a retired runtime closes it. */
  leave(): void {
    this.#inflight--;
    if (this.#retired && this.#inflight === 0) void this.#close();
  }

  /** No new requests will enter; pools close when the last in-flight request leaves. */
  retire(): Promise<void> {
    this.#retired = true;
    return this.#inflight === 0 ? this.#close() : new Promise((resolve) => this.#waiters.push(resolve));
  }

  readonly #waiters: (() => void)[] = [];

  /** Closes every pool now, aborting what is still running (shutdown after the drain). */
  destroy(): Promise<void> {
    this.#retired = true;
    return Promise.all([...this.#pools.values()].map((p) => p.destroy())).then(() => undefined);
  }

  #close(): Promise<void> {
    this.#closing ??= Promise.all([...this.#pools.values()].map((p) => p.close())).then(() => {
      for (const w of this.#waiters.splice(0)) w();
    });
    return this.#closing;
  }
}

/**
 * The Anthropic models list answered locally: every exact model name or model_map alias some
 * enabled, usable channel serves (globs cannot be listed), in file order.
 */
function modelList(snapshot: Snapshot) {
  const ids: string[] = [];
  const seen = new Set<string>();
  const add = (id: string) => {
    if (!seen.has(id) && !isGlob(id)) {
      seen.add(id);
      ids.push(id);
    }
  };
  for (const c of snapshot.channels) {
    if (!c.enabled || c.problems.length > 0) continue;
    for (const m of c.models ?? []) add(m);
    for (const m of Object.keys(c.modelMap)) add(m);
  }
  const created = new Date(snapshot.loadedAt).toISOString();
  const data = ids.map((id) => ({ type: 'model', id, display_name: id, created_at: created }));
  return { data, has_more: false, first_id: ids[0] ?? null, last_id: ids[ids.length - 1] ?? null };
}

/**
 * Every model name the configuration spells out: exact (non-glob) `models` entries, `model_map`
 * keys and values, exact `pricing` keys — of every channel, enabled or not. Bounded by the file.
 */
function namedModels(snapshot: Snapshot): ReadonlySet<string> {
  const names = new Set<string>();
  const add = (m: string) => {
    if (!isGlob(m)) names.add(m);
  };
  for (const c of snapshot.channels) {
    for (const m of c.models ?? []) add(m);
    for (const [from, to] of Object.entries(c.modelMap)) {
      add(from);
      add(to);
    }
  }
  for (const m of Object.keys(snapshot.config.pricing)) add(m);
  return names;
}
