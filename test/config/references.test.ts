/**
 * `${…}` references: the one parser, where references expand (secret fields, a channel's url,
 * server.database) and where a `${` is an error, what `${file:…}` may read (a regular file of at
 * most 64 KiB, never blocking), and how secrets and URLs are shown (redaction).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { type LoadResult, loadConfigFile } from '../../src/config/load.js';
import { hasReference, isSingleReference, parseReferences } from '../../src/config/references.js';
import { maskUrl, redactSecretText, redactYaml } from '../../src/config/secrets.js';
import { formatIssue } from '../../src/config/snapshot.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline } from '../helpers/wait.js';

const root = resolve(import.meta.dirname, '../../..');
const SECRET = 'sk-ant-api03-ENVIRONMENT-SECRET-9f3e';
const env = { ANTHROPIC_API_KEY: SECRET, TEST_KEY: 'sk-ant-test-key-0001' };

function load(dir: string, yaml: string, e: Record<string, string | undefined> = env): Promise<LoadResult> {
  const path = join(dir, 'ccload.yaml');
  writeFileSync(path, yaml);
  return loadConfigFile({ path, display: 'ccload.yaml', env: e, generation: 1, source: 'startup', now: 0 });
}

const channel = (fields: string) => `version: 1
channels:
  - name: main
    url: http://127.0.0.1:9
    api_key: \${TEST_KEY}
${fields}`;

const messages = (r: LoadResult) => (r.ok ? r.snapshot.warnings : r.errors).map(formatIssue);

t.test('the parser: text, references, the $${ escape and broken references', async (t) => {
  t.same(
    parseReferences('a$${b}${X}${Y:-d}${file:/p}').map((s) => s.kind),
    ['text', 'env', 'env', 'file'],
  );
  t.equal((parseReferences('a$${b}')[0] as { text: string }).text, 'a${b}');
  t.same(
    parseReferences('${1X}${file:}${OPEN').map((s) => s.kind),
    ['invalid', 'invalid', 'invalid'],
  );
  t.ok(hasReference('x${Y}'));
  t.notOk(hasReference('x$${Y}'), 'the escape is not a reference');
  t.ok(hasReference('x${'), 'an unterminated reference still counts');
  t.ok(isSingleReference('${A:-}'));
  t.notOk(isSingleReference('${A:-}sk-x'), 'a reference followed by text is not one reference');
  t.notOk(isSingleReference('sk-${A}'));
});

t.test(
  'references out of scope are errors at file:line:col, never expanded (issue 10 finding 1)',
  async (t) => {
    const dir = tmpDir(t);
    writeFileSync(join(dir, 'environ'), `ANTHROPIC_API_KEY=${SECRET}\n`);
    const cases: [string, string, string][] = [
      ['models', '    models: ["${ANTHROPIC_API_KEY}"]', '6:14 channels[0].models[0]'],
      [
        'model_map value',
        '    models: ["claude-*"]\n    model_map: { claude-x: "${ANTHROPIC_API_KEY}" }',
        '7:28 channels[0].model_map["claude-x"]',
      ],
      [
        'model_map key',
        '    models: ["*"]\n    model_map: { "${ANTHROPIC_API_KEY}": claude-x }',
        '7:18 channels[0].model_map["${ANTHROPIC_API_KEY}"]',
      ],
      [
        'name',
        '  - name: "x-${ANTHROPIC_API_KEY}"\n    url: http://127.0.0.1:9\n    api_key: ${TEST_KEY}',
        '6:11 channels[1].name',
      ],
      ['file in models', '    models: ["${file:/proc/self/environ}"]', '6:14 channels[0].models[0]'],
      ['relative file in models', '    models: ["${file:environ}"]', '6:14 channels[0].models[0]'],
      ['default in models', '    models: ["${NOPE:-claude-x}"]', '6:14 channels[0].models[0]'],
    ];
    for (const [what, fields, where] of cases) {
      const r = await load(dir, channel(fields));
      t.notOk(r.ok, `${what}: rejected`);
      const got = messages(r);
      t.ok(
        got.some(
          (m) => m.startsWith(`ccload.yaml:${where}:`) && m.includes('references are expanded only in'),
        ),
        `${what}: error at ${where}\n  got: ${got.join('\n  ')}`,
      );
      t.notOk(got.join('\n').includes(SECRET), `${what}: the value is in no message`);
    }
    // Other non-secret fields: durations, pricing keys, the admin's git author.
    const r = await load(
      dir,
      `${channel('')}routing:\n  cooldown: { base: "\${BASE}" }\npricing:\n  "\${M}": { input: 1 }\nadmin:\n  git_author: "\${A} <a@b>"\n`,
      { ...env, BASE: '1s', M: 'x', A: 'a' },
    );
    t.notOk(r.ok);
    t.same(
      messages(r).map((m) => m.slice(0, m.indexOf(': '))),
      [
        'ccload.yaml:7:21 routing.cooldown.base',
        'ccload.yaml:9:3 pricing["${M}"]',
        'ccload.yaml:11:15 admin.git_author',
      ],
      'every out-of-scope field, keys included',
    );
  },
);

t.test(
  'references expand in secret fields, the url and server.database; $${ is a literal everywhere',
  async (t) => {
    const dir = tmpDir(t);
    writeFileSync(join(dir, 'key.txt'), 'sk-from-a-file-0000\n');
    const r = await load(
      dir,
      `version: 1
server:
  database: \${DB:-file:state.db}
  database_token: \${file:key.txt}
admin:
  password: \${PASS}
auth:
  tokens: [{ name: a, token: "\${TOK}" }]
channels:
  - name: main
    url: http://\${HOST}:9/relay
    keys: ["\${TEST_KEY}", "\${file:key.txt}"]
    models: ["claude-$\${literal}"]
`,
      { ...env, HOST: '127.0.0.1', PASS: 'pw', TOK: 'token-value-1' },
    );
    t.ok(r.ok, messages(r).join('\n'));
    if (!r.ok) return;
    const c = r.snapshot.channels[0]!;
    t.equal(c.url, 'http://127.0.0.1:9/relay');
    t.equal(c.shownUrl, 'http://${HOST}:9/relay', 'the url is shown as written: the variable, not its value');
    t.same(
      c.keys.map((k) => k.value),
      [env.TEST_KEY, 'sk-from-a-file-0000'],
    );
    t.same(c.models, ['claude-${literal}'], 'the escape gives a literal ${');
    t.equal(r.snapshot.database, `file:${join(dir, 'state.db')}`);
    t.equal(r.snapshot.config.server.database_token, 'sk-from-a-file-0000');
    t.equal(r.snapshot.adminPassword, 'pw');
  },
);

t.test('the bundled, demo and fixture configs still load', async (t) => {
  const demoEnv: Record<string, string> = {};
  for (const m of readFileSync(join(root, 'demo/ccload.yaml'), 'utf8').matchAll(/\$\{(DEMO_\w+)\}/g)) {
    demoEnv[m[1]!] = m[1]!.startsWith('DEMO_URL') ? 'http://127.0.0.1:9' : `${m[1]!.toLowerCase()}-value`;
  }
  for (const [file, e] of [
    ['ccload.yaml', {}],
    ['demo/ccload.yaml', demoEnv],
  ] as const) {
    const r = await loadConfigFile({
      path: join(root, file),
      env: e,
      generation: 1,
      source: 'startup',
      now: 0,
    });
    t.ok(r.ok, `${file} loads${r.ok ? '' : `: ${r.errors.map(formatIssue).join('; ')}`}`);
  }
});

t.test(
  '${file:…} reads only a regular file of at most 64 KiB and never blocks (issue 10 finding 2)',
  async (t) => {
    const dir = tmpDir(t);
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    mkdirSync(join(dir, 'folder'));
    writeFileSync(join(dir, 'big'), 'x'.repeat(64 * 1024 + 1));
    writeFileSync(join(dir, 'limit'), `${'y'.repeat(64 * 1024 - 1)}\n`);
    writeFileSync(join(dir, 'real'), 'sk-linked-key-1234\n');
    symlinkSync(join(dir, 'real'), join(dir, 'link'));
    const cases: [string, string][] = [
      ['fifo', 'not a regular file (a FIFO)'],
      ['/dev/zero', 'not a regular file (a character device)'],
      ['folder', 'not a regular file (a directory)'],
      ['missing', 'no such file'],
      ['big', 'larger than 64 KiB (65537 bytes)'],
      ['/proc/self/status', ''],
    ];
    for (const [file, reason] of cases) {
      const r = await deadline(
        load(dir, channel(`    keys: ["\${file:${file}}"]`).replace('    api_key: ${TEST_KEY}\n', '')),
        5000,
        file,
      );
      if (file === '/proc/self/status') {
        // A /proc file says size 0 but reads fine: the read itself is capped, and a small one passes.
        t.ok(r.ok, `${file}: ${messages(r).join('; ')}`);
        continue;
      }
      t.notOk(r.ok, `${file}: rejected`);
      t.ok(
        messages(r).some(
          (m) =>
            m.startsWith('ccload.yaml:5:12 channels[0].keys[0]: cannot read') && m.endsWith(`: ${reason}`),
        ),
        `${file}: "${reason}"\n  got: ${messages(r).join('\n  ')}`,
      );
    }
    for (const file of ['limit', 'link']) {
      const r = await load(
        dir,
        channel(`    keys: ["\${file:${file}}"]`).replace('    api_key: ${TEST_KEY}\n', ''),
      );
      t.ok(r.ok, `${file} is read: ${messages(r).join('; ')}`);
    }
    // A file only referenced where references do not expand is never opened.
    const opened = await deadline(load(dir, channel('    models: ["${file:fifo}"]')), 5000, 'fifo in models');
    t.match(messages(opened).join('\n'), /references are expanded only in/);
  },
);

t.test(
  'a literal beside a reference in a secret field is a literal secret: warned, redacted (issue 10 finding 6)',
  async (t) => {
    const dir = tmpDir(t);
    const value = '${UNSET:-}sk-ant-api03-MIXED-LITERAL-77aa';
    const r = await load(dir, channel('').replace('${TEST_KEY}', value));
    t.ok(r.ok, messages(r).join('\n'));
    t.ok(
      messages(r).some((m) =>
        m.startsWith('ccload.yaml:5:14 channels[0].api_key: literal text beside a reference'),
      ),
      messages(r).join('\n'),
    );
    const shown = redactSecretText(value);
    t.equal(shown, '${UNSET:-}…77aa (redacted literal)');
    const page = redactYaml(channel('').replace('${TEST_KEY}', value));
    t.notMatch(page, 'MIXED-LITERAL');
    t.match(page, '${UNSET:-}…77aa (redacted literal)');
    t.equal(
      redactSecretText('sk-${A}'),
      '…${A} (redacted literal)',
      'a short literal shows nothing of itself',
    );
  },
);

t.test('URLs are shown with userinfo and query values masked (issue 10 finding 6)', async (t) => {
  t.equal(
    maskUrl('https://user:pa55@relay.example:8443/v1?key=sk-123&x=1#frag'),
    'https://…:…@relay.example:8443/v1?key=…&x=…#…',
  );
  t.equal(maskUrl('https://TOKEN@relay.example/v1'), 'https://…@relay.example/v1');
  t.equal(maskUrl('https://relay.example/v1'), 'https://relay.example/v1');
  t.equal(
    maskUrl('https://${U}:${P}@h/x?key=${K:-sk-default-99zz}&a=lit'),
    'https://${U}:${P}@h/x?key=${K:-…99zz}&a=…',
  );
  t.equal(
    maskUrl('https://${file:/run/a/b}@h/p'),
    'https://${file:/run/a/b}@h/p',
    'a reference holding / is one part',
  );
  t.equal(maskUrl('libsql://db.example?authToken=abc'), 'libsql://db.example?authToken=…');
  t.equal(maskUrl('file:data/x.db'), 'file:data/x.db');

  const dir = tmpDir(t);
  const r = await load(
    dir,
    channel('').replace('http://127.0.0.1:9', 'https://u:pw-SECRET@relay.example/v1?key=q-SECRET'),
  );
  t.ok(r.ok);
  if (r.ok) t.equal(r.snapshot.channels[0]!.shownUrl, 'https://…:…@relay.example/v1?key=…');

  const text = `version: 1
server:
  database: "libsql://db.example?authToken=db-SECRET"
channels:
  - name: a
    url: https://u:pw-SECRET@relay.example/v1?key=q-SECRET
    api_key: \${K}
`;
  const out = redactYaml(text);
  t.notMatch(out, 'SECRET', 'the Config page view masks url userinfo and query values');
  t.match(out, 'https://…:…@relay.example/v1?key=…');
  t.match(out, 'libsql://db.example?authToken=…');
  const broken = redactYaml(`${text}  bad: [\n`);
  t.notMatch(broken, 'SECRET', 'and so does the broken-file view');
});

t.test('the broken-file view masks secret continuation lines (issue 10 finding 6)', async (t) => {
  const text = `version: 1
admin:
  password: |
    BLOCK-SECRET-password-line
auth:
  tokens:
    - name: t
      token: >-
        FOLDED-SECRET-token
        FOLDED-SECRET-second-line
    - name: u
      token:
        NEXT-LINE-SECRET-token
channels:
  - name: a
    url: http://127.0.0.1:9
    api_key: "QUOTED-SECRET-start
      QUOTED-SECRET-continued"
    keys:
    - \${K1}
    - ITEM-SECRET-literal
    - >
      ITEM-BLOCK-SECRET
    models: [claude-*]
    name: { broken
`;
  const out = redactYaml(text);
  t.notMatch(out, 'SECRET', out);
  t.match(out, '- ${K1}', 'a reference item stays visible');
  t.match(out, 'models: [claude-*]', 'lines after the secret are shown');
  t.match(
    out,
    '      token: … (redacted literal)\n        … (redacted)\n        … (redacted)\n',
    'the key line stays',
  );
});
