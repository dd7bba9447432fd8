import t, { type Test } from 'tap';
import { claudeCodeRequest } from '../../src/dev/anthropic-shapes.js';
import { rewriteModel, type SniffResult, sniffRequest } from '../../src/proxy/body-sniff.js';
import { prng } from '../helpers/random.js';

/** What JSON.parse says the body's model and stream are, in sniffRequest's terms (for bodies it accepts). */
function oracle(body: Buffer): { model: unknown; stream: boolean } {
  const parsed = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  return { model: parsed['model'], stream: parsed['stream'] === true };
}

function accepted(t: Test, body: Buffer, label: string): Extract<SniffResult, { ok: true }> | undefined {
  const r = sniffRequest(body);
  if (!r.ok) {
    t.fail(`${label}: rejected: ${r.message}`);
    return undefined;
  }
  const want = oracle(body);
  t.equal(r.model, want.model, `${label}: model`);
  t.equal(r.stream, want.stream, `${label}: stream`);
  t.equal(JSON.parse(body.toString('utf8', r.modelStart, r.modelEnd)), r.model, `${label}: token range`);
  return r;
}

t.test('finds top-level model and stream in edge-case bodies', async (t) => {
  const table: [string, string, string, boolean][] = [
    ['plain', '{"model":"m","stream":true}', 'm', true],
    ['whitespace everywhere', ' \r\n\t{ \n "model" \t: \r\n "m" ,\n\t"stream"  :  false \n}\n ', 'm', false],
    ['missing stream is false', '{"model":"claude-haiku-5-5","max_tokens":64}', 'claude-haiku-5-5', false],
    ['stream null is false', '{"model":"m","stream":null}', 'm', false],
    ['stream as a string is false', '{"model":"m","stream":"true"}', 'm', false],
    ['empty object values', '{"a":{},"b":[],"model":"m","c":[{}],"stream":true}', 'm', true],
    [
      'escaped quotes before model',
      '{"system":"he said \\"model\\": \\"x\\", \\"","model":"real"}',
      'real',
      false,
    ],
    ['string ending in an escaped backslash', '{"a":"C:\\\\","model":"m"}', 'm', false],
    ['escaped backslash then escaped quote', '{"a":"x\\\\\\"y","model":"m"}', 'm', false],
    ['brackets inside strings', '{"a":"}]{[","b":["]","}"],"model":"m"}', 'm', false],
    [
      'nested model keys are not taken',
      '{"messages":[{"model":"nested","content":{"model":"deeper","stream":true}}],' +
        '"tools":[{"input_schema":{"properties":{"model":{"type":"string"}}}}],"model":"top"}',
      'top',
      false,
    ],
    [
      'model first, nested model after',
      '{"model":"top","messages":[{"model":"nested"}],"stream":true}',
      'top',
      true,
    ],
    ['model after messages', '{"messages":[{"role":"user","content":"hi"}],"model":"late"}', 'late', false],
    ['unicode escapes in model', '{"model":"claude-\\u00e9\\ud83d\\ude80\\n"}', 'claude-é🚀\n', false],
    ['raw UTF-8 model', '{"model":"模型-✓"}', '模型-✓', false],
    ['escaped slash in model', '{"model":"org\\/claude"}', 'org/claude', false],
    ['escaped key spelling', '{"mod\\u0065l":"m","str\\u0065am":true}', 'm', true],
    ['duplicate model: the last wins', '{"model":"first","messages":[],"model":"second"}', 'second', false],
    ['duplicate stream: the last wins', '{"model":"m","stream":true,"stream":false}', 'm', false],
    [
      'numbers, literals, nested literals',
      '{"n":-1.5e+3,"t":true,"f":false,"z":null,"x":[1,2e5,null],"model":"m"}',
      'm',
      false,
    ],
    ['deep nesting', `{"a":${'['.repeat(600)}${']'.repeat(600)},"model":"m"}`, 'm', false],
    ['very deep nesting', `{"a":${'[{"b":'.repeat(20_000)}1${'}]'.repeat(20_000)},"model":"m"}`, 'm', false],
    ['a normal body after a very deep one', '{"x":[[{}]],"model":"after","stream":true}', 'after', true],
  ];
  for (const [label, text, model, stream] of table) {
    const r = accepted(t, Buffer.from(text), label);
    if (!r) continue;
    t.equal(r.model, model, `${label}: expected model`);
    t.equal(r.stream, stream, `${label}: expected stream`);
  }
});

t.test('the model token range points at the last top-level model', async (t) => {
  const text = '{"model":"first","messages":[{"model":"x"}],"model" : "sec\\"ond" ,"stream":true}';
  const r = sniffRequest(Buffer.from(text));
  t.ok(r.ok);
  if (!r.ok) return;
  t.equal(text.slice(r.modelStart, r.modelEnd), '"sec\\"ond"');
  t.equal(r.model, 'sec"ond');
});

t.test('rejects bodies the proxy must not route, with a precise message', async (t) => {
  const table: [string, string][] = [
    ['', 'request body is empty'],
    [' \n\t ', 'request body is empty'],
    ['[{"model":"m"}]', 'request body must be a JSON object, not an array'],
    ['"model"', 'request body must be a JSON object, not a string'],
    ['42', 'request body must be a JSON object, not a number'],
    ['true', 'request body must be a JSON object, not a boolean'],
    ['null', 'request body must be a JSON object, not null'],
    ['hello', "request body is not valid JSON: unexpected 'h' at byte 0"],
    ['\ufeff{"model":"m"}', 'request body is not valid JSON: unexpected byte 0xef at byte 0'],
    ['{', 'request body is not valid JSON: unexpected end of input at byte 1'],
    ['{"model":"m"', 'request body is not valid JSON: unexpected end of input at byte 12'],
    ['{"model":"m",', 'request body is not valid JSON: unexpected end of input at byte 13'],
    ['{"model":"unterminated', 'request body is not valid JSON: unexpected end of input at byte 22'],
    ['{"messages":[{"a":1}', 'request body is not valid JSON: unexpected end of input at byte 20'],
    ['{"messages":[{"a":"x\\"}]}', 'request body is not valid JSON: unexpected end of input at byte 25'],
    ['{"messages":[{"a":1]],"model":"m"}', "request body is not valid JSON: unexpected ']' at byte 19"],
    ['{"messages":[1}', "request body is not valid JSON: unexpected '}' at byte 14"],
    [
      `{"a":${'['.repeat(5000)}${']'.repeat(4999)}}`,
      "request body is not valid JSON: unexpected '}' at byte 10004",
    ],
    [
      '{"model":"m"}}',
      "request body is not valid JSON: unexpected '}' at byte 13, expected nothing after the top-level object",
    ],
    [
      '{"model":"m"} {}',
      "request body is not valid JSON: unexpected '{' at byte 14, expected nothing after the top-level object",
    ],
    [
      '{"model":"m" "stream":true}',
      `request body is not valid JSON: unexpected '"' at byte 13, expected ',' or '}'`,
    ],
    ['{"model":"m",}', "request body is not valid JSON: unexpected '}' at byte 13, expected a property name"],
    ['{model:"m"}', "request body is not valid JSON: unexpected 'm' at byte 1, expected a property name"],
    ['{"model" "m"}', `request body is not valid JSON: unexpected '"' at byte 9, expected ':'`],
    ['{"model":}', "request body is not valid JSON: unexpected '}' at byte 9, expected a value"],
    ['{"model":tru}', "request body is not valid JSON: unexpected 't' at byte 9"],
    ['{"model":"m","stream":tr', 'request body is not valid JSON: unexpected end of input at byte 24'],
    ['{"model":"m","stream":1', 'request body is not valid JSON: unexpected end of input at byte 23'],
    ['{"model":"bad \\x escape"}', 'request body is not valid JSON: bad string in "model" at byte 9'],
    ['{"model":"raw\nnewline"}', 'request body is not valid JSON: bad string in "model" at byte 9'],
    ['{"mod\\u00zzl":"m"}', 'request body is not valid JSON: bad property name at byte 1'],
    ['{}', 'request body has no "model" field'],
    ['{"messages":[{"model":"nested"}],"stream":true}', 'request body has no "model" field'],
    ['{"model":123}', 'request body "model" field must be a string'],
    ['{"model":null}', 'request body "model" field must be a string'],
    ['{"model":["m"]}', 'request body "model" field must be a string'],
    ['{"model":"m","model":{"id":"m"}}', 'request body "model" field must be a string'],
    ['{"model":""}', 'request body "model" field is empty'],
  ];
  for (const [text, message] of table) {
    t.same(sniffRequest(Buffer.from(text)), { ok: false, message }, JSON.stringify(text));
  }
});

t.test('every truncation of a body is rejected as unexpected end of input', async (t) => {
  const body = Buffer.from(
    JSON.stringify({
      model: 'claude-opus-5-5',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'a "quoted" \\ path\n✓ 🚀', model: 'x' }] },
        {
          role: 'assistant',
          content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { n: [1, -2.5e3, null] } }],
        },
      ],
      tools: [{ name: 'Bash', input_schema: { type: 'object', properties: { model: { type: 'string' } } } }],
      metadata: { user_id: '{"device_id":"d"}' },
      max_tokens: 32000,
      stream: true,
    }),
  );
  t.ok(sniffRequest(body).ok, 'the whole body is accepted');
  let wrong = 0;
  for (let cut = 1; cut < body.length; cut++) {
    const r = sniffRequest(body.subarray(0, cut));
    const want = `request body is not valid JSON: unexpected end of input at byte ${cut}`;
    if (r.ok || r.message !== want) {
      wrong++;
      if (wrong < 5) t.fail(`cut at ${cut}: ${JSON.stringify(r)}`);
    }
  }
  t.equal(wrong, 0, `all ${body.length - 1} truncations rejected`);
});

const PALETTE = [
  'a',
  'b',
  ' ',
  '"',
  '\\',
  '\\\\',
  '/',
  '\n',
  '\t',
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  'é',
  '✓',
  '🚀',
  '\u2028',
  '\u0001',
];

function randomString(rnd: () => number, maxLen: number): string {
  let s = '';
  const len = Math.floor(rnd() * maxLen);
  for (let i = 0; i < len; i++) s += PALETTE[Math.floor(rnd() * PALETTE.length)];
  return s;
}

function randomValue(rnd: () => number, depth: number): unknown {
  const r = rnd();
  if (depth <= 0 || r < 0.35) return randomString(rnd, 40);
  if (r < 0.45) return Math.round((rnd() - 0.5) * 1e6) / 100;
  if (r < 0.5) return rnd() < 0.5;
  if (r < 0.55) return null;
  if (r < 0.75) return Array.from({ length: Math.floor(rnd() * 4) }, () => randomValue(rnd, depth - 1));
  const o: Record<string, unknown> = {};
  const n = Math.floor(rnd() * 5);
  for (let i = 0; i < n; i++) {
    const key = rnd() < 0.2 ? (rnd() < 0.5 ? 'model' : 'stream') : randomString(rnd, 8);
    o[key] = randomValue(rnd, depth - 1);
  }
  return o;
}

t.test('agrees with JSON.parse on generated bodies', async (t) => {
  const rnd = prng(0xcc10ad);
  let checked = 0;
  for (let i = 0; i < 2000; i++) {
    const top: Record<string, unknown> = {};
    const keys = Math.floor(rnd() * 6);
    for (let k = 0; k < keys; k++) top[randomString(rnd, 6)] = randomValue(rnd, 4);
    if (rnd() < 0.9) top['model'] = rnd() < 0.9 ? randomString(rnd, 20) || 'm' : randomValue(rnd, 2);
    for (let k = 0; k < keys; k++) top[randomString(rnd, 6)] = randomValue(rnd, 4);
    if (rnd() < 0.7) top['stream'] = rnd() < 0.8 ? rnd() < 0.5 : randomValue(rnd, 1);
    const text = JSON.stringify(top, null, rnd() < 0.3 ? 2 : undefined);
    const body = Buffer.from(text);
    const r = sniffRequest(body);
    const want = oracle(body);
    if (typeof want.model === 'string' && want.model !== '') {
      if (!r.ok || r.model !== want.model || r.stream !== want.stream) {
        t.fail(`case ${i}: ${text.slice(0, 200)} → ${JSON.stringify(r)}`);
        continue;
      }
      if (JSON.parse(body.toString('utf8', r.modelStart, r.modelEnd)) !== want.model) {
        t.fail(`case ${i}: token range`);
      }
    } else if (r.ok) {
      t.fail(`case ${i}: accepted a body whose model is ${JSON.stringify(want.model)}`);
    }
    checked++;
  }
  t.equal(checked, 2000);
});

t.test('strings with backslash runs at every position around the inline scan limit', async (t) => {
  for (let prefix = 0; prefix < 40; prefix++) {
    for (const tail of ['\\\\', '\\"', '\\\\\\"', '\\\\\\\\', '\\u0022', '\\n']) {
      const value = `${'x'.repeat(prefix)}${tail}${'y'.repeat(prefix % 7)}`;
      const text = `{"a":"${value}","b":["${value}",{"c":"${value}"}],"model":"m${value}"}`;
      accepted(t, Buffer.from(text), `prefix ${prefix} tail ${tail}`);
    }
  }
});

t.test('Claude Code–shaped bodies of every size', async (t) => {
  for (const bodyBytes of [111, 43_000, 200_000, 2_000_000]) {
    for (const stream of [true, false]) {
      const { body } = claudeCodeRequest({ model: 'claude-opus-5-5', stream, bodyBytes });
      const r = accepted(t, body, `${bodyBytes} B stream=${stream}`);
      t.equal(r?.model, 'claude-opus-5-5');
      t.equal(r?.stream, stream);
    }
  }
});

t.test('rewriteModel replaces only the model token', async (t) => {
  const { body } = claudeCodeRequest({ model: 'sonnet', stream: true, bodyBytes: 43_000 });
  const r = sniffRequest(body);
  t.ok(r.ok);
  if (!r.ok) return;
  for (const newModel of ['claude-sonnet-5-5', 'x', 'a "quoted" \\ model ✓ 🚀\n', 'sonnet']) {
    const out = rewriteModel(body, r.modelStart, r.modelEnd, newModel);
    const token = JSON.stringify(newModel);
    t.equal(out.length, body.length - (r.modelEnd - r.modelStart) + Buffer.byteLength(token), 'length');
    t.ok(out.subarray(0, r.modelStart).equals(body.subarray(0, r.modelStart)), 'prefix byte for byte');
    t.ok(
      out.subarray(r.modelStart + Buffer.byteLength(token)).equals(body.subarray(r.modelEnd)),
      'suffix byte for byte',
    );
    const before = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
    const after = JSON.parse(out.toString('utf8')) as Record<string, unknown>;
    t.same(after, { ...before, model: newModel }, 'same document apart from the model');
    t.same(Object.keys(after), Object.keys(before), 'key order kept');
    const again = sniffRequest(out);
    t.same(again.ok && [again.model, again.stream], [newModel, true], 'sniffs back');
  }
  t.ok(
    rewriteModel(body, r.modelStart, r.modelEnd, 'sonnet').equals(body),
    'same model gives identical bytes',
  );
});

t.test('rewriteModel with duplicate keys rewrites the one JSON.parse would use', async (t) => {
  const body = Buffer.from('{"model":"a","messages":[{"model":"n"}],"model":"b","stream":false}');
  const r = sniffRequest(body);
  t.ok(r.ok);
  if (!r.ok) return;
  const out = rewriteModel(body, r.modelStart, r.modelEnd, 'mapped');
  t.equal(out.toString(), '{"model":"a","messages":[{"model":"n"}],"model":"mapped","stream":false}');
  t.equal((JSON.parse(out.toString()) as { model: string }).model, 'mapped');
});
