import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import t from 'tap';
import { interpolatedData } from '../../src/config/load.js';
import {
  CONFIG_TABLE_END,
  CONFIG_TABLE_START,
  ERROR_TABLE_END,
  ERROR_TABLE_START,
  withConfigTable,
  withErrorTable,
} from '../../src/config/readme-tables.js';
import { ConfigSchema, configJsonSchema } from '../../src/config/schema.js';
import { isSecretPath, secretPatterns } from '../../src/config/secrets.js';
import { schemaFilePath, schemaFileText } from '../../src/config/write-schema.js';

const root = resolve(import.meta.dirname, '../../..');
const fixtures = join(root, 'test/fixtures/config');
const env = {
  TEST_KEY: 'sk-ant-test-key-0001',
  TEST_TOKEN_A: 'client-token-aaaa',
  TEST_PASS: 'correct horse',
};

t.test(
  'schema/ccload.schema.json is fresh (run `npm run schema` after changing src/config/schema.ts)',
  async (t) => {
    t.equal(schemaFilePath(), join(root, 'schema/ccload.schema.json'));
    t.equal(readFileSync(schemaFilePath(), 'utf8'), schemaFileText());
  },
);

t.test("README's configuration reference is fresh (run `npm run schema`)", async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  t.ok(
    readme.includes(CONFIG_TABLE_START) && readme.includes(CONFIG_TABLE_END),
    'README has the reference markers',
  );
  t.equal(readme, withConfigTable(readme));
  t.match(readme, '| `channels[].model_map` | map |');
});

t.test("README's error-code table is fresh (run `npm run schema`)", async (t) => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  t.ok(readme.includes(ERROR_TABLE_START) && readme.includes(ERROR_TABLE_END), 'README has the markers');
  t.equal(readme, withErrorTable(readme));
  t.match(readme, '| `CCL_ALL_COOLING` | proxy | 503 | `overloaded_error` |');
  t.match(readme, '| `conflict` | admin | 412 |');
  t.match(readme, '| `CCL_CONFIG_INVALID` | internal |');
});

t.test('zod and the published JSON Schema (ajv, draft 2020-12) agree on every fixture', async (t) => {
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  ajv.addKeyword('x-secret');
  ajv.addKeyword('x-reference');
  addFormats.default(ajv);
  const validate = ajv.compile(JSON.parse(readFileSync(schemaFilePath(), 'utf8')));
  const docs = readdirSync(fixtures)
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => [f, join(fixtures, f)] as const);
  docs.push(['ccload.yaml (bundled)', join(root, 'ccload.yaml')]);
  let compared = 0;
  for (const [name, path] of docs) {
    let data: unknown;
    try {
      data = await interpolatedData(readFileSync(path, 'utf8'), env, fixtures);
    } catch {
      continue; // YAML syntax errors never reach either schema
    }
    const byZod = ConfigSchema.safeParse(data).success;
    const byAjv = validate(data) as boolean;
    t.equal(
      byAjv,
      byZod,
      `${name}: zod says ${byZod}, ajv says ${byAjv} ${JSON.stringify(validate.errors ?? [])}`,
    );
    compared++;
  }
  t.ok(compared >= 20, `compared ${compared} documents`);
});

t.test('secrets are marked in the schema', async (t) => {
  t.same(
    secretPatterns().map((p) => p.join('.')),
    [
      'server.database_token',
      'admin.password',
      'auth.tokens.*.token',
      'channels.*.api_key',
      'channels.*.keys.*',
      'channels.*.headers.set.*',
    ],
  );
  t.ok(
    isSecretPath(['channels', 0, 'headers', 'set', 'x-gateway-key']),
    'a header a channel sets may be a credential',
  );
  t.ok(isSecretPath(['channels', 3, 'keys', 1]));
  t.notOk(isSecretPath(['channels', 3, 'url']));
});

t.test('the JSON Schema is strict and carries descriptions', async (t) => {
  const s = configJsonSchema() as { additionalProperties: boolean; properties: Record<string, unknown> };
  t.equal(s.additionalProperties, false);
  t.match(JSON.stringify(s.properties['routing']), /when_all_cooling/);
  t.match(JSON.stringify(s.properties['channels']), /Higher first/);
});

t.test('redaction keeps references visible and hides secrets, defaults included', async (t) => {
  const { redactYaml, redactSecretText } = await import('../../src/config/secrets.js');
  const text = `# keep this comment
channels:
  - name: a
    api_key: sk-ant-literal-0000abcd  # literal
    url: https://x.example
  - name: b
    keys: ["\${K1}", "\${K2:-sk-default-secret-7777}", sk-inline-literal-5555]
auth:
  tokens:
    - { name: t, token: "\${TOK:-}" }
`;
  const out = redactYaml(text);
  t.notMatch(out, 'sk-ant-literal-0000abcd');
  t.notMatch(out, 'sk-default-secret');
  t.notMatch(out, 'sk-inline-literal');
  t.match(out, '…abcd');
  t.match(out, '${K1}');
  t.match(out, '${K2:-…7777}');
  t.match(out, '${TOK:-}');
  t.match(out, '# keep this comment');
  t.equal(redactSecretText('${file:/run/creds/key}'), '${file:/run/creds/key}');
  const broken = redactYaml(`${text}\n  bad: [\n`);
  t.notMatch(broken, 'sk-ant-literal-0000abcd', 'an unparsable file is redacted line by line');
  t.notMatch(broken, 'sk-default-secret');
});
