/**
 * Reads a proxy request body up to `limit` bytes without an intermediate copy per chunk: chunks
 * are collected and concatenated once. A declared `content-length` above the limit is refused
 * before a byte is read.
 */
import type { IncomingMessage } from 'node:http';

/** The body, `'too-large'`, or `'aborted'` when the client went away mid-upload. */
export function readRequestBody(
  req: IncomingMessage,
  limit: number,
): Promise<Buffer | 'too-large' | 'aborted'> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.resolve('too-large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (v: Buffer | 'too-large' | 'aborted') => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      resolve(v);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.resume();
        finish('too-large');
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)));
    req.once('error', () => finish('aborted'));
    req.once('close', () =>
      finish(req.complete ? (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)) : 'aborted'),
    );
  });
}
