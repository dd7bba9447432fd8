/**
 * body-reader.ts: a body with a declared length is handed over as soon as its last byte and the
 * message end are in (without waiting for the 'end' event) — intact whether it arrived in one piece
 * or many, and the keep-alive connection serves the next request as usual.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import t from 'tap';
import { readRequestBody } from '../../src/proxy/body-reader.js';
import { waitFor } from '../helpers/wait.js';

/** A server that reads each body with readRequestBody and answers with its length and byte sum. */
async function server(): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const s = createServer((req: IncomingMessage, res) => {
    void readRequestBody(req, 1 << 20).then((b) => {
      if (typeof b === 'string') {
        seen.push(b);
        res.statusCode = 413;
        res.end(b);
        return;
      }
      let sum = 0;
      for (const x of b.bytes) sum = (sum + x) % 65521;
      seen.push(`${b.bytes.length}:${sum}`);
      b.release();
      // No writeHead: `end` with the text sets content-length, which the reader below relies on.
      res.end(`${b.bytes.length}:${sum}`);
    });
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { server: s, port: (s.address() as { port: number }).port, seen };
}

function sumOf(b: Buffer): string {
  let sum = 0;
  for (const x of b) sum = (sum + x) % 65521;
  return `${b.length}:${sum}`;
}

/** Reads one HTTP/1.1 response with a content-length from `sock`; resolves with its body text. */
function response(sock: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const head = buf.indexOf('\r\n\r\n');
      if (head < 0) return;
      const len = Number(/content-length: (\d+)/i.exec(buf.subarray(0, head).toString())?.[1] ?? 0);
      if (buf.length < head + 4 + len) return;
      sock.off('data', onData);
      resolve(buf.subarray(head + 4, head + 4 + len).toString());
    };
    sock.on('data', onData);
    sock.once('error', reject);
  });
}

t.test('a body in one piece and one in many pieces arrive intact on one keep-alive connection', async (t) => {
  const { server: s, port, seen } = await server();
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  const sock = connect(port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  await new Promise<void>((r) => sock.once('connect', () => r()));

  const big = Buffer.alloc(43_000, 0);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251;
  const head = (n: number) => `POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: ${n}\r\n\r\n`;

  // 1: headers and body in one write.
  let answer = response(sock);
  sock.write(Buffer.concat([Buffer.from(head(big.length)), big]));
  t.equal(await answer, sumOf(big), 'one piece');

  // 2: the same body in 7 writes, each after the server has had time to read the previous one.
  answer = response(sock);
  sock.write(head(big.length));
  for (let at = 0; at < big.length; at += 6_200) {
    await new Promise<void>((r) => sock.write(big.subarray(at, at + 6_200), () => setImmediate(r)));
  }
  t.equal(await answer, sumOf(big), 'many pieces');

  // 3: a small body (not pooled), then the connection is still usable.
  const small = Buffer.from('{"model":"claude-x","stream":true}');
  answer = response(sock);
  sock.write(Buffer.concat([Buffer.from(head(small.length)), small]));
  t.equal(await answer, sumOf(small), 'small body after two large ones, same connection');
  t.same(seen, [sumOf(big), sumOf(big), sumOf(small)]);
});

t.test('a client that stops before the declared length is an aborted body, not a short one', async (t) => {
  const { server: s, port, seen } = await server();
  t.teardown(() => new Promise<void>((r) => s.close(() => r())));
  const sock = connect(port, '127.0.0.1');
  await new Promise<void>((r) => sock.once('connect', () => r()));
  await new Promise<void>((r) =>
    sock.write(`POST /v1/messages HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n${'x'.repeat(60)}`, () =>
      r(),
    ),
  );
  sock.destroy();
  await waitFor(() => seen.length > 0, { message: 'the body read to settle' });
  t.same(seen, ['aborted']);
});
