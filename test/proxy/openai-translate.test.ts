/**
 * The request translation (Anthropic Messages → Chat Completions), the non-streaming answer and the
 * error translation, as tables, on Claude Code–shaped requests; and the count_tokens estimate.
 */
import t from 'tap';
import { claudeCodeRequest } from '../../src/dev/anthropic-shapes.js';
import { chatCompletion } from '../../src/dev/fake-openai-upstream.js';
import { translateError } from '../../src/proxy/openai/errors.js';
import { estimateInputTokens } from '../../src/proxy/openai/estimate.js';
import { toChatCompletions } from '../../src/proxy/openai/request.js';
import { translateCompletion } from '../../src/proxy/openai/response.js';

function ok(req: unknown, model = 'deepseek-chat') {
  const r = toChatCompletions(req, model);
  if (!r.ok) throw new Error(`refused: ${r.message}`);
  return r.body as { messages: Record<string, unknown>[] } & Record<string, unknown>;
}

t.test("Claude Code's first turn: system blocks, role:system entry, tools, metadata, stream", async (t) => {
  const cc = JSON.parse(
    claudeCodeRequest({ model: 'claude-sonnet-5-5', stream: true }).body.toString(),
  ) as Record<string, unknown>;
  // Claude Code puts a `role: "system"` entry into messages (docs/proxy.md); add one.
  (cc['messages'] as unknown[]).splice(1, 0, { role: 'system', content: 'Reminder: be brief.' });
  const body = ok(cc);
  t.equal(body['model'], 'deepseek-chat', 'the model sent (after model_map)');
  t.equal(body['stream'], true);
  t.same(body['stream_options'], { include_usage: true });
  t.equal(body['max_tokens'], 32000);
  t.equal(body['messages'][0]!['role'], 'system');
  const sys = body['messages'][0]!['content'] as string;
  t.match(sys, /^You are Claude Code/);
  t.match(sys, /<env>/, 'every system block, joined');
  t.equal(body['messages'][2]!['role'], 'system', 'the role:system entry stays in place');
  const tools = body['tools'] as { type: string; function: { name: string; parameters: unknown } }[];
  t.equal(tools.length, 12);
  t.equal(tools[0]!.type, 'function');
  t.equal(tools[1]!.function.name, 'Bash');
  t.same(
    tools[1]!.function.parameters,
    (cc['tools'] as { input_schema: unknown }[])[1]!.input_schema,
    'input_schema → parameters',
  );
  t.equal(body['user'], (cc['metadata'] as { user_id: string }).user_id, 'metadata.user_id → user');
  const text = JSON.stringify(body);
  for (const dropped of ['cache_control', 'thinking', 'context_management', 'output_config', 'defer_loading'])
    t.notOk(text.includes(`"${dropped}"`), `${dropped} is not sent`);
  for (const m of body['messages']) t.type(m['content'], 'string', 'all-text content is a plain string');
});

t.test('a tool round trip: tool_use → tool_calls, tool_result → tool messages in order', async (t) => {
  const body = ok({
    model: 'claude-sonnet-5-5',
    max_tokens: 1024,
    messages: [
      { role: 'user', content: 'Look at two files.' },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'I should read both.', signature: 'sig' },
          { type: 'text', text: 'Reading both.' },
          { type: 'tool_use', id: 'toolu_1', name: 'Read', input: { path: '/a.ts' } },
          { type: 'tool_use', id: 'toolu_2', name: 'Read', input: { path: '/b.ts' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'toolu_1', content: 'export const a = 1;' },
          {
            type: 'tool_result',
            tool_use_id: 'toolu_2',
            content: [{ type: 'text', text: 'ENOENT' }],
            is_error: true,
          },
          { type: 'text', text: 'Go on.', cache_control: { type: 'ephemeral' } },
        ],
      },
    ],
  });
  t.same(body['messages'], [
    { role: 'user', content: 'Look at two files.' },
    {
      role: 'assistant',
      content: 'Reading both.',
      tool_calls: [
        { id: 'toolu_1', type: 'function', function: { name: 'Read', arguments: '{"path":"/a.ts"}' } },
        { id: 'toolu_2', type: 'function', function: { name: 'Read', arguments: '{"path":"/b.ts"}' } },
      ],
    },
    { role: 'tool', tool_call_id: 'toolu_1', content: 'export const a = 1;' },
    { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: ENOENT' },
    { role: 'user', content: 'Go on.' },
  ]);
  t.notOk(body['stream'], 'no stream unless asked');
});

t.test('images: base64 and url, in messages and in tool results', async (t) => {
  const body = ok({
    model: 'm',
    max_tokens: 10,
    messages: [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is this?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
          { type: 'image', source: { type: 'url', url: 'https://example.com/x.jpg' } },
        ],
      },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'Shot', input: {} }] },
      {
        role: 'user',
        content: [
          {
            type: 'tool_result',
            tool_use_id: 't1',
            content: [
              { type: 'text', text: 'screenshot' },
              { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: 'AAAA' } },
            ],
          },
        ],
      },
    ],
  });
  t.same(body['messages'][0]!['content'], [
    { type: 'text', text: 'What is this?' },
    { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
    { type: 'image_url', image_url: { url: 'https://example.com/x.jpg' } },
  ]);
  t.same(body['messages'][1], {
    role: 'assistant',
    content: null,
    tool_calls: [{ id: 't1', type: 'function', function: { name: 'Shot', arguments: '{}' } }],
  });
  t.same(body['messages'][2], { role: 'tool', tool_call_id: 't1', content: 'screenshot' });
  t.same(body['messages'][3], {
    role: 'user',
    content: [{ type: 'image_url', image_url: { url: 'data:image/jpeg;base64,AAAA' } }],
  });
});

t.test('sampling, stop sequences, tool_choice', async (t) => {
  const base = {
    model: 'm',
    max_tokens: 50,
    messages: [{ role: 'user', content: 'hi' }],
    tools: [
      { name: 'Read', description: 'read', input_schema: { type: 'object' } },
      { type: 'web_search_20250305', name: 'web_search', max_uses: 3 },
    ],
    temperature: 0.2,
    top_p: 0.9,
    top_k: 40,
    stop_sequences: ['END'],
  };
  const rows: [unknown, unknown, unknown][] = [
    [{ type: 'auto' }, 'auto', undefined],
    [{ type: 'any' }, 'required', undefined],
    [{ type: 'none' }, 'none', undefined],
    [{ type: 'tool', name: 'Read' }, { type: 'function', function: { name: 'Read' } }, undefined],
    [{ type: 'auto', disable_parallel_tool_use: true }, 'auto', false],
  ];
  for (const [choice, want, parallel] of rows) {
    const b = ok({ ...base, tool_choice: choice });
    t.same(b['tool_choice'], want, JSON.stringify(choice));
    t.equal(b['parallel_tool_calls'], parallel);
    t.equal((b['tools'] as unknown[]).length, 1, 'the server tool (web_search) is dropped');
    t.equal(b['temperature'], 0.2);
    t.equal(b['top_p'], 0.9);
    t.notOk('top_k' in b);
    t.same(b['stop'], ['END']);
  }
});

t.test('what cannot be represented is refused, naming it', async (t) => {
  const rows: [string, unknown, RegExp][] = [
    [
      'a PDF document',
      {
        role: 'user',
        content: [{ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'x' } }],
      },
      /messages\[0\]\.content\[0\]: block of type "document"/,
    ],
    [
      'an image by file id',
      { role: 'user', content: [{ type: 'image', source: { type: 'file', file_id: 'file_1' } }] },
      /image source type "file"/,
    ],
    [
      'a server tool result',
      { role: 'assistant', content: [{ type: 'web_search_tool_result', tool_use_id: 'x', content: [] }] },
      /assistant block of type "web_search_tool_result"/,
    ],
  ];
  for (const [name, message, re] of rows) {
    const r = toChatCompletions({ model: 'm', max_tokens: 1, messages: [message] }, 'm');
    t.notOk(r.ok, name);
    if (!r.ok) t.match(r.message, re, name);
  }
  const r = toChatCompletions({ model: 'm', messages: 'nope' }, 'm');
  t.notOk(r.ok);
});

t.test('a non-streaming answer becomes one Anthropic message', async (t) => {
  const rows: [string, Record<string, unknown>, Record<string, unknown>][] = [
    [
      'text with cached usage',
      chatCompletion({ model: 'deepseek-chat', chunks: ['Hi ', 'there.'] }),
      {
        content: [{ type: 'text', text: 'Hi there.' }],
        stop_reason: 'end_turn',
        usage: {
          input_tokens: 112,
          output_tokens: 9,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 2000,
        },
      },
    ],
    [
      'reasoning and two tool calls',
      chatCompletion({
        model: 'm',
        reasoning: ['think'],
        toolCalls: [
          { id: 'c1', name: 'Read', args: ['{"path":"/a"}'] },
          { id: 'c2', name: 'Grep', args: ['{"pattern":"x"}'] },
        ],
      }),
      {
        content: [
          { type: 'thinking', thinking: 'think', signature: '' },
          { type: 'tool_use', id: 'c1', name: 'Read', input: { path: '/a' } },
          { type: 'tool_use', id: 'c2', name: 'Grep', input: { pattern: 'x' } },
        ],
        stop_reason: 'tool_use',
      },
    ],
    [
      'whitespace-only text beside a tool call makes no text block',
      chatCompletion({ model: 'm', chunks: ['\n\n'], toolCalls: [{ id: 'c1', name: 'Read', args: ['{}'] }] }),
      { content: [{ type: 'tool_use', id: 'c1', name: 'Read', input: {} }] },
    ],
    [
      'length',
      chatCompletion({ model: 'm', chunks: ['x'], finishReason: 'length' }),
      { stop_reason: 'max_tokens' },
    ],
  ];
  for (const [name, completion, want] of rows) {
    const out = translateCompletion(Buffer.from(JSON.stringify(completion)), 'claude-sonnet-5-5');
    t.ok(out, name);
    const m = JSON.parse(out!.toString()) as Record<string, unknown>;
    t.equal(m['type'], 'message');
    t.equal(m['role'], 'assistant');
    t.equal(m['model'], 'claude-sonnet-5-5', 'the model the client asked for');
    t.match(m['id'], /^msg_/);
    t.match(m, want, name);
  }
  t.equal(translateCompletion(Buffer.from('{"error":{"message":"x"}}'), 'm'), undefined, 'not an answer');
  t.equal(translateCompletion(Buffer.from('garbage'), 'm'), undefined);
});

t.test('errors: OpenAI shapes and statuses → Anthropic errors for the outcome table', async (t) => {
  const oe = (message: string, type: string, code: string | null = null) =>
    Buffer.from(JSON.stringify({ error: { message, type, param: null, code } }));
  const rows: [string, number, Buffer, number, string, RegExp][] = [
    [
      '429 rate limit',
      429,
      oe('Rate limit reached', 'requests', 'rate_limit_exceeded'),
      429,
      'rate_limit_error',
      /Rate limit/,
    ],
    [
      '429 quota spent → 402',
      429,
      oe('You exceeded your quota', 'insufficient_quota', 'insufficient_quota'),
      402,
      'billing_error',
      /quota/,
    ],
    [
      '401 key',
      401,
      oe('Incorrect API key provided', 'invalid_request_error', 'invalid_api_key'),
      401,
      'authentication_error',
      /API key/,
    ],
    ['403', 403, oe('not allowed', 'permission'), 403, 'permission_error', /not allowed/],
    ['500', 500, oe('boom', 'server_error'), 500, 'api_error', /boom/],
    [
      '503',
      503,
      Buffer.from('<html><body><h1>503 Service Unavailable</h1></body></html>'),
      503,
      'overloaded_error',
      /503 Service Unavailable/,
    ],
    [
      'context length (OpenAI code)',
      400,
      oe(
        "This model's maximum context length is 65536 tokens.",
        'invalid_request_error',
        'context_length_exceeded',
      ),
      400,
      'invalid_request_error',
      /^prompt is too long: This model's maximum context length/,
    ],
    [
      'context length from a server that answers 500',
      500,
      Buffer.from(JSON.stringify({ detail: 'the prompt exceeds the maximum context window' })),
      400,
      'invalid_request_error',
      /prompt is too long/,
    ],
    [
      '404 model',
      404,
      oe('The model `gpt-x` does not exist', 'invalid_request_error', 'model_not_found'),
      404,
      'not_found_error',
      /gpt-x/,
    ],
  ];
  const key = 'sk-live-SECRET-echoed-0123456789abcd';
  const echoed = translateError(401, oe(`Incorrect API key provided: ${key}`, 'invalid_request_error'), key);
  t.notOk(echoed.body.toString().includes(key), 'a key the server echoes is not passed on');
  t.match(echoed.body.toString(), /provided: …abcd/);
  for (const [name, status, body, wantStatus, wantType, re] of rows) {
    const out = translateError(status, body);
    t.equal(out.status, wantStatus, name);
    const j = JSON.parse(out.body.toString()) as { type: string; error: { type: string; message: string } };
    t.equal(j.type, 'error');
    t.equal(j.error.type, wantType, name);
    t.match(j.error.message, re, name);
  }
});

t.test('count_tokens estimate: grows with the request, counts tools, images and non-ASCII', async (t) => {
  const small = estimateInputTokens({ messages: [{ role: 'user', content: 'x'.repeat(360) }] });
  t.equal(small, 100 + 4, '360 ASCII characters at 3.6 per token, plus 4 for the message');
  t.equal(estimateInputTokens({ messages: [{ role: 'user', content: '日本語' }] }), 3 + 4);
  const img = estimateInputTokens({
    messages: [
      { role: 'user', content: [{ type: 'image', source: { type: 'base64', data: 'x'.repeat(1e5) } }] },
    ],
  });
  t.equal(img, 1600 + 4, 'an image is a fixed cost, not its base64 length');
  const cc = JSON.parse(
    claudeCodeRequest({ model: 'claude-sonnet-5-5', stream: true }).body.toString(),
  ) as Record<string, unknown>;
  const withTools = estimateInputTokens(cc);
  const noTools = estimateInputTokens({ ...cc, tools: [] });
  t.ok(withTools > noTools + 1000, 'tool definitions count');
  t.ok(withTools > 8000 && withTools < 16000, `a 49 KB first turn is ~12k tokens (got ${withTools})`);
});

t.test('a JSON completion for a client that asked for a stream becomes the whole event stream', async (t) => {
  const body = Buffer.from(JSON.stringify(chatCompletion({ model: 'm', chunks: ['Hi.'] })));
  const out = translateCompletion(body, 'claude-sonnet-5-5', true)!.toString();
  const names = [...out.matchAll(/^event: (\S+)$/gm)].map((m) => m[1]);
  t.same(names, [
    'message_start',
    'content_block_start',
    'content_block_delta',
    'content_block_stop',
    'message_delta',
    'message_stop',
  ]);
  t.match(out, /"text_delta","text":"Hi\."/);
  t.match(out, /"stop_reason":"end_turn".*"cache_read_input_tokens":2000/);
});
