/**
 * Reads a proxy request body up to `limit` bytes. A declared `content-length` above the limit is
 * refused before a byte is read. Claude Code's bodies are 40 KB to several MB: allocating a fresh
 * buffer for each (and collecting it again) made the garbage collector the largest cost of a
 * 200 KB request (bench, `--cpu-prof`), so a body with a declared length is copied into a buffer
 * taken from a small pool of size classes and returned to it when the request has ended.
 */
import type { IncomingMessage } from 'node:http';

/** A request body and how to give its memory back. */
export interface Body {
  readonly bytes: Buffer;
  /** Returns the buffer to the pool; the bytes must not be used afterwards. Idempotent. */
  release(): void;
}

/**
 * Size classes of pooled buffers and how many of each are kept (at most 8 + 16 + 16 + 16 MiB):
 * enough for a few dozen requests in flight at once without allocating.
 */
const CLASSES = [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024] as const;
const KEEP = [128, 64, 16, 4] as const;
const pools: Buffer[][] = CLASSES.map(() => []);

function take(size: number): { buf: Buffer; cls: number } {
  const cls = CLASSES.findIndex((c) => c >= size);
  if (cls < 0) return { buf: Buffer.allocUnsafe(size), cls: -1 };
  return { buf: pools[cls]!.pop() ?? Buffer.allocUnsafeSlow(CLASSES[cls]!), cls };
}

const NO_RELEASE = () => {};

/** The body, `'too-large'`, or `'aborted'` when the client went away mid-upload. */
export function readRequestBody(
  req: IncomingMessage,
  limit: number,
): Promise<Body | 'too-large' | 'aborted'> {
  const declared = Number(req.headers['content-length']);
  if (declared > limit) return Promise.resolve('too-large');
  const known = Number.isInteger(declared) && declared > 0 && req.headers['transfer-encoding'] === undefined;
  return new Promise((resolve) => {
    let target: { buf: Buffer; cls: number } | undefined =
      known && declared > 16 * 1024 ? take(declared) : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const giveBack = () => {
      const t = target;
      target = undefined;
      if (t && t.cls >= 0 && pools[t.cls]!.length < KEEP[t.cls]!) pools[t.cls]!.push(t.buf);
    };
    const finish = (v: Body | 'too-large' | 'aborted') => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      if (typeof v === 'string') giveBack();
      resolve(v);
    };
    const onData = (chunk: Buffer) => {
      if (size + chunk.length > limit || (target && size + chunk.length > declared)) {
        req.resume();
        finish('too-large');
        return;
      }
      if (target) chunk.copy(target.buf, size);
      else chunks.push(chunk);
      size += chunk.length;
      // Every declared byte is here and the parser has seen the message end: done now, not after
      // the 'end' event's extra turn of the stream machinery (on the way to the first token).
      if (size === declared && req.complete) finish(body());
    };
    const body = (): Body => {
      if (target) {
        let released = false;
        return {
          bytes: target.buf.subarray(0, size),
          release: () => {
            if (released) return;
            released = true;
            giveBack();
          },
        };
      }
      return { bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size), release: NO_RELEASE };
    };
    req.on('data', onData);
    req.once('end', () => finish(body()));
    req.once('error', () => finish('aborted'));
    req.once('close', () => finish(req.complete ? body() : 'aborted'));
  });
}

/** Buffers waiting in the pool now, over all size classes (tests and the memory benchmark). */
export function pooledBuffers(): number {
  let n = 0;
  for (const p of pools) n += p.length;
  return n;
}
