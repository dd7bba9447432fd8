/**
 * Pricing: derived cache prices, the TTL split, compaction, web search and fast mode, each priced
 * per the config (README "Pricing").
 */
import t from 'tap';
import { ConfigSchema } from '../../src/config/schema.js';
import { PriceBook, resolvePrice } from '../../src/proxy/cost.js';
import { emptyUsage, type Usage } from '../../src/proxy/usage.js';

function book(pricing: Record<string, unknown>): PriceBook {
  return new PriceBook(ConfigSchema.parse({ version: 1, pricing }).pricing);
}

const U = (o: Partial<Usage>): Usage => ({ ...emptyUsage(), ...o });
const close = (a: number | null, b: number) => a !== null && Math.abs(a - b) < 1e-12;

t.test('cache prices default to 1.25× / 2× / 0.1× input; fast ×6; web search $0.01', async (t) => {
  const p = book({ 'claude-*': { input: 4, output: 20 } }).price('claude-x')!;
  t.same(p, {
    input: 4,
    output: 20,
    cacheWrite5m: 5,
    cacheWrite1h: 8,
    cacheRead: 0.4,
    fastMultiplier: 6,
    webSearch: 0.01,
  });
  // Given prices win, including an explicit 0.
  t.same(
    resolvePrice({ input: 4, output: 20, cache_write: 0, cache_read: 1, fast_multiplier: 2, web_search: 0 }),
    { input: 4, output: 20, cacheWrite5m: 0, cacheWrite1h: 8, cacheRead: 1, fastMultiplier: 2, webSearch: 0 },
  );
});

t.test('5-minute and 1-hour cache writes are priced apart', async (t) => {
  const b = book({ m: { input: 3, output: 15, cache_write: 3.75, cache_write_1h: 6, cache_read: 0.3 } });
  // 1000 written for 5 minutes, 2000 for an hour, 10 000 read.
  const cost = b.cost(
    'm',
    U({ input: 100, output: 50, cacheCreation: 3000, cacheCreation1h: 2000, cacheRead: 10_000 }),
  );
  t.ok(close(cost, (100 * 3 + 50 * 15 + 1000 * 3.75 + 2000 * 6 + 10_000 * 0.3) / 1e6), `cost ${cost}`);
});

t.test('compaction iterations are billed on top of the top-level usage', async (t) => {
  const b = book({ m: { input: 5, output: 25 } });
  const cost = b.cost(
    'm',
    U({ input: 23_000, output: 1000, compactionInput: 180_000, compactionOutput: 3500 }),
  );
  t.ok(close(cost, (203_000 * 5 + 4500 * 25) / 1e6), `cost ${cost}`);
});

t.test('web search requests are priced per request, fast answers at the multiplier', async (t) => {
  const b = book({ m: { input: 5, output: 25, web_search: 0.01, fast_multiplier: 6 } });
  t.ok(close(b.cost('m', U({ webSearchRequests: 3 })), 0.03));
  const tokens = U({ input: 1000, output: 1000, cacheRead: 1000 });
  const standard = b.cost('m', tokens)!;
  t.ok(close(standard, (5000 + 25_000 + 500) / 1e6));
  t.ok(close(b.cost('m', { ...tokens, speed: 'fast' }), standard * 6), 'every token price ×6');
  t.ok(close(b.cost('m', { ...tokens, speed: 'standard' }), standard), 'standard speed is not multiplied');
  t.ok(
    close(b.cost('m', { ...tokens, speed: 'fast', webSearchRequests: 1 }), standard * 6 + 0.01),
    'web search is not multiplied',
  );
  t.equal(b.cost('unpriced', tokens), null);
});
