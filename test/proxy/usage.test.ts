import t from 'tap';
import {
  billedTokens,
  cacheMissReason,
  emptyUsage,
  mergeUsage,
  type Usage,
  usageFromJsonBody,
} from '../../src/proxy/usage.js';

/** A Usage: the given counts, every other one zero. */
function U(o: Partial<Usage>): Usage {
  return { ...emptyUsage(), ...o };
}

t.test('emptyUsage is all zeros and a fresh object each time', async (t) => {
  const a = emptyUsage();
  t.same(a, U({ input: 0, output: 0, cacheCreation: 0, cacheRead: 0 }));
  t.equal(a.speed, undefined);
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
  t.same(u, U({ input: 1200, output: 1, cacheCreation: 300, cacheRead: 45_000 }));
  // message_delta.usage of the classic API: only the cumulative output.
  t.equal(mergeUsage(u, { output_tokens: 512 }), true);
  t.same(u, U({ input: 1200, output: 512, cacheCreation: 300, cacheRead: 45_000 }));
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
  t.same(u, U({ input: 1210, output: 530, cacheCreation: 300, cacheRead: 45_100, webSearchRequests: 1 }));
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
    usage: U({ input: 25, output: 9, cacheCreation: 0, cacheRead: 12_000 }),
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
      { usage: U({ input: 0, output: 3, cacheCreation: 0, cacheRead: 0 }) },
    ],
    ['{"usage":{"input_tokens":null}}', {}],
    ['\ufeff{"model":"m"}', {}],
  ];
  for (const [text, want] of table) t.same(usageFromJsonBody(Buffer.from(text)), want, JSON.stringify(text));
  // Invalid UTF-8 must not throw either.
  t.same(usageFromJsonBody(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), {});
});

t.test('usageFromJsonBody reads only the top-level members, whatever the content holds', async (t) => {
  const decoy = '"usage":{"input_tokens":999,"output_tokens":999},"model":"decoy"';
  const answer = {
    id: 'msg_02',
    content: [
      { type: 'text', text: `quoting a body: {${decoy}} \\ "` },
      { type: 'tool_use', id: 'toolu_1', name: 'x', input: { usage: { input_tokens: 7 }, model: 'inner' } },
      { type: 'thinking', thinking: 'x'.repeat(200_000), signature: 's' },
    ],
    model: 'claude-opus-5',
    usage: { input_tokens: 3, output_tokens: 4 },
    diagnostics: { cache_miss_reason: { type: 'tools_changed' } },
  };
  const want = {
    model: 'claude-opus-5',
    usage: U({ input: 3, output: 4, cacheCreation: 0, cacheRead: 0 }),
    cacheMissReason: 'tools_changed',
  };
  t.same(usageFromJsonBody(Buffer.from(JSON.stringify(answer))), want, 'compact');
  t.same(usageFromJsonBody(Buffer.from(` \r\n${JSON.stringify(answer, null, 2)}\n`)), want, 'pretty, padded');
  // Duplicate keys: the last one wins, as with JSON.parse.
  t.same(
    usageFromJsonBody(
      Buffer.from('{"model":"a","usage":{"output_tokens":1},"model":"b","usage":{"output_tokens":2}}'),
    ),
    { model: 'b', usage: U({ input: 0, output: 2, cacheCreation: 0, cacheRead: 0 }) },
  );
  // A member that is not valid JSON, or a top level that does not close, reads as nothing.
  t.same(usageFromJsonBody(Buffer.from('{"usage":{"output_tokens":1,}}')), {});
  t.same(usageFromJsonBody(Buffer.from('{"usage":{"output_tokens":1}')), {});
  t.same(usageFromJsonBody(Buffer.from('{"usage":{"output_tokens":1}} trailing')), {
    usage: U({ input: 0, output: 1, cacheCreation: 0, cacheRead: 0 }),
  });
});

t.test('mergeUsage reads the 2026 billing fields: TTL split, compaction, web search, speed', async (t) => {
  const u = emptyUsage();
  mergeUsage(u, {
    input_tokens: 23_000,
    output_tokens: 1000,
    cache_creation_input_tokens: 3000,
    cache_read_input_tokens: 500,
    cache_creation: { ephemeral_5m_input_tokens: 1000, ephemeral_1h_input_tokens: 2000 },
    server_tool_use: { web_search_requests: 3, web_fetch_requests: 2 },
    speed: 'fast',
    iterations: [
      {
        type: 'compaction',
        input_tokens: 180_000,
        output_tokens: 3500,
        cache_creation_input_tokens: 40,
        cache_read_input_tokens: 7,
        cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 40 },
      },
      { type: 'message', input_tokens: 23_000, output_tokens: 1000 },
    ],
  });
  t.same(
    u,
    U({
      input: 23_000,
      output: 1000,
      cacheCreation: 3000,
      cacheRead: 500,
      cacheCreation1h: 2000,
      compactionInput: 180_000,
      compactionOutput: 3500,
      compactionCacheCreation: 40,
      compactionCacheCreation1h: 40,
      compactionCacheRead: 7,
      webSearchRequests: 3,
      speed: 'fast',
    }),
  );
  t.same(
    billedTokens(u),
    { input: 203_000, output: 4500, cacheWrite5m: 1000, cacheWrite1h: 2040, cacheRead: 507 },
    'the message iteration is not counted twice; compaction is added',
  );
  // A later report's iterations replace the earlier sums; one without iterations keeps them.
  mergeUsage(u, { iterations: [{ type: 'compaction', input_tokens: 5, output_tokens: 1 }] });
  t.equal(u.compactionInput, 5);
  t.equal(u.compactionCacheCreation1h, 0);
  mergeUsage(u, { output_tokens: 1001 });
  t.equal(u.compactionInput, 5);
  // A 1-hour count above the total (an inconsistent relay) cannot make the 5-minute part negative.
  const odd = U({ cacheCreation: 10, cacheCreation1h: 50 });
  t.same(billedTokens(odd), { input: 0, output: 0, cacheWrite5m: 0, cacheWrite1h: 10, cacheRead: 0 });
});

t.test('cacheMissReason reads diagnostics.cache_miss_reason, bounded and sanitised', async (t) => {
  t.equal(
    cacheMissReason({ diagnostics: { cache_miss_reason: { type: 'tools_changed' } } }),
    'tools_changed',
  );
  t.equal(cacheMissReason({ diagnostics: { cache_miss_reason: 'model_changed' } }), 'model_changed');
  t.equal(cacheMissReason({ diagnostics: { cache_miss_reason: { type: null } } }), undefined);
  t.equal(cacheMissReason({ diagnostics: null }), undefined);
  t.equal(cacheMissReason(undefined), undefined);
  t.equal(
    cacheMissReason({ diagnostics: { cache_miss_reason: `<b>${'x'.repeat(100)}` } }),
    `_b_${'x'.repeat(61)}`,
  );
  t.same(
    usageFromJsonBody(
      Buffer.from(
        JSON.stringify({
          model: 'm',
          usage: { input_tokens: 1 },
          diagnostics: { cache_miss_reason: { type: 'system_changed' } },
        }),
      ),
    ).cacheMissReason,
    'system_changed',
  );
});
