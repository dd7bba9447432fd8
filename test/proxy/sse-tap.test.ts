import t, { type Test } from 'tap';
import { encodeSse, messageStreamEvents } from '../../src/dev/anthropic-shapes.js';
import { ErrorCode, sseErrorFrame } from '../../src/errors.js';
import { SseTap } from '../../src/proxy/sse-tap.js';
import type { Usage } from '../../src/proxy/usage.js';
import { prng } from '../helpers/random.js';

/** The four classic counts of a usage report (the 2026 billing fields have tests of their own). */
function classic(u: Usage | undefined) {
  return u && { input: u.input, output: u.output, cacheCreation: u.cacheCreation, cacheRead: u.cacheRead };
}

/** Everything a tap observed, with the commit point as an offset in the whole stream. */
interface Seen {
  commitAt: number;
  committed: boolean;
  stopped: boolean;
  error: unknown;
  usage: unknown;
  model: string | undefined;
  eventCount: number;
  malformed: number;
  midEvent: boolean;
}

/** Feeds `chunks` to a fresh tap; fails the test if push reports a commit twice or out of range. */
function feed(t: Test, chunks: Buffer[], tap = new SseTap()): Seen {
  let offset = 0;
  let commitAt = -1;
  for (const chunk of chunks) {
    const k = tap.push(chunk);
    if (k !== -1) {
      if (commitAt !== -1) t.fail('push reported the commit point twice');
      if (k < 1 || k > chunk.length) t.fail(`commit offset ${k} outside the chunk of ${chunk.length}`);
      if (!tap.committed) t.fail('push reported a commit but committed is false');
      commitAt = offset + k;
    }
    offset += chunk.length;
  }
  return {
    commitAt,
    committed: tap.committed,
    stopped: tap.stopped,
    error: tap.error,
    usage: classic(tap.usage),
    model: tap.model,
    eventCount: tap.eventCount,
    malformed: tap.malformed,
    midEvent: tap.midEvent,
  };
}

function splitAt(buf: Buffer, ...cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const cut of cuts) {
    out.push(buf.subarray(prev, cut));
    prev = cut;
  }
  out.push(buf.subarray(prev));
  return out;
}

/** Copies each chunk into a fresh buffer and overwrites the original after pushing, as a reused read buffer would be. */
function feedReusingBuffers(chunks: Buffer[]): Seen {
  const scratch = Buffer.alloc(Math.max(...chunks.map((c) => c.length)));
  const tap = new SseTap();
  let commitAt = -1;
  let offset = 0;
  for (const chunk of chunks) {
    chunk.copy(scratch);
    const view = scratch.subarray(0, chunk.length);
    const k = tap.push(view);
    if (k !== -1) commitAt = offset + k;
    offset += chunk.length;
    scratch.fill(0x7e);
  }
  return {
    commitAt,
    committed: tap.committed,
    stopped: tap.stopped,
    error: tap.error,
    usage: classic(tap.usage),
    model: tap.model,
    eventCount: tap.eventCount,
    malformed: tap.malformed,
    midEvent: tap.midEvent,
  };
}

const USAGE = {
  input_tokens: 1234,
  output_tokens: 56,
  cache_creation_input_tokens: 789,
  cache_read_input_tokens: 40_000,
};
const WANT_USAGE = { input: 1234, output: 56, cacheCreation: 789, cacheRead: 40_000 };

/** A small stream with a message_start longer than the tap's carry (256 bytes) and a few deltas. */
const STREAM = encodeSse(
  messageStreamEvents({
    id: `msg_${'x'.repeat(300)}`,
    model: 'claude-opus-5-5',
    chunks: ['Hel', 'lo "wor\\ld" ✓', ' 🚀\n'],
    usage: USAGE,
  }),
);
const FIRST_DELTA = STREAM.indexOf('event: content_block_delta');
const COMMIT_END = STREAM.indexOf('\n\n', FIRST_DELTA) + 2;

const WANT: Seen = {
  commitAt: COMMIT_END,
  committed: true,
  stopped: true,
  error: undefined,
  usage: WANT_USAGE,
  model: 'claude-opus-5-5',
  eventCount: 9,
  malformed: 0,
  midEvent: false,
};

t.test('one chunk: commit after the first content_block_delta, usage, model, stop', async (t) => {
  t.same(feed(t, [STREAM]), WANT);
});

t.test('every split position gives the same result', async (t) => {
  let wrong = 0;
  for (let cut = 0; cut <= STREAM.length; cut++) {
    const seen = feed(t, splitAt(STREAM, cut));
    if (JSON.stringify(seen) !== JSON.stringify(WANT)) {
      wrong++;
      if (wrong < 4) t.same(seen, WANT, `cut at ${cut}`);
    }
  }
  t.equal(wrong, 0, `${STREAM.length + 1} two-chunk splits`);
  t.same(
    feed(t, splitAt(STREAM, ...Array.from({ length: STREAM.length - 1 }, (_, i) => i + 1))),
    WANT,
    'byte by byte',
  );
});

t.test(
  'random multi-chunk splits give the same result, also when the caller reuses its buffers',
  async (t) => {
    const rnd = prng(42);
    let wrong = 0;
    for (let i = 0; i < 1500; i++) {
      const cuts: number[] = [];
      for (let at = Math.floor(rnd() * 40); at < STREAM.length; at += 1 + Math.floor(rnd() * 80))
        cuts.push(at);
      const chunks = splitAt(STREAM, ...cuts);
      const seen = i % 2 ? feed(t, chunks) : feedReusingBuffers(chunks);
      if (JSON.stringify(seen) !== JSON.stringify(WANT)) {
        wrong++;
        if (wrong < 4) t.same(seen, WANT, `cuts ${cuts.join(',')}`);
      }
    }
    t.equal(wrong, 0);
  },
);

t.test('CRLF and lone-CR line ends, split everywhere', async (t) => {
  for (const [label, eol] of [
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ] as const) {
    const stream = Buffer.from(STREAM.toString('utf8').replaceAll('\n', eol));
    const firstDelta = stream.indexOf('event: content_block_delta');
    const commitEnd = stream.indexOf(eol + eol, firstDelta) + 2 * eol.length;
    const want = { ...WANT, commitAt: commitEnd };
    t.same(feed(t, [stream]), want, `${label}: one chunk`);
    let wrong = 0;
    for (let cut = 0; cut <= stream.length; cut++) {
      const seen = feed(t, splitAt(stream, cut));
      // A cut between the CR and LF of the committing blank line ends the event at the CR.
      const expected = eol === '\r\n' && cut === commitEnd - 1 ? { ...want, commitAt: commitEnd - 1 } : want;
      if (JSON.stringify(seen) !== JSON.stringify(expected)) {
        wrong++;
        if (wrong < 4) t.same(seen, expected, `${label}: cut at ${cut}`);
      }
    }
    t.equal(wrong, 0, `${label}: every split`);
  }
});

const ev = (name: string | undefined, ...data: string[]): string =>
  (name === undefined ? '' : `event: ${name}\n`) + data.map((d) => `data: ${d}\n`).join('') + '\n';
const START = (usage: object = { input_tokens: 10, output_tokens: 1 }, model = 'claude-haiku-5-5'): string =>
  JSON.stringify({
    type: 'message_start',
    message: { id: 'msg_1', type: 'message', model, content: [], usage },
  });
const DELTA = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}';
const STOP = '{"type":"message_stop"}';
const MDELTA = (usage: object): string =>
  JSON.stringify({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage });

t.test('multi-line data is joined with LF before parsing', async (t) => {
  const text =
    'event: message_start\n' +
    'data: {"type":"message_start",\n' +
    'data: "message":{"model":"claude-sonnet-5-5",\n' +
    'data:"usage":{"input_tokens":7,"output_tokens":1}}}\n\n' +
    ev('content_block_delta', DELTA) +
    ev('message_delta', '{"type":"message_delta",', '"usage":{"output_tokens":9}}') +
    ev('message_stop', STOP);
  const seen = feed(t, [Buffer.from(text)]);
  t.equal(seen.model, 'claude-sonnet-5-5');
  t.same(seen.usage, { input: 7, output: 9, cacheCreation: 0, cacheRead: 0 });
  t.equal(seen.malformed, 0);
  t.equal(seen.stopped, true);
});

t.test('events without event: lines take their type from the data', async (t) => {
  const text =
    ev(undefined, START()) +
    ev(undefined, '{"type":"ping"}') +
    ev(undefined, DELTA) +
    // A delta whose data is not JSON has no type to read: it is dropped, not fatal.
    ev(undefined, '{"type": "content_block_delta", oops') +
    ev(undefined, '{ "index": 0, "type": "content_block_stop" }') +
    ev(undefined, MDELTA({ output_tokens: 3 })) +
    ev(undefined, STOP);
  const buf = Buffer.from(text);
  const want = {
    commitAt: buf.indexOf(DELTA) + DELTA.length + 2,
    committed: true,
    stopped: true,
    error: undefined,
    usage: { input: 10, output: 3, cacheCreation: 0, cacheRead: 0 },
    model: 'claude-haiku-5-5',
    eventCount: 7,
    malformed: 1,
    midEvent: false,
  };
  t.same(feed(t, [buf]), want);
  for (let cut = 0; cut <= buf.length; cut++) {
    const seen = feed(t, splitAt(buf, cut));
    if (JSON.stringify(seen) !== JSON.stringify(want)) t.same(seen, want, `cut at ${cut}`);
  }
  // A data line cut right after its first few bytes is carried and classified once complete.
  t.same(
    feed(t, splitAt(buf, ...Array.from({ length: buf.length - 1 }, (_, i) => i + 1))),
    want,
    'byte by byte',
  );
});

t.test('unreadable content_block_delta and message_stop are dropped: exact ranges, no commit', async (t) => {
  const a = ev('message_start', START());
  const b = ev('content_block_delta', 'not json at all {');
  const c = ev('message_stop', 'garbage');
  const tap = new SseTap();
  const seen = feed(t, [Buffer.from(a + b + c)], tap);
  t.equal(seen.malformed, 2, 'every event is judged');
  t.same(tap.drops, [a.length, a.length + b.length, a.length + b.length, a.length + b.length + c.length]);
  t.same(tap.dropped, { invalid_json: 2, oversize: 0 });
  t.equal(tap.fatal, undefined, 'neither is needed for consistency');
  t.equal(seen.committed, false, 'a dropped event is no content');
  t.equal(seen.stopped, false, 'an unreadable message_stop does not end the answer');
  t.equal(seen.eventCount, 3);
  t.equal(tap.safeAt, a.length + b.length + c.length);
});

t.test('error before commit: recorded, and the tap never commits afterwards', async (t) => {
  const errorData = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}';
  const text = ev('message_start', START()) + ev('ping', '{"type":"ping"}') + ev('error', errorData);
  const after = ev('content_block_delta', DELTA) + ev('message_stop', STOP);
  const tap = new SseTap();
  t.equal(tap.push(Buffer.from(text)), -1);
  t.same(tap.error, { type: 'overloaded_error', message: 'Overloaded', afterCommit: false });
  t.equal(tap.committed, false);
  t.equal(tap.push(Buffer.from(after)), -1, 'a delta after the error does not commit');
  t.equal(tap.committed, false);
  t.same(classic(tap.usage), { input: 10, output: 1, cacheCreation: 0, cacheRead: 0 });
});

t.test('error after commit: recorded as afterCommit, and only the first error is kept', async (t) => {
  const text =
    ev('message_start', START()) +
    ev('content_block_delta', DELTA) +
    ev('error', '{"type":"error","error":{"type":"api_error","message":"Internal server error"}}') +
    ev('error', '{"type":"error","error":{"type":"overloaded_error","message":"second"}}');
  const seen = feed(t, [Buffer.from(text)]);
  t.same(seen.error, { type: 'api_error', message: 'Internal server error', afterCommit: true });
  t.equal(seen.committed, true);
  t.equal(seen.stopped, false);
});

t.test('an unreadable error event is still an error', async (t) => {
  const seen = feed(t, [Buffer.from(ev('error', '{"type":"error","error":'))]);
  t.same(seen.error, {
    type: 'api_error',
    message: 'the upstream sent an unreadable error event',
    afterCommit: false,
  });
  t.equal(seen.malformed, 1);
  const typed = feed(t, [
    Buffer.from(ev(undefined, '{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}')),
  ]);
  t.same(typed.error, { type: 'rate_limit_error', message: 'slow', afterCommit: false }, 'no event: line');
});

t.test('empty answer: message_delta is the commit point', async (t) => {
  const text =
    ev('message_start', START({ input_tokens: 5, output_tokens: 1 })) +
    ev('message_delta', MDELTA({ output_tokens: 1 })) +
    ev('message_stop', STOP);
  const buf = Buffer.from(text);
  const seen = feed(t, [buf]);
  t.equal(seen.commitAt, buf.indexOf('event: message_stop'), 'ends where message_stop starts');
  t.equal(seen.stopped, true);
  t.same(seen.usage, { input: 5, output: 1, cacheCreation: 0, cacheRead: 0 });
  const onlyStop = feed(t, [Buffer.from(ev('message_stop', STOP))]);
  t.equal(onlyStop.committed, true, 'message_stop alone commits too');
});

t.test('an unreadable message_start is fatal: no throw, nothing after it is read', async (t) => {
  const first = ev('message_start', START());
  const text =
    first +
    ev('message_start', '{"type":"message_start","message":{"model":"m",') +
    ev('content_block_delta', DELTA) +
    ev('message_stop', STOP);
  const tap = new SseTap();
  const seen = feed(t, [Buffer.from(text)], tap);
  t.same(tap.fatal, { event: 'message_start', reason: 'invalid_json', at: first.length, afterCommit: false });
  t.equal(seen.malformed, 1);
  t.equal(seen.committed, false, 'the delta after it does not commit');
  t.equal(seen.stopped, false);
  t.same(tap.drops, []);

  // Valid JSON that is not an object is readable (nothing to take from it), not fatal.
  const other = new SseTap();
  const seen2 = feed(
    t,
    [Buffer.from(ev('message_start', '[1,2]') + ev('content_block_delta', DELTA))],
    other,
  );
  t.equal(other.fatal, undefined);
  t.equal(seen2.malformed, 0);
  t.equal(seen2.committed, true);
});

t.test('an event over the bound is oversize: a delta is dropped, a message_start is fatal', async (t) => {
  const tap = new SseTap({ maxEventBytes: 4096 });
  const head = ev('message_start', START());
  const bigDelta = ev(
    'content_block_delta',
    JSON.stringify({
      type: 'content_block_delta',
      index: 0,
      delta: { type: 'text_delta', text: 'p'.repeat(20_000) },
    }),
  );
  const text = Buffer.from(head + bigDelta + ev('content_block_delta', DELTA) + ev('message_stop', STOP));
  const seen = feed(t, splitAt(text, 1000, 1001, 7000, 15_000), tap);
  t.equal(seen.malformed, 1);
  t.same(tap.dropped, { invalid_json: 0, oversize: 1 });
  t.same(tap.drops, [head.length, head.length + bigDelta.length], 'exactly the oversized event');
  t.equal(seen.committed, true, 'tracking goes on: the next delta commits');
  t.equal(seen.stopped, true);
  t.equal(seen.eventCount, 4);

  const big = JSON.stringify({ type: 'message_start', message: { model: 'm', pad: 'p'.repeat(20_000) } });
  const fatalTap = new SseTap({ maxEventBytes: 4096 });
  feed(t, splitAt(Buffer.from(ev('message_start', big) + ev('content_block_delta', DELTA)), 7000), fatalTap);
  t.same(fatalTap.fatal, { event: 'message_start', reason: 'oversize', at: 0, afterCommit: false });
  t.equal(fatalTap.committed, false);

  // The default bound (16 MiB) with a 3 MiB message_delta in 64 KiB chunks: read whole.
  const huge = Buffer.from(
    ev('message_start', START()) +
      ev(
        'message_delta',
        JSON.stringify({ type: 'message_delta', usage: { output_tokens: 2 }, pad: 'q'.repeat(3 << 20) }),
      ) +
      ev('message_stop', STOP),
  );
  const cuts = Array.from({ length: Math.floor(huge.length / 65_536) }, (_, i) => (i + 1) * 65_536);
  const hugeSeen = feed(t, splitAt(huge, ...cuts));
  t.equal(hugeSeen.malformed, 0);
  t.equal(hugeSeen.committed, true);
  t.same(hugeSeen.usage, { input: 10, output: 2, cacheCreation: 0, cacheRead: 0 }, 'its usage is read');
});

t.test('a 5 MB content_block_delta is read across chunks and passes', async (t) => {
  const text = Buffer.from(
    ev('message_start', START()) +
      ev(
        'content_block_delta',
        JSON.stringify({ type: 'content_block_delta', delta: { text: 'z'.repeat(5 << 20) } }),
      ) +
      ev('message_stop', STOP),
  );
  const seen = feed(t, splitAt(text, 100, 200, 300, 4000, 1 << 20, 3 << 20));
  t.equal(seen.malformed, 0);
  t.equal(seen.committed, true);
  t.equal(seen.stopped, true);
});

t.test(
  'usage with cache fields, and newer message_delta reports that repeat input and cache counts',
  async (t) => {
    const text =
      ev(
        'message_start',
        START({
          input_tokens: 3,
          cache_creation_input_tokens: 2000,
          cache_read_input_tokens: 0,
          output_tokens: 1,
        }),
      ) +
      ev('content_block_delta', DELTA) +
      ev(
        'message_delta',
        MDELTA({
          input_tokens: 3,
          cache_creation_input_tokens: null,
          cache_read_input_tokens: 150,
          output_tokens: 77,
        }),
      ) +
      ev('message_stop', STOP);
    t.same(feed(t, [Buffer.from(text)]).usage, { input: 3, output: 77, cacheCreation: 2000, cacheRead: 150 });
  },
);

t.test('comments, id, retry, unknown fields and data without a space', async (t) => {
  const text =
    ': keep-alive\n\n' +
    'id: 1\nretry: 1000\nevent:message_start\nfoo: bar\ndata:' +
    START() +
    '\n\n' +
    'event: content_block_start\ndata: {"type":"content_block_start"}\n\n' +
    'event\ndata\n\n' + // an event with an empty type and empty data
    'event: content_block_delta\ndata:' +
    DELTA +
    '\n\n' +
    'event: message_stop\ndata:' +
    STOP +
    '\n\n';
  const seen = feed(t, [Buffer.from(text)]);
  t.equal(seen.model, 'claude-haiku-5-5');
  t.equal(seen.eventCount, 5, 'the comment-only block is not an event');
  t.equal(seen.malformed, 0);
  t.equal(seen.committed, true);
  t.equal(seen.stopped, true);
});

t.test(
  'an event line longer than the carry, cut mid-line, names an unknown event, which commits',
  async (t) => {
    const name = `content_block_delta${'_'.repeat(400)}`;
    const head = ev('message_start', START()) + ev(name, DELTA);
    const text = Buffer.from(head + ev('message_stop', STOP));
    const at = text.indexOf(name);
    const seen = feed(t, splitAt(text, at + 2, at + 300));
    t.equal(seen.eventCount, 3);
    t.equal(seen.commitAt, Buffer.byteLength(head), 'unknown events count as content');
  },
);

t.test('midEvent tells a stream cut inside an event, which is never dispatched', async (t) => {
  const cut = STREAM.indexOf('event: message_stop') + 10;
  const seen = feed(t, [STREAM.subarray(0, cut)]);
  t.equal(seen.midEvent, true);
  t.equal(seen.stopped, false);
  const noBlank = feed(t, [Buffer.from(ev('message_start', START()).slice(0, -1))]);
  t.equal(noBlank.midEvent, true, 'a final event without its blank line');
  t.equal(noBlank.eventCount, 0);
  t.equal(noBlank.model, undefined);
  t.equal(feed(t, [Buffer.alloc(0)]).midEvent, false);
});

t.test('sseErrorFrame renders an Anthropic error event the tap reads back', async (t) => {
  const frame = sseErrorFrame(ErrorCode.ALL_COOLING, 'all channels failed: "primary" 529\nbackup reset');
  t.equal(
    frame.toString(),
    'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"all channels failed: \\"primary\\" 529\\nbackup reset"}}\n\n',
  );
  const seen = feed(t, [frame]);
  t.same(seen.error, {
    type: 'overloaded_error',
    message: 'all channels failed: "primary" 529\nbackup reset',
    afterCommit: false,
  });
});

t.test('mixed LF, CRLF and CR line ends in one stream', async (t) => {
  const eols = ['\n', '\r\n', '\r', '\n', '\r', '\r\n'];
  let i = 0;
  const stream = Buffer.from(STREAM.toString('utf8').replace(/\n/g, () => eols[i++ % eols.length]!));
  const want = feed(t, [stream]);
  t.equal(want.committed, true);
  t.same({ ...want, commitAt: 0 }, { ...WANT, commitAt: 0 });
  for (let cut = 0; cut <= stream.length; cut++) {
    const seen = feed(t, splitAt(stream, cut));
    // Only a cut inside a CRLF may move the commit point, and then by one byte.
    if (seen.commitAt !== want.commitAt && !(cut === want.commitAt - 1 && stream[cut] === 0x0a)) {
      t.equal(seen.commitAt, want.commitAt, `cut at ${cut}`);
    }
    if (JSON.stringify({ ...seen, commitAt: 0 }) !== JSON.stringify({ ...want, commitAt: 0 })) {
      t.same(seen, want, `cut at ${cut}`);
    }
  }
});

t.test('events without event: lines whose type is not the first key are parsed for it', async (t) => {
  const text =
    ev(undefined, '{"message":{"model":"m2","usage":{"input_tokens":4}},"type":"message_start"}') +
    ev(undefined, '{"index":0,"type":"content_block_start"}') +
    ev(undefined, '{"index":0,"type":"content_block_delta","delta":{"text":"x"}}') +
    ev(undefined, '{"usage":{"output_tokens":8},"type":"message_delta"}') +
    ev(undefined, '{"x":1,"type":"message_stop"}') +
    ev(undefined, '{"x":1,"type":"error","error":{"type":"api_error","message":"late"}}') +
    ev(undefined, 'not json');
  const buf = Buffer.from(text);
  const seen = feed(t, [buf]);
  t.equal(seen.commitAt, buf.indexOf('data: {"usage"'), 'the content_block_delta committed');
  t.equal(seen.model, 'm2');
  t.same(seen.usage, { input: 4, output: 8, cacheCreation: 0, cacheRead: 0 });
  t.equal(seen.stopped, true);
  t.same(seen.error, { type: 'api_error', message: 'late', afterCommit: true });
  t.equal(seen.malformed, 1, 'only the non-JSON event');
  t.equal(seen.eventCount, 7);
});

t.test('kept events spread over several data lines survive tiny random chunks', async (t) => {
  // Each kept event has several data lines and a trailing id line, so a carried line's kept data must
  // outlive the carry being reused for the next partial line within the same chunk.
  const text =
    'event: message_start\n' +
    'data: {"type":"message_start","message":\n' +
    `data: {"id":"msg_${'y'.repeat(40)}","model":"claude-opus-5-5",\n` +
    'data: "usage":{"input_tokens":321,"cache_read_input_tokens":9,"output_tokens":1}}}\n' +
    `id: ${'7'.repeat(30)}\n: a comment line inside the event, longer than a data line's prefix\n\n` +
    ev('content_block_delta', DELTA) +
    'event: message_delta\ndata: {"type":"message_delta",\ndata: "usage":{"output_tokens":99}}\n' +
    `id: ${'8'.repeat(30)}\n\n` +
    ev('message_stop', STOP);
  const buf = Buffer.from(text);
  const want = feed(t, [buf]);
  t.same(want.usage, { input: 321, output: 99, cacheCreation: 0, cacheRead: 9 });
  t.equal(want.model, 'claude-opus-5-5');
  const rnd = prng(7);
  let wrong = 0;
  for (let i = 0; i < 2000; i++) {
    const cuts: number[] = [];
    for (let at = 1 + Math.floor(rnd() * 12); at < buf.length; at += 1 + Math.floor(rnd() * 12))
      cuts.push(at);
    const seen = i % 2 ? feed(t, splitAt(buf, ...cuts)) : feedReusingBuffers(splitAt(buf, ...cuts));
    if (JSON.stringify(seen) !== JSON.stringify(want)) {
      wrong++;
      if (wrong < 4) t.same(seen, want, `cuts ${cuts.join(',')}`);
    }
  }
  t.equal(wrong, 0);
});

t.test(
  'safeAt: bytes of an error event (of any event) are never released before the event is complete',
  async (t) => {
    const key = 'sk-ant-api03-SECRETkey0123456789';
    const errorData = JSON.stringify({
      type: 'error',
      error: { type: 'authentication_error', message: `bad ${key}` },
    });
    const head = encodeSse(
      messageStreamEvents({ model: 'claude-x', text: 'Hello there', usage: USAGE }).slice(0, 4),
    );
    const streams: [string, Buffer][] = [
      ['named error event', Buffer.concat([head, Buffer.from(`event: error\ndata: ${errorData}\n\n`)])],
      ['data-only error event', Buffer.concat([head, Buffer.from(`data: ${errorData}\n\n`)])],
      [
        'comment, then error event',
        Buffer.concat([head, Buffer.from(`: keep-alive\n\nevent: error\ndata: ${errorData}\n\n`)]),
      ],
      ['CRLF lines', Buffer.concat([head, Buffer.from(`event: error\r\ndata: ${errorData}\r\n\r\n`)])],
      [
        'error then more content',
        Buffer.concat([head, Buffer.from(`event: error\ndata: ${errorData}\n\n`), head]),
      ],
    ];
    for (const [name, stream] of streams) {
      const keyAt = stream.indexOf(key);
      let cases = 0;
      // Every two-way split, and a walk of small random splits.
      const splits: number[][] = [];
      for (let i = 1; i < stream.length; i++) splits.push([i]);
      for (let n = 0; n < 200; n++) {
        const cuts = new Set<number>();
        for (let k = 0; k < 4; k++) cuts.add(1 + ((n * 7919 + k * 104729) % (stream.length - 1)));
        splits.push([...cuts].sort((a, b) => a - b));
      }
      for (const cuts of splits) {
        const tap = new SseTap();
        let released = 0;
        let leaked = false;
        for (const chunk of splitAt(stream, ...cuts)) {
          tap.push(chunk);
          released = Math.max(released, tap.safeAt);
          // Releasing bytes past the key's first byte before the error event is complete would leak it.
          if (released > keyAt && tap.errorEvents === 0) leaked = true;
        }
        cases++;
        if (leaked) t.fail(`${name}: split at ${cuts.join(',')} released the key before the event completed`);
        if (tap.errorEvents !== 1)
          t.fail(`${name}: split at ${cuts.join(',')}: ${tap.errorEvents} error events`);
      }
      t.pass(`${name}: ${cases} splits, none released the error event early`);
    }
  },
);

t.test('an unknown event type commits; preamble events do not', async (t) => {
  const head =
    ev('message_start', START()) +
    ev('content_block_start', '{"type":"content_block_start","index":0}') +
    ev('ping', '{"type":"ping"}');
  const preamble = feed(t, [Buffer.from(head)]);
  t.equal(preamble.committed, false, 'message_start, content_block_start and ping are preamble');
  const unknown = ev('message_annotation', '{"type":"message_annotation","note":1}');
  const text = Buffer.from(unknown + head + ev('content_block_delta', DELTA));
  const seen = feed(t, [text]);
  t.equal(seen.commitAt, Buffer.byteLength(unknown), 'committed at the unknown event, first in the stream');
  // Without an event line, a type the tap does not know commits as well.
  const bare = Buffer.from(ev(undefined, '{"type":"brand_new","x":[1]}'));
  t.equal(feed(t, [bare]).commitAt, bare.length);
  // An empty block (start, stop) commits at its stop.
  const empty = Buffer.from(head + ev('content_block_stop', '{"type":"content_block_stop","index":0}'));
  t.equal(feed(t, [empty]).commitAt, empty.length);
});

t.test('stopReason, cache diagnostics and safeAt', async (t) => {
  const tap = new SseTap();
  const start = ev(
    'message_start',
    JSON.stringify({
      type: 'message_start',
      message: { model: 'm', usage: {}, diagnostics: { cache_miss_reason: { type: 'tools_changed' } } },
    }),
  );
  const mdelta = ev(
    'message_delta',
    JSON.stringify({
      type: 'message_delta',
      delta: { stop_reason: 'tool_use' },
      usage: { output_tokens: 3 },
    }),
  );
  const comment = ': keep-alive\n';
  const text = Buffer.from(start + comment + ev('content_block_delta', DELTA) + mdelta);
  const half = Buffer.from('event: message_stop\ndata: {"ty');
  let at = -1;
  for (let cut = 1; cut < text.length; cut++) {
    const t2 = new SseTap();
    t2.push(text.subarray(0, cut));
    // safeAt never points inside an event: only at an event's end or after a line outside one.
    const safe = t2.safeAt;
    const ok =
      safe === 0 ||
      text.subarray(safe - 2, safe).toString() === '\n\n' ||
      text.subarray(0, safe).toString().endsWith(comment);
    if (!ok) at = cut;
  }
  t.equal(at, -1, 'safeAt is an event boundary at every cut');
  tap.push(text);
  tap.push(half);
  t.equal(tap.stopReason, 'tool_use');
  t.equal(tap.cacheMissReason, 'tools_changed');
  t.equal(tap.safeAt, text.length, 'the half event after it is not safe to write');
  t.equal(tap.midEvent, true);
  t.equal(tap.stopped, false);
  // A message_delta without a stop_reason leaves it unset.
  const none = new SseTap();
  none.push(
    Buffer.from(ev('message_delta', '{"type":"message_delta","delta":{"stop_reason":null},"usage":{}}')),
  );
  t.equal(none.stopReason, undefined);
});

t.test(
  'an unreadable block start after commit is fatal with afterCommit; nothing after it is read',
  async (t) => {
    const head = ev('message_start', START()) + ev('content_block_delta', DELTA);
    const tap = new SseTap();
    feed(
      t,
      [
        Buffer.from(
          head +
            ev('content_block_start', '{"index":1,') +
            ev('content_block_delta', '{oops') +
            ev('message_stop', STOP),
        ),
      ],
      tap,
    );
    t.same(tap.fatal, {
      event: 'content_block_start',
      reason: 'invalid_json',
      at: Buffer.byteLength(head),
      afterCommit: true,
    });
    t.same(tap.drops, [], 'the later bad delta is not even looked at');
    t.equal(tap.stopped, false);
  },
);
