import t from 'tap';
import { createCooldownState, recordFailure } from '../../src/proxy/cooldown.js';
import { type CoolingDecision, coolingDecision, type Selection, select } from '../../src/proxy/select.js';
import { fakeChannel } from '../helpers/channel.js';

const channel = (name: string, priority: number) => fakeChannel(name, { priority });

const MODEL = 'claude-sonnet-5-5';

/**
 * A manual clock and two cooling channels: `a` until T0 + 9 s, `b` until T0 + 4 s. Each row of
 * the table selects at `clock` and decides with the request's remaining deadline.
 */
const T0 = 1_000_000;
const a = channel('a', 2);
const b = channel('b', 1);
const cooldowns = createCooldownState();
for (const [ch, until] of [
  [a, T0 + 9000],
  [b, T0 + 4000],
] as const) {
  recordFailure(
    cooldowns,
    { scope: 'channel', reason: 'test', resetAt: until },
    { channel: ch, keyIndex: 0, model: MODEL },
    { base: 1000, max: 60_000 },
    T0,
  );
}

function decide(row: {
  clock: number;
  policy: 'soonest' | 'reject';
  remainingMs: number;
  coolingWait: number;
  waited?: boolean;
}): CoolingDecision {
  const sel: Selection = select({
    channels: [a, b],
    model: MODEL,
    cooldowns,
    rr: new Map(),
    now: row.clock,
    policy: { when_all_cooling: row.policy },
  });
  if (sel.kind !== 'wait' && sel.kind !== 'reject') throw new Error(`selection is ${sel.kind}`);
  return coolingDecision(sel, {
    now: row.clock,
    remainingMs: row.remainingMs,
    coolingWait: row.coolingWait,
    waited: row.waited ?? false,
  });
}

t.test('cooling-wait decision table (manual clock)', async (t) => {
  const rows: [string, Parameters<typeof decide>[0], CoolingDecision][] = [
    [
      'soonest, short wait within cooling_wait and deadline: wait for b',
      { clock: T0, policy: 'soonest', remainingMs: 60_000, coolingWait: 30_000 },
      { kind: 'wait', until: T0 + 4000, ms: 4000 },
    ],
    [
      'the clock moved on: the wait shrinks to what is left',
      { clock: T0 + 3500, policy: 'soonest', remainingMs: 60_000, coolingWait: 30_000 },
      { kind: 'wait', until: T0 + 4000, ms: 500 },
    ],
    [
      'wait exactly cooling_wait: still waits (the bound is inclusive)',
      { clock: T0, policy: 'soonest', remainingMs: 60_000, coolingWait: 4000 },
      { kind: 'wait', until: T0 + 4000, ms: 4000 },
    ],
    [
      'wait longer than cooling_wait: answer, retry-after rounded up',
      { clock: T0, policy: 'soonest', remainingMs: 60_000, coolingWait: 3999 },
      { kind: 'answer', retryAfterS: 4 },
    ],
    [
      'wait longer than the deadline left: answer',
      { clock: T0, policy: 'soonest', remainingMs: 3000, coolingWait: 30_000 },
      { kind: 'answer', retryAfterS: 4 },
    ],
    [
      'cooling_wait 0 never waits',
      { clock: T0, policy: 'soonest', remainingMs: 60_000, coolingWait: 0 },
      { kind: 'answer', retryAfterS: 4 },
    ],
    [
      'already waited once in this request: answer',
      { clock: T0, policy: 'soonest', remainingMs: 60_000, coolingWait: 30_000, waited: true },
      { kind: 'answer', retryAfterS: 4 },
    ],
    [
      'when_all_cooling reject: answer at once',
      { clock: T0, policy: 'reject', remainingMs: 60_000, coolingWait: 30_000 },
      { kind: 'answer', retryAfterS: 4 },
    ],
    [
      'retry-after is at least 1 s',
      { clock: T0 + 3990, policy: 'reject', remainingMs: 60_000, coolingWait: 30_000 },
      { kind: 'answer', retryAfterS: 1 },
    ],
    [
      'retry-after of a partial second rounds up',
      { clock: T0 + 1500, policy: 'reject', remainingMs: 60_000, coolingWait: 30_000 },
      { kind: 'answer', retryAfterS: 3 },
    ],
  ];
  for (const [name, row, want] of rows) t.same(decide(row), want, name);
});
