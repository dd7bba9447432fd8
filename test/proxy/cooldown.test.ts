import t from 'tap';
import type { Channel } from '../../src/config/snapshot.js';
import {
  type AttemptContext,
  activeEntries,
  backoffMs,
  type CooldownPolicy,
  type CooldownRow,
  type CooledChannel,
  clearChannel,
  cooldownRow,
  cooldownRows,
  coolingUntil,
  createCooldownState,
  type FailureInfo,
  prune,
  recordFailure,
  recordSuccess,
  restoreCooldowns,
  scopeKey,
} from '../../src/proxy/cooldown.js';
import { classifyOutcome } from '../../src/proxy/outcome.js';
import type { StateStore } from '../../src/store/state-store.js';

const SEC = 1000;
const MIN = 60 * SEC;
const policy: CooldownPolicy = { base: 1 * SEC, max: 30 * MIN };

/** A channel with just what cooldowns read. */
function channel(
  name: string,
  identity = `id-${name}`,
  modelMap: Record<string, string> = {},
): CooledChannel {
  return { name, identity, mapModel: (m: string) => modelMap[m] ?? m };
}

const fail = (scope: FailureInfo['scope'], extra: Partial<FailureInfo> = {}): FailureInfo => ({
  scope,
  reason: `test ${scope}`,
  ...extra,
});

t.test('scope keys are unambiguous for any name', async (t) => {
  t.equal(scopeKey({ scope: 'channel', channel: 'a' }), 'c:a');
  t.equal(scopeKey({ scope: 'key', channel: 'a', keyIndex: 2 }), 'k:a#2');
  t.equal(scopeKey({ scope: 'channel+model', channel: 'a', model: 'claude-x' }), 'm:a|claude-x');
  t.equal(scopeKey({ scope: 'key+model', channel: 'a', keyIndex: 0, model: 'claude-x' }), 'km:a#0|claude-x');
  // Names chosen so a naive `${channel}|${model}` would collide.
  const keys = [
    scopeKey({ scope: 'channel+model', channel: 'a|b', model: 'c' }),
    scopeKey({ scope: 'channel+model', channel: 'a', model: 'b|c' }),
    scopeKey({ scope: 'key+model', channel: 'a#1', keyIndex: 1, model: 'x' }),
    scopeKey({ scope: 'key+model', channel: 'a', keyIndex: 1, model: '1|x' }),
    scopeKey({ scope: 'key', channel: 'a#1', keyIndex: 1 }),
    scopeKey({ scope: 'key', channel: 'a', keyIndex: 11 }),
    scopeKey({ scope: 'channel', channel: 'm:a|b' }),
    scopeKey({ scope: 'channel', channel: '%7C' }),
    scopeKey({ scope: 'channel', channel: '|' }),
  ];
  t.equal(new Set(keys).size, keys.length, `all distinct: ${keys.join(' ')}`);
  t.throws(() => scopeKey({ scope: 'key', channel: 'a' }), /key index/);
  t.throws(() => scopeKey({ scope: 'channel+model', channel: 'a' }), /model/);
});

t.test('backoff doubles from base up to max', async (t) => {
  const p = { base: 1 * SEC, max: 10 * SEC };
  t.same(
    [1, 2, 3, 4, 5, 6, 50, 5000].map((n) => backoffMs(n, p)),
    [1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000],
  );
  t.equal(backoffMs(1, policy, true), 7.5 * MIN, 'longStart begins at max/4');
  t.equal(backoffMs(2, policy, true), 15 * MIN);
  t.equal(backoffMs(3, policy, true), 30 * MIN);
  t.equal(backoffMs(1, { base: 20 * SEC, max: 40 * SEC }, true), 20 * SEC, 'longStart never below base');
  t.equal(backoffMs(3, { base: 5 * SEC, max: 1 * SEC }), 5 * SEC, 'max below base: base is the ceiling');
});

t.test('recordFailure: repeated failures double, each starting when the last cooldown ended', async (t) => {
  const state = createCooldownState();
  const ch = channel('relay');
  const ctx: AttemptContext = { channel: ch, keyIndex: 0, model: 'claude-x' };
  const p = { base: 1 * SEC, max: 16 * SEC };
  let now = 1_000_000;
  const seen: [number, number][] = [];
  for (let i = 0; i < 7; i++) {
    const e = recordFailure(state, fail('channel+model'), ctx, p, now);
    t.ok(e, 'entry returned');
    seen.push([e!.failures, e!.until - now]);
    now = e!.until; // the next attempt happens only once the cooldown is over
  }
  t.same(seen, [
    [1, 1000],
    [2, 2000],
    [3, 4000],
    [4, 8000],
    [5, 16_000],
    [6, 16_000],
    [7, 16_000],
  ]);
  t.equal(state.entries.size, 1, 'one scope, updated in place');
});

t.test('regression: the cooldown really lasts (Go ccLoad stored the expiry as "now")', async (t) => {
  const state = createCooldownState();
  const ch = channel('main');
  const now = 5_000_000;
  const e = recordFailure(state, fail('channel'), { channel: ch, keyIndex: 0, model: 'm' }, policy, now)!;
  t.equal(e.until, now + policy.base, 'expiry is now + base');
  t.ok(e.until > now, 'expiry is in the future');
  for (const at of [now, now + 1, now + 500, now + 999]) {
    t.equal(coolingUntil(state, ch, 0, 'm', at), now + 1000, `still cooling at +${at - now}ms`);
  }
  t.equal(coolingUntil(state, ch, 0, 'm', now + 1000), 0, 'over exactly at until');
  t.same(activeEntries(state, now + 999).length, 1);
  t.same(activeEntries(state, now + 1000).length, 0);
});

t.test('an exact reset time from the upstream wins over the backoff', async (t) => {
  const ch = channel('main');
  const ctx: AttemptContext = { channel: ch, keyIndex: 1, model: 'm' };
  const now = 10_000_000;

  let state = createCooldownState();
  let e = recordFailure(state, fail('key+model', { resetAt: now + 42 * SEC }), ctx, policy, now)!;
  t.equal(e.until, now + 42 * SEC, 'longer than base');

  // Second failure would back off 2s; the upstream says 300ms.
  e = recordFailure(state, fail('key+model', { resetAt: e.until + 300 }), ctx, policy, e.until)!;
  t.equal(e.until - (now + 42 * SEC), 300, 'shorter than the backoff too');
  t.equal(e.failures, 2, 'still counted');

  state = createCooldownState();
  e = recordFailure(state, fail('key+model', { resetAt: now + 5 * 3_600_000 }), ctx, policy, now)!;
  t.equal(e.until, now + policy.max, 'capped at max');

  state = createCooldownState();
  e = recordFailure(state, fail('key+model', { resetAt: now - 1 }), ctx, policy, now)!;
  t.equal(e.until, now + policy.base, 'a reset in the past falls back to the backoff');

  // End to end with the classifier: a 429 with retry-after 30 cools that key for that model 30s.
  state = createCooldownState();
  const outcome = classifyOutcome(
    { kind: 'status', status: 429, headers: { 'retry-after': '30' } },
    { endpoint: 'messages', now },
  );
  recordFailure(state, outcome, ctx, policy, now);
  t.equal(coolingUntil(state, ch, 1, 'm', now), now + 30 * SEC, 'that key+model cools');
  t.equal(coolingUntil(state, ch, 0, 'm', now), 0, 'another key is free');
  t.equal(coolingUntil(state, ch, 1, 'other-model', now), 0, 'the same key for another model is free');
});

t.test('longStart (401/403) starts long', async (t) => {
  const state = createCooldownState();
  const ch = channel('main');
  const now = 0;
  const outcome = classifyOutcome(
    { kind: 'status', status: 401, headers: {} },
    { endpoint: 'messages', now },
  );
  const e = recordFailure(state, outcome, { channel: ch, keyIndex: 3, model: 'm' }, policy, now)!;
  t.match(e, { scope: 'key', keyIndex: 3, until: 7.5 * MIN, failures: 1, reason: '401 unauthorized' });
  t.equal(coolingUntil(state, ch, 3, 'any-model', 1), 7.5 * MIN, 'a key scope covers every model');
  t.equal(coolingUntil(state, ch, 2, 'any-model', 1), 0);
});

t.test('failures from attempts in flight when the scope cooled do not escalate', async (t) => {
  const state = createCooldownState();
  const ctx: AttemptContext = { channel: channel('dead'), keyIndex: 0, model: 'm' };
  const now = 100_000;
  const first = recordFailure(state, fail('channel'), ctx, policy, now)!;
  for (let i = 1; i <= 9; i++) recordFailure(state, fail('channel'), ctx, policy, now + i);
  let e = state.entries.get(scopeKey(first))!;
  t.match(e, { failures: 1, until: now + 1000 }, 'ten concurrent failures are one');
  e = recordFailure(state, fail('channel', { resetAt: now + 5000 }), ctx, policy, now + 10)!;
  t.match(e, { failures: 1, until: now + 5000 }, 'a later upstream reset still extends it');
  e = recordFailure(state, fail('channel'), ctx, policy, e.until)!;
  t.match(e, { failures: 2, until: now + 5000 + 2000 }, 'the next failure after expiry doubles');
});

t.test('failure count is forgotten one max after expiry', async (t) => {
  const state = createCooldownState();
  const ctx: AttemptContext = { channel: channel('c'), keyIndex: 0, model: 'm' };
  const p = { base: 1 * SEC, max: 8 * SEC };
  let e = recordFailure(state, fail('channel'), ctx, p, 0)!;
  e = recordFailure(state, fail('channel'), ctx, p, e.until)!; // 2 failures, until 3000
  t.equal(e.failures, 2);
  e = recordFailure(state, fail('channel'), ctx, p, e.until + p.max - 1)!;
  t.equal(e.failures, 3, 'within the window: keeps doubling');
  const late = e.until + p.max;
  e = recordFailure(state, fail('channel'), ctx, p, late)!;
  t.match(e, { failures: 1, until: late + p.base }, 'after the window: starts at base again');
});

t.test('coolingUntil: latest active scope covering the candidate', async (t) => {
  const state = createCooldownState();
  const ch = channel('main', 'id1', { sonnet: 'claude-sonnet-5-5' });
  const other = channel('other');
  const now = 0;
  recordFailure(
    state,
    fail('channel', { resetAt: 10 }),
    { channel: ch, keyIndex: 0, model: 'a' },
    policy,
    now,
  );
  recordFailure(
    state,
    fail('channel+model', { resetAt: 50 }),
    { channel: ch, keyIndex: 0, model: 'b' },
    policy,
    now,
  );
  recordFailure(state, fail('key', { resetAt: 30 }), { channel: ch, keyIndex: 1, model: 'a' }, policy, now);
  recordFailure(
    state,
    fail('key+model', { resetAt: 70 }),
    { channel: ch, keyIndex: 1, model: 'c' },
    policy,
    now,
  );
  const rows: [number | undefined, string | undefined, number, number][] = [
    // keyIndex, model, at, want
    [0, 'a', 1, 10],
    [0, 'b', 1, 50],
    [1, 'a', 1, 30],
    [1, 'b', 1, 50],
    [1, 'c', 1, 70],
    [0, 'c', 1, 10],
    [undefined, 'c', 1, 10],
    [undefined, 'b', 1, 50],
    [1, undefined, 1, 30],
    [undefined, undefined, 1, 10],
    [0, 'a', 10, 0],
    [1, 'c', 30, 70],
    [1, 'c', 70, 0],
  ];
  for (const [k, m, at, want] of rows)
    t.equal(coolingUntil(state, ch, k, m, at), want, `key ${k} model ${m} at ${at}`);
  t.equal(coolingUntil(state, other, 0, 'b', 1), 0, 'other channels unaffected');

  // Model scopes hold the model as sent: an alias and its target share one cooldown.
  recordFailure(
    state,
    fail('channel+model', { resetAt: 90 }),
    { channel: ch, keyIndex: 0, model: 'sonnet' },
    policy,
    now,
  );
  t.equal(coolingUntil(state, ch, 0, 'claude-sonnet-5-5', 1), 90, 'target cools when the alias failed');
  t.ok(state.entries.has('m:main|claude-sonnet-5-5'));
});

t.test('success clears the channel, key and model scopes it used', async (t) => {
  const state = createCooldownState();
  const ch = channel('main');
  const ctx: AttemptContext = { channel: ch, keyIndex: 0, model: 'm' };
  for (const scope of ['channel', 'key', 'channel+model', 'key+model'] as const) {
    recordFailure(state, fail(scope), ctx, policy, 0);
  }
  recordFailure(state, fail('key+model'), { ...ctx, keyIndex: 1 }, policy, 0);
  recordFailure(state, fail('channel+model'), { ...ctx, model: 'n' }, policy, 0);
  recordFailure(state, fail('channel'), { ...ctx, channel: channel('other') }, policy, 0);
  t.equal(state.entries.size, 7);

  const cleared = recordSuccess(state, ctx, 10);
  t.same(cleared.map((e) => e.scope).sort(), ['channel', 'channel+model', 'key', 'key+model']);
  t.same([...state.entries.keys()].sort(), ['c:other', 'km:main#1|m', 'm:main|n']);
  t.equal(recordSuccess(state, ctx, 11).length, 0, 'nothing left to clear');

  // After a clearing success the next failure starts at base again.
  const e = recordFailure(state, fail('channel+model'), ctx, policy, 20)!;
  t.match(e, { failures: 1, until: 20 + policy.base });
});

t.test('an identity change (url/keys changed) ignores old entries', async (t) => {
  const state = createCooldownState();
  const before = channel('main', 'identity-A');
  const after = channel('main', 'identity-B');
  const ctx: AttemptContext = { channel: before, keyIndex: 0, model: 'm' };
  let e = recordFailure(state, fail('channel'), ctx, policy, 0)!;
  e = recordFailure(state, fail('channel'), ctx, policy, e.until)!;
  t.equal(coolingUntil(state, before, 0, 'm', e.until - 1), e.until, 'cooling under the old identity');
  t.equal(coolingUntil(state, after, 0, 'm', e.until - 1), 0, 'not cooling under the new identity');
  t.same(activeEntries(state, e.until - 1, [after]), [], 'not listed as active for the new identity');
  t.equal(activeEntries(state, e.until - 1).length, 1, 'listed without channel filter');

  const fresh = recordFailure(state, fail('channel'), { ...ctx, channel: after }, policy, e.until - 1)!;
  t.match(fresh, { failures: 1, identity: 'identity-B', until: e.until - 1 + policy.base }, 'clean start');
});

t.test('clearChannel, activeEntries and prune', async (t) => {
  const state = createCooldownState();
  const a = channel('a');
  const b = channel('b');
  const p = { base: 1 * SEC, max: 10 * SEC };
  recordFailure(state, fail('channel'), { channel: a, keyIndex: 0, model: 'm' }, p, 0); // until 1000
  recordFailure(state, fail('key+model', { resetAt: 5000 }), { channel: a, keyIndex: 1, model: 'm' }, p, 0);
  recordFailure(
    state,
    fail('channel+model', { resetAt: 3000 }),
    { channel: b, keyIndex: 0, model: 'm' },
    p,
    0,
  );

  t.same(
    activeEntries(state, 500).map((e) => [e.channel, e.until]),
    [
      ['a', 1000],
      ['b', 3000],
      ['a', 5000],
    ],
    'soonest first',
  );
  t.same(
    activeEntries(state, 2000).map((e) => e.until),
    [3000, 5000],
  );

  t.same(prune(state, 10_999, p), [], 'expired but remembered: kept');
  t.same(
    prune(state, 11_000, p).map((e) => scopeKey(e)),
    ['c:a'],
    'forgotten one max after expiry',
  );
  t.same(
    prune(state, 0, p, [a, channel('b', 'new-identity')]).map((e) => e.channel),
    ['b'],
    'outdated identity dropped',
  );
  t.same(prune(state, 0, p, []).length, 1, 'removed channel dropped');
  t.equal(state.entries.size, 0);

  recordFailure(state, fail('channel'), { channel: a, keyIndex: 0, model: 'm' }, p, 0);
  recordFailure(state, fail('key'), { channel: a, keyIndex: 0, model: 'm' }, p, 0);
  recordFailure(state, fail('channel'), { channel: b, keyIndex: 0, model: 'm' }, p, 0);
  t.equal(clearChannel(state, 'a').length, 2);
  t.same([...state.entries.keys()], ['c:b']);
});

t.test('rows round-trip; damaged rows are skipped', async (t) => {
  const state = createCooldownState();
  const ch = channel('we|ird#name', 'id', {});
  recordFailure(state, fail('channel'), { channel: ch, keyIndex: 0, model: 'm' }, policy, 0);
  recordFailure(state, fail('key', { longStart: true }), { channel: ch, keyIndex: 2, model: 'm' }, policy, 0);
  recordFailure(state, fail('channel+model'), { channel: ch, keyIndex: 0, model: 'claude|x' }, policy, 0);
  recordFailure(
    state,
    fail('key+model', { resetAt: 9999 }),
    { channel: ch, keyIndex: 1, model: 'm' },
    policy,
    0,
  );
  const rows = cooldownRows(state, 123);
  t.equal(rows.length, 4);
  t.same(JSON.parse(JSON.stringify(rows)), rows, 'rows are plain JSON values');
  t.match(cooldownRow(state.entries.get('c:we%7Cird%23name')!, 5), {
    scopeKey: 'c:we%7Cird%23name',
    keyIndex: null,
    model: null,
    updatedAt: 5,
  });

  const restored = restoreCooldowns(rows);
  t.same([...restored.entries], [...state.entries], 'same entries under the same keys');
  t.equal(coolingUntil(restored, ch, 1, 'm', 1), 9999);

  const good = rows[0]!;
  const bad = [
    { ...good, scope: 'galaxy' },
    { ...good, scope: 'key', keyIndex: null },
    { ...good, scope: 'channel+model', model: null },
    { ...good, until: Number.NaN },
    { ...good, failures: 0 },
    { ...good, scope: 'channel', keyIndex: 3 },
  ];
  t.equal(restoreCooldowns(bad).entries.size, 0, 'every damaged row skipped');
  t.equal(
    restoreCooldowns([{ ...good, scopeKey: 'lies' }]).entries.has('c:we%7Cird%23name'),
    true,
    'key recomputed',
  );
  const anonymous = restoreCooldowns([{ ...good, identity: null, reason: null }]);
  t.match([...anonymous.entries.values()], [{ identity: '', reason: '' }], 'null identity/reason restored');
  t.equal(coolingUntil(anonymous, ch, 0, 'm', 0), 0, 'a row without identity cools nothing');
});

t.test('scope none records nothing', async (t) => {
  const state = createCooldownState();
  t.equal(
    recordFailure(state, fail('none'), { channel: channel('a'), keyIndex: 0, model: 'm' }, policy, 0),
    undefined,
  );
  t.equal(state.entries.size, 0);
});

// Compile-time checks: a snapshot Channel is a CooledChannel, and rows pass to and from the store as is.
const _typecheck = [
  (c: Channel): CooledChannel => c,
  (s: StateStore, r: CooldownRow) => s.saveCooldown(r),
  async (s: StateStore) => restoreCooldowns(await s.loadCooldowns()),
];
void _typecheck;
