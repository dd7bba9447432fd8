import t, { type Test } from 'tap';
import { encodeSse, messageStreamEvents } from '../../src/dev/anthropic-shapes.js';
import { SseTap, sseErrorFrame } from '../../src/proxy/sse-tap.js';
import { prng } from '../helpers/random.js';

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
    usage: tap.usage,
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
    usage: tap.usage,
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
    // A delta whose data is not even JSON is still recognised by its leading type, and never parsed.
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
    malformed: 0,
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

t.test('content_block_delta data is neither parsed nor counted malformed', async (t) => {
  const text =
    ev('message_start', START()) +
    ev('content_block_delta', 'not json at all {') +
    ev('message_stop', 'garbage');
  const seen = feed(t, [Buffer.from(text)]);
  t.equal(seen.malformed, 0, 'delta and stop data are not read');
  t.equal(seen.committed, true);
  t.equal(seen.stopped, true);
  t.equal(seen.eventCount, 3);
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
  t.same(tap.usage, { input: 10, output: 1, cacheCreation: 0, cacheRead: 0 });
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

t.test('malformed message_start: counted, no throw, the stream is still followed', async (t) => {
  const text =
    ev('message_start', '{"type":"message_start","message":{"model":"m",') +
    ev('message_start', '[1,2]') +
    ev('content_block_delta', DELTA) +
    ev('message_delta', MDELTA({ output_tokens: 4 })) +
    ev('message_stop', STOP);
  const seen = feed(t, [Buffer.from(text)]);
  t.equal(seen.malformed, 2);
  t.equal(seen.model, undefined);
  t.same(seen.usage, { input: 0, output: 4, cacheCreation: 0, cacheRead: 0 });
  t.equal(seen.committed, true);
  t.equal(seen.stopped, true);
  t.equal(seen.eventCount, 5);
});

t.test('a huge kept event is dropped at the bound, counted malformed, and tracking goes on', async (t) => {
  const tap = new SseTap({ maxEventBytes: 4096 });
  const big = JSON.stringify({ type: 'message_start', message: { model: 'm', pad: 'p'.repeat(20_000) } });
  const text = Buffer.from(
    ev('message_start', big) + ev('content_block_delta', DELTA) + ev('message_stop', STOP),
  );
  const seen = feed(t, splitAt(text, 1000, 1001, 7000, 15_000), tap);
  t.equal(seen.malformed, 1);
  t.equal(seen.model, undefined);
  t.equal(seen.committed, true);
  t.equal(seen.stopped, true);
  t.equal(seen.eventCount, 3);

  // The default bound (1 MiB) with a 3 MiB message_delta in 64 KiB chunks.
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
  t.equal(hugeSeen.malformed, 1);
  t.equal(hugeSeen.committed, true, 'the oversized message_delta still commits');
  t.same(
    hugeSeen.usage,
    { input: 10, output: 1, cacheCreation: 0, cacheRead: 0 },
    'its usage is lost, not guessed',
  );
});

t.test('a huge content_block_delta is skipped without being kept', async (t) => {
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

t.test('an event line longer than the carry, cut mid-line, names an unknown event', async (t) => {
  const name = `content_block_delta${'_'.repeat(400)}`;
  const text = Buffer.from(ev('message_start', START()) + ev(name, DELTA) + ev('message_stop', STOP));
  const at = text.indexOf(name);
  const seen = feed(t, splitAt(text, at + 2, at + 300));
  t.equal(seen.eventCount, 3);
  t.equal(seen.commitAt, text.length, 'only message_stop commits');
});

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
  const frame = sseErrorFrame('overloaded_error', 'all channels failed: "primary" 529\nbackup reset');
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
  'pendingErrorFrom: bytes of a possible error event are never released before the event is complete',
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
        let offset = 0;
        let released = 0;
        let leaked = false;
        for (const chunk of splitAt(stream, ...cuts)) {
          tap.push(chunk);
          offset += chunk.length;
          const from = tap.pendingErrorFrom;
          released = Math.max(released, from < 0 ? offset : from);
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

t.test('pendingErrorFrom: content events are not held', async (t) => {
  const stream = encodeSse(
    messageStreamEvents({ model: 'claude-x', text: 'Hello there, a longer answer', usage: USAGE }),
  );
  const tap = new SseTap();
  let held = 0;
  // Chunks that each end right after a complete event or inside a content event's data.
  let offset = 0;
  for (const chunk of splitAt(
    stream,
    ...Array.from({ length: 20 }, (_, i) => Math.floor(((i + 1) * stream.length) / 21)),
  )) {
    tap.push(chunk);
    offset += chunk.length;
    if (tap.pendingErrorFrom >= 0) held += offset - tap.pendingErrorFrom;
  }
  t.equal(tap.errorEvents, 0);
  t.ok(held < 200, `only bytes of event headers not yet complete were held (${held} bytes over 20 chunks)`);
});
