/**
 * Prometheus metrics (prom-client) on a registry of our own, so several daemons can live in one
 * process (tests). Label values are channel/model/token *names* — never a key or token — and come
 * from bounded sets: a model label is a name the configuration spells out or `other`
 * (`Runtime.metricModel`), a reason never carries upstream text.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { ReloadOutcome } from '../config/reloader.js';
import type { Snapshot } from '../config/snapshot.js';
import { FastCounter, FastHistogram } from './fast-metrics.js';

/**
 * Most labelled children `Metrics.child` caches. Label sets are bounded by the configuration (see
 * above), so this is far above any real count; it is a backstop so that a bug that let free text
 * into a label could not also grow this cache without end. Past it, children are still correct,
 * just looked up by prom-client each time.
 */
const CHILD_CACHE_MAX = 50_000;

/** Most models cached per channel by `Metrics.pair`: the same backstop, per channel. */
const PAIR_MODELS_MAX = 1000;

/** Every metric ccload exports. */
export class Metrics {
  readonly registry = new Registry();
  readonly configGeneration = new Gauge({
    name: 'ccload_config_generation',
    help: 'Generation of the configuration snapshot serving now.',
    registers: [this.registry],
  });
  readonly configLastReloadSuccessful = new Gauge({
    name: 'ccload_config_last_reload_successful',
    help: 'Whether the last configuration reload attempt succeeded (1) or was rejected (0).',
    registers: [this.registry],
  });
  readonly configLastReloadSuccess = new Gauge({
    name: 'ccload_config_last_reload_success_timestamp_seconds',
    help: 'Unix time of the last successful configuration load or reload.',
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'ccload_config_reloads_total',
    help: 'Configuration reload runs by cause and result.',
    labelNames: ['source', 'result'] as const,
    registers: [this.registry],
  });
  readonly configWarnings = new Gauge({
    name: 'ccload_config_warnings',
    help: 'Warnings of the configuration serving now (literal secrets, channels without keys, ...).',
    registers: [this.registry],
  });

  readonly requests = new FastCounter({
    name: 'ccload_requests_total',
    help: 'Client requests by endpoint and result (ok, or the error class of the answer the client got).',
    labelNames: ['endpoint', 'result'],
    registry: this.registry,
  });
  readonly attempts = new FastCounter({
    name: 'ccload_attempts_total',
    help: 'Upstream attempts by channel, model (as requested; other when the configuration does not name it) and outcome (ok, or the error class).',
    labelNames: ['channel', 'model', 'outcome'],
    registry: this.registry,
  });
  readonly failovers = new FastCounter({
    name: 'ccload_failovers_total',
    help: 'Failed attempts after which another candidate was tried, by the channel that failed.',
    labelNames: ['channel', 'model'],
    registry: this.registry,
  });
  readonly tokens = new FastCounter({
    name: 'ccload_tokens_total',
    help: 'Tokens billed to answering attempts, by channel, model and type (input, output, cache_creation, cache_read: compaction passes included; cache_creation_1h: the 1-hour-TTL part of cache_creation; compaction_input, compaction_output: the part from compaction).',
    labelNames: ['channel', 'model', 'type'],
    registry: this.registry,
  });
  readonly serverToolRequests = new FastCounter({
    name: 'ccload_server_tool_requests_total',
    help: 'Server tool requests reported by answering attempts (usage.server_tool_use), by channel, model and tool.',
    labelNames: ['channel', 'model', 'tool'],
    registry: this.registry,
  });
  readonly streamEventsDropped = new FastCounter({
    name: 'ccload_stream_events_dropped_total',
    help: 'SSE events left out of client streams, by channel and reason (invalid_json, oversize, incomplete: cut off by the end of the stream).',
    labelNames: ['channel', 'reason'],
    registry: this.registry,
  });
  readonly cost = new FastCounter({
    name: 'ccload_cost_usd_total',
    help: 'Cost in USD of answering attempts (models with a price in `pricing`).',
    labelNames: ['channel', 'model'],
    registry: this.registry,
  });
  readonly ttfb = new FastHistogram({
    name: 'ccload_upstream_ttfb_seconds',
    help: 'Time from sending an attempt to the upstream response headers.',
    labelNames: ['channel'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
    registry: this.registry,
  });
  readonly duration = new FastHistogram({
    name: 'ccload_request_duration_seconds',
    help: 'Duration of client requests, all attempts included.',
    labelNames: ['endpoint', 'streamed'],
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
    registry: this.registry,
  });
  readonly inflight = new Gauge({
    name: 'ccload_inflight_requests',
    help: 'Client requests being served now.',
    registers: [this.registry],
  });
  readonly inflightStreams = new Gauge({
    name: 'ccload_inflight_streams',
    help: 'Streaming answers being relayed to clients now (committed, not yet ended).',
    registers: [this.registry],
  });
  readonly cooldownsEntered = new Counter({
    name: 'ccload_cooldowns_entered_total',
    help: 'Cooldowns entered or extended, by scope and reason.',
    labelNames: ['scope', 'reason'] as const,
    registers: [this.registry],
  });
  readonly cooldownsActive = new Gauge({
    name: 'ccload_cooldowns_active',
    help: 'Cooling scopes now, by scope.',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });
  readonly affinity = new Counter({
    name: 'ccload_affinity_total',
    help: 'Client requests by what session affinity did: pinned (the pin served), new (a new session was pinned), moved (the pin moved), kept (the pin was briefly unavailable and stayed), none (no session).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly sessionPins = new Gauge({
    name: 'ccload_session_pins',
    help: 'Sessions pinned to each channel now.',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly connectionsDropped = new Counter({
    name: 'ccload_connections_dropped_total',
    help: 'Client connections closed on arrival because server.max_connections were already open.',
    registers: [this.registry],
  });
  readonly logQueueDepth = new Gauge({
    name: 'ccload_log_queue_depth',
    help: 'Attempt-log rows waiting to be written to the database.',
    registers: [this.registry],
  });
  readonly logRowsWritten = new Counter({
    name: 'ccload_log_rows_written_total',
    help: 'Attempt-log rows written since start.',
    registers: [this.registry],
  });
  readonly logRowsDropped = new Counter({
    name: 'ccload_log_rows_dropped_total',
    help: 'Attempt-log rows lost since start (queue overflow while the database was unavailable).',
    registers: [this.registry],
  });
  readonly logWriteFailures = new Counter({
    name: 'ccload_log_write_failures_total',
    help: 'Failed attempt-log writes (the rows stay queued and are retried).',
    registers: [this.registry],
  });

  /** Wires the gauges and counters that are read from other components at scrape time. */
  observe(sources: {
    logWriter: () => { depth: number; written: number; dropped: number; failedWrites: number };
    cooldowns: () => readonly { scope: string }[];
    pins?: () => ReadonlyMap<string, number>;
  }): void {
    const seen = { written: 0, dropped: 0, failedWrites: 0 };
    const sync = () => {
      const s = sources.logWriter();
      this.logQueueDepth.set(s.depth);
      this.logRowsWritten.inc(s.written - seen.written);
      this.logRowsDropped.inc(s.dropped - seen.dropped);
      this.logWriteFailures.inc(s.failedWrites - seen.failedWrites);
      seen.written = s.written;
      seen.dropped = s.dropped;
      seen.failedWrites = s.failedWrites;
      this.cooldownsActive.reset();
      for (const scope of ['channel', 'key', 'channel+model', 'key+model'])
        this.cooldownsActive.set({ scope }, 0);
      for (const e of sources.cooldowns()) this.cooldownsActive.inc({ scope: e.scope });
      if (sources.pins) {
        this.sessionPins.reset();
        for (const [channel, n] of sources.pins()) this.sessionPins.set({ channel }, n);
      }
    };
    this.#beforeScrape = sync;
  }
  #beforeScrape: () => void = () => {};

  readonly tokenSpend = new Gauge({
    name: 'ccload_token_spend_usd',
    help: 'Spend of each client token in the current budget window (day or month, in auth.budget_time_zone), USD.',
    labelNames: ['token', 'window'] as const,
    registers: [this.registry],
  });
  readonly tokenBudget = new Gauge({
    name: 'ccload_token_budget_usd',
    help: 'Budget of each client token per window (day or month), USD; absent for a window without one.',
    labelNames: ['token', 'window'] as const,
    registers: [this.registry],
  });
  readonly tokenInflight = new Gauge({
    name: 'ccload_token_inflight_requests',
    help: 'Requests of each client token in flight on this instance.',
    labelNames: ['token'] as const,
    registers: [this.registry],
  });
  readonly tokenMaxConcurrency = new Gauge({
    name: 'ccload_token_max_concurrency',
    help: 'max_concurrency of each client token that has one.',
    labelNames: ['token'] as const,
    registers: [this.registry],
  });
  readonly channelInflight = new Gauge({
    name: 'ccload_channel_inflight_attempts',
    help: 'Upstream attempts in flight on each channel on this instance.',
    labelNames: ['channel'] as const,
    registers: [this.registry],
  });
  readonly channelCap = new Gauge({
    name: 'ccload_channel_limit',
    help: 'Caps of each channel that has them: max_concurrency (attempts in flight) and rpm (attempts per minute).',
    labelNames: ['channel', 'limit'] as const,
    registers: [this.registry],
  });
  #policy: (() => void) | undefined;

  /**
   * Refreshes the policy gauges at each scrape from the serving configuration and the counters.
   * Labels are token and channel names from the configuration only, so their number is bounded.
   */
  observePolicy(
    source: () => {
      snapshot: Snapshot;
      limits: {
        tokenInflight(name: string): number;
        channelInflight(name: string): number;
        spend(name: string, now: number): { day: number; month: number };
      };
      now: number;
    },
  ): void {
    this.#policy = () => {
      const { snapshot, limits, now } = source();
      for (const g of [
        this.tokenSpend,
        this.tokenBudget,
        this.tokenInflight,
        this.tokenMaxConcurrency,
        this.channelInflight,
        this.channelCap,
      ])
        g.reset();
      for (const t of snapshot.tokens) {
        const spend = limits.spend(t.name, now);
        this.tokenSpend.set({ token: t.name, window: 'day' }, spend.day);
        this.tokenSpend.set({ token: t.name, window: 'month' }, spend.month);
        if (t.policy.daily !== undefined)
          this.tokenBudget.set({ token: t.name, window: 'day' }, t.policy.daily);
        if (t.policy.monthly !== undefined)
          this.tokenBudget.set({ token: t.name, window: 'month' }, t.policy.monthly);
        this.tokenInflight.set({ token: t.name }, limits.tokenInflight(t.name));
        if (t.policy.maxConcurrency !== undefined)
          this.tokenMaxConcurrency.set({ token: t.name }, t.policy.maxConcurrency);
      }
      for (const c of snapshot.channels) {
        this.channelInflight.set({ channel: c.name }, limits.channelInflight(c.name));
        if (c.maxConcurrency !== undefined)
          this.channelCap.set({ channel: c.name, limit: 'max_concurrency' }, c.maxConcurrency);
        if (c.rpm !== undefined) this.channelCap.set({ channel: c.name, limit: 'rpm' }, c.rpm);
      }
    };
  }

  /** The Prometheus text, with scrape-time values refreshed. */
  async scrape(): Promise<string> {
    this.#beforeScrape();
    this.#policy?.();
    return this.registry.metrics();
  }
  /** Children per metric, by their joined label values (bounded: see `CHILD_CACHE_MAX`). */
  readonly #children = new Map<object, Map<string, unknown>>();
  #childCount = 0;
  readonly #pairs = new Map<string, Map<string, PairMetrics>>();

  /**
   * A labelled child of a metric, cached: prom-client hashes the label values on every
   * `labels()` call. For the rare paths (errors before routing, cooldowns).
   */
  child<T>(metric: { labels(...v: string[]): T }, ...values: string[]): T {
    let byValues = this.#children.get(metric) as Map<string, T> | undefined;
    if (!byValues) {
      byValues = new Map<string, T>();
      this.#children.set(metric, byValues);
    }
    const key = values.join('\u0000');
    let c = byValues.get(key);
    if (!c) {
      c = metric.labels(...values);
      if (this.#childCount < CHILD_CACHE_MAX) {
        byValues.set(key, c);
        this.#childCount++;
      }
    }
    return c;
  }

  /** The children of one channel × model (the data path records several per request). */
  pair(channel: string, model: string): PairMetrics {
    let byModel = this.#pairs.get(channel);
    if (!byModel) {
      byModel = new Map();
      this.#pairs.set(channel, byModel);
    }
    let p = byModel.get(model);
    if (!p) {
      p = new PairMetrics(this, channel, model);
      if (byModel.size < PAIR_MODELS_MAX) byModel.set(model, p);
    }
    return p;
  }

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'ccload_' });
  }

  /** Records the snapshot loaded at start-up. */
  startup(snapshot: Snapshot): void {
    this.configGeneration.set(snapshot.generation);
    this.configLastReloadSuccessful.set(1);
    this.configLastReloadSuccess.set(snapshot.loadedAt / 1000);
    this.configWarnings.set(snapshot.warnings.length);
  }

  /** Records one reload run. */
  reload(outcome: ReloadOutcome, current: Snapshot): void {
    this.configReloads.inc({ source: outcome.source, result: outcome.result });
    this.configLastReloadSuccessful.set(outcome.result === 'rejected' ? 0 : 1);
    if (outcome.result !== 'rejected') this.configLastReloadSuccess.set(outcome.at / 1000);
    this.configGeneration.set(current.generation);
    this.configWarnings.set(current.warnings.length);
  }
}

/** The labelled metric children of one channel × model, created once and reused. */
export class PairMetrics {
  readonly #m: Metrics;
  readonly #channel: string;
  readonly #model: string;
  readonly #outcomes = new Map<string, { inc(n?: number): void }>();
  readonly ttfb: { observe(v: number): void };
  readonly failovers: { inc(n?: number): void };
  readonly cost: { inc(n?: number): void };
  readonly input: { inc(n?: number): void };
  readonly output: { inc(n?: number): void };
  readonly cacheCreation: { inc(n?: number): void };
  readonly cacheRead: { inc(n?: number): void };
  readonly cacheCreation1h: { inc(n?: number): void };
  readonly compactionInput: { inc(n?: number): void };
  readonly compactionOutput: { inc(n?: number): void };
  readonly webSearch: { inc(n?: number): void };

  constructor(m: Metrics, channel: string, model: string) {
    this.#m = m;
    this.#channel = channel;
    this.#model = model;
    this.ttfb = m.ttfb.labels(channel);
    this.failovers = m.failovers.labels(channel, model);
    this.cost = m.cost.labels(channel, model);
    this.input = m.tokens.labels(channel, model, 'input');
    this.output = m.tokens.labels(channel, model, 'output');
    this.cacheCreation = m.tokens.labels(channel, model, 'cache_creation');
    this.cacheRead = m.tokens.labels(channel, model, 'cache_read');
    this.cacheCreation1h = m.tokens.labels(channel, model, 'cache_creation_1h');
    this.compactionInput = m.tokens.labels(channel, model, 'compaction_input');
    this.compactionOutput = m.tokens.labels(channel, model, 'compaction_output');
    this.webSearch = m.serverToolRequests.labels(channel, model, 'web_search');
  }

  /** The attempts counter for an outcome (`ok` or an error class). */
  attempt(outcome: string): { inc(n?: number): void } {
    let c = this.#outcomes.get(outcome);
    if (!c) {
      c = this.#m.attempts.labels(this.#channel, this.#model, outcome);
      this.#outcomes.set(outcome, c);
    }
    return c;
  }
}
