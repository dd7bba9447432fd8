/**
 * The conversion of a Go ccLoad database (rows from `ccload-db.ts`) into ccload.yaml channels and
 * an env file of their keys. Pure: rows in, a plan out, and the plan rendered to text. The YAML only
 * ever holds `${CCLOAD_KEY_…}` references; key values exist in the plan's env entries alone.
 *
 * ccLoad schema versions seen: the first (`channels.api_key`, `models` JSON array, `enabled`), then
 * comma-separated keys in `api_key`, an `api_keys` table, `model_redirects` (JSON object),
 * `channel_type`/`auth_type`/`key_strategy`, newline-separated URLs, and a `channel_models` table
 * (`model`, `redirect_model`) replacing the JSON columns. What has no ccload equivalent is named in
 * a warning, never silently dropped.
 */
import { Document, isMap, isSeq, type Scalar, type YAMLMap, type YAMLSeq } from 'yaml';
import { compileGlob, isGlob } from '../config/glob.js';
import type { ChannelAuth } from '../config/schema.js';
import { fingerprint } from '../config/secrets.js';
import type { CcloadDbRows, RawRow } from './ccload-db.js';

/** One key of an imported channel: the env variable the YAML references and its value. */
export interface PlannedKey {
  readonly env: string;
  readonly value: string;
}

/** One channel as it will be written to ccload.yaml. */
export interface PlannedChannel {
  /** The ccLoad row id (null when the table has no id column). */
  readonly sourceId: number | null;
  readonly sourceName: string;
  readonly name: string;
  readonly url: string;
  readonly priority: number;
  readonly enabled: boolean;
  /** Omitted (undefined) = every model. */
  readonly models: readonly string[] | undefined;
  readonly modelMap: Readonly<Record<string, string>> | undefined;
  readonly keys: readonly PlannedKey[];
  /**
   * How the key is sent. The Go ccLoad sent both x-api-key and Authorization: Bearer, which relays
   * expect; Anthropic's own API documents x-api-key only, so its channels keep just that.
   */
  readonly auth: Extract<ChannelAuth, 'x-api-key' | 'both'>;
  /** Remarks written as comments above the channel. */
  readonly notes: readonly string[];
}

/** A ccLoad channel that could not be imported. */
export interface SkippedChannel {
  readonly sourceId: number | null;
  readonly sourceName: string;
  readonly reason: string;
}

/** The outcome of a conversion: channels to write, channels left out, and what to tell the operator. */
export interface ImportPlan {
  readonly channels: readonly PlannedChannel[];
  readonly skipped: readonly SkippedChannel[];
  /** Things the operator should know; never contains a key value. */
  readonly warnings: readonly string[];
}

/** Prefix of the env variables that hold imported keys. */
const KEY_ENV_PREFIX = 'CCLOAD_KEY_';

/** Channel columns that are runtime state or identity: read or ignored without a word. */
const QUIET_COLUMNS = new Set([
  'id',
  'name',
  'url',
  'api_key',
  'priority',
  'models',
  'model_redirects',
  'enabled',
  'channel_type',
  'auth_type',
  'key_strategy',
  'oauth_credential',
  'cooldown_until',
  'cooldown_duration_ms',
  'created_at',
  'updated_at',
]);

/**
 * Channel settings without a ccload equivalent, with the value that means "not used": a channel
 * with any other value gets a warning. `showValue: false` for columns that may hold credentials.
 */
const UNSUPPORTED: Readonly<
  Record<string, { readonly unused: readonly unknown[]; readonly showValue: boolean }>
> = {
  rpm_limit: { unused: [0], showValue: true },
  max_concurrency: { unused: [0], showValue: true },
  daily_cost_limit: { unused: [0], showValue: true },
  cost_multiplier: { unused: [1], showValue: true },
  proxy_url: { unused: [''], showValue: false },
  custom_request_rules: { unused: ['', '[]', '{}', 'null'], showValue: false },
  cooldown_detection_rules: { unused: ['', '[]', '{}', 'null'], showValue: false },
  available_time_start: { unused: [''], showValue: true },
  available_time_end: { unused: [''], showValue: true },
  scheduled_check_enabled: { unused: [0], showValue: false },
  scheduled_check_model: { unused: [''], showValue: false },
  scheduled_check_interval_minutes: { unused: [], showValue: false },
  scheduled_check_start_time: { unused: [], showValue: false },
  websockets: { unused: [0], showValue: false },
  protocol_transform_mode: { unused: ['', 'auto', 'none'], showValue: true },
  retry_other_keys_on_failure: { unused: [0], showValue: false },
};

/** channel_type values that mean "Anthropic Messages API"; empty = the early schema's only kind. */
const ANTHROPIC_TYPES = new Set(['', 'anthropic', 'claude', 'claude-code', 'claude_code']);
/** auth_type values that mean "a static key". */
const KEY_AUTH_TYPES = new Set(['', 'api_key', 'apikey', 'api-key', 'key']);

const NAME_MAX = 100;

function str(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : String(v);
}

function int(v: unknown, fallback: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : Number(str(v).trim());
  return Number.isFinite(n) && str(v).trim() !== '' ? Math.round(n) : fallback;
}

function bool(v: unknown, fallback: boolean): boolean {
  if (v === null || v === undefined) return fallback;
  const s = str(v).trim().toLowerCase();
  if (['0', 'false', 'f', 'no', 'off', ''].includes(s)) return false;
  return true;
}

function unusedValue(v: unknown, unused: readonly unknown[]): boolean {
  if (v === null || v === undefined) return true;
  if (unused.length === 0) return true;
  const s = str(v).trim();
  return unused.some((u) => (typeof u === 'number' ? Number(s) === u : s === u));
}

/** A model list: a JSON array, or (tolerated) a comma- or newline-separated string. */
function parseModelList(raw: unknown, label: string, warnings: string[]): string[] | undefined {
  if (raw === null || raw === undefined) return undefined;
  const text = str(raw).trim();
  if (text === '') return [];
  let items: unknown[];
  if (text.startsWith('[')) {
    try {
      const v = JSON.parse(text) as unknown;
      items = Array.isArray(v) ? v : [];
    } catch {
      warnings.push(`${label}: its models column is not valid JSON: read as a comma-separated list`);
      items = text.replace(/^\[|\]$/g, '').split(/[,\n]/);
    }
  } else items = text.split(/[,\n]/);
  const models = items
    .filter((m): m is string => typeof m === 'string')
    .map((m) => m.trim().replace(/^"|"$/g, ''))
    .filter(Boolean);
  return [...new Set(models)];
}

/** A redirect map from a JSON object column. */
function parseRedirects(raw: unknown, label: string, warnings: string[]): Record<string, string> {
  const text = str(raw).trim();
  if (text === '' || text === 'null' || text === '{}') return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    const out: Record<string, string> = {};
    for (const [from, to] of Object.entries(v)) {
      if (typeof to === 'string' && from.trim() && to.trim()) out[from.trim()] = to.trim();
    }
    return out;
  } catch {
    warnings.push(`${label}: its model_redirects column is not a JSON object: no model_map imported`);
    return {};
  }
}

/**
 * A channel name that is safe everywhere ccload shows or routes it (API paths, metrics labels,
 * logs): letters and digits of any script, `.`, `_`, `-`; anything else becomes `-`.
 */
export function safeChannelName(name: string): string {
  return name
    .normalize('NFC')
    .replace(/[^\p{L}\p{N}._-]+/gu, '-')
    .replace(/-{2,}/g, '-')
    .replace(/^[-.]+|[-.]+$/g, '')
    .slice(0, NAME_MAX);
}

/** The env-variable stem of a channel name: ASCII letters and digits upper-cased, the rest `_`. */
export function envStem(name: string): string {
  return name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase()
    .slice(0, 60);
}

/** Names of the env variables for `count` keys of a channel with stem `stem`. */
function envNames(stem: string, count: number): string[] {
  const base = `${KEY_ENV_PREFIX}${stem}`;
  return Array.from({ length: count }, (_, i) => (i === 0 ? base : `${base}_${i + 1}`));
}

/** A key value an env file (dotenv and systemd `EnvironmentFile=`) can hold without surprises. */
function envSafe(value: string): boolean {
  return !/[\0\r\n'"\\$`]/.test(value);
}

/** A key as read from the database, with the position ccLoad gave it (used in warnings). */
interface KeySource {
  readonly value: string;
  readonly index: number;
}

/**
 * One channel row being converted: its columns, identity, and where its warnings go. Every
 * warning about a channel starts with its label (`channel "x" (#3)`).
 */
interface RowContext {
  readonly row: RawRow;
  /** The columns of the `channels` table (old schema versions lack some). */
  readonly cols: ReadonlySet<string>;
  readonly sourceId: number | null;
  readonly sourceName: string;
  readonly label: string;
  readonly warnings: string[];
}

/** Pushes `message` as a warning about the row's channel. */
function warn(ctx: RowContext, message: string): void {
  ctx.warnings.push(`${ctx.label}: ${message}`);
}

/** Rows of a per-channel table (`api_keys`, `channel_models`) grouped by `channel_id`. */
function groupByChannel(rows: readonly RawRow[]): Map<number, RawRow[]> {
  const out = new Map<number, RawRow[]>();
  for (const r of rows) {
    const id = int(r['channel_id'], -1);
    const list = out.get(id) ?? [];
    list.push(r);
    out.set(id, list);
  }
  return out;
}

/**
 * The channel's URL when ccload can serve it: an Anthropic channel type, a static-key auth type and
 * an http(s) URL. Otherwise why it is skipped. ccLoad lists further URLs one per line: only the
 * first is imported (the others become a note and a warning).
 */
function importableUrl(ctx: RowContext): { url: string; host: string; notes: string[] } | { skip: string } {
  const type = str(ctx.row['channel_type']).trim().toLowerCase();
  if (!ANTHROPIC_TYPES.has(type))
    return { skip: `channel_type "${type}": only Anthropic channels can be imported` };
  const authType = str(ctx.row['auth_type']).trim().toLowerCase();
  if (!KEY_AUTH_TYPES.has(authType))
    return { skip: `auth_type "${authType}": ccload sends static API keys only` };

  const urls = str(ctx.row['url'])
    .split(/\r?\n/)
    .map((u) => u.trim())
    .filter(Boolean);
  const url = urls[0];
  if (!url) return { skip: 'it has no URL' };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { skip: `its URL "${url}" is not a valid URL` };
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    return { skip: `its URL "${url}" is not http(s)` };
  const notes: string[] = [];
  if (urls.length > 1) {
    warn(
      ctx,
      `${urls.length} URLs; only the first (${url}) is imported — add a channel per further URL if you need them`,
    );
    notes.push(`ccLoad also listed: ${urls.slice(1).join(', ')}`);
  }
  return { url, host: parsed.hostname, notes };
}

/**
 * The channel's name: safe, then unique (a ccLoad name is unique, but two may sanitise alike).
 * `ordinal` (1-based position among the planned channels) names a channel that has no usable name.
 */
function uniqueName(ctx: RowContext, ordinal: number, used: Set<string>): string {
  let name = safeChannelName(ctx.sourceName);
  if (!name) name = `channel-${ctx.sourceId ?? ordinal}`;
  if (used.has(name)) {
    let candidate = ctx.sourceId !== null ? `${name}-${ctx.sourceId}` : `${name}-2`;
    for (let n = 2; used.has(candidate); n++) candidate = `${name}-${n}`;
    name = candidate;
  }
  used.add(name);
  if (name !== ctx.sourceName) warn(ctx, `imported as "${name}" (a safe, unique channel name)`);
  return name;
}

/**
 * The channel's key values to import: from the `api_keys` rows when it has any, else from the
 * `api_key` column (comma- or newline-separated). Disabled, empty, repeated and env-unsafe keys
 * are left out with a warning; a key strategy other than round-robin is named.
 */
function keyValues(ctx: RowContext, keyRows: readonly RawRow[]): string[] {
  const sources: KeySource[] = [];
  let disabledKeys = 0;
  const strategies = new Set<string>();
  if (ctx.cols.has('key_strategy')) strategies.add(str(ctx.row['key_strategy']).trim().toLowerCase());
  if (keyRows.length > 0) {
    for (const k of keyRows) {
      const index = int(k['key_index'], sources.length);
      if ('disabled' in k && bool(k['disabled'], false)) {
        disabledKeys++;
        continue;
      }
      if ('key_strategy' in k) strategies.add(str(k['key_strategy']).trim().toLowerCase());
      const allowed = str(k['allowed_models']).trim();
      if (allowed && allowed !== '[]') {
        warn(
          ctx,
          `key #${index} is limited to some models in ccLoad; ccload uses every key of a channel for all of its models (split it into its own channel if that matters)`,
        );
      }
      sources.push({ value: str(k['api_key']).trim(), index });
    }
  } else {
    for (const [i, v] of str(ctx.row['api_key']).split(/[,\n]/).entries()) {
      sources.push({ value: v.trim(), index: i });
    }
  }
  if (disabledKeys > 0) warn(ctx, `${disabledKeys} disabled key(s) not imported`);
  const values: string[] = [];
  for (const s of sources) {
    if (!s.value) continue;
    if (!envSafe(s.value)) {
      warn(
        ctx,
        `key #${s.index} (${fingerprint(s.value)}) holds quotes, \`$\`, a backslash or a line break and cannot be written to an env file safely: not imported`,
      );
      continue;
    }
    if (values.includes(s.value)) {
      warn(ctx, `key #${s.index} (${fingerprint(s.value)}) is listed twice: imported once`);
      continue;
    }
    values.push(s.value);
  }
  if (values.length === 0) {
    warn(ctx, 'no key in the database — add api_key (as a ${…} reference) before enabling it');
  }
  strategies.delete('');
  if (values.length > 1 && [...strategies].some((s) => s !== 'round_robin' && s !== 'round-robin')) {
    warn(
      ctx,
      `key_strategy ${[...strategies].join('/')}: ccload rotates a channel's keys round-robin and cools each one on its own`,
    );
  }
  return values;
}

/**
 * The env variables that will hold the channel's keys, named from the channel name and unique
 * across the whole import (FOO_2 may be another channel's).
 */
function envKeys(
  name: string,
  sourceId: number | null,
  ordinal: number,
  values: readonly string[],
  used: Set<string>,
): PlannedKey[] {
  let stem = envStem(name) || `CHANNEL_${sourceId ?? ordinal}`;
  let env = envNames(stem, values.length);
  for (let n = 1; env.some((e) => used.has(e)); n++) {
    stem = `${envStem(name) || 'CHANNEL'}_ID${sourceId ?? 0}${n > 1 ? `_${n}` : ''}`;
    env = envNames(stem, values.length);
  }
  for (const e of env) used.add(e);
  return values.map((value, i) => ({ env: env[i]!, value }));
}

/**
 * The channel's models, model map and enabled flag: from the `channel_models` rows when it has
 * any, else from the JSON columns. A channel that lists no models served none in ccLoad; in
 * ccload no list means every model, so it is imported disabled. A redirect from a model the
 * channel does not serve never applied and is dropped.
 */
function modelsOf(
  ctx: RowContext,
  modelRows: readonly RawRow[],
): Pick<PlannedChannel, 'models' | 'modelMap' | 'enabled'> {
  let models: string[] | undefined;
  let redirects: Record<string, string> = {};
  if (modelRows.length > 0) {
    models = [];
    let disabledModels = 0;
    for (const m of modelRows) {
      const model = str(m['model']).trim();
      if (!model) continue;
      if ('disabled' in m && bool(m['disabled'], false)) {
        disabledModels++;
        continue;
      }
      if (!models.includes(model)) models.push(model);
      const to = str(m['redirect_model']).trim();
      if (to && to !== model) redirects[model] = to;
    }
    if (disabledModels > 0) warn(ctx, `${disabledModels} disabled model(s) not imported`);
  } else {
    models = parseModelList(ctx.row['models'], ctx.label, ctx.warnings);
    if (ctx.cols.has('model_redirects')) {
      redirects = parseRedirects(ctx.row['model_redirects'], ctx.label, ctx.warnings);
    }
  }
  let enabled = ctx.cols.has('enabled') ? bool(ctx.row['enabled'], true) : true;
  if (models !== undefined && models.length === 0) {
    if (enabled) {
      warn(
        ctx,
        'lists no models (in ccLoad it served none): imported disabled and without `models`, which in ccload means every model — add a list before enabling it',
      );
    }
    enabled = false;
    models = undefined;
  }
  for (const m of models ?? []) {
    if (isGlob(m)) warn(ctx, `model "${m}" contains * or ?, which ccload reads as a glob`);
  }
  const serves = models?.map(compileGlob);
  const modelMap: Record<string, string> = {};
  for (const [from, to] of Object.entries(redirects)) {
    if (serves && !serves.some((s) => s(from))) {
      warn(
        ctx,
        `redirect "${from}" → "${to}" is dropped: the channel does not list "${from}", so it never applied`,
      );
      continue;
    }
    modelMap[from] = to;
  }
  return { models, modelMap: Object.keys(modelMap).length > 0 ? modelMap : undefined, enabled };
}

/** Warns about each set column ccload has no equivalent for. */
function warnUnsupported(ctx: RowContext): void {
  for (const [col, spec] of Object.entries(UNSUPPORTED)) {
    if (!ctx.cols.has(col) || unusedValue(ctx.row[col], spec.unused)) continue;
    if (col.startsWith('scheduled_check_') && col !== 'scheduled_check_enabled') continue;
    const shown = spec.showValue ? `=${str(ctx.row[col]).trim()}` : ' is set';
    warn(ctx, `${col}${shown}, which ccload has no equivalent for: ignored`);
  }
}

/** Converts the rows of a ccLoad database into a plan. */
export function planImport(db: CcloadDbRows): ImportPlan {
  const warnings: string[] = [];
  const skipped: SkippedChannel[] = [];
  const channels: PlannedChannel[] = [];
  const cols: ReadonlySet<string> = new Set(db.tables['channels'] ?? []);
  const keysByChannel = groupByChannel(db.apiKeys);
  const modelsByChannel = groupByChannel(db.channelModels);

  const unknownCols = [...cols].filter((c) => !QUIET_COLUMNS.has(c) && !(c in UNSUPPORTED));
  if (unknownCols.length > 0) {
    warnings.push(`channels columns not imported (unknown to this importer): ${unknownCols.join(', ')}`);
  }

  const usedNames = new Set<string>();
  const usedEnv = new Set<string>();
  for (const row of db.channels) {
    const sourceId = cols.has('id') ? int(row['id'], 0) : null;
    const sourceName = str(row['name']).trim();
    const label = `channel "${sourceName || '(unnamed)'}"${sourceId !== null ? ` (#${sourceId})` : ''}`;
    const ctx: RowContext = { row, cols, sourceId, sourceName, label, warnings };

    const source = importableUrl(ctx);
    if ('skip' in source) {
      skipped.push({ sourceId, sourceName, reason: source.skip });
      continue;
    }
    const ordinal = channels.length + 1;
    const name = uniqueName(ctx, ordinal, usedNames);
    const values = keyValues(ctx, sourceId !== null ? (keysByChannel.get(sourceId) ?? []) : []);
    const keys = envKeys(name, sourceId, ordinal, values, usedEnv);
    const { models, modelMap, enabled } = modelsOf(
      ctx,
      sourceId !== null ? (modelsByChannel.get(sourceId) ?? []) : [],
    );
    warnUnsupported(ctx);
    channels.push({
      sourceId,
      sourceName,
      name,
      url: source.url,
      priority: cols.has('priority') ? int(row['priority'], 0) : 0,
      enabled,
      models,
      modelMap,
      keys,
      auth: source.host === 'api.anthropic.com' ? 'x-api-key' : 'both',
      notes: source.notes,
    });
  }

  if (channels.length > 0 && !channels.some((c) => c.enabled)) {
    warnings.push(
      'no imported channel is enabled: ccload refuses such a file unless routing.allow_no_channels is true',
    );
  }
  const tokens = db.counts['auth_tokens'] ?? 0;
  if (tokens > 0) {
    warnings.push(
      `${tokens} client token(s) in auth_tokens are not imported: list them under auth.tokens (as \${…} references), or keep using CCLOAD_AUTH`,
    );
  }
  return { channels, skipped, warnings };
}

/** Options of {@link renderChannelsYaml}. */
export interface RenderOptions {
  /** The database the plan came from, named in the header comment. */
  readonly source: string;
  /** The env file holding the keys, named in the header comment. */
  readonly envFile: string;
}

/**
 * The `channels:` fragment of ccload.yaml for `plan` (valid with `version: 1` added on top). Keys
 * appear only as `${CCLOAD_KEY_…}` references.
 */
export function renderChannelsYaml(plan: ImportPlan, opts: RenderOptions): string {
  const data = {
    channels: plan.channels.map((c) => {
      const out: Record<string, unknown> = { name: c.name, url: c.url };
      if (c.keys.length === 1) out['api_key'] = `\${${c.keys[0]!.env}}`;
      else if (c.keys.length > 1) out['keys'] = c.keys.map((k) => `\${${k.env}}`);
      out['auth'] = c.auth;
      out['priority'] = c.priority;
      if (c.models) out['models'] = [...c.models];
      if (c.modelMap) out['model_map'] = { ...c.modelMap };
      out['enabled'] = c.enabled;
      return out;
    }),
  };
  const doc = new Document(data);
  const seq = doc.get('channels') as YAMLSeq | undefined;
  if (seq && isSeq(seq)) {
    seq.items.forEach((item, i) => {
      const c = plan.channels[i]!;
      if (!isMap(item)) return;
      const map = item as YAMLMap;
      const origin = `ccLoad channel${c.sourceId !== null ? ` #${c.sourceId}` : ''} "${c.sourceName}"`;
      const notes = [...c.notes];
      if (c.keys.length === 0)
        notes.push('no key in the ccLoad database: add api_key: ${…} before it can serve');
      map.commentBefore = [` ${origin}`, ...notes.map((n) => ` ${n}`)].join('\n');
      if (i > 0) map.spaceBefore = true;
      for (const key of ['models', 'keys']) {
        const node = map.get(key, true);
        if (isSeq(node)) node.flow = true;
      }
      const auth = map.get('auth', true) as Scalar | undefined;
      if (auth) {
        auth.comment =
          c.auth === 'both'
            ? ' as the Go ccLoad did: x-api-key and Authorization: Bearer'
            : " Anthropic's API takes x-api-key (the Go ccLoad also sent a Bearer header)";
      }
    });
  }
  const header = [
    ` Channels imported from the Go ccLoad database ${opts.source} by \`ccload import-ccload\`.`,
    ` Keys are not in this file: they are in ${opts.envFile} (mode 0600), referenced as \${CCLOAD_KEY_…}.`,
    ' Load that file into the daemon environment (systemd EnvironmentFile=, or a .env next to it),',
    ' merge this list into ccload.yaml (it needs `version: 1` on top), then run `ccload check`.',
  ];
  doc.commentBefore = header.join('\n');
  if (plan.channels.length === 0) doc.comment = ' nothing could be imported';
  return doc.toString({ lineWidth: 0, flowCollectionPadding: false });
}

/**
 * The env file for `plan`: one `NAME='value'` line per key. Single quotes keep `#` and spaces
 * literal in both readers that matter — dotenv (`node:util` parseEnv) and systemd
 * `EnvironmentFile=` — and `envSafe` already refused values they could not hold.
 */
export function renderEnvFile(plan: ImportPlan, opts: { readonly source: string }): string {
  const lines = [
    `# ccload channel keys imported from ${opts.source}. Secret: keep it mode 0600, out of git.`,
    '# Load it with systemd EnvironmentFile= (or as .env in the working directory).',
  ];
  for (const c of plan.channels) {
    if (c.keys.length === 0) continue;
    lines.push(`# ${c.name}`);
    for (const k of c.keys) lines.push(`${k.env}='${k.value}'`);
  }
  return `${lines.join('\n')}\n`;
}
