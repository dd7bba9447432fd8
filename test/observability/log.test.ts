/**
 * The log's hot path: LineBlocks gathers lines into blocks for the fd writer without losing or
 * reordering any, and the log line's cached ISO timestamp equals `Date#toISOString` for every millisecond it is asked
 * about, across second, minute, day and year boundaries and in any order of calls.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { isoTimeCached, LineBlocks } from '../../src/observability/log.js';
import { prng } from '../helpers/random.js';
import { tmpDir } from '../helpers/tmp.js';
import { deadline } from '../helpers/wait.js';

t.test('isoTimeCached matches pino isoTime at every millisecond', async (t) => {
  const realNow = Date.now;
  t.teardown(() => {
    Date.now = realNow;
  });
  const time = isoTimeCached();
  const at = (ms: number) => {
    Date.now = () => ms;
    return time();
  };
  const expected = (ms: number) => `,"time":"${new Date(ms).toISOString()}"`;
  const edges = [
    Date.UTC(2026, 11, 31, 23, 59, 59, 998),
    Date.UTC(2026, 11, 31, 23, 59, 59, 999),
    Date.UTC(2027, 0, 1, 0, 0, 0, 0),
    Date.UTC(2027, 0, 1, 0, 0, 0, 1),
    Date.UTC(2027, 0, 1, 0, 0, 0, 10),
    Date.UTC(2027, 0, 1, 0, 0, 0, 99),
    Date.UTC(2027, 0, 1, 0, 0, 0, 100),
    Date.UTC(2026, 11, 31, 23, 59, 59, 999),
  ];
  let mismatches = 0;
  for (const ms of edges) if (at(ms) !== expected(ms)) mismatches++;
  const rnd = prng(16);
  const base = Date.UTC(2026, 11, 3, 16, 31, 45, 0);
  for (let i = 0; i < 20_000; i++) {
    // Mostly nearby times (the cache path), sometimes a jump back or forward.
    const ms = base + Math.floor(rnd() * (i % 10 === 0 ? 1e10 : 3000));
    if (at(ms) !== expected(ms)) mismatches++;
  }
  t.equal(mismatches, 0, 'no timestamp differs from toISOString');
  t.equal(at(edges[2]!), ',"time":"2027-01-01T00:00:00.000Z"');
});

t.test('LineBlocks: lines reach the file in order, in blocks, and all of them at flushSync', async (t) => {
  const dir = tmpDir(t);
  const file = join(dir, 'out.log');
  const dest = pino.destination({ dest: file, sync: false, maxWrite: 65_536, mkdir: true });
  await once(dest, 'ready');
  const handed: number[] = [];
  const write = dest.write.bind(dest);
  dest.write = (s: string) => {
    handed.push(s.length);
    return write(s);
  };
  const blocks = new LineBlocks(dest, 1000);
  const lines = Array.from({ length: 250 }, (_, i) => `{"n":${i},"text":"${'é'.repeat(i % 40)}"}\n`);
  for (const l of lines) blocks.write(l);
  t.ok(handed.length >= 5 && handed.length < 30, `handed over in ${handed.length} blocks, not per line`);
  t.ok(
    handed.every((n) => n >= 1000),
    'every block handed over is at least the block size',
  );
  blocks.flushSync();
  t.equal(readFileSync(file, 'utf8'), lines.join(''), 'every line, in order, UTF-8 intact');
  blocks.write('{"last":true}\n');
  // The destination may still report an earlier asynchronous write after flushSync: wait for the
  // write events until the partial block is in the file, not just for the next one.
  const lastIn = () => readFileSync(file, 'utf8').endsWith('{"last":true}\n');
  const written = (async () => {
    while (!lastIn()) await once(dest, 'write');
  })();
  blocks.flush();
  await deadline(written, 5000, 'the partial block written');
  t.match(readFileSync(file, 'utf8'), /\{"last":true\}\n$/, 'flush writes a partial block');
  dest.end();
});
