/**
 * The Chat Completions → Anthropic stream translator, as a table: each upstream script is fed whole,
 * one event per chunk and in random 1–64 byte chunks (splitting lines, JSON and UTF-8 sequences),
 * and every way must give the same, well-formed Anthropic event sequence.
 */
import t, { type Test } from 'tap';
import { encodeSse, type SseEvent } from '../../src/dev/anthropic-shapes.js';
import { type ChatAnswerOptions, chatStreamEvents } from '../../src/dev/fake-openai-upstream.js';
import { ChatStreamTranslator } from '../../src/proxy/openai/stream.js';
import { SseTap } from '../../src/proxy/sse-tap.js';
import { emptyUsage } from '../../src/proxy/usage.js';
import { sseEvents } from './e2e-helpers.js';

const MODEL = 'claude-sonnet-5-5';

function splits(bytes: Buffer, seed: number): Buffer[][] {
  const whole = [bytes];
  const byEvent: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const end = bytes.indexOf('\n\n', at);
    const stop = end < 0 ? bytes.length : end + 2;
    byEvent.push(bytes.subarray(at, stop));
    at = stop;
  }
  let a = seed >>> 0;
  const rand = () => {
    a = (a * 1103515245 + 12345) >>> 0;
    return a / 2 ** 32;
  };
  const random: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + Math.floor(rand() * 64);
    random.push(bytes.subarray(at, at + n));
    at += n;
  }
  return [whole, byEvent, random];
}

interface Translated {
  events: { event: string; data: Record<string, unknown> }[];
  bytes: Buffer;
}

function translate(chunks: Buffer[]): Translated {
  const tr = new ChatStreamTranslator(MODEL);
  const out: Buffer[] = [];
  for (const c of chunks) out.push(tr.push(c));
  out.push(tr.end());
  const bytes = Buffer.concat(out);
  return {
    bytes,
    events: sseEvents(bytes).map((e) => ({
      event: e.event,
      data: JSON.parse(e.data) as Record<string, unknown>,
    })),
  };
}

/** Rebuilds the message the way an SDK accumulates it, checking the sequence rules on the way. */
function accumulate(t: Test, events: Translated['events']) {
  const content: Record<string, unknown>[] = [];
  const json: string[] = [];
  let open = -1;
  let message: Record<string, unknown> | undefined;
  let delta: Record<string, unknown> | undefined;
  let stopped = false;
  for (const [i, e] of events.entries()) {
    t.equal(e.data['type'], e.event, `event ${i}: data.type matches the event name`);
    switch (e.event) {
      case 'message_start':
        t.equal(i, 0, 'message_start comes first');
        message = e.data['message'] as Record<string, unknown>;
        break;
      case 'content_block_start': {
        t.equal(open, -1, 'no block is open when another starts');
        open = e.data['index'] as number;
        t.equal(open, content.length, 'block indices count up from 0');
        content.push({ ...(e.data['content_block'] as Record<string, unknown>) });
        json[open] = '';
        break;
      }
      case 'content_block_delta': {
        t.equal(e.data['index'], open, 'deltas go to the open block');
        const d = e.data['delta'] as Record<string, string>;
        const block = content[open]!;
        if (d['type'] === 'text_delta') block['text'] = `${block['text']}${d['text']}`;
        else if (d['type'] === 'thinking_delta') block['thinking'] = `${block['thinking']}${d['thinking']}`;
        else if (d['type'] === 'input_json_delta') json[open] += d['partial_json']!;
        else t.fail(`unknown delta ${d['type']}`);
        break;
      }
      case 'content_block_stop':
        t.equal(e.data['index'], open, 'the open block stops');
        if (content[open]!['type'] === 'tool_use') content[open]!['input'] = JSON.parse(json[open] || '{}');
        open = -1;
        break;
      case 'message_delta':
        t.equal(open, -1, 'every block stopped before message_delta');
        delta = e.data;
        break;
      case 'message_stop':
        t.equal(i, events.length - 1, 'message_stop comes last');
        stopped = true;
        break;
      case 'ping':
        break;
      default:
        t.fail(`unexpected event ${e.event}`);
    }
  }
  return { message, content, delta, stopped };
}

interface Row {
  name: string;
  script: ChatAnswerOptions;
  content: unknown[];
  stopReason: string;
  usage?: Record<string, number>;
}

const TOOL_A = { id: 'call_a', name: 'Read', args: ['{"path":', '"/home/dev/ccload/src/', 'main.ts"}'] };
const TOOL_B = { id: 'call_b', name: 'Grep', args: ['{"pattern"', ':"TODO","path":"/home/dev"', '}'] };

const ROWS: Row[] = [
  {
    name: 'text, final usage chunk with cached tokens, [DONE]',
    script: { model: 'deepseek-chat', chunks: ['Hel', 'lo — “quoted”', ' 🚀 done.'] },
    content: [{ type: 'text', text: 'Hello — “quoted” 🚀 done.' }],
    stopReason: 'end_turn',
    usage: {
      input_tokens: 112,
      output_tokens: 9,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 2000,
    },
  },
  {
    name: 'one tool call, arguments split across chunks, after text',
    script: { model: 'm', chunks: ['Let me read it.'], toolCalls: [TOOL_A] },
    content: [
      { type: 'text', text: 'Let me read it.' },
      { type: 'tool_use', id: 'call_a', name: 'Read', input: { path: '/home/dev/ccload/src/main.ts' } },
    ],
    stopReason: 'tool_use',
  },
  {
    name: 'two parallel tool calls, one after the other',
    script: { model: 'm', toolCalls: [TOOL_A, TOOL_B] },
    content: [
      { type: 'tool_use', id: 'call_a', name: 'Read', input: { path: '/home/dev/ccload/src/main.ts' } },
      { type: 'tool_use', id: 'call_b', name: 'Grep', input: { pattern: 'TODO', path: '/home/dev' } },
    ],
    stopReason: 'tool_use',
  },
  {
    name: 'two parallel tool calls with interleaved argument deltas',
    script: { model: 'm', toolCalls: [TOOL_A, TOOL_B], interleave: true },
    content: [
      { type: 'tool_use', id: 'call_a', name: 'Read', input: { path: '/home/dev/ccload/src/main.ts' } },
      { type: 'tool_use', id: 'call_b', name: 'Grep', input: { pattern: 'TODO', path: '/home/dev' } },
    ],
    stopReason: 'tool_use',
  },
  {
    name: 'reasoning_content deltas become a thinking block before the text',
    script: {
      model: 'deepseek-reasoner',
      reasoning: ['First, ', 'check the file.'],
      chunks: ['It is fine.'],
    },
    content: [
      { type: 'thinking', thinking: 'First, check the file.', signature: '' },
      { type: 'text', text: 'It is fine.' },
    ],
    stopReason: 'end_turn',
  },
  {
    name: '`reasoning` deltas (OpenRouter, vLLM) too',
    script: { model: 'm', reasoning: ['hmm'], reasoningField: 'reasoning', chunks: ['ok'] },
    content: [
      { type: 'thinking', thinking: 'hmm', signature: '' },
      { type: 'text', text: 'ok' },
    ],
    stopReason: 'end_turn',
  },
  {
    name: 'whitespace-only text around tool calls makes no block (the API refuses one sent back)',
    script: { model: 'm', chunks: ['\n\n'], toolCalls: [TOOL_A] },
    content: [
      { type: 'tool_use', id: 'call_a', name: 'Read', input: { path: '/home/dev/ccload/src/main.ts' } },
    ],
    stopReason: 'tool_use',
  },
  {
    name: 'leading whitespace is kept once text follows',
    script: { model: 'm', chunks: ['\n', ' ', 'Hi'] },
    content: [{ type: 'text', text: '\n Hi' }],
    stopReason: 'end_turn',
  },
  {
    name: 'finish_reason length → max_tokens',
    script: { model: 'm', chunks: ['cut'], finishReason: 'length' },
    content: [{ type: 'text', text: 'cut' }],
    stopReason: 'max_tokens',
  },
  {
    name: 'finish_reason content_filter → refusal',
    script: { model: 'm', chunks: ['no'], finishReason: 'content_filter' },
    content: [{ type: 'text', text: 'no' }],
    stopReason: 'refusal',
  },
  {
    name: 'a server that says stop after tool calls still gives tool_use',
    script: { model: 'm', toolCalls: [TOOL_A], finishReason: 'stop' },
    content: [
      { type: 'tool_use', id: 'call_a', name: 'Read', input: { path: '/home/dev/ccload/src/main.ts' } },
    ],
    stopReason: 'tool_use',
  },
  {
    name: 'no usage chunk and no [DONE]: complete at the end of the body, usage zero',
    script: { model: 'm', chunks: ['x'], noUsageChunk: true, noDone: true },
    content: [{ type: 'text', text: 'x' }],
    stopReason: 'end_turn',
    usage: { input_tokens: 0, output_tokens: 0 },
  },
];

for (const row of ROWS) {
  t.test(row.name, async (t) => {
    const bytes = encodeSse(chatStreamEvents(row.script));
    const results = splits(bytes, row.name.length).map(translate);
    for (const r of results.slice(1))
      t.same(r.events, results[0]!.events, 'the same events however it is chunked');
    const { message, content, delta, stopped } = accumulate(t, results[0]!.events);
    t.equal(message?.['model'], MODEL, 'message_start names the model the client asked for');
    t.match(message?.['id'], /^msg_/);
    t.same(content, row.content);
    t.equal((delta?.['delta'] as Record<string, unknown> | undefined)?.['stop_reason'], row.stopReason);
    if (row.usage) t.same(delta?.['usage'], row.usage);
    t.ok(stopped, 'message_stop');
  });
}

t.test('a stream cut mid-way never gets message_stop; the tap sees it incomplete', async (t) => {
  const events = chatStreamEvents({ model: 'm', chunks: ['a', 'b', 'c'] });
  const upToText = encodeSse(events.slice(0, 4));
  // After whole events, and inside an event's JSON — both before finish_reason.
  for (const cut of [encodeSse(events.slice(0, 3)), upToText.subarray(0, upToText.length - 30)]) {
    const r = translate([cut]);
    const names = r.events.map((e) => e.event);
    t.notOk(names.includes('message_stop'));
    t.notOk(names.includes('message_delta'));
    const tap = new SseTap();
    tap.push(r.bytes);
    t.ok(tap.committed, 'content arrived: the stream had committed');
    t.notOk(tap.stopped, 'and is not complete');
  }
  // Cut before any content: nothing commits (ccload may still fail over).
  const early = translate([encodeSse(events.slice(0, 1))]);
  const tap = new SseTap();
  tap.push(early.bytes);
  t.notOk(tap.committed);
});

t.test('an error object mid-stream becomes an Anthropic error event', async (t) => {
  const events: SseEvent[] = [
    ...chatStreamEvents({ model: 'm', chunks: ['a'] }).slice(0, 2),
    {
      event: '',
      data: { error: { message: 'upstream overloaded', type: 'server_error', code: 'overloaded' } },
    },
  ];
  const r = translate([encodeSse(events)]);
  const last = r.events.at(-1)!;
  t.equal(last.event, 'error');
  t.same(last.data, { type: 'error', error: { type: 'overloaded_error', message: 'upstream overloaded' } });
  const tap = new SseTap();
  tap.push(r.bytes);
  t.equal(tap.error?.type, 'overloaded_error');
});

t.test('the tap reads the translated usage (what ccload records per attempt)', async (t) => {
  const r = translate([encodeSse(chatStreamEvents({ model: 'm', chunks: ['a'] }))]);
  const tap = new SseTap();
  tap.push(r.bytes);
  t.ok(tap.stopped);
  t.same(tap.usage, { ...emptyUsage(), input: 112, output: 9, cacheCreation: 0, cacheRead: 2000 });
});

t.test('comments, CRLF line ends and empty deltas are tolerated', async (t) => {
  const body = encodeSse(chatStreamEvents({ model: 'm', chunks: ['', 'hi'] }))
    .toString('utf8')
    .replace(/\n/g, '\r\n');
  const r = translate([Buffer.from(`: OPENROUTER PROCESSING\r\n\r\n${body}`)]);
  const { content, stopped } = accumulate(t, r.events);
  t.same(content, [{ type: 'text', text: 'hi' }]);
  t.ok(stopped);
});

t.test('an empty answer (finish without content) completes with no blocks', async (t) => {
  const r = translate([encodeSse(chatStreamEvents({ model: 'm', chunks: [] }))]);
  t.same(
    r.events.map((e) => e.event),
    ['message_start', 'ping', 'message_delta', 'message_stop'],
  );
});

t.test(
  'held tool-call data is bounded: past 16 Mi characters the stream ends with an error event',
  async (t) => {
    const tr = new ChatStreamTranslator(MODEL);
    const line = (delta: unknown) =>
      Buffer.from(
        `data: ${JSON.stringify({ id: 'x', choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`,
      );
    const call = (index: number, id: string, args: string) => ({
      tool_calls: [{ index, id, type: 'function', function: { name: 'Write', arguments: args } }],
    });
    tr.push(line(call(0, 'a', '{')));
    const piece = 'x'.repeat(4 * 1024 * 1024);
    let out = '';
    for (let i = 0; i < 5 && !out.includes('event: error'); i++)
      out += tr
        .push(
          line(
            i === 0 ? call(1, 'b', piece) : { tool_calls: [{ index: 1, function: { arguments: piece } }] },
          ),
        )
        .toString();
    t.match(out, /event: error\ndata: .*too much interleaved tool-call data/);
    t.equal(tr.push(line({ content: 'more' })).length, 0, 'nothing after the error');
  },
);
