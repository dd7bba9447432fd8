/**
 * The ccload.yaml contract (docs/config.md) as a strict zod schema. Every default lives
 * here and nowhere else; `schema/ccload.schema.json` is generated from it (`npm run schema`).
 *
 * Secrets are marked with `x-secret: true`; redaction and the literal-secret warning are driven by
 * those marks (see secrets.ts), so a new secret field only needs the mark. `${…}` references expand
 * only in secret fields and in fields marked `x-reference: true` (URLs, masked when shown); in any
 * other field a `${` is a validation error.
 */
import { z } from 'zod';
import { DURATION_PATTERN, parseDuration, parseSize, SIZE_PATTERN } from './values.js';

/** A duration: `500ms`, `30s`, `5m`, `1h`, `7d`, or a bare number of milliseconds. Parsed to ms. */
const DURATION_ERROR = 'expected a duration such as 500ms, 30s, 5m, 1h or a number of milliseconds';
const Duration = (description: string) =>
  z
    .union(
      [
        z.number({ error: DURATION_ERROR }).int(DURATION_ERROR).nonnegative(DURATION_ERROR),
        z.string({ error: DURATION_ERROR }).regex(new RegExp(DURATION_PATTERN), DURATION_ERROR),
      ],
      { error: DURATION_ERROR },
    )
    .transform((v) => parseDuration(v) as number)
    .meta({ description });

/** A size: `512KiB`, `32MiB`, `1GB`, or a bare number of bytes. Parsed to bytes. */
const SIZE_ERROR = 'expected a size such as 512KiB, 32MiB or a number of bytes';
const Size = (description: string) =>
  z
    .union(
      [
        z.number({ error: SIZE_ERROR }).int(SIZE_ERROR).nonnegative(SIZE_ERROR),
        z.string({ error: SIZE_ERROR }).regex(new RegExp(SIZE_PATTERN), SIZE_ERROR),
      ],
      { error: SIZE_ERROR },
    )
    .transform((v) => parseSize(v) as number)
    .meta({ description });

/** A secret string: written as a `${ENV}` / `${file:...}` reference, redacted everywhere it could show. */
const Secret = (description: string) => z.string().meta({ description, 'x-secret': true });

const Name = z.string().regex(/\S/, 'must not be empty').max(200, 'must be at most 200 characters');

/** A duration that must be more than zero. */
const Positive = <T extends z.ZodType<number>>(d: T) => d.refine((v) => v > 0, 'must be more than 0');

/** A Host name as a browser sends it: DNS name or IP address, optionally with a port. */
const HOST_NAME = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

const PORT = '(6553[0-5]|655[0-2]\\d|65[0-4]\\d{2}|6[0-4]\\d{3}|[1-5]\\d{4}|\\d{1,4})';
const LISTEN = new RegExp(`^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):${PORT}$`);
const DATABASE = /^(file:|libsql:\/\/|https?:\/\/|wss?:\/\/|:memory:$)/;

const ServerSchema = z
  .strictObject({
    listen: z
      .string()
      .regex(LISTEN, 'expected host:port with a port 0..65535, e.g. 127.0.0.1:8080 or [::1]:8080')
      .default('127.0.0.1:8080')
      .meta({
        description:
          'Address the proxy, dashboard and admin API listen on (host:port). Env PORT overrides the port.',
      }),
    database: z
      .string()
      .regex(DATABASE, 'expected a libSQL URL: file:PATH, libsql://HOST, https://HOST or :memory:')
      .default('file:data/ccload.db')
      .meta({
        description:
          "libSQL URL of the runtime-state database. A relative file: path is relative to this file's folder. Env SQLITE_PATH (a file path) overrides it. May hold ${…} references; shown with its userinfo and query masked.",
        'x-reference': true,
      }),
    database_token: Secret(
      'Auth token for a remote libSQL server (libsql:// or https://); use a ${...} reference.',
    ).optional(),
    max_body: Size('Largest accepted request body; bigger ones get 413.').prefault('32MiB'),
    drain_timeout: Duration(
      'On SIGTERM/SIGINT, how long in-flight requests and streams may run before they are ended.',
    ).prefault('30s'),
    log_level: z
      .enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal'])
      .default('info')
      .meta({ description: 'Level of the structured (pino JSON) log on stdout.' }),
    forward_client_address: z.boolean().default(false).meta({
      description:
        "true: the client's address headers (X-Forwarded-For, X-Forwarded-Host/-Proto, Forwarded, X-Real-IP, ...) are passed upstream unchanged; false: they are dropped. The client's Cookie is never forwarded.",
    }),
    headers_timeout: Positive(
      Duration('Longest time a client may take to send the request line and headers; then 408 and close.'),
    ).prefault('30s'),
    request_timeout: Positive(
      Duration(
        'Longest time a client may take to send its whole request (headers and body). Not the answer: streams may run for as long as the upstream streams.',
      ),
    ).prefault('5m'),
    keep_alive_timeout: Positive(
      Duration(
        'How long an idle keep-alive connection from a client is kept open. The default outlasts the 60 s idle timeout of the usual load balancers and reverse proxies in front, so they close an idle connection first and never reuse one ccload is closing.',
      ),
    ).prefault('65s'),
    max_connections: z.number().int().min(1).default(1024).meta({
      description: 'Most client connections open at once; further ones are closed at once.',
    }),
    allowed_hosts: z
      .array(z.string().regex(HOST_NAME, 'expected a host name or IP address, without scheme or path'))
      .default([])
      .meta({
        description:
          'Further Host names the dashboard, admin API and login answer to (e.g. the name a reverse proxy forwards); the listen address, and loopback names on a loopback listen, always work.',
      }),
  })
  .refine((s) => s.headers_timeout <= s.request_timeout, {
    path: ['headers_timeout'],
    message: 'must not be longer than server.request_timeout',
  })
  .meta({ description: 'Where ccload listens and keeps its runtime state.' });

const AdminSchema = z
  .strictObject({
    password: Secret(
      'Password of the dashboard and admin API. No built-in default: without it (or CCLOAD_PASS) the daemon logs a login link valid until it stops.',
    ).optional(),
    write_back: z.boolean().default(true).meta({
      description: 'false: the dashboard and admin API are read-only for configuration (strict GitOps).',
    }),
    git_commit: z.boolean().default(false).meta({
      description: "true: each write-back is committed in the config file's git repository.",
    }),
    git_author: z
      .string()
      .regex(/^[^<>]+ <[^<>]+>$/, 'expected "Name <email>"')
      .optional()
      .meta({ description: 'Author of write-back commits, "Name <email>"; default: git\'s own setting.' }),
    session_ttl: Duration('How long a dashboard login stays valid.').prefault('24h'),
  })
  .meta({ description: 'The dashboard and admin API.' });

/** A cap that must be a positive whole number when given. */
const Cap = (description: string) =>
  z.number().int('must be a whole number').min(1, 'must be at least 1').optional().meta({ description });

/** A USD amount per budget window. */
const Usd = (description: string) =>
  z.number().positive('must be greater than 0 (omit the key for no budget)').optional().meta({ description });

const Patterns = (what: string, description: string) =>
  z
    .array(z.string().min(1, 'must not be empty'))
    .min(1, `must list at least one ${what} (omit the key to allow every ${what})`)
    .optional()
    .meta({ description });

const ClientTokenSchema = z.strictObject({
  name: Name.meta({ description: 'What logs and stats show for this client; the token itself never is.' }),
  token: Secret('The token the client sends as x-api-key or Authorization: Bearer.'),
  models: Patterns(
    'model',
    'Models this token may request: exact names or globs (*, ?); omitted = every model. Others get 403 permission_error.',
  ),
  channels: Patterns(
    'channel',
    "Channels this token's requests may use: names or globs; omitted = every channel. Failover and the all-cooling fallback stay inside them.",
  ),
  max_concurrency: Cap(
    'Requests of this token in flight at once; one more gets 429 rate_limit_error with retry-after. Omitted = no limit.',
  ),
  budget: z
    .strictObject({
      daily: Usd('USD per day (in auth.budget_time_zone) this token may spend; omitted = no daily budget.'),
      monthly: Usd('USD per calendar month (in auth.budget_time_zone); omitted = no monthly budget.'),
    })
    .optional()
    .meta({
      description:
        'Spend limits, counted from the recorded cost of answering attempts (pricing). Spent: 402 billing_error until the window resets; requests in flight finish.',
    }),
});

const AuthSchema = z
  .strictObject({
    tokens: z.array(ClientTokenSchema).default([]).meta({
      description:
        'Client tokens allowed to use the proxy. Empty (and no CCLOAD_AUTH): the proxy is open, with a warning.',
    }),
    budget_time_zone: z.string().min(1).default('UTC').meta({
      description:
        'IANA time zone (e.g. Europe/Berlin) whose midnights start the daily and monthly budget windows.',
    }),
  })
  .meta({ description: 'Who may use the proxy (/v1/*), and the limits of each client token.' });

const RoutingSchema = z
  .strictObject({
    cooldown: z
      .strictObject({
        base: Duration('First cooldown of a failing scope.').prefault('1s'),
        max: Duration('Longest cooldown; each further failure doubles it up to this.').prefault('30m'),
      })
      .prefault({})
      .meta({ description: 'Exponential backoff per failing channel / key / model.' }),
    timeouts: z
      .strictObject({
        connect: Duration('TCP + TLS connect to the upstream.').prefault('10s'),
        first_token: Duration(
          'Request sent -> first content event (streams) or complete headers (non-streaming).',
        ).prefault('60s'),
        idle: Duration('Longest silence inside a stream or response body.').prefault('120s'),
        total: Duration('Overall cap for one client request, all attempts included; 0 = none.').prefault(0),
      })
      .prefault({}),
    max_attempts: z
      .number()
      .int()
      .min(1)
      .max(50)
      .default(5)
      .meta({ description: 'Distinct upstream attempts for one client request.' }),
    when_all_cooling: z.enum(['soonest', 'reject']).default('soonest').meta({
      description:
        'Every candidate cooling: soonest tries the one whose cooldown ends first; reject answers 503 with retry-after.',
    }),
    cooling_wait: Duration(
      'When every candidate is cooling (when_all_cooling: soonest), the longest a request waits for the first to recover; beyond it: 503 with retry-after.',
    ).prefault('30s'),
    allow_no_channels: z.boolean().default(false).meta({
      description: 'Accept a file with no enabled channel (otherwise that is a validation error).',
    }),
    affinity: z
      .strictObject({
        enabled: z.boolean().default(true).meta({
          description:
            "Pin each Claude Code session (x-claude-code-session-id, or the session in metadata.user_id) to the channel and key that first answered it, so its turns read that account's prompt cache; new sessions spread evenly over the equal-priority channels and keys.",
        }),
        idle: Duration(
          "A pin unused this long is forgotten. Default: a little over Claude Code's 1-hour prompt cache, beyond which no account holds the session's cache any more.",
        ).prefault('65m'),
        move_after: Duration(
          "A pin moves to where the session is served once its channel or key has been unavailable (cooling) this long; shorter trouble (one 529, a brief cooldown) fails over and leaves the pin. Default: longer than a burst of failures' cooldowns, shorter than the 5-minute cache.",
        ).prefault('1m'),
        return_to_priority: z.boolean().default(true).meta({
          description:
            'true: a session pinned to a lower-priority channel moves back when a higher-priority one is ready (one cache write, then the preferred channel); false: it stays until the pin expires.',
        }),
      })
      .prefault({})
      .meta({ description: 'Prompt-cache-aware session affinity (hot-reloadable).' }),
  })
  .meta({ description: 'Routing policy.' });

/** How a channel's key is sent upstream (`auth:`): x-api-key, Authorization: Bearer, or both. */
export const ChannelAuthSchema = z.enum(['x-api-key', 'bearer', 'both']);
export const ChannelProtocolSchema = z.enum(['anthropic', 'openai']);
/** RFC 9110 §5.1 field-name: a token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Request headers a channel's rules may not set or remove, and why. The credential headers are
 * ccload's own (the channel key goes there); the framing headers are the HTTP client's.
 */
export const RESERVED_HEADERS: ReadonlyMap<string, string> = new Map([
  ['x-api-key', "a credential header: ccload sends the channel's key there"],
  ['authorization', "a credential header: ccload sends the channel's key there"],
  ['host', 'a credential header: it names the upstream ccload connects to'],
  ['proxy-authorization', 'a credential header, never forwarded'],
  ['content-length', 'set by ccload from the body it sends'],
  ['transfer-encoding', 'set by the HTTP client'],
  ['connection', 'a hop-by-hop header'],
  ['keep-alive', 'a hop-by-hop header'],
  ['te', 'a hop-by-hop header'],
  ['trailer', 'a hop-by-hop header'],
  ['upgrade', 'a hop-by-hop header'],
  ['expect', 'refused by the HTTP client'],
  ['accept-encoding', 'ccload asks for identity so it can read the answer'],
  ['anthropic-beta', 'filtered with headers.beta (drop or allow), not set or removed whole'],
]);

/** Why a header name cannot appear in a channel's header rules, or undefined when it can. */
export function reservedHeader(name: string): string | undefined {
  const lower = name.toLowerCase();
  return RESERVED_HEADERS.get(lower) ?? (lower.startsWith('proxy-') ? 'a hop-by-hop header' : undefined);
}

const HEADER_NAME_ERROR = 'expected an HTTP header name (letters, digits, -, _ ...)';
const HeaderName = z.string().regex(HEADER_NAME, HEADER_NAME_ERROR);
const BetaTokens = z
  .array(
    z
      .string()
      .regex(/^[^\s,]+$/, 'expected one anthropic-beta token (no spaces or commas); * and ? are wildcards'),
  )
  .min(1, 'must list at least one token');

export const ChannelHeadersSchema = z
  .strictObject({
    beta: z
      .union(
        [
          z.strictObject({
            drop: BetaTokens.meta({
              description:
                'anthropic-beta tokens (or globs) removed before the request goes to this channel.',
            }),
          }),
          z.strictObject({
            allow: BetaTokens.meta({
              description:
                'The only anthropic-beta tokens (or globs) this channel gets; every other is removed.',
            }),
          }),
        ],
        { error: 'expected either { drop: [tokens] } or { allow: [tokens] }' },
      )
      .optional()
      .meta({
        description:
          'Filter of the anthropic-beta request header for this channel: drop the listed tokens, or allow only the listed ones. A header left with no token is not sent.',
      }),
    set: z
      .record(z.string(), Secret('The header value; use a ${...} reference when it is a credential.'))
      .optional()
      .meta({
        description: "Request headers sent to this channel, replacing the client's of the same name.",
      }),
    remove: z.array(HeaderName).optional().meta({
      description: 'Request headers of the client not forwarded to this channel (case-insensitive).',
    }),
  })
  .superRefine((h, ctx) => {
    const set = new Map<string, string>();
    for (const name of Object.keys(h.set ?? {})) {
      const why = reservedHeader(name);
      const lower = name.toLowerCase();
      if (!HEADER_NAME.test(name))
        ctx.addIssue({ code: 'custom', path: ['set', name], message: HEADER_NAME_ERROR });
      else if (why)
        ctx.addIssue({ code: 'custom', path: ['set', name], message: `cannot set ${name}: ${why}` });
      else if (/[\r\n\0]/.test(h.set?.[name] ?? ''))
        ctx.addIssue({
          code: 'custom',
          path: ['set', name],
          message: 'a header value cannot hold a line break or NUL',
        });
      else if (set.has(lower))
        ctx.addIssue({
          code: 'custom',
          path: ['set', name],
          message: `${name} is also set as ${set.get(lower)}`,
        });
      set.set(lower, name);
    }
    (h.remove ?? []).forEach((name, i) => {
      const why = reservedHeader(name);
      if (why)
        ctx.addIssue({ code: 'custom', path: ['remove', i], message: `cannot remove ${name}: ${why}` });
      else if (set.has(name.toLowerCase()))
        ctx.addIssue({ code: 'custom', path: ['remove', i], message: `${name} is both set and removed` });
    });
  })
  .meta({
    description:
      "Per-channel request header rules, applied to the headers only (the body is never re-serialised). x-api-key, authorization and host stay ccload's.",
  });

export const ChannelSchema = z
  .strictObject({
    name: Name.meta({ description: "Unique; the channel's identity in API paths, logs and stats." }),
    protocol: ChannelProtocolSchema.default('anthropic').meta({
      description:
        'anthropic: the Messages API, forwarded as is. openai: an OpenAI-compatible Chat Completions API; requests and answers are translated.',
    }),
    url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }).meta({
      pattern: '^https?://',
      description:
        "Base URL. anthropic: the client's path (/v1/messages...) and query are appended. openai: the OpenAI base URL (e.g. https://api.deepseek.com/v1); ccload POSTs {url}/chat/completions. May hold ${…} references; shown as written, with its userinfo and query masked.",
      'x-reference': true,
    }),
    api_key: Secret('The channel key, sent upstream as x-api-key. Use a ${...} reference.').optional(),
    keys: z.array(Secret('One key of this channel.')).min(1, 'must list at least one key').optional().meta({
      description: 'Several keys for one channel (instead of api_key), rotated and cooled one by one.',
    }),
    auth: ChannelAuthSchema.default('x-api-key').meta({
      description:
        'How the key is sent upstream: x-api-key, Authorization: Bearer, or both. protocol openai always sends Authorization: Bearer.',
    }),
    priority: z.number().int().default(0).meta({
      description: 'Higher first; equal priorities share traffic round-robin.',
    }),
    models: z
      .array(z.string().min(1, 'must not be empty'))
      .min(1, 'must list at least one model (omit the key to serve every model)')
      .optional()
      .meta({ description: 'Exact model names or globs (*, ?); omitted = every model.' }),
    model_map: z
      .record(z.string().min(1), z.string().min(1, 'must not be empty'))
      .optional()
      .meta({ description: "Rewrite the request's model for this channel: requested -> sent." }),
    enabled: z.boolean().default(true),
    headers: ChannelHeadersSchema.optional(),
    max_concurrency: Cap(
      'Attempts in flight on this channel at once (this instance); at the cap the channel is skipped, not cooled. Omitted = no cap.',
    ),
    rpm: Cap(
      'Attempts started on this channel per rolling minute (this instance); at the cap the channel is skipped, not cooled. Omitted = no cap.',
    ),
    proxy: z
      .url({ protocol: /^https?$/, error: 'expected an http(s) proxy URL, e.g. http://proxy.example:3128' })
      .optional()
      .meta({
        pattern: '^https?://',
        description:
          'Outbound HTTP(S) proxy for this channel (https upstreams via CONNECT). May hold ${…} references (credentials: http://user:${PASS}@host:port); shown as written, with its userinfo and query masked. Omitted: HTTPS_PROXY / HTTP_PROXY / NO_PROXY apply.',
        'x-reference': true,
      }),
  })
  .meta({ description: 'One upstream: an Anthropic account, a relay or a compatible gateway.' });

const Price = (what: string) =>
  z
    .number()
    .nonnegative()
    .default(0)
    .meta({ description: `USD per million ${what}.` });

/** A price derived from the input price unless given (the Messages API's documented ratios). */
const DerivedPrice = (description: string) => z.number().nonnegative().optional().meta({ description });

const PriceSchema = z.strictObject({
  input: Price('input tokens'),
  output: Price('output tokens'),
  cache_write: DerivedPrice(
    'USD per million cache-creation input tokens written with the 5-minute TTL; default 1.25 × input.',
  ),
  cache_write_1h: DerivedPrice(
    'USD per million cache-creation input tokens written with the 1-hour TTL; default 2 × input.',
  ),
  cache_read: DerivedPrice('USD per million cache-read input tokens; default 0.1 × input.'),
  fast_multiplier: z.number().min(1).default(6).meta({
    description:
      'Answers that report usage.speed "fast" (fast mode) cost this multiple of every token price above.',
  }),
  web_search: z.number().nonnegative().default(0.01).meta({
    description: 'USD per web search request (usage.server_tool_use.web_search_requests).',
  }),
});

const StoreSchema = z
  .strictObject({
    retention: Duration('How long request-log rows are kept.').prefault('30d'),
  })
  .meta({ description: 'Runtime-state database housekeeping.' });

export const ConfigSchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: 'Editors may point this at the JSON Schema.' }),
    version: z
      .literal(1, { error: 'expected version: 1' })
      .meta({ description: 'Format version of this file.' }),
    server: ServerSchema.prefault({}),
    admin: AdminSchema.prefault({}),
    auth: AuthSchema.prefault({}),
    routing: RoutingSchema.prefault({}),
    channels: z.array(ChannelSchema).default([]),
    pricing: z.record(z.string().min(1), PriceSchema).default({}).meta({
      description: 'Cost per model (exact name or glob, first match in file order), USD per million tokens.',
    }),
    store: StoreSchema.prefault({}),
  })
  .meta({ title: 'ccload.yaml', description: 'Configuration of the ccload daemon.' });

/** The parsed configuration, defaults applied, durations in ms and sizes in bytes. */
export type Config = z.output<typeof ConfigSchema>;
/** One channel entry as parsed. */
export type ChannelConfig = z.output<typeof ChannelSchema>;
/** One channel entry as written in the file (before defaults): what write-back adds. */
export type ChannelInput = z.input<typeof ChannelSchema>;
/** How a channel's key is sent upstream. */
export type ChannelAuth = z.output<typeof ChannelAuthSchema>;
/** The upstream's API: the Messages API as is, or OpenAI Chat Completions, translated. */
export type ChannelProtocol = z.output<typeof ChannelProtocolSchema>;
/** The header rules of one channel as parsed. */
export type ChannelHeaders = z.output<typeof ChannelHeadersSchema>;
/** One client token entry as parsed. */
export type ClientTokenConfig = z.output<typeof ClientTokenSchema>;
/** Prices of one model pattern. */
export type Price = z.output<typeof PriceSchema>;

/** The JSON Schema (draft 2020-12) of ccload.yaml, as editors and CI see it. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ConfigSchema, { io: 'input', target: 'draft-2020-12' }) as Record<string, unknown>;
}
