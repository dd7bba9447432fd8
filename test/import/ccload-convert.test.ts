/**
 * The pure conversion from ccLoad rows to a plan, as tables: names, env names, tolerant parsing
 * of model lists and redirects, and what earns a warning.
 */
import { parseEnv } from 'node:util';
import t from 'tap';
import {
  envStem,
  planImport,
  renderChannelsYaml,
  renderEnvFile,
  safeChannelName,
} from '../../src/import/ccload-convert.js';
import type { CcloadDbRows, RawRow } from '../../src/import/ccload-db.js';

const SEED_COLUMNS = ['id', 'name', 'api_key', 'url', 'priority', 'models', 'enabled'];

function rows(channels: RawRow[], columns = SEED_COLUMNS, extra: Partial<CcloadDbRows> = {}): CcloadDbRows {
  return {
    path: '/old/ccload.db',
    tables: { channels: columns, ...extra.tables },
    channels,
    apiKeys: extra.apiKeys ?? [],
    channelModels: extra.channelModels ?? [],
    counts: extra.counts ?? {},
  };
}

const ch = (o: Partial<Record<string, unknown>>): RawRow => ({
  id: 1,
  name: 'main',
  api_key: 'sk-1',
  url: 'https://a.example.com',
  priority: 1,
  models: '["m"]',
  enabled: 1,
  ...o,
});

t.test('safe channel names', async (t) => {
  const cases: [string, string][] = [
    ['main', 'main'],
    ['relay 中转', 'relay-中转'],
    ['  a / b  ', 'a-b'],
    ['x..y', 'x..y'],
    ['-lead.', 'lead'],
    ['!!!', ''],
    ['Ünïcode', 'Ünïcode'],
    ['a'.repeat(150), 'a'.repeat(100)],
  ];
  for (const [input, want] of cases) t.equal(safeChannelName(input), want, JSON.stringify(input));
});

t.test('env stems', async (t) => {
  const cases: [string, string][] = [
    ['anthropic-main', 'ANTHROPIC_MAIN'],
    ['relay-中转', 'RELAY'],
    ['中转', ''],
    ['Ünïcode', 'UNICODE'],
    ['a..b__c', 'A_B_C'],
  ];
  for (const [input, want] of cases) t.equal(envStem(input), want, JSON.stringify(input));
});

t.test('model lists and redirects are read tolerantly', async (t) => {
  const plan = planImport(
    rows(
      [
        ch({ id: 1, name: 'json', models: '["a","b","a"]' }),
        ch({ id: 2, name: 'comma', models: 'a, b ,c' }),
        ch({ id: 3, name: 'broken', models: '["a","b"' }),
        ch({ id: 4, name: 'glob', models: '["claude-*"]', model_redirects: '{"claude-x":"y","z":"w"}' }),
        ch({ id: 5, name: 'badmap', model_redirects: 'not json' }),
      ],
      [...SEED_COLUMNS, 'model_redirects'],
    ),
  );
  t.same(
    plan.channels.map((c) => [c.name, c.models, c.modelMap]),
    [
      ['json', ['a', 'b'], undefined],
      ['comma', ['a', 'b', 'c'], undefined],
      ['broken', ['a', 'b'], undefined],
      ['glob', ['claude-*'], { 'claude-x': 'y' }],
      ['badmap', ['m'], undefined],
    ],
  );
  t.match(plan.warnings.join('\n'), /channel "broken" \(#3\): its models column is not valid JSON/);
  t.match(plan.warnings.join('\n'), /channel "glob" \(#4\): model "claude-\*" contains \* or \?/);
  t.match(plan.warnings.join('\n'), /channel "glob" \(#4\): redirect "z" → "w" is dropped/);
  t.match(
    plan.warnings.join('\n'),
    /channel "badmap" \(#5\): its model_redirects column is not a JSON object/,
  );
});

t.test("env names never collide, even with a neighbour's _2", async (t) => {
  const plan = planImport(
    rows([
      ch({ id: 1, name: 'foo', api_key: 'k1,k2' }),
      ch({ id: 2, name: 'foo-2', api_key: 'k3' }),
      ch({ id: 3, name: '中转', api_key: 'k4' }),
      ch({ id: 4, name: 'Foo', api_key: 'k5' }),
    ]),
  );
  const envs = plan.channels.flatMap((c) => c.keys.map((k) => k.env));
  t.same(envs, [
    'CCLOAD_KEY_FOO',
    'CCLOAD_KEY_FOO_2',
    'CCLOAD_KEY_FOO_2_ID2',
    'CCLOAD_KEY_CHANNEL_3',
    'CCLOAD_KEY_FOO_ID4',
  ]);
  t.equal(new Set(envs).size, envs.length, 'all distinct');
});

t.test('unsafe key values are refused; odd but safe ones survive the env file', async (t) => {
  const plan = planImport(rows([ch({ api_key: "sk-with'quote,sk-with#hash and space,sk-$dollar" })]));
  t.same(
    plan.channels[0]?.keys.map((k) => k.value),
    ['sk-with#hash and space'],
  );
  t.equal(plan.warnings.filter((w) => /cannot be written to an env file safely/.test(w)).length, 2);
  const env = parseEnv(renderEnvFile(plan, { source: '/old/ccload.db' }));
  t.equal(env['CCLOAD_KEY_MAIN'], 'sk-with#hash and space', 'round-trips through dotenv parsing');
});

t.test('no enabled channel, missing URL, bad URL, booleans as text', async (t) => {
  const plan = planImport(
    rows([
      ch({ id: 1, name: 'off', enabled: 'false' }),
      ch({ id: 2, name: 'nourl', url: '' }),
      ch({ id: 3, name: 'ftp', url: 'ftp://x.example.com' }),
      ch({ id: 4, name: 'junk', url: 'not a url' }),
      ch({ id: 5, name: 'null-enabled', enabled: null, priority: '7' }),
    ]),
  );
  t.same(
    plan.skipped.map((s) => [s.sourceName, s.reason]),
    [
      ['nourl', 'it has no URL'],
      ['ftp', 'its URL "ftp://x.example.com" is not http(s)'],
      ['junk', 'its URL "not a url" is not a valid URL'],
    ],
  );
  t.same(
    plan.channels.map((c) => [c.name, c.enabled, c.priority]),
    [
      ['off', false, 1],
      ['null-enabled', true, 7],
    ],
  );
  const off = planImport(rows([ch({ enabled: 0 })]));
  t.match(off.warnings.join('\n'), /no imported channel is enabled/);
});

t.test('the YAML holds references only and notes where each channel came from', async (t) => {
  const plan = planImport(
    rows([ch({ api_key: 'sk-secret-value-123' }), ch({ id: 2, name: 'b', api_key: '' })]),
  );
  const yaml = renderChannelsYaml(plan, { source: '/old/ccload.db', envFile: 'keys.env' });
  t.notMatch(yaml, /sk-secret-value-123/);
  t.match(yaml, /# ccLoad channel #1 "main"\n {2}- name: main/);
  t.match(yaml, /api_key: \$\{CCLOAD_KEY_MAIN\}/);
  t.match(yaml, /# ccLoad channel #2 "b"\n {2}# no key in the ccLoad database: add api_key/);
  t.match(yaml, /they are in keys\.env \(mode 0600\)/);
  const empty = renderChannelsYaml(planImport(rows([])), { source: 'x', envFile: 'y' });
  t.match(empty, /channels: \[\]/);
  t.match(empty, /nothing could be imported/);
});
