import { gzipSync } from 'node:zlib';
import t from 'tap';
import { hiddenUrlParts } from '../../src/config/url-mask.js';
import { Scrubber } from '../../src/proxy/scrub.js';

const KEY = 'sk-ant-api03-AbCdEf0123456789-wxyz';
const OTHER = 'sk-relay/with+odd"chars\\9876';

t.test(
  'secrets are replaced by their fingerprints, in every form an error text may quote them',
  async (t) => {
    const s = new Scrubber([KEY, OTHER, 'short']);
    t.equal(s.empty, false);
    const table: [string, string][] = [
      [`invalid x-api-key: ${KEY}`, 'invalid x-api-key: …wxyz'],
      [`Bearer ${KEY}, again ${KEY}.`, 'Bearer …wxyz, again …wxyz.'],
      [`raw ${OTHER}`, 'raw …9876'],
      [`json ${JSON.stringify(OTHER)}`, 'json "…9876"'],
      [`slashes ${JSON.stringify(OTHER).replace('/', '\\/')}`, 'slashes "…9876"'],
      [`url ?key=${encodeURIComponent(OTHER)}`, 'url ?key=…9876'],
      ['a short secret is left alone: short', 'a short secret is left alone: short'],
      [`a prefix only: ${KEY.slice(0, 20)}`, `a prefix only: ${KEY.slice(0, 20)}`],
      ['', ''],
    ];
    for (const [input, want] of table) {
      t.equal(s.text(input), want, JSON.stringify(input));
      t.equal(s.bytes(Buffer.from(input)).toString('utf8'), want, `bytes: ${JSON.stringify(input)}`);
    }
  },
);

t.test(
  'bytes: untouched without a secret (the same Buffer), and bytes that are not UTF-8 survive',
  async (t) => {
    const s = new Scrubber([KEY]);
    const clean = Buffer.from('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}');
    t.equal(s.bytes(clean), clean, 'the same buffer');
    const binary = Buffer.concat([
      Buffer.from([0xff, 0xfe, 0x80]),
      Buffer.from(` ${KEY} `),
      Buffer.from([0xc3]),
    ]);
    const out = s.bytes(binary);
    t.same(
      out,
      Buffer.concat([Buffer.from([0xff, 0xfe, 0x80]), Buffer.from(' …wxyz '), Buffer.from([0xc3])]),
    );
    const compressed = gzipSync(Buffer.from(KEY.repeat(3)));
    t.equal(s.bytes(compressed), compressed, 'compressed bytes are not text: the caller decodes them first');
  },
);

t.test('header values get an ASCII fingerprint (a header cannot carry …)', async (t) => {
  const s = new Scrubber([KEY]);
  t.equal(s.header(`key=${KEY}`), 'key=...wxyz');
  t.equal(s.header('nothing here'), 'nothing here');
});

t.test('a truncated text loses a tail that starts a secret', async (t) => {
  const s = new Scrubber([KEY, OTHER]);
  const cut = (text: string) => s.truncatedBytes(Buffer.from(text)).toString('utf8');
  t.equal(cut(`x ${KEY} y ${KEY.slice(0, 20)}`), 'x …wxyz y ', 'a started key is cut off');
  t.equal(cut(`json ${JSON.stringify(OTHER).slice(0, 12)}`), 'json "', 'in any form');
  t.equal(cut(`ends ${KEY.slice(0, 3)}`), `ends ${KEY.slice(0, 3)}`, 'three characters say nothing');
  t.equal(cut('ordinary text'), 'ordinary text');
});

t.test('no secrets: empty, and text passes unchanged', async (t) => {
  const s = new Scrubber(['', 'tiny']);
  t.equal(s.empty, true);
  t.equal(s.text(`x ${KEY}`), `x ${KEY}`);
});

t.test('a secret that extends another is replaced whole', async (t) => {
  const s = new Scrubber(['sk-ant-aaaaaaaa', 'sk-ant-aaaaaaaa-bbbbcccc']);
  t.equal(s.text('k=sk-ant-aaaaaaaa-bbbbcccc;'), 'k=…cccc;');
  t.equal(s.text('k=sk-ant-aaaaaaaa;'), 'k=…aaaa;');
});

t.test('many secrets, a large body: scrubbing stays cheap', async (t) => {
  const keys = Array.from({ length: 1000 }, (_, i) => `sk-ant-api03-${i}-${'k'.repeat(40)}`);
  const s = new Scrubber(keys);
  const body = Buffer.from(`${'sk-ant-api03-'.repeat(80_000)}${keys[999]}`);
  const start = performance.now();
  const out = s.bytes(body);
  const ms = performance.now() - start;
  t.notOk(out.includes(keys[999]!), 'the key is gone');
  t.ok(ms < 2000, `1 MiB of near-misses against 1000 keys in ${ms.toFixed(0)} ms`);
});

t.test('what a channel URL hides is found in error texts and shown as the URL shows it', async (t) => {
  const env: Record<string, string> = {
    RELAY_HOST: 'relay-7.internal.example',
    RELAY_PATH: 'tenant-4f2a9c/anthropic',
    RELAY_USER: 'svc-ccload-user',
    SHORT: 'x1',
  };
  const expandRef = (ref: string) => env[/^\$\{(\w+)\}$/.exec(ref)![1]!] ?? '';
  const written =
    'https://${RELAY_USER}:hunter2-literal@${RELAY_HOST}:8443/${RELAY_PATH}?sig=0123456789abcdef&v=${SHORT}';
  const expanded = `https://${env['RELAY_USER']}:hunter2-literal@${env['RELAY_HOST']}:8443/${env['RELAY_PATH']}?sig=0123456789abcdef&v=x1`;
  const parts = hiddenUrlParts(written, expanded, expandRef);
  const s = new Scrubber([KEY, ...parts]);
  const table: [string, string][] = [
    [`getaddrinfo ENOTFOUND ${env['RELAY_HOST']}`, 'getaddrinfo ENOTFOUND ${RELAY_HOST}'],
    [`connect ECONNREFUSED ${env['RELAY_HOST']}:8443`, 'connect ECONNREFUSED ${RELAY_HOST}:8443'],
    [`no route for /${env['RELAY_PATH']}/v1/messages`, 'no route for /${RELAY_PATH}/v1/messages'],
    [`user ${env['RELAY_USER']} unknown`, 'user ${RELAY_USER} unknown'],
    ['password hunter2-literal', 'password …'],
    ['bad sig 0123456789abcdef', 'bad sig …'],
    [`proxy ${JSON.stringify(`https://${env['RELAY_HOST']}:8443`)}`, 'proxy "https://${RELAY_HOST}:8443"'],
    ['a short value stays: x1', 'a short value stays: x1'],
    [`key ${KEY}`, 'key …wxyz'],
  ];
  for (const [input, want] of table) t.equal(s.text(input), want, JSON.stringify(input));
  t.equal(s.header(`host=${env['RELAY_HOST']}`), 'host=${RELAY_HOST}');

  // A URL without references: its literal host and path are shown anyway, so they stay.
  const plain = hiddenUrlParts(
    'https://relay.example.com/anthropic',
    'https://relay.example.com/anthropic',
    expandRef,
  );
  t.same(plain, [], 'nothing hidden');
  // The whole URL as one reference: the host is hidden, shown as that reference.
  env['RELAY_URL'] = 'https://relay-9.internal.example/v1';
  const whole = new Scrubber(hiddenUrlParts('${RELAY_URL}', env['RELAY_URL'], expandRef));
  t.equal(whole.text('getaddrinfo ENOTFOUND relay-9.internal.example'), 'getaddrinfo ENOTFOUND ${RELAY_URL}');
});

t.test('what stands for a hidden URL part is safe inside JSON and headers', async (t) => {
  const parts = hiddenUrlParts(
    'https://h.example/${file:/run/odd "dir"\\x/path}',
    'https://h.example/secret-path-value',
    () => 'secret-path-value',
  );
  t.same(
    parts.map((p) => p.shown),
    [
      '${file:/run/odd _dir__x/path}',
      'https://h.example/${file:/run/odd _dir__x/path}',
      'https://h.example/${file:/run/odd _dir__x/path}/',
    ],
  );
  const s = new Scrubber(parts);
  const body = JSON.stringify({ message: 'no route for /secret-path-value' });
  t.same(JSON.parse(s.text(body)), { message: 'no route for /${file:/run/odd _dir__x/path}' }, 'still JSON');
});
