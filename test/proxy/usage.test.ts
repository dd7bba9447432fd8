import t from 'tap';
import { emptyUsage, mergeUsage, usageFromJsonBody } from '../../src/proxy/usage.js';

t.test('emptyUsage is all zeros and a fresh object each time', async (t) => {
  const a = emptyUsage();
  t.same(a, { input: 0, output: 0, cacheCreation: 0, cacheRead: 0 });
  a.input = 5;
  t.equal(emptyUsage().input, 0);
});

t.test('mergeUsage: a stream report sequence, later non-null values win', async (t) => {
  const u = emptyUsage();
  // message_start.message.usage
  t.equal(
    mergeUsage(u, {
      input_tokens: 1200,
      cache_creation_input_tokens: 300,
      cache_read_input_tokens: 45_000,
      output_tokens: 1,
    }),
    true,
  );
  t.same(u, { input: 1200, output: 1, cacheCreation: 300, cacheRead: 45_000 });
  // message_delta.usage of the classic API: only the cumulative output.
  t.equal(mergeUsage(u, { output_tokens: 512 }), true);
  t.same(u, { input: 1200, output: 512, cacheCreation: 300, cacheRead: 45_000 });
  // message_delta.usage of the newer API: input and cache fields repeated, some as null.
  t.equal(
    mergeUsage(u, {
      input_tokens: 1210,
      cache_creation_input_tokens: null,
      cache_read_input_tokens: 45_100,
      output_tokens: 530,
      server_tool_use: { web_search_requests: 1 },
    }),
    true,
  );
  t.same(u, { input: 1210, output: 530, cacheCreation: 300, cacheRead: 45_100 });
});

t.test('mergeUsage ignores what is not a token count', async (t) => {
  const table: [unknown, boolean][] = [
    [null, false],
    [undefined, false],
    ['{"input_tokens":1}', false],
    [42, false],
    [{}, false],
    [{ cache_creation: { ephemeral_5m_input_tokens: 3 } }, false],
    [{ input_tokens: -1 }, false],
    [{ input_tokens: 1.5 }, false],
    [{ input_tokens: '7' }, false],
    [{ input_tokens: Number.NaN }, false],
    [{ output_tokens: 0 }, true],
  ];
  for (const [raw, seen] of table) {
    const u = emptyUsage();
    t.equal(mergeUsage(u, raw), seen, JSON.stringify(raw) ?? String(raw));
    t.same(u, emptyUsage(), 'counts stay zero');
  }
});

t.test('usageFromJsonBody reads a non-streaming answer', async (t) => {
  const body = Buffer.from(
    JSON.stringify({
      id: 'msg_01',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-5-5',
      content: [{ type: 'text', text: 'Hello "there" — ✓' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: {
        input_tokens: 25,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 12_000,
        output_tokens: 9,
      },
    }),
  );
  t.same(usageFromJsonBody(body), {
    model: 'claude-sonnet-5-5',
    usage: { input: 25, output: 9, cacheCreation: 0, cacheRead: 12_000 },
  });
});

t.test('usageFromJsonBody tolerates garbage and answers without usage', async (t) => {
  const table: [string, object][] = [
    ['', {}],
    ['not json', {}],
    ['{"usage":', {}],
    ['[{"usage":{"input_tokens":1}}]', {}],
    ['null', {}],
    ['"text"', {}],
    ['{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', {}],
    ['{"model":"m"}', { model: 'm' }],
    [
      '{"model":7,"usage":{"output_tokens":3}}',
      { usage: { input: 0, output: 3, cacheCreation: 0, cacheRead: 0 } },
    ],
    ['{"usage":{"input_tokens":null}}', {}],
    ['\ufeff{"model":"m"}', {}],
  ];
  for (const [text, want] of table) t.same(usageFromJsonBody(Buffer.from(text)), want, JSON.stringify(text));
  // Invalid UTF-8 must not throw either.
  t.same(usageFromJsonBody(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), {});
});
