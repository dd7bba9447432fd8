import t from 'tap';
import { isJson } from '../../src/proxy/json-check.js';
import { prng } from '../helpers/random.js';

function parses(b: Buffer): boolean {
  try {
    JSON.parse(b.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}

t.test('isJson agrees with JSON.parse on a table of edge cases', async (t) => {
  const table = [
    '{}',
    '[]',
    ' \t\r\n{ } ',
    '{"a":1}',
    '{"a":1,}',
    '[1,]',
    '[,1]',
    '{"a" 1}',
    '{a:1}',
    '"x"',
    '"\\u00e9\\n\\"\\\\\\/\\b\\f\\r\\t"',
    '"\\u12"',
    '"\\x"',
    '"a\tb"',
    '"\u0001"',
    '-0',
    '-',
    '01',
    '1.',
    '1.5e',
    '1.5e+7',
    '1E-2',
    '.5',
    'true',
    'tru',
    'false ',
    'null',
    'nul',
    'NaN',
    '{"a":[1,{"b":null}],"c":"d"}',
    '{"a":[1,{"b":null}],"c":"d"',
    '{"a":[1,{"b":null]},"c":"d"}',
    '{} {}',
    '',
    ' ',
    '\ufeff{}',
    '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hé ✓ 🎉"}}',
    '[[[[[[[[[[]]]]]]]]]]',
  ];
  for (const s of table) {
    const b = Buffer.from(s);
    t.equal(isJson(b, 0, b.length), parses(b), JSON.stringify(s));
  }
  // Raw bytes that are not UTF-8 inside a string: decoders replace them, JSON.parse accepts.
  const raw = Buffer.from([0x22, 0xff, 0xfe, 0x22]);
  t.equal(isJson(raw, 0, raw.length), parses(raw));
  // A range inside a larger buffer.
  const framed = Buffer.from('xx{"a":1}yy');
  t.equal(isJson(framed, 2, 9), true);
  // Deeper than the explicit stack: refused rather than overflowing.
  const deep = Buffer.from(`${'['.repeat(600)}${']'.repeat(600)}`);
  t.equal(isJson(deep, 0, deep.length), false);
});

t.test('isJson agrees with JSON.parse on 20 000 random mutations of stream events', async (t) => {
  const seeds = [
    '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"alpha \\"beta\\" \\u00e9 gamma"}}',
    '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":530,"input_tokens":-1.5e3}}',
    '{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"Read","input":{}}}',
    '[true,false,null,0,-0.25,"",{},[]]',
  ];
  const alphabet = Buffer.from('{}[]":,\\ \t\n0123456789-+.eEtrufalsn"\u0001\u00ff');
  const rnd = prng(42);
  let disagreements = 0;
  let valid = 0;
  for (let n = 0; n < 20_000; n++) {
    const b = Buffer.from(seeds[n % seeds.length]!);
    const edits = 1 + Math.floor(rnd() * 3);
    let cur = b;
    for (let k = 0; k < edits; k++) {
      const at = Math.floor(rnd() * cur.length);
      const op = rnd();
      const ch = alphabet[Math.floor(rnd() * alphabet.length)]!;
      if (op < 0.33) cur = Buffer.concat([cur.subarray(0, at), cur.subarray(at + 1)]);
      else if (op < 0.66) cur = Buffer.concat([cur.subarray(0, at), Buffer.from([ch]), cur.subarray(at)]);
      else {
        cur = Buffer.from(cur);
        cur[at] = ch;
      }
    }
    const want = parses(cur);
    if (want) valid++;
    if (isJson(cur, 0, cur.length) !== want) {
      disagreements++;
      if (disagreements <= 5)
        t.fail(`disagrees on ${JSON.stringify(cur.toString('latin1'))}: JSON.parse ${want}`);
    }
  }
  t.equal(disagreements, 0);
  t.ok(valid > 500, `${valid} of the mutations are still valid JSON (both sides are exercised)`);
});
