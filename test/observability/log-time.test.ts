/**
 * The log line's cached ISO timestamp equals `Date#toISOString` for every millisecond it is asked
 * about, across second, minute, day and year boundaries and in any order of calls.
 */
import t from 'tap';
import { isoTimeCached } from '../../src/observability/log.js';
import { prng } from '../helpers/random.js';

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
