/**
 * End to end, session affinity: sessions stay on one channel while sessions spread, a 529 burst on
 * the pinned channel fails over and the session comes back, pins survive a restart and a reload
 * (but not a change of the channel's url), client tokens namespace session ids, instances sharing
 * a database adopt each other's pins, and the attempt rows and metrics say what affinity did.
 */
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { hashContent } from '../../src/config/load.js';
import type { Daemon } from '../../src/daemon.js';
import type { FakeUpstream } from '../../src/dev/fake-upstream.js';
import { sessionKey } from '../../src/proxy/affinity.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { login } from '../helpers/http.js';
import { MODEL } from '../helpers/messages.js';
import { tmpDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import {
  attempts,
  CLIENT_TOKEN,
  coolingScopes,
  proxyConfig,
  send,
  startProxy,
  startUpstreams,
} from './e2e-helpers.js';

/** A small Messages body of one session: its id in the header (default) or only in metadata.user_id. */
function turn(sessionId: string, n: number, via: 'header' | 'body' = 'header', token = CLIENT_TOKEN) {
  const userId = JSON.stringify({ device_id: 'd'.repeat(64), account_uuid: '', session_id: sessionId });
  return {
    headers: {
      'x-api-key': token,
      ...(via === 'header' ? { 'x-claude-code-session-id': sessionId } : {}),
    },
    body: {
      model: MODEL,
      max_tokens: 64,
      metadata: { user_id: userId },
      messages: Array.from({ length: n * 2 + 1 }, (_, i) => ({
        role: i % 2 === 0 ? 'user' : 'assistant',
        content: `turn ${i}`,
      })),
      stream: n % 2 === 0,
    },
  };
}

/** Which upstream (by index) served each request of a session, from the upstreams' request logs. */
function servedBy(ups: readonly FakeUpstream[], sessionId: string): number[] {
  const out: number[] = [];
  ups.forEach((u, i) => {
    for (const r of u.requests) {
      const meta = (r.json as { metadata?: { user_id?: string } } | undefined)?.metadata?.user_id;
      if (meta?.includes(sessionId)) out.push(i);
    }
  });
  return out;
}

async function metric(daemon: Daemon, name: string): Promise<string[]> {
  const text = await daemon.app.metrics.scrape();
  return text.split('\n').filter((l) => l.startsWith(name));
}

t.test('30 sessions spread over three channels, each staying on one channel for 20 turns', async (t) => {
  const ups = await startUpstreams(t, 3);
  const { url, daemon } = await startProxy(t, {
    channels: ups.map((u, i) => ({ name: `ch${i}`, url: u.url, priority: 10 })),
  });
  const sessions = Array.from({ length: 30 }, () => randomUUID());
  // Every session runs its 20 turns one after another; the 30 sessions run at once, next to a
  // client without sessions whose requests move the round-robin pointer at odd moments (30
  // sessions in lock-step would otherwise meet the same channel every round by rotation alone).
  const noise = (async () => {
    for (let i = 0; i < 40; i++) {
      const res = await send(url, { body: { model: MODEL, max_tokens: 8, messages: [] }, timeoutMs: 30_000 });
      if (res.status !== 200) throw new Error(`sessionless request: ${res.status}`);
    }
  })();
  await Promise.all(
    sessions.map(async (sid, s) => {
      for (let n = 0; n < 20; n++) {
        const { headers, body } = turn(sid, n, s % 2 === 0 ? 'header' : 'body');
        const res = await send(url, { headers, body, timeoutMs: 30_000 });
        if (res.status !== 200) throw new Error(`session ${s} turn ${n}: ${res.status} ${res.text()}`);
      }
    }),
  );
  await noise;
  const perChannel = [0, 0, 0];
  for (const sid of sessions) {
    const served = servedBy(ups, sid);
    t.equal(served.length, 20, 'every turn reached an upstream once');
    t.equal(new Set(served).size, 1, `session ${sid.slice(0, 8)} stayed on one channel`);
    perChannel[served[0]!]!++;
  }
  t.ok(
    perChannel.every((n) => n >= 9 && n <= 11),
    `sessions spread evenly: ${perChannel.join(' / ')}`,
  );

  const rows = (await attempts(daemon, { atLeast: 640 })).filter((r) => r.sessionFp !== null);
  t.equal(rows.length, 600, 'one attempt per session request');
  const raw = new Set<string>(sessions);
  t.ok(
    rows.every(
      (r) => r.sessionFp !== null && /^[0-9a-f]{16}$/.test(r.sessionFp ?? '') && !raw.has(r.sessionFp!),
    ),
    'every row carries a fingerprint, never the raw session id',
  );
  const byResult = new Map<string, number>();
  for (const r of rows) byResult.set(r.affinity ?? 'null', (byResult.get(r.affinity ?? 'null') ?? 0) + 1);
  t.same(Object.fromEntries(byResult), { new: 30, pinned: 570 }, 'first turns new, the rest pinned');

  const pins = await metric(daemon, 'ccload_session_pins{');
  t.same(
    pins.sort(),
    perChannel.map((n, i) => `ccload_session_pins{channel="ch${i}"} ${n}`).sort(),
    '/metrics: pins per channel',
  );
  const results = await metric(daemon, 'ccload_affinity_total{');
  t.ok(results.includes('ccload_affinity_total{result="pinned"} 570'), results.join('; '));
  t.ok(results.includes('ccload_affinity_total{result="new"} 30'));
  t.ok(results.includes('ccload_affinity_total{result="none"} 40'), 'sessionless requests count as none');
});

t.test('a 529 burst on the pinned channel fails over and the session returns to its pin', async (t) => {
  const ups = await startUpstreams(t, 3);
  const { url, daemon } = await startProxy(t, {
    channels: ups.map((u, i) => ({ name: `ch${i}`, url: u.url, priority: 10 })),
  });
  const sid = randomUUID();
  const key = sessionKey('e2e', sid);
  let n = 0;
  const next = async () => {
    const { headers, body } = turn(sid, n++);
    const res = await send(url, { headers, body });
    t.equal(res.status, 200, `turn ${n} answered`);
    return (await attempts(daemon, { requestId: res.requestId, atLeast: 1 })).map((r) => [
      r.channel,
      r.status,
      r.affinity,
    ]);
  };
  const start = await next();
  t.equal(start.length, 1);
  t.same(start[0]?.slice(1), [200, 'new'], 'a new session');
  const pinned = daemon.app.proxyState.pins.table.pins.get(key)!;
  t.ok(pinned, 'the first answer pinned the session');
  const home = pinned.channel;
  const homeUp = ups[Number(home.slice(2))]!;
  t.same(await next(), [[home, 200, 'pinned']], 'the pin serves');

  // The pinned channel answers 529 three times in a row.
  homeUp.enqueue(
    { kind: 'status', status: 529 },
    { kind: 'status', status: 529 },
    { kind: 'status', status: 529 },
  );
  const first = await next();
  t.equal(first.length, 2, 'failed over once');
  t.same(first[0], [home, 529, 'pinned'], 'the pinned attempt got the 529');
  const standIn = first[1]![0];
  t.not(standIn, home);
  t.same(first[1], [standIn, 200, 'kept'], 'a stand-in served; the pin was kept');
  t.equal(daemon.app.proxyState.pins.table.pins.get(key)?.channel, home, 'the pin did not move');

  // While the pinned channel cools, the same stand-in serves every turn.
  t.same(await next(), [[standIn, 200, 'kept']], 'same stand-in while cooling');
  // The rest of the burst: each time the cooldown ends the pin is tried again.
  for (let i = 0; i < 20 && homeUp.queued > 0; i++) {
    await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 5000, message: 'cooldown over' });
    const rows = await next();
    t.same(rows[0], [home, 529, 'pinned'], 'the pin is tried again after its cooldown');
  }
  await waitFor(() => coolingScopes(daemon).length === 0, { timeoutMs: 5000, message: 'cooldown over' });
  t.same(await next(), [[home, 200, 'pinned']], 'the burst is over: the session is back on its pin');
  t.same(await next(), [[home, 200, 'pinned']]);
  t.equal(daemon.app.proxyState.pins.table.pins.get(key)?.channel, home);
});

t.test('pins survive a restart and a reload; a channel whose url changed loses its pins', async (t) => {
  const [a, b, a2] = await startUpstreams(t, 3);
  const config = (aUrl: string, bPriority: number) =>
    proxyConfig({
      channels: [
        { name: 'a', url: aUrl, priority: 10 },
        { name: 'b', url: b!.url, priority: bPriority },
      ],
    });
  const first = await startProxy(t, config(a!.url, 10));
  const sids = [randomUUID(), randomUUID()];
  for (const sid of sids) {
    const { headers, body } = turn(sid, 0);
    t.equal((await send(first.url, { headers, body })).status, 200);
  }
  const home = new Map(sids.map((s) => [s, servedBy([a!, b!], s)[0]]));
  t.same([...home.values()].sort(), [0, 1], 'two sessions, one per channel');
  await first.daemon.close();
  const stored = await startProxy(t, config(a!.url, 10), { dir: first.dir, file: first.file });
  t.equal(stored.daemon.app.proxyState.pins.table.pins.size, 2, 'restored from SQLite');
  for (const sid of sids) {
    const { headers, body } = turn(sid, 1);
    const res = await send(stored.url, { headers, body });
    const rows = await attempts(stored.daemon, { requestId: res.requestId, atLeast: 1 });
    t.same(
      rows.map((r) => r.affinity),
      ['pinned'],
      'after a restart the session is still pinned',
    );
    t.same(servedBy([a!, b!], sid), [home.get(sid), home.get(sid)], 'on the same channel');
  }

  // A reload that changes something else keeps the pins.
  const edited = config(a!.url, 11);
  writeFileSync(first.file, edited);
  await stored.daemon.app.reloader.request('signal');
  t.equal(stored.daemon.app.reloader.current.hash, hashContent(edited), 'reloaded');
  t.equal(stored.daemon.app.proxyState.pins.table.pins.size, 2, 'pins kept over the reload');

  // A new url is a new upstream (a new account, another cache): its pins go.
  const moved = config(a2!.url, 11);
  writeFileSync(first.file, moved);
  await stored.daemon.app.reloader.request('signal');
  t.equal(stored.daemon.app.reloader.current.hash, hashContent(moved), 'reloaded');
  const left = [...stored.daemon.app.proxyState.pins.table.pins.values()].map((p) => p.channel);
  t.same(left, ['b'], "a's pin is dropped, b's stays");
  await stored.daemon.app.proxyState.flushPins(Date.now());
  const rows = await stored.daemon.app.db.client.execute('SELECT channel FROM session_pins');
  t.same(
    rows.rows.map((r) => r['channel']),
    ['b'],
    'and its row is deleted',
  );
});

t.test('two client tokens with the same session id get independent pins', async (t) => {
  const [a, b] = await startUpstreams(t, 2);
  const { url, daemon } = await startProxy(t, {
    channels: [
      { name: 'a', url: a!.url },
      { name: 'b', url: b!.url },
    ],
    tokens: [
      { name: 'alice', token: 'ccl-token-alice-0123456789' },
      { name: 'bob', token: 'ccl-token-bob-0123456789' },
    ],
  });
  const sid = randomUUID();
  const alice = turn(sid, 0, 'header', 'ccl-token-alice-0123456789');
  const bob = turn(sid, 0, 'header', 'ccl-token-bob-0123456789');
  t.equal((await send(url, alice)).status, 200);
  t.equal((await send(url, bob)).status, 200);
  const pins = daemon.app.proxyState.pins.table.pins;
  const pa = pins.get(sessionKey('alice', sid));
  const pb = pins.get(sessionKey('bob', sid));
  t.ok(pa && pb, 'one pin each');
  t.not(pa?.channel, pb?.channel, "bob's session is a new one, spread to the other channel");
  for (let i = 0; i < 3; i++) {
    await send(url, alice);
    await send(url, bob);
  }
  t.same(
    [a!.requests.length, b!.requests.length],
    [4, 4],
    'each stays on its own pin: neither client steers the other',
  );
  const rows = await attempts(daemon, { atLeast: 8 });
  t.equal(new Set(rows.map((r) => r.sessionFp)).size, 2, 'two fingerprints for one session id');
});

t.test("instances sharing a database adopt each other's pins", async (t) => {
  const shared = tmpDir(t);
  const [a, b] = await startUpstreams(t, 2);
  const text = (db: string) => `version: 1
server: { listen: 127.0.0.1:0, database: "file:${db}" }
channels:
  - { name: a, url: "${a!.url}", api_key: sk-test-a-0000 }
  - { name: b, url: "${b!.url}", api_key: sk-test-b-0000 }
`;
  const db = join(shared, 'shared.db');
  const one = await startTestDaemon(t, text(db));
  const two = await startTestDaemon(t, text(db));
  const sid = randomUUID();
  const { body } = turn(sid, 0);
  const post = (u: string) =>
    fetch(`${u}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-claude-code-session-id': sid },
      body: JSON.stringify(body),
    }).then(async (r) => {
      await r.text();
      return r.status;
    });
  t.equal(await post(one.daemon.url), 200);
  const home = servedBy([a!, b!], sid)[0]!;
  // Load instance two's table so that, left alone, it would send a new session elsewhere.
  await one.daemon.app.proxyState.flushPins(Date.now());
  t.equal(await two.daemon.app.proxyState.pins.syncShared(Date.now()), 1, 'two adopts the pin');
  for (let i = 0; i < 3; i++) t.equal(await post(two.daemon.url), 200);
  t.same(
    servedBy([a!, b!], sid),
    [home, home, home, home],
    'the session stays on its channel on both instances',
  );
});

t.test(
  '/admin/stats and the pages report the cache-read share per channel and per client token',
  async (t) => {
    const [a, b] = await startUpstreams(t, 2);
    // a reads most of its prompt from the cache, b writes it.
    a!.setDefault({
      kind: 'answer',
      usage: {
        input_tokens: 50,
        output_tokens: 5,
        cache_read_input_tokens: 900,
        cache_creation_input_tokens: 50,
      },
    });
    b!.setDefault({
      kind: 'answer',
      usage: {
        input_tokens: 100,
        output_tokens: 5,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 900,
      },
    });
    const { url, daemon } = await startProxy(t, {
      channels: [
        { name: 'a', url: a!.url, priority: 20 },
        { name: 'b', url: b!.url, priority: 10 },
      ],
      tokens: [
        { name: 'alice', token: 'ccl-token-alice-0123456789' },
        { name: 'bob', token: 'ccl-token-bob-0123456789' },
      ],
    });
    t.equal((await send(url, turn(randomUUID(), 0, 'header', 'ccl-token-alice-0123456789'))).status, 200);
    // b only serves while a is disabled for the moment: send bob's request with a cooling.
    a!.enqueue({ kind: 'status', status: 503 });
    t.equal((await send(url, turn(randomUUID(), 0, 'header', 'ccl-token-bob-0123456789'))).status, 200);
    await attempts(daemon, { atLeast: 3 });
    // The stats API is session-only (the control token opens only reload and config status).
    const cookie = await login(url);
    const res = await fetch(`${url}/admin/stats?hours=1`, { headers: { cookie } });
    t.equal(res.status, 200, '/admin/stats answers a logged-in session');
    const json = (await res.json()) as {
      cache_read_share: {
        channels: { channel_name: string; cache_read_share: number | null }[];
        tokens: { token: string; cache_read_share: number | null }[];
      };
    };
    t.same(
      json.cache_read_share.channels.map((c) => [c.channel_name, c.cache_read_share]),
      [
        ['a', 0.9],
        ['b', 0],
      ],
      'per channel: 900 / (50 + 900 + 50) and 0 / (100 + 900)',
    );
    t.same(
      json.cache_read_share.tokens.map((c) => [c.token, c.cache_read_share]),
      [
        ['alice', 0.9],
        ['bob', 0],
      ],
      'per client token',
    );
    // The pages show the same share.
    const page = await (await fetch(`${url}/stats?hours=1`, { headers: { cookie } })).text();
    t.match(page, /Prompt cache by channel/);
    t.match(page, /<strong>90\.0%<\/strong>/, 'the Stats page shows 90% for a');
    const overview = await (await fetch(`${url}/ui/overview`, { headers: { cookie } })).text();
    // (900 + 0) / (50 + 900 + 50 + 100 + 0 + 900) = 45%
    t.match(overview, /Cache reads · 24 h<\/div><div class="value">45\.0%/, 'the Overview card');
    const channels = await (await fetch(`${url}/channels`, { headers: { cookie } })).text();
    t.match(channels, /data-label="pinned sessions">1</, 'pins per channel on the Channels page');
  },
);
