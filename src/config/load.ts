/**
 * The one loader: bytes → YAML (with positions) → `${...}` interpolation → zod schema →
 * cross-field checks → env overrides → frozen snapshot. Start-up, reload, `ccload check` and
 * dashboard saves all call it, so a file is judged the same way everywhere.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { compileGlob } from './glob.js';
import { expand, fileReferences, readReferencedFiles } from './interpolate.js';
import { type ConfigPath, formatPath, locate } from './locate.js';
import { resolveOutboundProxy } from './outbound-proxy.js';
import { formatReference, hasReference, parseReferences } from './references.js';
import {
  type ChannelConfig,
  type ClientTokenConfig,
  type Config,
  ConfigSchema,
  configJsonSchema,
} from './schema.js';
import {
  fingerprint,
  holdsLiteralSecret,
  isReferencePath,
  isSecretPath,
  maskUrl,
  referenceFields,
} from './secrets.js';
import type {
  Channel,
  ChannelKey,
  ClientToken,
  ConfigIssue,
  ReloadSource,
  Snapshot,
  TokenPolicy,
} from './snapshot.js';
import { hiddenUrlParts } from './url-mask.js';

/** What the loader needs besides the file. */
export interface LoadInput {
  /** Path of the config file (absolute, or relative to `cwd`). */
  readonly path: string;
  /** How the file is named in messages; default: `path` as given. */
  readonly display?: string;
  /** The environment to interpolate from and read the compat variables of. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Folder that relative `SQLITE_PATH` and `path` resolve against; default `process.cwd()`. */
  readonly cwd?: string;
  readonly generation: number;
  readonly source: ReloadSource;
  readonly now: number;
}

/** A loader verdict: a snapshot, or every error found (never just the first). */
export type LoadResult =
  | { readonly ok: true; readonly snapshot: Snapshot; readonly hash: string }
  | {
      readonly ok: false;
      /** Hash of the bytes read; undefined when the file could not be read at all. */
      readonly hash: string | undefined;
      readonly errors: readonly ConfigIssue[];
      readonly warnings: readonly ConfigIssue[];
    };

/** `sha256:<hex>` of the file content — the reloader's "did anything change" test. */
export function hashContent(content: string | Buffer): string {
  return `sha256:${createHash('sha256').update(content).digest('hex')}`;
}

/** Reads and loads the config file. An unreadable file is an error at 1:1, like any other. */
export async function loadConfigFile(input: LoadInput): Promise<LoadResult> {
  const full = resolve(input.cwd ?? process.cwd(), input.path);
  let bytes: Buffer;
  try {
    bytes = await readFile(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    const message = code === 'ENOENT' ? 'file not found' : `cannot read the file: ${code}`;
    return { ok: false, hash: undefined, errors: [issue(input, 1, 1, [], message)], warnings: [] };
  }
  return await loadConfigText(bytes.toString('utf8'), input, hashContent(bytes));
}

/** Loads config text (the content of `input.path`). Asynchronous only for `${file:...}` reads. */
export async function loadConfigText(
  text: string,
  input: LoadInput,
  hash = hashContent(text),
): Promise<LoadResult> {
  const full = resolve(input.cwd ?? process.cwd(), input.path);
  const baseDir = dirname(full);
  const errors: ConfigIssue[] = [];
  const warnings: ConfigIssue[] = [];

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  for (const e of doc.errors) {
    const pos = lineCounter.linePos(e.pos[0]);
    errors.push(issue(input, pos.line, pos.col, [], `YAML ${e.code}: ${firstLine(e.message)}`));
  }
  if (errors.length > 0) return { ok: false, hash, errors, warnings };

  const at = (path: ConfigPath, message: string, severity: 'error' | 'warning' = 'error', atKey = false) => {
    const pos = locate(doc, lineCounter, path, atKey);
    (severity === 'error' ? errors : warnings).push(issue(input, pos.line, pos.col, path, message, severity));
  };

  const raw = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  if (raw === null || raw === undefined) {
    at([], 'the file is empty: it needs at least `version: 1` and a `channels` list');
    return { ok: false, hash, errors, warnings };
  }

  // References expand only where the schema allows them (secrets, url, database); anywhere else
  // a `${` is an error, so no value from the environment or a file can surface in a name, a
  // model list or a mapping. `${file:…}` files are read first, off the event loop.
  const badRefs = new Set<string>();
  const files = await readReferencedFiles(referencedFiles(raw, baseDir));
  const data = interpolate(
    raw,
    [],
    (path, value) => {
      if (!isReferencePath(path)) {
        if (hasReference(value)) {
          at(path, outOfScope(value));
          badRefs.add(formatPath(path));
        }
        return literalValue(value);
      }
      const x = expand(value, input.env, files, baseDir);
      for (const message of x.errors) {
        at(path, message);
        badRefs.add(formatPath(path));
      }
      if (x.value !== '' && isSecretPath(path) && holdsLiteralSecret(value)) {
        at(
          path,
          !x.referenced
            ? 'a literal secret in the file: write a ${NAME} or ${file:PATH} reference instead (a file meant for git should not hold keys)'
            : parseReferences(value).some((s) => s.kind === 'text')
              ? 'literal text beside a reference (e.g. ${NAME:-}sk-…): the text is a secret in the file; write the whole value as one ${NAME} or ${file:PATH} reference'
              : 'a secret as the default of a reference (${NAME:-secret}): the default is in the file; drop it or use ${NAME} / ${file:PATH}',
          'warning',
        );
      }
      return x.value;
    },
    (path, key) => {
      if (!hasReference(key)) return;
      at(path, outOfScope(key), 'error', true);
      badRefs.add(formatPath(path));
    },
  );

  const parsed = ConfigSchema.safeParse(data);
  if (!parsed.success) {
    for (const zi of parsed.error.issues) {
      for (const [path, message, atKey] of describeIssue(zi, data)) {
        if (!badRefs.has(formatPath(path))) at(path, message, 'error', atKey);
      }
    }
  }
  if (errors.length > 0 || !parsed.success) return { ok: false, hash, errors: sortIssues(errors), warnings };

  const config = parsed.data;
  crossCheck(config, at);
  const env = applyEnv(config, input, at);
  for (const name of ['HTTPS_PROXY', 'HTTP_PROXY'] as const) {
    const v = input.env[name] ?? input.env[name.toLowerCase()];
    if (v && v.trim() !== '' && !/^https?:\/\/[^/]/.test(v.trim()))
      at([], `environment variable ${name} is not an http(s) proxy URL`);
    else if (v && v.trim() !== '' && !URL.canParse(v.trim()))
      at([], `environment variable ${name} is not a valid URL`);
  }
  if (errors.length > 0) return { ok: false, hash, errors: sortIssues(errors), warnings };

  const written = (raw as { channels?: { url?: unknown; proxy?: unknown }[] }).channels ?? [];
  const expandReference = (reference: string) => expand(reference, input.env, files, baseDir).value;
  const channels = config.channels.map((c, index) =>
    buildChannel(c, index, written[index]?.url, expandReference, written[index]?.proxy, input.env),
  );
  for (const c of channels) {
    if (c.enabled && c.problems.length > 0) at(['channels', c.index], `${c.problems.join('; ')}`, 'warning');
  }
  for (const c of channels) {
    // A new user's likeliest mistake: the endpoint's full URL where the base URL belongs.
    if (c.protocol === 'openai' && /\/chat\/completions\/?$/.test(c.url)) {
      at(
        ['channels', c.index, 'url'],
        `channel "${c.name}" (protocol openai): url is the OpenAI base URL, e.g. https://api.deepseek.com/v1; ccload appends /chat/completions to it`,
        'warning',
      );
    }
  }
  const tokens = buildTokens(config, input.env);
  for (const [i, t] of config.auth.tokens.entries()) {
    if (t.token === '')
      at(['auth', 'tokens', i, 'token'], `client token "${t.name}" has no value: it is ignored`, 'warning');
  }
  if (tokens.length === 0) {
    at(
      ['auth'],
      config.auth.tokens.length === 0
        ? `no client tokens (auth.tokens is empty and CCLOAD_AUTH is unset): the proxy is open to anyone who can reach ${env.listen.host}:${env.listen.port}`
        : 'no client token has a value: every proxy request is refused until one is set',
      'warning',
    );
  }
  if (!env.adminPassword) {
    at(
      ['admin'],
      'no admin password (admin.password is empty and CCLOAD_PASS is unset): the dashboard opens only through the login link the daemon logs at start',
      'warning',
    );
  }

  const snapshot: Snapshot = deepFreeze({
    generation: input.generation,
    hash,
    loadedAt: input.now,
    source: input.source,
    file: input.display ?? input.path,
    path: full,
    config,
    channels,
    tokens,
    adminPassword: env.adminPassword,
    listen: env.listen,
    database: env.database,
    warnings: sortIssues(warnings),
  });
  return { ok: true, snapshot, hash };
}

function issue(
  input: LoadInput,
  line: number,
  col: number,
  path: ConfigPath,
  message: string,
  severity: 'error' | 'warning' = 'error',
): ConfigIssue {
  return { file: input.display ?? input.path, line, col, path: formatPath(path), message, severity };
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

function sortIssues(list: ConfigIssue[]): ConfigIssue[] {
  return list.sort((a, b) => a.line - b.line || a.col - b.col);
}

/**
 * The file's data after `${...}` interpolation and before the schema: what both zod and the
 * published JSON Schema judge. Throws on YAML syntax errors; references out of scope stay as text.
 */
export async function interpolatedData(
  text: string,
  env: LoadInput['env'],
  baseDir: string,
): Promise<unknown> {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) throw doc.errors[0];
  const raw = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  const files = await readReferencedFiles(referencedFiles(raw, baseDir));
  return interpolate(raw, [], (path, s) =>
    isReferencePath(path) ? expand(s, env, files, baseDir).value : literalValue(s),
  );
}

/** The error for a `${` where references do not expand. */
function outOfScope(value: string): string {
  const first = parseReferences(value).find((s) => s.kind !== 'text');
  const shown = first ? (first.kind === 'invalid' ? first.raw : formatReference(first)) : '${';
  return (
    `"${shown.length > 60 ? `${shown.slice(0, 57)}...` : shown}": references are expanded only in ${referenceFields()}; ` +
    'write $${ for a literal "${"'
  );
}

/** A value where references do not expand: literal text, `$${` read as `${`. */
function literalValue(value: string): string {
  if (!value.includes('${')) return value;
  return parseReferences(value)
    .map((s) => (s.kind === 'text' ? s.text : ''))
    .join('');
}

/** The files the `${file:…}` references of reference fields name (others are not read). */
function referencedFiles(raw: unknown, baseDir: string): string[] {
  const out: string[] = [];
  interpolate(raw, [], (path, s) => {
    if (isReferencePath(path)) out.push(...fileReferences(s, baseDir));
    return s;
  });
  return out;
}

/** Applies `fn` to every string value of a plain JS tree (and `onKey` to every key), returning a copy. */
function interpolate(
  value: unknown,
  path: (string | number)[],
  fn: (path: ConfigPath, s: string) => string,
  onKey?: (path: ConfigPath, key: string) => void,
): unknown {
  if (typeof value === 'string') return fn(path, value);
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, [...path, i], fn, onKey));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      onKey?.([...path, k], k);
      out[k] = interpolate(v, [...path, k], fn, onKey);
    }
    return out;
  }
  return value;
}

/** The value at `path` in plain data, or undefined. */
function valueAt(data: unknown, path: ConfigPath): unknown {
  let cur = data;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, unknown>)[seg];
  }
  return cur;
}

type SchemaNode = {
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: unknown;
};

/** Known keys of the object the schema describes at `path`. */
function knownKeys(path: ConfigPath): string[] {
  let node = configJsonSchema() as SchemaNode | undefined;
  for (const seg of path) {
    if (!node) return [];
    if (typeof seg === 'number') node = node.items;
    else node = node.properties?.[seg] ?? (node.additionalProperties as SchemaNode | undefined);
  }
  return Object.keys(node?.properties ?? {});
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** Turns one zod issue into located messages people can act on. */
function describeIssue(zi: z.core.$ZodIssue, data: unknown): [ConfigPath, string, boolean][] {
  const path = zi.path.filter((s): s is string | number => typeof s !== 'symbol');
  if (zi.code === 'unrecognized_keys') {
    return zi.keys.map((key) => {
      const known = knownKeys(path);
      const near = known
        .filter((k) => distance(k, key) <= 2)
        .sort((a, b) => distance(a, key) - distance(b, key));
      const hint = near[0]
        ? ` (did you mean "${near[0]}"?)`
        : known.length
          ? ` (known keys: ${known.join(', ')})`
          : '';
      return [[...path, key], `unknown key "${key}"${hint}`, true];
    });
  }
  const value = valueAt(data, path);
  if (zi.code === 'invalid_type' && value === undefined) return [[path, 'required', false]];
  if (zi.code === 'invalid_type' && path.length === 0) {
    return [[path, 'the file must be a mapping of keys (version, server, channels, ...)', false]];
  }
  return [[path, zi.message.replace(/^Invalid input: /, ''), false]];
}

type At = (path: ConfigPath, message: string, severity?: 'error' | 'warning', atKey?: boolean) => void;

/** Rules the schema cannot express on one field alone. */
function crossCheck(config: Config, at: At): void {
  const r = config.routing;
  if (r.cooldown.base > r.cooldown.max)
    at(['routing', 'cooldown', 'base'], 'must not be larger than routing.cooldown.max');
  if (r.cooldown.base === 0) at(['routing', 'cooldown', 'base'], 'must be greater than 0');
  for (const k of ['connect', 'first_token', 'idle'] as const) {
    if (r.timeouts[k] === 0) at(['routing', 'timeouts', k], 'must be greater than 0');
  }
  if (config.server.max_body === 0) at(['server', 'max_body'], 'must be greater than 0');

  const names = new Map<string, number>();
  config.channels.forEach((c, i) => {
    const first = names.get(c.name);
    if (first !== undefined)
      at(['channels', i, 'name'], `duplicate channel name "${c.name}" (also channels[${first}])`);
    else names.set(c.name, i);
    if (c.api_key !== undefined && c.keys !== undefined) {
      at(['channels', i, 'keys'], 'give either api_key or keys, not both');
    }
    if (c.model_map && c.models) {
      const serves = c.models.map(compileGlob);
      for (const from of Object.keys(c.model_map)) {
        if (!serves.some((m) => m(from))) {
          at(
            ['channels', i, 'model_map', from],
            `"${from}" is not matched by this channel's models, so the mapping can never apply`,
            'error',
            true,
          );
        }
      }
    }
  });
  if (!r.allow_no_channels && !config.channels.some((c) => c.enabled)) {
    at(
      ['channels'],
      config.channels.length === 0
        ? 'no channels: add at least one (or set routing.allow_no_channels: true)'
        : 'every channel is disabled (set routing.allow_no_channels: true to allow that)',
    );
  }

  if (!validTimeZone(config.auth.budget_time_zone)) {
    at(
      ['auth', 'budget_time_zone'],
      `unknown time zone "${config.auth.budget_time_zone}": expected an IANA name such as UTC or Europe/Berlin`,
    );
  }
  const channelNames = config.channels.map((c) => c.name);
  config.auth.tokens.forEach((t, i) => {
    t.channels?.forEach((pattern, j) => {
      const m = compileGlob(pattern);
      if (!channelNames.some((n) => m(n)))
        at(['auth', 'tokens', i, 'channels', j], `"${pattern}" matches no channel`);
    });
    if (t.budget && t.budget.daily === undefined && t.budget.monthly === undefined)
      at(['auth', 'tokens', i, 'budget'], 'give daily, monthly or both (or omit budget)');
  });

  const tokenNames = new Map<string, number>();
  const tokenValues = new Map<string, number>();
  config.auth.tokens.forEach((t, i) => {
    const first = tokenNames.get(t.name);
    if (first !== undefined)
      at(['auth', 'tokens', i, 'name'], `duplicate token name "${t.name}" (also auth.tokens[${first}])`);
    else tokenNames.set(t.name, i);
    if (t.token === '') return;
    const same = tokenValues.get(t.token);
    if (same !== undefined) at(['auth', 'tokens', i, 'token'], `same token value as auth.tokens[${same}]`);
    else tokenValues.set(t.token, i);
  });
}

/**
 * The compat variables PORT, SQLITE_PATH, CCLOAD_PASS (CCLOAD_AUTH is in buildTokens); see
 * docs/config.md#environment-variables.
 */
function applyEnv(
  config: Config,
  input: LoadInput,
  at: At,
): { listen: { host: string; port: number }; database: string; adminPassword: string | undefined } {
  const m = /^(.*):(\d+)$/.exec(config.server.listen)!;
  let host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  let port = Number(m[2]);
  const envPort = input.env['PORT'];
  if (envPort !== undefined && envPort !== '') {
    if (/^\d{1,5}$/.test(envPort) && Number(envPort) <= 65535) port = Number(envPort);
    else at(['server', 'listen'], `environment variable PORT="${envPort}" is not a port number`);
  }
  if (!host) host = '127.0.0.1';

  const baseDir = dirname(resolve(input.cwd ?? process.cwd(), input.path));
  let database = config.server.database;
  const sqlitePath = input.env['SQLITE_PATH'];
  if (sqlitePath) database = `file:${resolve(input.cwd ?? process.cwd(), sqlitePath)}`;
  else if (database.startsWith('file:')) {
    const p = database.slice(5);
    if (p && !isAbsolute(p)) database = `file:${resolve(baseDir, p)}`;
  }
  const adminPassword = config.admin.password || input.env['CCLOAD_PASS'] || undefined;
  return { listen: { host, port }, database, adminPassword };
}

/** Is `tz` a time zone Intl knows (an IANA name such as `Europe/Berlin`, or `UTC`)? */
function validTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function buildChannel(
  c: ChannelConfig,
  index: number,
  written: unknown,
  expandReference: (reference: string) => string,
  writtenProxy: unknown,
  env: LoadInput['env'],
): Channel {
  const url = c.url.replace(/\/+$/, '');
  // Shown as written (a reference names its variable, never its value), userinfo and query masked.
  const asWritten = typeof written === 'string' ? written : url;
  const shownUrl = maskUrl(asWritten.replace(/\/+$/, ''));
  const parsed = new URL(url);
  const values = (c.keys ?? (c.api_key !== undefined ? [c.api_key] : [])).filter((k) => k !== '');
  const keys: ChannelKey[] = values.map((value, i) => ({ index: i, value, fingerprint: fingerprint(value) }));
  const problems: string[] = [];
  if (keys.length === 0) {
    problems.push(
      `channel "${c.name}" has no key (its api_key/keys are empty or missing): it is skipped until one is set`,
    );
  }
  const matchers = c.models?.map(compileGlob);
  const modelMap = c.model_map ?? {};
  const proxy = resolveOutboundProxy(
    url,
    c.proxy,
    typeof writtenProxy === 'string' ? writtenProxy : undefined,
    env,
  );
  const hash = createHash('sha256').update(url).update('\0').update(values.join('\0'));
  // Anthropic channels keep the identity they had before protocols existed.
  hash.update(c.protocol === 'openai' ? '\0openai' : '');
  // A proxy is part of the identity (its failures cool the channel), added only when there is
  // one so that channels without a proxy keep their identity across this change.
  if (proxy) hash.update('\0proxy\0').update(proxy.url);
  const identity = hash.digest('hex').slice(0, 16);
  return {
    name: c.name,
    index,
    url,
    shownUrl,
    hiddenUrlParts: hiddenUrlParts(asWritten, c.url, expandReference),
    origin: parsed.origin,
    basePath: parsed.pathname.replace(/\/+$/, ''),
    keys,
    auth: c.auth,
    protocol: c.protocol,
    priority: c.priority,
    models: c.models,
    modelMap,
    enabled: c.enabled,
    maxConcurrency: c.max_concurrency,
    rpm: c.rpm,
    proxy,
    identity,
    problems,
    serves: matchers ? (model) => matchers.some((m) => m(model)) : () => true,
    mapModel: (model) => (Object.hasOwn(modelMap, model) ? modelMap[model]! : model),
  };
}

/** A token's limits, matchers compiled; no argument: none (a CCLOAD_AUTH token). */
function buildPolicy(t?: ClientTokenConfig): TokenPolicy {
  const models = t?.models?.map(compileGlob);
  const channels = t?.channels?.map(compileGlob);
  return {
    models: t?.models,
    channels: t?.channels,
    maxConcurrency: t?.max_concurrency,
    daily: t?.budget?.daily,
    monthly: t?.budget?.monthly,
    allowsModel: models ? (m) => models.some((f) => f(m)) : () => true,
    allowsChannel: channels ? (n) => channels.some((f) => f(n)) : () => true,
  };
}

function buildTokens(config: Config, env: LoadInput['env']): ClientToken[] {
  const tokens: ClientToken[] = config.auth.tokens
    .filter((t) => t.token !== '')
    .map((t) => ({ name: t.name, value: t.token, source: 'file' as const, policy: buildPolicy(t) }));
  const extra = (env['CCLOAD_AUTH'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  extra.forEach((value, i) => {
    if (!tokens.some((t) => t.value === value))
      tokens.push({ name: `env-${i + 1}`, value, source: 'env', policy: buildPolicy() });
  });
  return tokens;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
