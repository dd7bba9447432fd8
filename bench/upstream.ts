/**
 * The benchmark's fake Anthropic upstreams, run as a child process of bench/run.ts so that their CPU
 * is not the proxy's. Three servers in this one process:
 *  - `main`: every target's channel (and the "direct" target);
 *  - `alt`: a second healthy channel (the two-channel baseline of the failover scenario);
 *  - `flaky`: a channel that answers 529 to every other request.
 * Answers are pre-encoded behaviour objects chosen from request headers, so the fake never parses a
 * request body (bodies are up to 200 KB): `x-bench-stream-delay: <ms>` asks for an SSE answer with
 * that pause between events; without it the answer is a small JSON message.
 * A fourth, `openai`, is an OpenAI-compatible fake for `protocol: openai` channels. ccload sends it
 * only the translated body, no bench header, so it reads `stream` from the body (its CPU is its own)
 * and streams the same 20 text deltas as Chat Completions chunks, spaced OPENAI_STREAM_DELAY_MS: a
 * role chunk and two empty deltas first, so the first text arrives 3 spacings after the headers as
 * in the Anthropic stream.
 * Reports `{ main, alt, flaky, openai }` (base URLs) over IPC once listening; exits on SIGTERM or IPC close.
 */
import { messageStreamEvents } from '../src/dev/anthropic-shapes.js';
import {
  chatStreamEvents,
  DEFAULT_CHAT_USAGE,
  okChat,
  startFakeOpenAIUpstream,
} from '../src/dev/fake-openai-upstream.js';
import {
  type Behaviour,
  DEFAULT_USAGE,
  type FakeRequest,
  ok,
  type StatusBehaviour,
  type StreamBehaviour,
  startFakeUpstream,
} from '../src/dev/fake-upstream.js';
import {
  BENCH_MODEL,
  OPENAI_STREAM_DELAY_MS,
  STREAM_DELAY_HEADER,
  STREAM_DELTAS,
  type UpstreamReady,
} from './protocol.js';

const JSON_ANSWER = ok(BENCH_MODEL);
const OVERLOADED: StatusBehaviour = { kind: 'status', status: 529 };
const TEXT = Array.from({ length: STREAM_DELTAS * 3 }, (_, i) => `word${i}`).join(' ');
const EVENTS = messageStreamEvents({ model: BENCH_MODEL, text: TEXT, usage: DEFAULT_USAGE });
const WORDS = TEXT.split(' ');
const OPENAI_JSON = okChat({ model: BENCH_MODEL, chunks: [TEXT] });
const OPENAI_STREAM: StreamBehaviour = {
  kind: 'stream',
  events: chatStreamEvents({
    model: BENCH_MODEL,
    // Two empty deltas after the role chunk: the first text is the 4th write, as in the Anthropic stream.
    chunks: [
      '',
      '',
      ...Array.from({ length: STREAM_DELTAS }, (_, i) => `${WORDS.slice(i * 3, i * 3 + 3).join(' ')} `),
    ],
    usage: DEFAULT_CHAT_USAGE,
  }),
  delayMs: OPENAI_STREAM_DELAY_MS,
  chunking: 'event',
};
/** One behaviour object per delay, so the fake encodes each stream once. */
const streams = new Map<number, StreamBehaviour>();

function answer(rec: FakeRequest): Behaviour {
  const delay = rec.headers[STREAM_DELAY_HEADER];
  if (typeof delay !== 'string') return JSON_ANSWER;
  const ms = Number(delay);
  let b = streams.get(ms);
  if (!b) {
    // One write per event, `ms` apart: message_start goes out at once, the first text delta
    // 3 × ms later (after content_block_start and ping), so time to first token is measurable.
    b = { kind: 'stream', events: EVENTS, delayMs: ms, chunking: 'event' };
    streams.set(ms, b);
  }
  return b;
}

async function main(): Promise<void> {
  const opts = { record: false };
  const main = await startFakeUpstream(opts);
  const alt = await startFakeUpstream(opts);
  const flaky = await startFakeUpstream(opts);
  const openai = await startFakeOpenAIUpstream(opts);
  openai.handle((rec) => (rec.stream ? OPENAI_STREAM : OPENAI_JSON));
  main.handle(answer);
  alt.handle(answer);
  let n = 0;
  flaky.handle((rec) => (n++ % 2 === 1 ? OVERLOADED : answer(rec)));
  const close = () => {
    void Promise.all([main.close(), alt.close(), flaky.close(), openai.close()]).finally(() =>
      process.exit(0),
    );
  };
  process.once('SIGTERM', close);
  process.once('disconnect', close);
  const ready: UpstreamReady = { main: main.url, alt: alt.url, flaky: flaky.url, openai: openai.url };
  process.send?.(ready);
}

void main();
