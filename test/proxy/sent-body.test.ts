/**
 * sent-body.ts: a body counts as written only when the socket undici wrote it to has nothing
 * pending — so a pooled buffer is never reused while an upstream that answers before reading the
 * request still has bytes of it to receive.
 */
import { createServer, type Server, type Socket } from 'node:net';
import t from 'tap';
import { type Dispatcher, Pool } from 'undici';
import { bodyWritten, watchSentBodies } from '../../src/proxy/sent-body.js';
import { deadline, waitFor } from '../helpers/wait.js';

const HEAD = 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n';
const chunk = (s: string) => `${Buffer.byteLength(s).toString(16)}\r\n${s}\r\n`;

/** A raw upstream: answers at once with an SSE head and one event; reads the request only when told. */
async function upstream(
  readFirst: boolean,
): Promise<{ server: Server; url: string; read: () => number; resume: () => void; sockets: Socket[] }> {
  let received = 0;
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    s.on('data', (d: Buffer) => {
      received += d.length;
    });
    if (!readFirst) s.pause();
    s.write(HEAD + chunk('event: content_block_delta\ndata: {}\n\n'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    server,
    url: `http://127.0.0.1:${port}`,
    read: () => received,
    resume: () => {
      for (const s of sockets) s.resume();
    },
    sockets,
  };
}

/** Dispatches `body` and resolves when the response head has arrived. */
function send(pool: Pool, body: Buffer): Promise<Dispatcher.DispatchController> {
  return new Promise((resolve, reject) => {
    pool.dispatch(
      { path: '/v1/messages', method: 'POST', body, headers: ['content-type', 'application/json'] },
      {
        onRequestStart() {},
        onResponseStart(controller) {
          resolve(controller);
        },
        onResponseData() {},
        onResponseEnd() {},
        onResponseError(_c, err) {
          reject(err);
        },
      },
    );
  });
}

t.test(
  'an upstream that answers before reading: the body is not written yet, and is once it reads',
  async (t) => {
    watchSentBodies();
    const up = await upstream(false);
    const pool = new Pool(up.url, { pipelining: 1 });
    t.teardown(async () => {
      await pool.destroy();
      for (const s of up.sockets) s.destroy();
      up.server.close();
    });
    // Far more than loopback's socket buffers take without the peer reading.
    const body = Buffer.alloc(16 * 1024 * 1024, 0x61);
    const controller = await deadline(send(pool, body), 10_000, 'the response head');
    t.equal(bodyWritten(body), false, 'bytes of the body are still queued in the socket');
    up.resume();
    await waitFor(() => up.read() >= body.length, {
      timeoutMs: 10_000,
      message: 'the upstream read the body',
    });
    await waitFor(() => bodyWritten(body), {
      timeoutMs: 10_000,
      message: 'bodyWritten after the upstream read it',
    });
    controller.abort(new Error('done'));
  },
);

t.test('an upstream that reads first: the body is written when the answer arrives', async (t) => {
  watchSentBodies();
  const up = await upstream(true);
  const pool = new Pool(up.url, { pipelining: 1 });
  t.teardown(async () => {
    await pool.destroy();
    for (const s of up.sockets) s.destroy();
    up.server.close();
  });
  const body = Buffer.alloc(43_000, 0x62);
  const controller = await deadline(send(pool, body), 10_000, 'the response head');
  // The head is written on connection, possibly before the body arrived: wait until it has.
  await waitFor(() => up.read() >= body.length, { timeoutMs: 10_000, message: 'the upstream read the body' });
  await waitFor(() => bodyWritten(body), { timeoutMs: 10_000, message: 'bodyWritten' });
  t.equal(bodyWritten(Buffer.from('never sent')), false, 'a body never sent is not written');
  controller.abort(new Error('done'));
});
