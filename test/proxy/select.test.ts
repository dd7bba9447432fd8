import t from 'tap';
import type { Channel } from '../../src/config/snapshot.js';
import { type CooldownState, createCooldownState, recordFailure } from '../../src/proxy/cooldown.js';
import {
  applyRrAdvance,
  type Candidate,
  createRoundRobin,
  groupPointerKey,
  keyPointerKey,
  restoreRoundRobin,
  roundRobinRows,
  type SelectInput,
  type Selection,
  select,
} from '../../src/proxy/select.js';
import { type ChannelOpts, fakeChannel } from '../helpers/channel.js';

/** Key indices with a gap, as when an empty key was removed from the list. */
const channel = (name: string, opts: ChannelOpts = {}): Channel =>
  fakeChannel(name, { keyIndexStep: 2, ...opts });

const NOW = 1_000_000;
const policy = { base: 1000, max: 60_000 };

function run(channels: Channel[], extra: Partial<SelectInput> = {}): Selection {
  return select({
    channels,
    model: 'claude-sonnet-5-5',
    cooldowns: createCooldownState(),
    rr: new Map(),
    now: NOW,
    policy: { when_all_cooling: 'soonest' },
    ...extra,
  });
}

/** `name#keyIndex` of each candidate, or the selection kind when it is not `go`. */
function names(sel: Selection): string[] | string {
  return sel.kind === 'go' ? sel.candidates.map(label) : sel.kind;
}
const label = (c: Candidate) => `${c.channel.name}#${c.keyIndex}`;

function cool(
  state: CooldownState,
  ch: Channel,
  scope: 'channel' | 'key' | 'channel+model' | 'key+model',
  until: number,
  keyIndex = 0,
  model = 'claude-sonnet-5-5',
) {
  recordFailure(
    state,
    { scope, reason: 'test', resetAt: until },
    { channel: ch, keyIndex, model },
    policy,
    NOW,
  );
}

t.test('model matching and usable channels', async (t) => {
  const channels = [
    channel('exact', { models: ['claude-sonnet-5-5'] }),
    channel('glob', { models: ['claude-*'] }),
    channel('all'),
    channel('other-model', { models: ['gpt-*', 'claude-opus-?-?'] }),
    channel('disabled', { enabled: false }),
    channel('broken', { problems: ['no usable key'] }),
    channel('keyless', { keys: 0 }),
  ];
  const rows: [string, string[] | string][] = [
    ['claude-sonnet-5-5', ['all#0', 'exact#0', 'glob#0']],
    ['claude-opus-5-5', ['all#0', 'glob#0', 'other-model#0']],
    ['gpt-9', ['all#0', 'other-model#0']],
  ];
  for (const [model, want] of rows) t.same(names(run(channels, { model })), want, model);

  t.same(
    run([channels[0]!, channels[3]!], { model: 'claude-haiku-5-5' }),
    { kind: 'none' },
    'nothing serves it',
  );
  t.same(run(channels.slice(4), {}), { kind: 'none' }, 'only disabled / problem / keyless channels');
  t.same(run([], {}), { kind: 'none' }, 'no channels at all');
});

t.test('priority groups: higher first, every group listed', async (t) => {
  const channels = [
    channel('low', { priority: 1 }),
    channel('high-b', { priority: 10 }),
    channel('mid', { priority: 5 }),
    channel('high-a', { priority: 10 }),
    channel('neg', { priority: -3 }),
  ];
  t.same(names(run(channels)), ['high-a#0', 'high-b#0', 'mid#0', 'low#0', 'neg#0']);
});

t.test('round-robin: each channel of a group leads equally often', async (t) => {
  const channels = [
    channel('a', { priority: 5 }),
    channel('b', { priority: 5 }),
    channel('c', { priority: 5 }),
    channel('backup', { priority: 0 }),
  ];
  const rr = createRoundRobin();
  const leads = new Map<string, number>();
  const N = 300;
  for (let i = 0; i < N; i++) {
    const sel = run(channels, { rr });
    if (sel.kind !== 'go') throw new Error(`expected go, got ${sel.kind}`);
    const first = sel.candidates[0]!.channel.name;
    leads.set(first, (leads.get(first) ?? 0) + 1);
    t.equal(sel.candidates.at(-1)!.channel.name, 'backup', 'lower priority always last');
    t.equal(new Set(sel.candidates.slice(0, 3).map((c) => c.channel.name)).size, 3, 'whole group listed');
    applyRrAdvance(rr, sel.rrAdvance);
  }
  t.same(Object.fromEntries(leads), { a: N / 3, b: N / 3, c: N / 3 });
  t.same(roundRobinRows(rr), [['p5:["a","b","c"]', 0]], 'one pointer; single-channel groups get none');
});

t.test('round-robin pointer is shared by models with the same group', async (t) => {
  const channels = [channel('x', { models: ['claude-*'] }), channel('y', { models: ['claude-*'] })];
  const rr = createRoundRobin();
  const order: string[] = [];
  for (const model of ['claude-opus-5-5', 'claude-sonnet-5-5', 'claude-haiku-5-5', 'claude-opus-5-5']) {
    const sel = run(channels, { rr, model });
    if (sel.kind !== 'go') throw new Error('expected go');
    order.push(sel.candidates[0]!.channel.name);
    applyRrAdvance(rr, sel.rrAdvance);
  }
  t.same(order, ['x', 'y', 'x', 'y'], 'alternates across models');
  t.equal(groupPointerKey(0, ['y', 'x']), 'p0:["x","y"]', 'group key is order-independent');
  t.not(groupPointerKey(0, ['a,b']), groupPointerKey(0, ['a', 'b']), 'names with separators stay distinct');
});

t.test('cooling channel in the group: the pointer moves past the one actually used', async (t) => {
  const channels = [channel('a'), channel('b'), channel('c')];
  const cooldowns = createCooldownState();
  cool(cooldowns, channels[0]!, 'channel', NOW + 60_000);
  const rr = createRoundRobin();
  const leads: string[] = [];
  for (let i = 0; i < 6; i++) {
    const sel = run(channels, { rr, cooldowns });
    if (sel.kind !== 'go') throw new Error('expected go');
    leads.push(sel.candidates[0]!.channel.name);
    t.notOk(
      sel.candidates.some((c) => c.channel.name === 'a'),
      'cooling channel excluded',
    );
    applyRrAdvance(rr, sel.rrAdvance);
  }
  t.same(leads, ['b', 'c', 'b', 'c', 'b', 'c'], 'b and c share evenly while a cools');
});

t.test('keys: consecutive inside a channel, rotated by a per-channel pointer', async (t) => {
  const multi = channel('multi', { keys: 3, priority: 1 });
  const single = channel('single');
  const rr = createRoundRobin();
  const seen: string[][] = [];
  for (let i = 0; i < 4; i++) {
    const sel = run([single, multi], { rr });
    if (sel.kind !== 'go') throw new Error('expected go');
    seen.push(sel.candidates.map(label));
    applyRrAdvance(rr, sel.rrAdvance);
  }
  t.same(seen, [
    ['multi#0', 'multi#2', 'multi#4', 'single#0'],
    ['multi#2', 'multi#4', 'multi#0', 'single#0'],
    ['multi#4', 'multi#0', 'multi#2', 'single#0'],
    ['multi#0', 'multi#2', 'multi#4', 'single#0'],
  ]);
  t.equal(rr.get(keyPointerKey('multi')), 1);

  // A key rate-limited for this model is skipped: the next key, then the next channel.
  const cooldowns = createCooldownState();
  cool(cooldowns, multi, 'key+model', NOW + 30_000, 0);
  t.same(names(run([single, multi], { cooldowns })), ['multi#2', 'multi#4', 'single#0']);
  t.same(
    names(run([single, multi], { cooldowns, model: 'claude-opus-5-5' })),
    ['multi#0', 'multi#2', 'multi#4', 'single#0'],
    'the same key serves other models',
  );
  const sel = run([single, multi], { cooldowns });
  t.same(
    sel.kind === 'go' && sel.rrAdvance,
    [{ key: 'k:multi', value: 2 }],
    'key pointer moves past the key used',
  );
});

t.test('cooling scopes exclude candidates', async (t) => {
  const a = channel('a', { keys: 2, modelMap: { 'claude-sonnet-5-5': 'relay-sonnet' } });
  const b = channel('b');
  const rows: [string, (s: CooldownState) => void, string[] | string][] = [
    ['nothing cooling', () => {}, ['a#0', 'a#2', 'b#0']],
    ['channel', (s) => cool(s, a, 'channel', NOW + 10), ['b#0']],
    ['channel+model', (s) => cool(s, a, 'channel+model', NOW + 10), ['b#0']],
    [
      'channel+model of another model',
      (s) => cool(s, a, 'channel+model', NOW + 10, 0, 'claude-opus-5-5'),
      ['a#0', 'a#2', 'b#0'],
    ],
    ['key', (s) => cool(s, a, 'key', NOW + 10, 2), ['a#0', 'b#0']],
    ['key+model', (s) => cool(s, a, 'key+model', NOW + 10, 0), ['a#2', 'b#0']],
    [
      'expired (cooled 2s ago for 1s)',
      (s) =>
        recordFailure(
          s,
          { scope: 'channel', reason: 't' },
          { channel: a, keyIndex: 0, model: 'm' },
          policy,
          NOW - 2000,
        ),
      ['a#0', 'a#2', 'b#0'],
    ],
    // Cooled via the upstream model name (model_map): the requested alias is cooling too.
    ['sent model', (s) => cool(s, a, 'channel+model', NOW + 10, 0, 'relay-sonnet'), ['b#0']],
  ];
  for (const [name, setup, want] of rows) {
    const cooldowns = createCooldownState();
    setup(cooldowns);
    t.same(names(run([a, b], { cooldowns })), want, name);
  }
});

t.test('all cooling: wait for the soonest, or reject', async (t) => {
  const a = channel('a', { priority: 2 });
  const b = channel('b', { priority: 1, keys: 2 });
  const cooldowns = createCooldownState();
  cool(cooldowns, a, 'channel', NOW + 9000);
  cool(cooldowns, b, 'key', NOW + 7000, 0);
  cool(cooldowns, b, 'key+model', NOW + 4000, 2);
  cool(cooldowns, b, 'channel+model', NOW + 2000, 2, 'other-model'); // does not cover this model

  const wait = run([a, b], { cooldowns });
  t.equal(wait.kind, 'wait');
  if (wait.kind === 'wait') {
    t.equal(wait.until, NOW + 4000, 'the cooldown that ends first');
    t.equal(label(wait.candidate), 'b#2');
    t.ok(wait.until > NOW, 'never earlier than the cooldown');
  }
  t.same(run([a, b], { cooldowns, policy: { when_all_cooling: 'reject' } }), {
    kind: 'reject',
    retryAfterMs: 4000,
  });

  // Ties go to the earlier candidate in the order (higher priority).
  const tie = createCooldownState();
  cool(tie, a, 'channel', NOW + 5000);
  cool(tie, b, 'channel', NOW + 5000);
  const sel = run([a, b], { cooldowns: tie });
  t.equal(sel.kind === 'wait' && label(sel.candidate), 'a#0');

  // Once the soonest cooldown is over, it is a normal candidate again.
  t.same(names(run([a, b], { cooldowns, now: NOW + 4000 })), ['b#2']);
});

t.test('tried pairs are excluded', async (t) => {
  const a = channel('a', { keys: 2, priority: 1 });
  const b = channel('b');
  t.same(names(run([a, b], { tried: [{ channel: 'a', keyIndex: 0 }] })), ['a#2', 'b#0'], 'by name');
  t.same(
    names(
      run([a, b], {
        tried: [
          { channel: a, keyIndex: 2 },
          { channel: b, keyIndex: 0 },
        ],
      }),
    ),
    ['a#0'],
    'by candidate',
  );
  t.same(
    names(run([a, b], { tried: [{ channel: 'b', keyIndex: 2 }] })),
    ['a#0', 'a#2', 'b#0'],
    'only the exact pair',
  );
  const all = [
    { channel: 'a', keyIndex: 0 },
    { channel: 'a', keyIndex: 2 },
    { channel: 'b', keyIndex: 0 },
  ];
  t.same(run([a, b], { tried: all }), { kind: 'exhausted' }, 'everything tried');

  // A tried pair is not waited for either: only the untried cooling one.
  const cooldowns = createCooldownState();
  cool(cooldowns, b, 'channel', NOW + 3000);
  const sel = run([a, b], { cooldowns, tried: all.slice(0, 2) });
  t.same(sel.kind === 'wait' && [label(sel.candidate), sel.until], ['b#0', NOW + 3000]);
  t.same(run([a, b], { cooldowns, tried: all }), { kind: 'exhausted' });
});

t.test('round-robin rows round-trip; damaged pointers are harmless', async (t) => {
  const rr = createRoundRobin();
  applyRrAdvance(rr, [
    { key: 'p0:["a","b"]', value: 1 },
    { key: 'k:a', value: 2 },
  ]);
  const restored = restoreRoundRobin([...roundRobinRows(rr), ['p1:["x"]', -1], ['p2', 1.5]]);
  t.same(restoreRoundRobin(new Map([['k:a', 2]])).get('k:a'), 2, "the store's loadRr map restores directly");
  t.same([...restored], [...rr], 'invalid rows skipped');

  // A stored pointer larger than the group (a channel was removed) wraps instead of failing.
  const channels = [channel('a'), channel('b')];
  const sel = run(channels, { rr: new Map([[groupPointerKey(0, ['a', 'b']), 7]]) });
  t.same(names(sel), ['b#0', 'a#0']);
  t.same(sel.kind === 'go' && sel.rrAdvance, [{ key: 'p0:["a","b"]', value: 0 }]);
});
