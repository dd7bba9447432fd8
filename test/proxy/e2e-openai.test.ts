/**
 * `protocol: openai` channels end to end: a real daemon, the fake OpenAI-compatible upstream, raw
 * HTTP clients and the official Anthropic SDK. What goes upstream, what the client gets, outcomes and
 * failover across protocols, attempt records, count_tokens and /v1/models.
 */
import Anthropic from '@anthropic-ai/sdk';
import t from 'tap';
import {
  okChat,
  okChatStream,
  openaiStatus,
  startFakeOpenAIUpstream,
} from '../../src/dev/fake-openai-upstream.js';
import type { FakeUpstream } from '../../src/dev/fake-upstream.js';
import { MODEL, messagesBody } from '../helpers/messages.js';
import type { Teardownable } from '../helpers/tmp.js';
import {
  anthropicErrorOf,
  attempts,
  CLIENT_TOKEN,
  channelKey,
  claudeCode,
  coolingScopes,
  send,
  sseEvents,
  startProxy,
  startUpstreams,
} from './e2e-helpers.js';

async function openaiUpstream(t: Teardownable): Promise<FakeUpstream> {
  const f = await startFakeOpenAIUpstream();
  t.teardown(() => f.close());
  return f;
}

t.test(
  'a Claude Code stream through an openai channel: request translated, Anthropic SSE back, usage recorded',
  async (t) => {
    const up = await openaiUpstream(t);
    const { url, daemon } = await startProxy(t, {
      channels: [
        {
          name: 'deepseek',
          url: `${up.url}/v1`,
          protocol: 'openai',
          models: ['claude-*'],
          modelMap: { [MODEL]: 'deepseek-chat' },
        },
      ],
    });
    const cc = claudeCode(MODEL, true);
    const r = await send(url, { path: '/v1/messages?beta=true', headers: cc.headers, body: cc.body });
    t.equal(r.status, 200);
    t.match(r.headers['content-type'], /^text\/event-stream/);
    const req = up.requests[0]!;
    t.equal(req.url, '/v1/chat/completions', 'POST {url}/chat/completions, the client query dropped');
    t.equal(
      req.headers.authorization,
      `Bearer ${channelKey('deepseek')}`,
      'the key as Authorization: Bearer',
    );
    for (const h of [
      'x-api-key',
      'anthropic-version',
      'anthropic-beta',
      'x-claude-code-session-id',
      'x-stainless-os',
    ])
      t.notOk(h in req.headers, `${h} is not sent to an OpenAI upstream`);
    const sent = req.json as Record<string, unknown>;
    t.equal(sent['model'], 'deepseek-chat', 'model_map applies');
    t.equal(sent['stream'], true);
    t.same(sent['stream_options'], { include_usage: true });
    t.ok(Array.isArray(sent['tools']));

    const events = sseEvents(r.body);
    t.same(
      events.map((e) => e.event),
      [
        'message_start',
        'ping',
        'content_block_start',
        'content_block_delta',
        'content_block_delta',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    );
    const start = JSON.parse(events[0]!.data) as { message: { model: string } };
    t.equal(start.message.model, MODEL, 'the model as the client asked for it');
    const rows = await attempts(daemon, { requestId: r.requestId, atLeast: 1 });
    t.match(rows[0], {
      channel: 'deepseek',
      modelRequested: MODEL,
      modelSent: 'deepseek-chat',
      status: 200,
      final: true,
      streamed: true,
      inputTokens: 112,
      outputTokens: 9,
      cacheReadTokens: 2000,
      cacheCreationTokens: 0,
    });
  },
);

t.test('the SDK through an openai channel: non-streaming, streaming, a tool round trip', async (t) => {
  const up = await openaiUpstream(t);
  const { url } = await startProxy(t, {
    channels: [{ name: 'oa', url: `${up.url}/v1`, protocol: 'openai' }],
  });
  const sdk = new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  const params = { model: MODEL, max_tokens: 64, messages: [{ role: 'user' as const, content: 'hello' }] };
  const m = await sdk.messages.create(params);
  t.equal(m.type, 'message');
  t.equal(m.model, MODEL);
  t.same(m.content, [{ type: 'text', text: 'Hello from the fake OpenAI upstream.' }]);
  t.equal(m.stop_reason, 'end_turn');
  t.equal(m.usage.cache_read_input_tokens, 2000);

  const texts: string[] = [];
  const stream = sdk.messages.stream(params);
  stream.on('text', (x) => texts.push(x));
  const final = await stream.finalMessage();
  t.equal(texts.join(''), 'Hello from the fake OpenAI upstream.');
  t.equal(final.stop_reason, 'end_turn');
  t.equal(final.usage.output_tokens, 9);

  // Tool round trip: the model calls two tools (arguments split over chunks), the SDK sends results back.
  up.enqueue(
    okChatStream({
      model: 'x',
      chunks: ['Checking.'],
      toolCalls: [
        { id: 'call_1', name: 'Read', args: ['{"pa', 'th":"/src/a.ts"}'] },
        { id: 'call_2', name: 'Grep', args: ['{"pattern":', '"TODO"}'] },
      ],
    }),
  );
  const tools = [
    {
      name: 'Read',
      description: 'Read a file',
      input_schema: { type: 'object' as const, properties: { path: { type: 'string' } }, required: ['path'] },
    },
    {
      name: 'Grep',
      description: 'Search',
      input_schema: { type: 'object' as const, properties: { pattern: { type: 'string' } } },
    },
  ];
  const first = await sdk.messages.stream({ ...params, tools }).finalMessage();
  t.equal(first.stop_reason, 'tool_use');
  const uses = first.content.filter((b) => b.type === 'tool_use');
  t.same(
    uses.map((u) => [u.id, u.name, u.input]),
    [
      ['call_1', 'Read', { path: '/src/a.ts' }],
      ['call_2', 'Grep', { pattern: 'TODO' }],
    ],
  );
  up.reset();
  const second = await sdk.messages.create({
    ...params,
    tools,
    messages: [
      ...params.messages,
      { role: 'assistant', content: first.content },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: 'export {}' },
          { type: 'tool_result', tool_use_id: 'call_2', content: 'no matches', is_error: true },
        ],
      },
    ],
  });
  t.equal(second.stop_reason, 'end_turn');
  const sent = up.requests[0]!.json as { messages: Record<string, unknown>[] };
  t.same(sent.messages.slice(1), [
    {
      role: 'assistant',
      content: 'Checking.',
      tool_calls: [
        { id: 'call_1', type: 'function', function: { name: 'Read', arguments: '{"path":"/src/a.ts"}' } },
        { id: 'call_2', type: 'function', function: { name: 'Grep', arguments: '{"pattern":"TODO"}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'call_1', content: 'export {}' },
    { role: 'tool', tool_call_id: 'call_2', content: 'Error: no matches' },
  ]);
});

t.test('the SDK gets typed errors from OpenAI-shaped failures', async (t) => {
  const up = await openaiUpstream(t);
  const { url } = await startProxy(t, {
    channels: [{ name: 'oa', url: `${up.url}/v1`, protocol: 'openai' }],
    routing: { max_attempts: 1 },
  });
  const sdk = new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  const params = { model: MODEL, max_tokens: 64, messages: [{ role: 'user' as const, content: 'hello' }] };
  up.enqueue(
    openaiStatus(
      400,
      "This model's maximum context length is 65536 tokens. However, you requested 70000 tokens.",
      {
        code: 'context_length_exceeded',
      },
    ),
  );
  const e1 = await sdk.messages.create(params).catch((e: unknown) => e);
  t.ok(e1 instanceof Anthropic.BadRequestError, 'context length → BadRequestError');
  t.match((e1 as { error: unknown }).error, {
    type: 'error',
    error: { type: 'invalid_request_error', message: /^prompt is too long/ },
  });
  t.equal(up.requests.length, 1, 'not failed over or retried');

  up.enqueue(openaiStatus(429, 'Rate limit reached for requests'));
  const e2 = await sdk.messages.create(params).catch((e: unknown) => e);
  t.ok(e2 instanceof Anthropic.RateLimitError, '429 → RateLimitError');

  up.enqueue(openaiStatus(401, 'Incorrect API key provided'));
  const e3 = await sdk.messages.create({ ...params, model: 'claude-haiku-5-5' }).catch((e: unknown) => e);
  t.ok(e3 instanceof Anthropic.AuthenticationError, '401 → AuthenticationError');

  const e4 = await sdk.messages
    .create({
      ...params,
      model: 'claude-opus-5-5',
      messages: [
        {
          role: 'user',
          content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'x' } }],
        },
      ],
    })
    .catch((e: unknown) => e);
  t.ok(e4 instanceof Anthropic.BadRequestError, 'an unrepresentable request → BadRequestError');
  t.match(
    (e4 as { error: { error: { message: string } } }).error.error.message,
    /block of type "document" cannot be sent to an OpenAI channel/,
  );
});

t.test(
  'failover from a failing Anthropic channel to an OpenAI channel is invisible (SDK, both ways of asking)',
  async (t) => {
    const [anth] = await startUpstreams(t, 1);
    const up = await openaiUpstream(t);
    anth!.setDefault({ kind: 'status', status: 529 });
    const { url, daemon } = await startProxy(t, {
      channels: [
        { name: 'anthropic', url: anth!.url, priority: 10 },
        { name: 'openai', url: `${up.url}/v1`, protocol: 'openai', priority: 5 },
      ],
    });
    const sdk = new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
    const params = { model: MODEL, max_tokens: 64, messages: [{ role: 'user' as const, content: 'hello' }] };
    const m = await sdk.messages.create(params);
    t.equal(m.content[0]?.type === 'text' && m.content[0].text, 'Hello from the fake OpenAI upstream.');
    anth!.setDefault({ kind: 'reset' });
    const s = await sdk.messages.stream(params).finalMessage();
    t.equal(s.stop_reason, 'end_turn');
    t.equal(anth!.requests.length >= 1, true, 'the Anthropic channel was tried first');
    const rows = await attempts(daemon, { atLeast: 2 });
    t.ok(rows.some((r) => r.channel === 'openai' && r.final && r.inputTokens === 112));
  },
);

t.test(
  'failover the other way, within one request: an OpenAI 500 or a stream cut before content, then Anthropic',
  async (t) => {
    const [anth] = await startUpstreams(t, 1);
    const up = await openaiUpstream(t);
    const { url, daemon } = await startProxy(t, {
      channels: [
        { name: 'openai', url: `${up.url}/v1`, protocol: 'openai', priority: 10 },
        { name: 'anthropic', url: anth!.url, priority: 5 },
      ],
    });
    up.enqueue(openaiStatus(500, 'internal'));
    const r1 = await send(url, { body: messagesBody({ model: MODEL, stream: true }) });
    t.equal(r1.status, 200);
    t.equal(sseEvents(r1.body).at(-1)?.event, 'message_stop');
    const rows = await attempts(daemon, { requestId: r1.requestId, atLeast: 2 });
    t.same(
      rows.map((r) => [r.channel, r.status, r.final]),
      [
        ['openai', 500, false],
        ['anthropic', 200, true],
      ],
    );
  },
);

t.test(
  'a stream cut mid-way: before content it fails over, after content the client gets an error event',
  async (t) => {
    const a = await openaiUpstream(t);
    const b = await openaiUpstream(t);
    const { url, daemon } = await startProxy(t, {
      channels: [
        { name: 'a', url: `${a.url}/v1`, protocol: 'openai', priority: 10 },
        { name: 'b', url: `${b.url}/v1`, protocol: 'openai', priority: 5 },
      ],
    });
    a.enqueue(okChatStream({ model: 'x', cutAfter: 1 }));
    const r1 = await send(url, { body: messagesBody({ model: MODEL, stream: true }) });
    t.equal(r1.status, 200);
    t.equal(sseEvents(r1.body).at(-1)?.event, 'message_stop', 'the second channel answered whole');
    t.equal(b.requests.length, 1);

    // Another model: channel a cools for MODEL only (channel+model scope), so it is tried first again.
    a.enqueue(okChatStream({ model: 'x', cutAfter: 3 }));
    const r2 = await send(url, { body: messagesBody({ model: 'claude-haiku-5-5', stream: true }) });
    const events = sseEvents(r2.body);
    t.equal(events.at(-1)?.event, 'error', 'a committed stream that broke ends with an error event');
    t.notOk(events.some((e) => e.event === 'message_stop'));
    const rows = await attempts(daemon, { requestId: r2.requestId, atLeast: 1 });
    t.match(rows.at(-1), { channel: 'a', errorClass: 'CCL_STREAM_BROKEN', final: true });
  },
);

t.test('count_tokens answers a local estimate for openai-only models; /v1/models lists them', async (t) => {
  const up = await openaiUpstream(t);
  const { url, daemon } = await startProxy(t, {
    channels: [
      { name: 'oa', url: `${up.url}/v1`, protocol: 'openai', models: ['claude-sonnet-5-5', 'qwen-coder'] },
    ],
  });
  const cc = claudeCode(MODEL, true);
  const r = await send(url, {
    path: '/v1/messages/count_tokens?beta=true',
    headers: cc.headers,
    body: cc.body,
  });
  t.equal(r.status, 200);
  const n = (r.json() as { input_tokens: number }).input_tokens;
  t.ok(n > 5000 && n < 20000, `a plausible estimate (${n})`);
  t.equal(up.requests.length, 0, 'nothing sent upstream');
  const rows = await attempts(daemon, { requestId: r.requestId, atLeast: 1 });
  t.match(rows[0], { endpoint: 'count_tokens', channel: 'oa', status: 200, final: true });

  const models = await send(url, { method: 'GET', path: '/v1/models' });
  t.same(
    (models.json() as { data: { id: string }[] }).data.map((m) => m.id),
    ['claude-sonnet-5-5', 'qwen-coder'],
  );
  const err = await send(url, { body: '{"model":"qwen-coder","messages":"x"}' });
  t.equal(err.status, 400);
  t.match(anthropicErrorOf(err.body), {
    type: 'invalid_request_error',
    message: /messages must be an array/,
  });
});

t.test('a request an openai channel cannot carry goes to an Anthropic channel that can', async (t) => {
  const [anth] = await startUpstreams(t, 1);
  const up = await openaiUpstream(t);
  const { url } = await startProxy(t, {
    channels: [
      { name: 'openai', url: `${up.url}/v1`, protocol: 'openai', priority: 10 },
      { name: 'anthropic', url: anth!.url, priority: 5 },
    ],
  });
  const body = {
    model: MODEL,
    max_tokens: 10,
    messages: [
      { role: 'user', content: [{ type: 'document', source: { type: 'url', url: 'https://x/y.pdf' } }] },
    ],
  };
  const r = await send(url, { body });
  t.equal(r.status, 200);
  t.equal(up.requests.length, 0);
  t.equal(anth!.requests.length, 1);
});

t.test(
  'outcomes on openai channels: 429 cools key+model, 401 the key, 5xx channel+model; quota spent is a 402',
  async (t) => {
    const up = await openaiUpstream(t);
    const { url, daemon } = await startProxy(t, {
      channels: [
        {
          name: 'oa',
          url: `${up.url}/v1`,
          protocol: 'openai',
          keys: [channelKey('oa', 0), channelKey('oa', 1)],
        },
      ],
      routing: { base: '5s', max: '10s' },
    });
    up.enqueue(openaiStatus(429, 'Rate limit reached', { headers: { 'retry-after': '3' } }));
    const r1 = await send(url, { body: messagesBody({ model: MODEL, stream: true }) });
    t.equal(r1.status, 200, 'the second key answered');
    t.equal(up.requests[1]!.headers.authorization, `Bearer ${channelKey('oa', 1)}`);
    t.same(coolingScopes(daemon), [`key+model:oa#0|${MODEL}`]);

    up.enqueue(openaiStatus(401, 'Incorrect API key provided'));
    await send(url, { body: messagesBody({ model: 'claude-haiku-5-5', stream: true }) });
    t.ok(coolingScopes(daemon).includes('key:oa#1'), '401 cools the key');

    up.enqueue(
      openaiStatus(429, 'You exceeded your current quota', {
        code: 'insufficient_quota',
        type: 'insufficient_quota',
      }),
    );
    const r3 = await send(url, { body: messagesBody({ model: 'claude-opus-5-5', stream: true }) });
    const rows = await attempts(daemon, { requestId: r3.requestId, atLeast: 1 });
    t.equal(rows[0]!.status, 402, 'insufficient_quota is recorded as 402');
    t.ok(coolingScopes(daemon).includes('key:oa#0'), 'and cools the key');
  },
);

t.test(
  'timeouts on openai channels: headers then silence, or a role chunk then silence, fail over',
  async (t) => {
    const a = await openaiUpstream(t);
    const b = await openaiUpstream(t);
    const { url, daemon } = await startProxy(t, {
      channels: [
        { name: 'a', url: `${a.url}/v1`, protocol: 'openai', priority: 10 },
        { name: 'b', url: `${b.url}/v1`, protocol: 'openai', priority: 5 },
      ],
    });
    a.enqueue({ kind: 'headers-then-stall' });
    const r1 = await send(url, { body: messagesBody({ model: MODEL, stream: true }) });
    t.equal(sseEvents(r1.body).at(-1)?.event, 'message_stop');
    a.enqueue(okChatStream({ model: 'x', stallAfter: 1 }));
    const r2 = await send(url, { body: messagesBody({ model: 'claude-haiku-5-5', stream: true }) });
    t.equal(sseEvents(r2.body).at(-1)?.event, 'message_stop');
    const rows = await attempts(daemon, { atLeast: 4 });
    t.same(
      rows.map((r) => [r.channel, r.errorClass]),
      [
        ['a', 'CCL_FIRST_TOKEN_TIMEOUT'],
        ['b', null],
        ['a', 'CCL_FIRST_TOKEN_TIMEOUT'],
        ['b', null],
      ],
    );
  },
);

t.test(
  'session pins work across protocols: sessions on a mixed pair of channels stay where they started',
  async (t) => {
    const [anth] = await startUpstreams(t, 1);
    const up = await openaiUpstream(t);
    const { url } = await startProxy(t, {
      channels: [
        { name: 'anthropic', url: anth!.url, priority: 10 },
        { name: 'openai', url: `${up.url}/v1`, protocol: 'openai', priority: 10 },
      ],
    });
    const sessions = Array.from({ length: 8 }, (_, i) => `5e55a0${i}0-0000-4000-8000-00000000000${i}`);
    for (let turn = 0; turn < 4; turn++) {
      for (const sid of sessions) {
        const userId = JSON.stringify({ device_id: 'd'.repeat(64), account_uuid: '', session_id: sid });
        const res = await send(url, {
          headers: { 'x-claude-code-session-id': sid },
          body: {
            model: MODEL,
            max_tokens: 8,
            metadata: { user_id: userId },
            messages: [{ role: 'user', content: `turn ${turn}` }],
            stream: turn % 2 === 0,
          },
        });
        t.equal(res.status, 200);
      }
    }
    const where = (sid: string) => {
      const a = anth!.requests.filter((r) => JSON.stringify(r.json).includes(sid)).length;
      const o = up.requests.filter((r) => String((r.json as { user?: string }).user).includes(sid)).length;
      return [a, o];
    };
    let onOpenai = 0;
    for (const sid of sessions) {
      const [a, o] = where(sid);
      t.ok(
        (a === 4 && o === 0) || (a === 0 && o === 4),
        `session ${sid.slice(0, 8)} stayed on one channel (${a}/${o})`,
      );
      if (o === 4) onOpenai++;
    }
    t.ok(
      onOpenai > 0 && onOpenai < sessions.length,
      `sessions spread over both protocols (${onOpenai} on openai)`,
    );
  },
);

t.test('a server that ignores stream: true and answers JSON: the client still gets a stream', async (t) => {
  const up = await openaiUpstream(t);
  const { url, daemon } = await startProxy(t, {
    channels: [{ name: 'oa', url: `${up.url}/v1`, protocol: 'openai' }],
  });
  up.handle(() =>
    okChat({
      model: 'x',
      chunks: [],
      reasoning: ['hm'],
      toolCalls: [{ id: 'c1', name: 'Read', args: ['{"path":"/a"}'] }],
    }),
  );
  const sdk = new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  const stream = sdk.messages.stream({
    model: MODEL,
    max_tokens: 64,
    messages: [{ role: 'user', content: 'hi' }],
  });
  const final = await stream.finalMessage();
  t.same(final.content, [
    { type: 'thinking', thinking: 'hm', signature: '' },
    { type: 'tool_use', id: 'c1', name: 'Read', input: { path: '/a' } },
  ]);
  t.equal(final.stop_reason, 'tool_use');
  const r = await send(url, { body: messagesBody({ stream: true }) });
  t.match(r.headers['content-type'], /^text\/event-stream/);
  const rows = await attempts(daemon, { requestId: r.requestId, atLeast: 1 });
  t.match(rows[0], { status: 200, inputTokens: 112, cacheReadTokens: 2000, outputTokens: 9 });
  const plain = await send(url, { body: messagesBody() });
  t.match(plain.headers['content-type'], /^application\/json/, 'a non-streaming request still gets JSON');
});
