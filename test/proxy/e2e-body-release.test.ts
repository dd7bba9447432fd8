/**
 * End to end: an open stream does not keep its request body's pooled buffer (sent-body.ts). Once the
 * stream has committed and undici has written every byte, the buffer is back in the pool while the
 * answer is still streaming; the upstream got the body intact.
 */
import t from 'tap';
import { okStream } from '../../src/dev/fake-upstream.js';
import { pooledBuffers } from '../../src/proxy/body-reader.js';
import { MODEL } from '../helpers/messages.js';
import { waitFor } from '../helpers/wait.js';
import { claudeCode, send, sseEvents, twoChannels } from './e2e-helpers.js';

const TEXT = 'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma';

t.test('regression: a committed stream gives its pooled body buffer back before it ends', async (t) => {
  const { a, url } = await twoChannels(t);
  // Slow enough that the stream is still open well after its first delta.
  a.enqueue(okStream(MODEL, { text: TEXT, delayMs: 150 }));
  const req = claudeCode(MODEL, true, 43_000);
  const before = pooledBuffers();
  let seenDelta = false;
  let released: Promise<void> | undefined;
  const res = await send(url, {
    headers: req.headers,
    body: req.body,
    abortWhen: (chunks) => {
      if (!seenDelta && chunks.some((c) => c.data.includes('content_block_delta'))) {
        seenDelta = true;
        // A fresh buffer when the pool was empty, the popped one otherwise: either way the pool is
        // back to at least its old size once the buffer is returned. The stream lasts about 3 s
        // more: a buffer returned only at its end misses the 1 s bound.
        released = waitFor(() => pooledBuffers() >= Math.max(before, 1), {
          timeoutMs: 1000,
          message: 'the body buffer back in the pool while the stream is open',
        });
      }
      return false;
    },
  });
  t.ok(seenDelta, 'the stream reached its first delta');
  t.ok(released, 'checked while open');
  await released;
  const events = sseEvents(res.body).map((e) => e.event);
  t.equal(events.at(-1), 'message_stop', 'the stream ended cleanly');
  t.ok(a.requests[0]!.body.equals(req.body), 'the upstream got the body byte for byte');
});
