/**
 * Micro-benchmark of the proxy's byte-level hot path: request sniffing (sniffRequest, rewriteModel) against
 * JSON.parse on Claude Code–shaped bodies, the SSE tap's throughput on a realistic answer stream, and the
 * `protocol: openai` translations (request → Chat Completions; Chat Completions chunks → Anthropic events), and
 * the usage read of a non-streaming answer against JSON.parse of the whole answer.
 * Prints numbers; asserts nothing. Run after a build: `node dist/bench/micro-parse.js`.
 * The machine is shared: run it when nothing else is loading the CPU, and compare ratios within one run.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  claudeCodeRequest,
  encodeSse,
  messageResponse,
  messageStreamEvents,
} from '../src/dev/anthropic-shapes.js';
import { chatStreamEvents } from '../src/dev/fake-openai-upstream.js';
import { prng } from '../src/dev/random.js';
import { rewriteModel, sniffRequest } from '../src/proxy/body-sniff.js';
import { toChatCompletions } from '../src/proxy/openai/request.js';
import { ChatStreamTranslator } from '../src/proxy/openai/stream.js';
import { SseTap } from '../src/proxy/sse-tap.js';
import { usageFromJsonBody } from '../src/proxy/usage.js';

/** Keeps results observable so the JIT cannot drop the measured work. */
let sink = 0;

// A full GC before each measurement, so garbage left by the previous one (JSON.parse trees, copied
// bodies) is not collected on the next one's clock. Works without `node --expose-gc`.
v8.setFlagsFromString('--expose-gc');
const collect = vm.runInNewContext('gc') as () => void;

/** Median µs per call of `fn`, over `rounds` rounds of about `roundMs` each, after a warm-up. */
function measure(fn: () => number, roundMs = 150, rounds = 5): number {
  collect();
  const warmUntil = performance.now() + 100;
  let batch = 1;
  while (performance.now() < warmUntil) {
    const t0 = performance.now();
    for (let i = 0; i < batch; i++) sink += fn();
    if (performance.now() - t0 < 1) batch *= 2;
  }
  const results: number[] = [];
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const t0 = performance.now();
    let elapsed = 0;
    do {
      for (let i = 0; i < batch; i++) sink += fn();
      calls += batch;
      elapsed = performance.now() - t0;
    } while (elapsed < roundMs);
    results.push((elapsed * 1000) / calls);
  }
  results.sort((a, b) => a - b);
  return results[Math.floor(results.length / 2)]!;
}

const SOURCE = `export function parse(input: string): Record<string, unknown> {
  const m = /^\\s*"([^"\\\\]+)"\\s*:\\s*(.*)$/.exec(input);
  if (!m) throw new Error(\`bad line: "\${input}"\`);
  return { key: m[1], value: JSON.parse(m[2] ?? 'null'), path: 'C:\\\\Users\\\\dev' }; // ✓ naïve 🚀
}
`;

/**
 * A tool-heavy conversation: every turn a tool_use and a tool_result full of source code, i.e. many
 * escaped quotes and backslashes per KB (the worst case for the string skipper), nested "model" keys.
 */
function codeHeavyBody(bytes: number): Buffer {
  const rnd = prng(bytes);
  const messages: unknown[] = [];
  const body = {
    model: 'claude-sonnet-5-5',
    messages,
    system: [{ type: 'text', text: 'You are Claude Code.', cache_control: { type: 'ephemeral' } }],
    tools: Array.from({ length: 12 }, (_, i) => ({
      name: `Tool${i}`,
      description: 'Runs a "command" with C:\\paths and ünïcödé. '.repeat(6),
      input_schema: {
        type: 'object',
        properties: {
          command: { type: 'string', description: 'The command' },
          model: { type: 'string', enum: ['a', 'b'] },
          options: { type: 'array', items: { type: 'object', properties: { k: { type: 'string' } } } },
        },
        required: ['command'],
      },
    })),
    max_tokens: 32000,
    stream: true,
  };
  let size = Buffer.byteLength(JSON.stringify(body));
  for (let i = 0; size < bytes; i++) {
    const code = SOURCE.repeat(1 + Math.floor(rnd() * 6));
    const turn = [
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Let me read "the file".' },
          { type: 'tool_use', id: `toolu_${i}`, name: 'Read', input: { path: `/src/f${i}.ts`, model: 'x' } },
        ],
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: `toolu_${i}`, content: code }] },
    ];
    messages.push(...turn);
    size += Buffer.byteLength(JSON.stringify(turn)) + 1;
  }
  return Buffer.from(JSON.stringify(body));
}

function pad(s: string | number, n: number): string {
  return String(s).padStart(n);
}

function benchBodies(): void {
  console.log('request body: sniffRequest vs JSON.parse(body.toString()), µs/op (median of 5 rounds)');
  console.log(
    `${'shape'.padEnd(12)}${pad('bytes', 9)}${pad('quotes', 8)}${pad('sniff µs', 11)}${pad('MB/s', 7)}` +
      `${pad('parse µs', 11)}${pad('parse/sniff', 13)}${pad('rewrite µs', 12)}`,
  );
  const shapes: [string, Buffer][] = [];
  for (const bytes of [111, 43_000, 200_000, 2_000_000]) {
    shapes.push([
      'claude-code',
      claudeCodeRequest({ model: 'claude-opus-5-5', stream: true, bodyBytes: bytes }).body,
    ]);
  }
  for (const bytes of [43_000, 200_000, 2_000_000]) shapes.push(['code-heavy', codeHeavyBody(bytes)]);
  for (const [shape, body] of shapes) {
    const first = sniffRequest(body);
    if (!first.ok) throw new Error(`bench body rejected: ${first.message}`);
    let quotes = 0;
    for (let i = body.indexOf(0x22); i !== -1; i = body.indexOf(0x22, i + 1)) quotes++;
    const sniff = measure(() => {
      const r = sniffRequest(body);
      return r.ok ? r.modelEnd : 0;
    });
    const rewrite = measure(
      () => rewriteModel(body, first.modelStart, first.modelEnd, 'claude-opus-5-5-mapped').length,
    );
    const parse = measure(() => (JSON.parse(body.toString('utf8')) as { model: string }).model.length);
    console.log(
      `${shape.padEnd(12)}${pad(body.length, 9)}${pad(quotes, 8)}${pad(sniff.toFixed(2), 11)}` +
        `${pad(Math.round(body.length / sniff), 7)}${pad(parse.toFixed(2), 11)}${pad((parse / sniff).toFixed(1), 13)}` +
        `${pad(rewrite.toFixed(2), 12)}`,
    );
  }
}

/** The answer stream: message_start, ping, 500 text deltas of ~30 bytes, message_delta, message_stop. */
function answerStream(): Buffer {
  const rnd = prng(500);
  const words = ['the ', 'proxy ', 'streams ', '"quoted" ', 'tokens ', 'ünïcödé ', '🚀 ', 'fast\n', 'and '];
  const chunks = Array.from({ length: 500 }, () => {
    let s = '';
    while (Buffer.byteLength(s) < 28) s += words[Math.floor(rnd() * words.length)];
    return s;
  });
  const usage = { input_tokens: 1200, output_tokens: 900, cache_read_input_tokens: 40_000 };
  return encodeSse(messageStreamEvents({ model: 'claude-opus-5-5', chunks, usage }));
}

function splitRandom(buf: Buffer, min: number, max: number, seed: number): Buffer[] {
  const rnd = prng(seed);
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; ) {
    const size = min + Math.floor(rnd() * (max - min + 1));
    out.push(buf.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** One chunk per event, as an upstream that flushes every event produces. */
function splitEvents(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = buf.indexOf('\n\n'); i !== -1; i = buf.indexOf('\n\n', at)) {
    out.push(buf.subarray(at, i + 2));
    at = i + 2;
  }
  if (at < buf.length) out.push(buf.subarray(at));
  return out;
}

function benchTap(): void {
  const stream = answerStream();
  const events = (stream.toString().match(/\n\n/g) ?? []).length;
  console.log('');
  console.log(`SSE tap: one answer of ${stream.length} bytes, ${events} events (500 content_block_delta)`);
  console.log(
    `${'chunking'.padEnd(26)}${pad('chunks', 7)}${pad('µs/stream', 11)}${pad('MB/s', 7)}${pad('ns/event', 10)}` +
      `${pad('floor µs', 10)}`,
  );
  const variants: [string, Buffer[]][] = [
    ['one chunk per event', splitEvents(stream)],
    ['random 1..64 B', splitRandom(stream, 1, 64, 1)],
    ['random 16..1024 B', splitRandom(stream, 16, 1024, 2)],
    ['random 1..16384 B', splitRandom(stream, 1, 16_384, 3)],
    ['whole stream', [stream]],
  ];
  for (const [label, chunks] of variants) {
    const check = new SseTap();
    let commitChunks = 0;
    for (const c of chunks) if (check.push(c) !== -1) commitChunks++;
    if (!check.stopped || commitChunks !== 1 || check.usage?.output !== 900)
      throw new Error(`tap misread: ${label}`);
    const us = measure(() => {
      const tap = new SseTap();
      for (let i = 0; i < chunks.length; i++) tap.push(chunks[i]!);
      return tap.eventCount;
    });
    // Floor: what merely finding every LF in the same chunks costs (one memchr per line). The tap also
    // scans each chunk once for CR (lone-CR line ends are legal SSE), about 30 ns per chunk here.
    const floor = measure(() => {
      let lines = 0;
      for (let i = 0; i < chunks.length; i++) {
        const c = chunks[i]!;
        for (let j = c.indexOf(0x0a); j !== -1; j = c.indexOf(0x0a, j + 1)) lines++;
      }
      return lines;
    });
    console.log(
      `${label.padEnd(26)}${pad(chunks.length, 7)}${pad(us.toFixed(1), 11)}${pad(Math.round(stream.length / us), 7)}` +
        `${pad(Math.round((us * 1000) / events), 10)}${pad(floor.toFixed(1), 10)}`,
    );
  }
}

/** What an OpenAI channel adds: the request translated and serialised, each chunk translated (and tapped). */
function benchOpenai(): void {
  console.log('');
  console.log('protocol: openai translation (in process)');
  for (const bytes of [43_000, 200_000]) {
    const body = claudeCodeRequest({ model: 'claude-sonnet-5-5', stream: true, bodyBytes: bytes }).body;
    const us = measure(() => {
      const r = toChatCompletions(JSON.parse(body.toString('utf8')), 'deepseek-chat');
      return r.ok ? Buffer.byteLength(JSON.stringify(r.body)) : 0;
    });
    console.log(`request ${Math.round(bytes / 1000)} KB: parse + translate + serialise ${us.toFixed(1)} µs`);
  }
  const rnd = prng(7);
  const words = ['the ', 'proxy ', 'streams ', '"quoted" ', 'tokens ', 'ünïcödé ', '🚀 ', 'fast\n', 'and '];
  const chunks = Array.from({ length: 500 }, () => {
    let s = '';
    while (Buffer.byteLength(s) < 28) s += words[Math.floor(rnd() * words.length)];
    return s;
  });
  const upstream = splitEvents(encodeSse(chatStreamEvents({ model: 'deepseek-chat', chunks })));
  const check = new ChatStreamTranslator('claude-sonnet-5-5');
  const tap = new SseTap();
  for (const c of upstream) tap.push(check.push(c));
  tap.push(check.end());
  if (!tap.stopped) throw new Error('translator misread');
  const translate = measure(() => {
    const tr = new ChatStreamTranslator('claude-sonnet-5-5');
    let n = 0;
    for (let i = 0; i < upstream.length; i++) n += tr.push(upstream[i]!).length;
    return n + tr.end().length;
  });
  console.log(
    `stream of ${upstream.length} chunks (500 text deltas): translate ${translate.toFixed(1)} µs, ${((translate * 1000) / upstream.length).toFixed(0)} ns/chunk`,
  );
}

/** A non-streaming answer's usage read (usageFromJsonBody) against JSON.parse of the whole answer. */
function benchAnswers(): void {
  console.log('');
  console.log('non-streaming answer: usageFromJsonBody vs JSON.parse(body.toString()), µs/op');
  console.log(`${pad('bytes', 9)}${pad('usage µs', 11)}${pad('parse µs', 11)}${pad('parse/usage', 13)}`);
  const sentence = 'The proxy reads "usage" of the answer — and skips the text. ';
  for (const chars of [200, 4_000, 32_000, 200_000]) {
    const text = sentence.repeat(Math.ceil(chars / sentence.length)).slice(0, chars);
    const usage = { input_tokens: 12, output_tokens: 900, cache_read_input_tokens: 40_000 };
    const body = Buffer.from(JSON.stringify(messageResponse({ model: 'claude-sonnet-5-5', text, usage })));
    if (usageFromJsonBody(body).usage?.output !== 900) throw new Error('usage misread');
    const read = measure(() => usageFromJsonBody(body).usage?.output ?? 0);
    const parse = measure(
      () => (JSON.parse(body.toString('utf8')) as { usage: { output_tokens: number } }).usage.output_tokens,
    );
    console.log(
      `${pad(body.length, 9)}${pad(read.toFixed(2), 11)}${pad(parse.toFixed(2), 11)}${pad((parse / read).toFixed(1), 13)}`,
    );
  }
}

console.log(`node ${process.version}, ${process.arch}`);
benchBodies();
benchTap();
benchOpenai();
benchAnswers();
if (sink === 42) console.log('');
