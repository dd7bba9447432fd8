import t from 'tap';
import type { Channel } from '../../src/config/snapshot.js';
import {
  type AffinityPolicy,
  abandonTentative,
  adoptPinRows,
  assignTentative,
  type Choice,
  choose,
  createPinTable,
  expirePins,
  findPin,
  type PinTable,
  pinStatus,
  prunePins,
  sessionKey,
  setPin,
  settle,
} from '../../src/proxy/affinity.js';
import { type CooldownState, createCooldownState, recordFailure } from '../../src/proxy/cooldown.js';
import { applyRrAdvance, type Candidate, createRoundRobin, select } from '../../src/proxy/select.js';
import { fakeChannel } from '../helpers/channel.js';

const channel = fakeChannel;

const MODEL = 'claude-opus-5-5';
const T0 = 10_000_000;
const POLICY: AffinityPolicy = {
  enabled: true,
  idle: 65 * 60_000,
  move_after: 60_000,
  return_to_priority: true,
};
const COOL = { base: 1000, max: 30 * 60_000 };

/** One routing world: channels, cooldowns, round-robin pointers and the pin table. */
class World {
  readonly table: PinTable = createPinTable();
  readonly cooldowns: CooldownState = createCooldownState();
  readonly rr = createRoundRobin();
  constructor(
    public channels: Channel[],
    public policy: AffinityPolicy = POLICY,
  ) {}

  /** Routes one successful request of `session` at `now` the way the handler does; returns where and what. */
  route(session: string, now: number): { channel: string; keyIndex: number; choice: Choice; result: string } {
    const sel = select({
      channels: this.channels,
      model: MODEL,
      cooldowns: this.cooldowns,
      rr: this.rr,
      now,
      policy: { when_all_cooling: 'reject' },
    });
    if (sel.kind !== 'go') throw new Error(`selection ${sel.kind}`);
    applyRrAdvance(this.rr, sel.rrAdvance);
    const pin = findPin(this.table, session, now, this.policy.idle);
    const choice = choose({
      candidates: sel.candidates,
      table: this.table,
      session,
      pin,
      channels: this.channels,
      model: MODEL,
      cooldowns: this.cooldowns,
      now,
      policy: this.policy,
    });
    const c: Candidate = sel.candidates[choice.index]!;
    if (choice.decision === 'new') assignTentative(this.table, session, c, now);
    const { result } = settle(this.table, session, c, choice.decision, now, this.policy);
    return { channel: c.channel.name, keyIndex: c.keyIndex, choice, result };
  }

  cool(name: string, now: number, resetAt?: number): void {
    const ch = this.channels.find((c) => c.name === name)!;
    recordFailure(
      this.cooldowns,
      { scope: 'channel+model', reason: '529 overloaded', resetAt },
      { channel: ch, keyIndex: 0, model: MODEL },
      COOL,
      now,
    );
  }
}

function counts(table: PinTable): Record<string, number> {
  return Object.fromEntries([...table.channelLoad].sort());
}

t.test('new sessions spread evenly over equal-priority channels, by session count', async (t) => {
  const w = new World([channel('a'), channel('b'), channel('c')]);
  for (let i = 0; i < 30; i++) t.equal(w.route(`s${i}`, T0 + i).result, 'new');
  t.same(counts(w.table), { a: 10, b: 10, c: 10 });
  // Each session keeps its channel over 20 turns while the round-robin pointer keeps moving.
  const first = new Map<string, string>();
  for (let i = 0; i < 30; i++) first.set(`s${i}`, w.table.pins.get(`s${i}`)!.channel);
  for (let turn = 0; turn < 20; turn++) {
    for (let i = 0; i < 30; i++) {
      const r = w.route(`s${i}`, T0 + 1000 + turn * 100 + i);
      if (r.channel !== first.get(`s${i}`) || r.result !== 'pinned') {
        t.fail(`s${i} turn ${turn}: ${r.channel} ${r.result}`);
        return;
      }
    }
  }
  t.pass('every session stayed on its channel for 20 turns');
});

t.test('the spread is weighted by keys: sessions per key, then the emptiest key', async (t) => {
  const w = new World([channel('a', { keys: 2 }), channel('b'), channel('c', { keys: 3 })]);
  for (let i = 0; i < 60; i++) w.route(`s${i}`, T0 + i);
  t.same(counts(w.table), { a: 20, b: 10, c: 30 });
  const perKey = Object.fromEntries([...w.table.pairLoad].sort());
  for (const [k, v] of Object.entries(perKey)) t.equal(v, 10, `key ${k}`);
});

t.test(
  'tentative assignments count, so concurrent new sessions spread; a failed one is dropped',
  async (t) => {
    const w = new World([channel('a'), channel('b'), channel('c')]);
    const sel = select({
      channels: w.channels,
      model: MODEL,
      cooldowns: w.cooldowns,
      rr: w.rr,
      now: T0,
      policy: { when_all_cooling: 'reject' },
    });
    if (sel.kind !== 'go') throw new Error('go expected');
    // Three requests in flight at once, from one selection order (no pointer move in between).
    const picked: string[] = [];
    for (const s of ['x', 'y', 'z']) {
      const ch = choose({
        candidates: sel.candidates,
        table: w.table,
        session: s,
        pin: undefined,
        channels: w.channels,
        model: MODEL,
        cooldowns: w.cooldowns,
        now: T0,
        policy: POLICY,
      });
      assignTentative(w.table, s, sel.candidates[ch.index]!, T0);
      picked.push(sel.candidates[ch.index]!.channel.name);
    }
    t.same([...picked].sort(), ['a', 'b', 'c'], 'one per channel');
    abandonTentative(w.table, 'x');
    t.equal(w.table.pins.has('x'), false, 'a request without a successful answer leaves no pin');
    t.equal(w.table.pins.size, 2);
    settle(w.table, 'y', sel.candidates.find((c) => c.channel.name === picked[1])!, 'new', T0, POLICY);
    abandonTentative(w.table, 'y');
    t.equal(w.table.pins.get('y')?.confirmed, true, 'a confirmed pin is not abandoned');
  },
);

t.test('decision table: a pinned session under failures, removals and priority changes', async (t) => {
  interface Row {
    label: string;
    /** Sets the world up after the session was pinned to b at T0; returns the time to route at. */
    setup: (w: World) => number;
    policy?: Partial<AffinityPolicy>;
    decision: Choice['decision'];
    /** Where the pin is after the successful answer. */
    pinAfter: string;
    /** The channel that served (default: the pin after). */
    served?: string;
  }
  const rows: Row[] = [
    { label: 'healthy pin', setup: () => T0 + 5000, decision: 'pinned', pinAfter: 'b' },
    {
      label: 'one 529: brief cooldown, pin kept',
      setup: (w) => {
        w.cool('b', T0 + 1000);
        return T0 + 1500;
      },
      decision: 'kept',
      pinAfter: 'b',
      served: 'stand-in',
    },
    {
      label: 'after the brief cooldown the pin serves again',
      setup: (w) => {
        w.cool('b', T0 + 1000);
        w.route('s', T0 + 1500);
        return T0 + 2500;
      },
      decision: 'pinned',
      pinAfter: 'b',
    },
    {
      label: 'cooldown of move_after or longer: the pin moves',
      setup: (w) => {
        w.cool('b', T0 + 1000, T0 + 1000 + 120_000);
        return T0 + 2000;
      },
      decision: 'moved',
      pinAfter: 'moved',
    },
    {
      label: 'short cooldowns, but kept away turn after turn for move_after: the pin moves',
      setup: (w) => {
        for (let at = 1500; at < 61_000; at += 10_000) {
          w.cool('b', T0 + at - 500);
          if (w.route('s', T0 + at).result !== 'kept') throw new Error(`not kept at ${at}`);
        }
        w.cool('b', T0 + 61_000);
        return T0 + 61_600;
      },
      decision: 'moved',
      pinAfter: 'moved',
    },
    {
      label: 'kept away long ago, back during a brief cooldown: the old trouble does not count',
      setup: (w) => {
        w.cool('b', T0 + 1000);
        w.route('s', T0 + 1500);
        w.cool('b', T0 + 10 * 60_000);
        return T0 + 10 * 60_000 + 500;
      },
      decision: 'kept',
      pinAfter: 'b',
      served: 'stand-in',
    },
    {
      label: 'disabled channel: the pin moves',
      setup: (w) => {
        w.channels = w.channels.map((c) => (c.name === 'b' ? channel('b', { enabled: false }) : c));
        return T0 + 5000;
      },
      decision: 'moved',
      pinAfter: 'moved',
    },
    {
      label: 'removed channel: the pin moves',
      setup: (w) => {
        w.channels = w.channels.filter((c) => c.name !== 'b');
        return T0 + 5000;
      },
      decision: 'moved',
      pinAfter: 'moved',
    },
    {
      label: 'url or keys changed (identity): the pin moves',
      setup: (w) => {
        w.channels = w.channels.map((c) => (c.name === 'b' ? channel('b', { identity: 'other' }) : c));
        return T0 + 5000;
      },
      decision: 'moved',
      pinAfter: 'moved',
    },
    {
      label: 'idle expiry: a new pin',
      setup: () => T0 + POLICY.idle,
      decision: 'new',
      pinAfter: 'any',
    },
    {
      label: 'just under idle: still pinned',
      setup: () => T0 + POLICY.idle - 1,
      decision: 'pinned',
      pinAfter: 'b',
    },
  ];
  for (const row of rows) {
    const w = new World([channel('a'), channel('b'), channel('c')], { ...POLICY, ...row.policy });
    // Pin the session to b: place two other sessions first so b is the least loaded... by pinning directly.
    setPin(w.table, {
      session: 's',
      channel: 'b',
      keyIndex: 0,
      identity: 'id-b',
      lastUsed: T0,
      confirmed: true,
    });
    const at = row.setup(w);
    const r = w.route('s', at);
    t.equal(r.choice.decision, row.decision, `${row.label}: decision`);
    t.equal(r.result, row.decision, `${row.label}: result`);
    const pin = w.table.pins.get('s')!;
    if (row.pinAfter === 'b') t.equal(pin.channel, 'b', `${row.label}: pin on b`);
    else if (row.pinAfter === 'moved') {
      t.not(pin.channel, 'b', `${row.label}: pin left b`);
      t.equal(pin.channel, r.channel, `${row.label}: pin is where the session was served`);
    }
    if (row.served === 'stand-in') t.not(r.channel, 'b', `${row.label}: served elsewhere`);
    else if (row.pinAfter !== 'any') t.equal(r.channel, pin.channel, `${row.label}: served by the pin`);
  }
});

t.test('a kept-away session uses one stable stand-in while its pin cools', async (t) => {
  const w = new World([channel('a'), channel('b'), channel('c')]);
  setPin(w.table, {
    session: 's',
    channel: 'b',
    keyIndex: 0,
    identity: 'id-b',
    lastUsed: T0,
    confirmed: true,
  });
  w.cool('b', T0, T0 + 30_000);
  const seen = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const r = w.route('s', T0 + 100 + i * 1000);
    t.equal(r.result, 'kept');
    seen.add(r.channel);
  }
  t.equal(seen.size, 1, 'the same stand-in on every turn (its cache is written once)');
  t.notOk(seen.has('b'));
  t.equal(w.route('s', T0 + 30_001).result, 'pinned', 'back on the pin when its cooldown ends');
  // Stand-ins of many sessions spread over the remaining channels.
  const standIns = new Map<string, number>();
  for (let i = 0; i < 60; i++) {
    setPin(w.table, {
      session: `k${i}`,
      channel: 'b',
      keyIndex: 0,
      identity: 'id-b',
      lastUsed: T0,
      confirmed: true,
    });
  }
  w.cool('b', T0 + 40_000, T0 + 50_000);
  for (let i = 0; i < 60; i++) {
    const r = w.route(`k${i}`, T0 + 40_001);
    standIns.set(r.channel, (standIns.get(r.channel) ?? 0) + 1);
  }
  t.ok(
    (standIns.get('a') ?? 0) >= 15 && (standIns.get('c') ?? 0) >= 15,
    `stand-ins spread: ${[...standIns]}`,
  );
});

t.test(
  'priority: a session on a fallback returns when the higher priority recovers (or stays)',
  async (t) => {
    for (const returnToPriority of [true, false]) {
      const w = new World([channel('primary', { priority: 10 }), channel('fallback')], {
        ...POLICY,
        return_to_priority: returnToPriority,
      });
      w.cool('primary', T0, T0 + 5 * 60_000);
      const first = w.route('s', T0 + 1);
      t.same(
        [first.channel, first.result],
        ['fallback', 'new'],
        'served by the fallback while primary cools',
      );
      t.equal(w.route('s', T0 + 1000).result, 'pinned');
      const back = w.route('s', T0 + 5 * 60_000 + 1);
      if (returnToPriority)
        t.same([back.channel, back.result], ['primary', 'moved'], 'return_to_priority: moves up');
      else t.same([back.channel, back.result], ['fallback', 'pinned'], 'return_to_priority false: stays');
    }
  },
);

t.test(
  'a key that is gone, a channel removed or changed: prune drops the pins; a disabled one keeps them',
  async (t) => {
    const table = createPinTable();
    const pin = (session: string, ch: string, keyIndex = 0, identity = `id-${ch}`) =>
      setPin(table, { session, channel: ch, keyIndex, identity, lastUsed: T0, confirmed: true });
    pin('p1', 'a');
    pin('p2', 'a', 1);
    pin('p3', 'b', 0, 'old');
    pin('p4', 'gone');
    pin('p5', 'd');
    const dropped = prunePins(table, [channel('a'), channel('b'), channel('d', { enabled: false })]);
    t.same(dropped.map((p) => p.session).sort(), ['p2', 'p3', 'p4']);
    t.same([...table.pins.keys()].sort(), ['p1', 'p5']);
    t.same(counts(table), { a: 1, d: 1 });
    t.equal(
      pinStatus(
        table.pins.get('p5')!,
        [channel('d', { enabled: false })],
        MODEL,
        createCooldownState(),
        T0,
        POLICY,
      ),
      'gone',
      'a disabled channel makes the pin move when its session comes',
    );
  },
);

t.test('idle expiry is by last use, not age, on a manual clock', async (t) => {
  const w = new World([channel('a'), channel('b')]);
  w.route('old', T0);
  w.route('busy', T0);
  // "busy" keeps talking every 10 minutes for two hours; "old" is silent.
  for (let m = 10; m <= 120; m += 10)
    t.equal(w.route('busy', T0 + m * 60_000).result, 'pinned', `busy at ${m} min`);
  const now = T0 + 120 * 60_000;
  t.equal(findPin(w.table, 'old', now, POLICY.idle), undefined, 'the idle pin no longer counts');
  const expired = expirePins(w.table, now, POLICY.idle);
  t.same(
    expired.map((p) => p.session),
    ['old'],
  );
  t.ok(findPin(w.table, 'busy', now, POLICY.idle), 'the busy pin lives on although it is 2 h old');
  t.equal(w.table.pins.size, 1);
});

t.test('two client tokens with the same session id get independent pins', async (t) => {
  const w = new World([channel('a'), channel('b')]);
  const alice = sessionKey('alice', 'same-session');
  const bob = sessionKey('bob', 'same-session');
  const ra = w.route(alice, T0);
  const rb = w.route(bob, T0 + 1);
  t.equal(ra.result, 'new');
  t.equal(rb.result, 'new', 'bob does not inherit alice pin');
  t.not(ra.channel, rb.channel, 'two sessions spread');
  w.channels = w.channels.filter((c) => c.name !== ra.channel).concat(channel(ra.channel, { identity: 'x' }));
  t.equal(w.route(alice, T0 + 2).result, 'moved', "alice's pin moves");
  t.equal(w.route(bob, T0 + 3).result, 'pinned', "bob's pin is untouched");
});

t.test('stored rows: newer wins, older and malformed are ignored, LRU order kept', async (t) => {
  const table = createPinTable();
  setPin(table, {
    session: 's1',
    channel: 'a',
    keyIndex: 0,
    identity: 'id-a',
    lastUsed: T0 + 10,
    confirmed: true,
  });
  setPin(table, {
    session: 's2',
    channel: 'a',
    keyIndex: 0,
    identity: 'id-a',
    lastUsed: T0 + 20,
    confirmed: true,
  });
  const adopted = adoptPinRows(table, [
    { session: 's1', channel: 'b', keyIndex: 0, identity: 'id-b', lastUsed: T0 + 30 },
    { session: 's2', channel: 'b', keyIndex: 0, identity: 'id-b', lastUsed: T0 + 5 },
    { session: 's3', channel: 'c', keyIndex: 0, identity: 'id-c', lastUsed: T0 + 1 },
    { session: '', channel: 'c', keyIndex: 0, identity: 'id-c', lastUsed: T0 + 1 },
    { session: 's4', channel: 'c', keyIndex: -1, identity: 'id-c', lastUsed: T0 + 1 },
    { session: 's5', channel: 'c', keyIndex: 0, identity: 'id-c', lastUsed: Number.NaN },
  ]);
  t.same(adopted.map((p) => p.session).sort(), ['s1', 's3']);
  t.equal(table.pins.get('s1')?.channel, 'b', 'newer row wins');
  t.equal(table.pins.get('s2')?.channel, 'a', 'older row ignored');
  t.same([...table.pins.keys()], ['s3', 's2', 's1'], 'least recently used first');
  t.same(counts(table), { a: 1, b: 1, c: 1 });
});

t.test('the table is bounded: the least recently used pin is evicted', async (t) => {
  const table = createPinTable();
  for (let i = 0; i < 5; i++) {
    setPin(
      table,
      { session: `s${i}`, channel: 'a', keyIndex: 0, identity: 'id-a', lastUsed: T0 + i, confirmed: true },
      3,
    );
  }
  t.same([...table.pins.keys()], ['s2', 's3', 's4']);
  t.equal(table.channelLoad.get('a'), 3);
});
