/**
 * End to end, selection: round-robin inside a priority, priorities, disabled channels, unknown
 * models, `when_all_cooling: reject`, and cooldowns that outlive a restart and a reload (but not a
 * change of the channel's url).
 */
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { hashContent } from '../../src/config/load.js';
import { messagesBody } from '../helpers/messages.js';
import { waitFor } from '../helpers/wait.js';
import {
  anthropicErrorOf,
  attempts,
  coolingScopes,
  proxyConfig,
  send,
  startProxy,
  startUpstreams,
} from './e2e-helpers.js';

t.test('round-robin between equal priorities, priority respected, disabled channels unused', async (t) => {
  const [a, b, low, off] = await startUpstreams(t, 4);
  const { url, daemon } = await startProxy(t, {
    channels: [
      { name: 'a', url: a!.url, priority: 10 },
      { name: 'b', url: b!.url, priority: 10 },
      { name: 'low', url: low!.url, priority: 5 },
      { name: 'off', url: off!.url, priority: 50, enabled: false },
    ],
  });
  const n = 20;
  for (let i = 0; i < n; i++) {
    const res = await send(url, { body: messagesBody({ stream: i % 2 === 0 }) });
    t.equal(res.status, 200);
  }
  const na = a!.requests.length;
  const nb = b!.requests.length;
  t.equal(na + nb, n, 'every request went to the top priority');
  t.ok(Math.abs(na - nb) <= 2, `roughly even: a ${na}, b ${nb}`);
  t.equal(low!.requests.length, 0, 'the lower priority is unused while the top one is healthy');
  t.equal(off!.requests.length, 0, 'a disabled channel is never used');

  // Concurrent requests rotate too.
  a!.reset();
  b!.reset();
  const all = await Promise.all(Array.from({ length: 10 }, () => send(url, { body: messagesBody() })));
  t.same(new Set(all.map((r) => r.status)), new Set([200]));
  t.ok(
    Math.abs(a!.requests.length - b!.requests.length) <= 2,
    `concurrent: a ${a!.requests.length}, b ${b!.requests.length}`,
  );
  const rows = await attempts(daemon, { atLeast: n + 10 });
  t.ok(
    rows.every((r) => r.attempt === 1 && r.final),
    'one attempt per request',
  );
});

t.test('an unknown model gets 404 not_found_error naming it', async (t) => {
  const [a, off] = await startUpstreams(t, 2);
  const { url } = await startProxy(t, {
    channels: [
      { name: 'a', url: a!.url, models: ['claude-*'] },
      { name: 'off', url: off!.url, models: ['gpt-*'], enabled: false },
    ],
  });
  for (const model of ['gpt-5-turbo', 'llama-4-70b']) {
    const res = await send(url, { body: messagesBody({ model }) });
    t.equal(res.status, 404, model);
    const err = anthropicErrorOf(res.body);
    t.equal(err?.type, 'not_found_error');
    t.match(err?.message, model, 'the message names the model');
  }
  t.equal(a!.requests.length + off!.requests.length, 0, 'no upstream asked');
  const served = await send(url, { body: messagesBody({ model: 'claude-haiku-5-5' }) });
  t.equal(served.status, 200, 'a model the glob matches is served');
});

t.test('every candidate cooling with when_all_cooling: reject → 503 with retry-after', async (t) => {
  const [a] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, {
    channels: [{ name: 'a', url: a!.url }],
    routing: { when_all_cooling: 'reject', max: '1m' },
  });
  a!.enqueue({ kind: 'status', status: 429, headers: { 'retry-after': '30' } });
  const first = await send(url, { body: messagesBody() });
  t.equal(first.status, 429, 'the upstream’s 429 first');
  const second = await send(url, { body: messagesBody() });
  t.equal(second.status, 503);
  t.equal(anthropicErrorOf(second.body)?.type, 'overloaded_error');
  const retry = Number(second.headers['retry-after']);
  // The cooldown's remaining seconds: 30 less the time since the 429 (generous for a loaded machine).
  t.ok(retry >= 25 && retry <= 30, `retry-after: ${second.headers['retry-after']}`);
  t.equal(a!.requests.length, 1, 'the cooling channel was not asked');
});

t.test('cooldowns survive a restart and a reload; a channel whose url changed starts clean', async (t) => {
  const [a, b, a2] = await startUpstreams(t, 3);
  const config = (aUrl: string, bPriority: number) =>
    proxyConfig({
      channels: [
        { name: 'a', url: aUrl, priority: 20 },
        { name: 'b', url: b!.url, priority: bPriority },
      ],
      routing: { max: '1m' },
    });
  const first = await startProxy(t, config(a!.url, 10));
  a!.setDefault({ kind: 'status', status: 503, headers: { 'retry-after': '30' } });
  const res = await send(first.url, { body: messagesBody() });
  t.equal(res.status, 200, 'failed over to b');
  t.same(coolingScopes(first.daemon), ['channel+model:a|claude-sonnet-5-5']);
  await first.daemon.close();

  // Same folder, same database file: a new daemon.
  const second = await startProxy(t, config(a!.url, 10), { dir: first.dir, file: first.file });
  t.same(coolingScopes(second.daemon), ['channel+model:a|claude-sonnet-5-5'], 'restored from SQLite');
  await send(second.url, { body: messagesBody() });
  t.equal(a!.requests.length, 1, 'after a restart a is still cooling');
  t.equal(b!.requests.length, 2);

  // A reload that changes something else keeps the cooldown.
  const edited = config(a!.url, 11);
  writeFileSync(first.file, edited);
  await second.daemon.app.reloader.request('signal');
  t.equal(second.daemon.app.reloader.current.hash, hashContent(edited), 'reloaded');
  await send(second.url, { body: messagesBody() });
  t.equal(a!.requests.length, 1, 'after a reload a is still cooling');

  // A new url is a new upstream: its cooldown is gone.
  const moved = config(a2!.url, 11);
  writeFileSync(first.file, moved);
  await second.daemon.app.reloader.request('signal');
  t.equal(second.daemon.app.reloader.current.hash, hashContent(moved), 'reloaded');
  t.same(coolingScopes(second.daemon), [], 'the stale cooldown is dropped');
  const res2 = await send(second.url, { body: messagesBody() });
  t.equal(res2.status, 200);
  t.equal(a2!.requests.length, 1, 'the channel at its new url is used at once');
  // The row is deleted too (written through off the request path, so awaited).
  const client = second.daemon.app.db.client;
  await waitFor(
    async () => Number((await client.execute('SELECT count(*) AS n FROM cooldowns')).rows[0]?.['n']) === 0,
    {
      message: 'the cooldowns row deleted',
    },
  );
  t.pass('and its row is deleted');
});
