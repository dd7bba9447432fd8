/**
 * The one ccload.yaml builder of the tests: a config from a few structured options, with the
 * environment its `${…}` references read. Suites set their own defaults on top of it (the proxy's
 * short timeouts in `proxy/e2e-helpers.ts`, the reliability suite's in `reliability/helpers.ts`).
 */
import { stringify } from 'yaml';

/** The environment test daemons run with; `testConfig` refers to these by default. */
export const testEnv = { TEST_KEY: 'sk-ant-test-key-0001', TEST_PASS: 'correct horse battery' };

/** A loopback URL where nothing listens (port 9, discard): the default channel's upstream. */
export const DEAD_URL = 'http://127.0.0.1:9';

/** One channel of a test config. Without `keys` and `apiKey`: `api_key: ${TEST_KEY}`. */
export interface ChannelSpec {
  name: string;
  url: string;
  /** Written as `api_key:` (a literal or a `${…}` reference). */
  apiKey?: string;
  /** Written as a `keys:` list (wins over `apiKey`). */
  keys?: string[];
  /** Default 10. */
  priority?: number;
  models?: string[];
  modelMap?: Record<string, string>;
  enabled?: boolean;
  auth?: 'x-api-key' | 'bearer' | 'both';
  protocol?: 'anthropic' | 'openai';
}

/** `routing` of a test config; durations as the config writes them (`600ms`). Only what is set is written. */
export interface RoutingSpec {
  connect?: string;
  first_token?: string;
  idle?: string;
  total?: string;
  base?: string;
  max?: string;
  max_attempts?: number;
  when_all_cooling?: 'soonest' | 'reject';
  cooling_wait?: string;
}

/** Options of `testConfig`. */
export interface ConfigOptions {
  /** Written as a `# comment` first line (makes otherwise equal edits distinct files). */
  comment?: string;
  /** More `server:` settings after listen (127.0.0.1:0) and database (file:state/ccload.db). */
  server?: { max_body?: string; log_level?: string; drain_timeout?: string };
  /** `admin.password` as written; default the reference `${TEST_PASS}`. */
  adminPassword?: string;
  /** Client tokens (`auth.tokens`); not set: no `auth:` section; `[]`: an open proxy, said explicitly. */
  tokens?: { name: string; token: string }[];
  /** Not set: no `routing:` section (the schema's defaults). */
  routing?: RoutingSpec;
  /** Default: one channel `main` at `DEAD_URL`, priority 10, key `${TEST_KEY}`. */
  channels?: ChannelSpec[];
  /** YAML appended verbatim. */
  extra?: string;
}

/** A string as a one-line YAML scalar: plain where it reads back as the same string, else quoted. */
function scalar(s: string): string {
  const yaml = stringify(s, { lineWidth: 0 }).trimEnd();
  return yaml.includes('\n') ? JSON.stringify(s) : yaml;
}

/** A ccload.yaml for a test daemon: listening on an ephemeral loopback port, its database in `state/`. */
export function testConfig(o: ConfigOptions = {}): string {
  const lines = [
    ...(o.comment === undefined ? [] : [`# ${o.comment}`]),
    'version: 1',
    'server:',
    '  listen: 127.0.0.1:0',
    '  database: file:state/ccload.db',
    ...Object.entries(o.server ?? {}).map(([k, v]) => `  ${k}: ${v}`),
    'admin:',
    `  password: ${o.adminPassword ?? '${TEST_PASS}'}`,
  ];
  if (o.tokens) {
    lines.push('auth:', o.tokens.length === 0 ? '  tokens: []' : '  tokens:');
    for (const tk of o.tokens)
      lines.push(`    - name: ${scalar(tk.name)}`, `      token: ${scalar(tk.token)}`);
  }
  if (o.routing) {
    const r = o.routing;
    lines.push('routing:');
    if (r.base !== undefined || r.max !== undefined) {
      lines.push('  cooldown:');
      if (r.base !== undefined) lines.push(`    base: ${r.base}`);
      if (r.max !== undefined) lines.push(`    max: ${r.max}`);
    }
    const timeouts = (['connect', 'first_token', 'idle', 'total'] as const).filter((k) => r[k] !== undefined);
    if (timeouts.length > 0) {
      lines.push('  timeouts:');
      for (const k of timeouts) lines.push(`    ${k}: ${r[k]}`);
    }
    for (const k of ['max_attempts', 'when_all_cooling', 'cooling_wait'] as const) {
      if (r[k] !== undefined) lines.push(`  ${k}: ${r[k]}`);
    }
  }
  lines.push('channels:');
  for (const c of o.channels ?? [{ name: 'main', url: DEAD_URL }]) {
    lines.push(`  - name: ${scalar(c.name)}`, `    url: ${scalar(c.url)}`);
    if (c.keys) {
      lines.push('    keys:');
      for (const k of c.keys) lines.push(`      - ${scalar(k)}`);
    } else {
      lines.push(`    api_key: ${scalar(c.apiKey ?? '${TEST_KEY}')}`);
    }
    lines.push(`    priority: ${c.priority ?? 10}`);
    if (c.models) lines.push(`    models: [${c.models.map((m) => JSON.stringify(m)).join(', ')}]`);
    if (c.modelMap) {
      lines.push('    model_map:');
      for (const [from, to] of Object.entries(c.modelMap)) {
        lines.push(`      ${JSON.stringify(from)}: ${JSON.stringify(to)}`);
      }
    }
    if (c.auth) lines.push(`    auth: ${c.auth}`);
    if (c.protocol) lines.push(`    protocol: ${c.protocol}`);
    if (c.enabled === false) lines.push('    enabled: false');
  }
  return `${lines.join('\n')}\n${o.extra ?? ''}`;
}
