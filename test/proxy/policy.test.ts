/**
 * The pure operator-policy decisions as tables: budget windows in time zones (midnights, DST days,
 * month ends, a skipped midnight), token admission (concurrency, budgets, allow-lists) with a manual
 * clock, channel caps, and selection skipping capped channels without cooling them.
 */
import t from 'tap';
import { loadConfigText } from '../../src/config/load.js';
import type { Snapshot } from '../../src/config/snapshot.js';
import { PROXY_ERRORS } from '../../src/errors.js';
import { createCooldownState, recordFailure } from '../../src/proxy/cooldown.js';
import {
  admitModel,
  admitToken,
  budgetWindows,
  CONCURRENCY_RETRY_AFTER_S,
  cappedUntil,
  currentWindows,
  RPM_WINDOW_MS,
  startOfLocalDay,
} from '../../src/proxy/policy.js';
import { select } from '../../src/proxy/select.js';

const iso = (ms: number) => new Date(ms).toISOString();

const answeredToken = (...a: Parameters<typeof admitToken>) => answered(admitToken(...a));
const answeredModel = (...a: Parameters<typeof admitModel>) => answered(admitModel(...a));

/** A refusal with the status and Anthropic type the catalogue gives its code (what the client gets). */
function answered<R extends { code: keyof typeof PROXY_ERRORS } | undefined>(r: R) {
  return r && { ...r, status: PROXY_ERRORS[r.code].status, type: PROXY_ERRORS[r.code].type };
}
const at = (s: string) => Date.parse(s);

async function snapshot(yaml: string): Promise<Snapshot> {
  const r = await loadConfigText(`version: 1\n${yaml}`, {
    path: '/tmp/ccload-policy-test/ccload.yaml',
    env: {},
    generation: 1,
    source: 'startup',
    now: 0,
  });
  if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
  return r.snapshot;
}

t.test('budget windows: day and month starts in a time zone', async (t) => {
  const rows: [string, string, [string, string, string, string]][] = [
    [
      'UTC',
      '2026-12-03T14:13:00Z',
      [
        '2026-12-03T00:00:00.000Z',
        '2026-12-04T00:00:00.000Z',
        '2026-12-01T00:00:00.000Z',
        '2027-01-01T00:00:00.000Z',
      ],
    ],
    [
      'UTC',
      '2026-12-31T23:59:59.999Z',
      [
        '2026-12-31T00:00:00.000Z',
        '2027-01-01T00:00:00.000Z',
        '2026-12-01T00:00:00.000Z',
        '2027-01-01T00:00:00.000Z',
      ],
    ],
    // Berlin in winter is UTC+1: its day starts at 23:00 UTC the evening before.
    [
      'Europe/Berlin',
      '2026-12-03T23:30:00Z',
      [
        '2026-12-03T23:00:00.000Z',
        '2026-12-04T23:00:00.000Z',
        '2026-11-30T23:00:00.000Z',
        '2026-12-31T23:00:00.000Z',
      ],
    ],
    // The day clocks go forward (29 March 2026) has 23 hours; the month began in winter time.
    [
      'Europe/Berlin',
      '2026-03-29T12:00:00Z',
      [
        '2026-03-28T23:00:00.000Z',
        '2026-03-29T22:00:00.000Z',
        '2026-02-28T23:00:00.000Z',
        '2026-03-31T22:00:00.000Z',
      ],
    ],
    // ... and the day they go back (25 October 2026) has 25.
    [
      'Europe/Berlin',
      '2026-10-25T12:00:00Z',
      [
        '2026-10-24T22:00:00.000Z',
        '2026-10-25T23:00:00.000Z',
        '2026-09-30T22:00:00.000Z',
        '2026-10-31T23:00:00.000Z',
      ],
    ],
    [
      'America/Los_Angeles',
      '2026-07-01T06:59:00Z',
      [
        '2026-06-30T07:00:00.000Z',
        '2026-07-01T07:00:00.000Z',
        '2026-06-01T07:00:00.000Z',
        '2026-07-01T07:00:00.000Z',
      ],
    ],
    // Half-hour offset: India is UTC+5:30 all year.
    [
      'Asia/Kolkata',
      '2026-02-28T18:29:00Z',
      [
        '2026-02-27T18:30:00.000Z',
        '2026-02-28T18:30:00.000Z',
        '2026-01-31T18:30:00.000Z',
        '2026-02-28T18:30:00.000Z',
      ],
    ],
    [
      'Asia/Kolkata',
      '2026-02-28T18:30:00Z',
      [
        '2026-02-28T18:30:00.000Z',
        '2026-03-01T18:30:00.000Z',
        '2026-02-28T18:30:00.000Z',
        '2026-03-31T18:30:00.000Z',
      ],
    ],
  ];
  for (const [tz, now, want] of rows) {
    const w = budgetWindows(at(now), tz);
    t.same([iso(w.dayStart), iso(w.dayEnd), iso(w.monthStart), iso(w.monthEnd)], want, `${tz} at ${now}`);
  }
});

t.test('a day whose midnight does not exist starts at its first real minute', async (t) => {
  // Chile moved its clocks from 24:00 to 01:00 on 6 September 2026: 00:00 never happened.
  const start = startOfLocalDay(2026, 9, 6, 'America/Santiago');
  t.equal(iso(start), '2026-09-06T04:00:00.000Z', '01:00 local (UTC-3)');
  const before = startOfLocalDay(2026, 9, 5, 'America/Santiago');
  t.equal(iso(before), '2026-09-05T04:00:00.000Z', 'the day before starts at 00:00 UTC-4');
});

t.test('currentWindows reuses the windows until the day ends, then moves on', async (t) => {
  const w = budgetWindows(at('2026-12-03T10:00:00Z'), 'UTC');
  t.equal(currentWindows(w, at('2026-12-03T23:59:59.999Z'), 'UTC'), w, 'same day: same object');
  const next = currentWindows(w, at('2026-12-04T00:00:00Z'), 'UTC');
  t.not(next, w);
  t.equal(iso(next.dayStart), '2026-12-04T00:00:00.000Z', 'the boundary instant belongs to the new day');
  t.not(currentWindows(w, at('2026-12-03T10:00:00Z'), 'Europe/Berlin'), w, 'another zone: recomputed');
});

const POLICY_YAML = `auth:
  budget_time_zone: Europe/Berlin
  tokens:
    - name: alice
      token: tok-alice-000000
      models: ["claude-sonnet-*"]
      channels: ["company-*"]
      budget: { daily: 20, monthly: 300 }
    - name: ci
      token: tok-ci-0000000000
      models: [claude-haiku-5-5]
      max_concurrency: 4
    - name: free
      token: tok-free-00000000
channels:
  - name: company-a
    url: https://a.example
    api_key: k-aaaaaaaa
    models: ["claude-sonnet-*", "claude-haiku-*"]
  - name: company-b
    url: https://b.example
    api_key: k-bbbbbbbb
    models: ["claude-sonnet-*"]
  - name: relay
    url: http://relay.example
    api_key: k-rrrrrrrr
    max_concurrency: 2
    rpm: 3
`;

t.test('token admission: concurrency, then budgets, with the reset time in the message', async (t) => {
  const s = await snapshot(POLICY_YAML);
  const [alice, ci, free] = s.tokens;
  const now = at('2026-12-03T15:00:00Z');
  const w = budgetWindows(now, 'Europe/Berlin');
  const zero = { day: 0, month: 0 };

  t.equal(answeredToken('ci', ci!.policy, 3, zero, w), undefined, '3 in flight of 4: admitted');
  const busy = answeredToken('ci', ci!.policy, 4, zero, w);
  t.match(busy, {
    code: 'CCL_TOKEN_CONCURRENCY',
    status: 429,
    type: 'rate_limit_error',
    headers: ['retry-after', String(CONCURRENCY_RETRY_AFTER_S), 'x-should-retry', 'true'],
  });
  t.match(busy?.message, /"ci" already has 4 request\(s\) in flight, its max_concurrency .*: 4/);
  t.equal(answeredToken('free', free!.policy, 1000, { day: 1e6, month: 1e6 }, w), undefined, 'no limits');

  const rows: [string, { day: number; month: number }, RegExp | undefined][] = [
    ['nothing spent', zero, undefined],
    ['just under the daily budget', { day: 19.999, month: 19.999 }, undefined],
    [
      'the daily budget reached',
      { day: 20, month: 40 },
      /spent \$20\.00 of its daily budget of \$20\.00 .*resets at 2026-12-04 00:00 Europe\/Berlin \(2026-12-03T23:00:00Z\)/,
    ],
    [
      'the monthly budget reached (named before the daily)',
      { day: 25, month: 300.5 },
      /spent \$300\.50 of its monthly budget of \$300\.00 .*resets at 2027-01-01 00:00 Europe\/Berlin \(2026-12-31T23:00:00Z\)/,
    ],
  ];
  for (const [name, spend, message] of rows) {
    const r = answeredToken('alice', alice!.policy, 0, spend, w);
    if (!message) t.equal(r, undefined, name);
    else {
      t.match(r, { code: 'CCL_TOKEN_BUDGET', status: 402, type: 'billing_error' }, name);
      t.same(r?.headers, ['x-should-retry', 'false'], `${name}: the client must not retry`);
      t.match(r?.message, message, name);
    }
  }
  const utc = budgetWindows(now, 'UTC');
  t.match(
    answeredToken('alice', alice!.policy, 0, { day: 21, month: 21 }, utc)?.message,
    /resets at 2026-12-04T00:00:00Z$/,
    'UTC: plain ISO time',
  );
});

t.test('model admission: model and channel allow-lists, globs, both', async (t) => {
  const s = await snapshot(POLICY_YAML);
  const [alice, ci, free] = s.tokens;
  const allowed = (name: string) =>
    s.channels.filter((c) => s.tokens.find((x) => x.name === name)!.policy.allowsChannel(c.name));
  const serves = (m: string) => s.channels.some((c) => c.serves(m));
  const rows: [string, string, string | undefined][] = [
    ['alice', 'claude-sonnet-5-5', undefined],
    ['alice', 'claude-opus-5-5', 'CCL_TOKEN_MODEL'],
    ['alice', 'claude-sonnet-4-0', undefined],
    ['ci', 'claude-haiku-5-5', undefined],
    ['ci', 'claude-haiku-5-6', 'CCL_TOKEN_MODEL'],
    ['free', 'gpt-9', undefined],
  ];
  for (const [name, model, code] of rows) {
    const tk = [alice, ci, free].find((x) => x!.name === name)!;
    const r = answeredModel(name, tk.policy, model, allowed(name), serves(model));
    t.equal(r?.code, code, `${name} / ${model}: ${code ?? 'admitted'}`);
    if (r) t.match(r, { status: 403, type: 'permission_error' });
  }
  t.match(
    answeredModel('alice', alice!.policy, 'claude-opus-5-5', allowed('alice'), true)?.message,
    /"alice" may not use model claude-opus-5-5 \(auth.tokens\[\]\.models: claude-sonnet-\*\)/,
  );

  // Both lists: the model is allowed, but only a channel the token may not use serves it.
  const s2 = await snapshot(`auth:
  tokens:
    - name: bob
      token: tok-bob-00000000
      models: ["claude-*"]
      channels: [company-a]
channels:
  - name: company-a
    url: https://a.example
    api_key: k-aaaaaaaa
    models: ["claude-sonnet-*"]
  - name: relay
    url: http://relay.example
    api_key: k-rrrrrrrr
`);
  const bob = s2.tokens[0]!;
  const mine = s2.channels.filter((c) => bob.policy.allowsChannel(c.name));
  t.same(
    mine.map((c) => c.name),
    ['company-a'],
  );
  const r = answeredModel('bob', bob.policy, 'claude-opus-5-5', mine, true);
  t.match(r, { code: 'CCL_TOKEN_CHANNELS', status: 403, type: 'permission_error' });
  t.match(r?.message, /no channel client token "bob" may use serves model claude-opus-5-5 .*company-a/);
  t.equal(
    answeredModel('bob', bob.policy, 'claude-unknown-9', mine, false),
    undefined,
    'no channel at all serves it: routing answers its own 404',
  );
});

t.test('channel caps: concurrency and requests per minute', async (t) => {
  const now = 1_000_000;
  const rows: [string, { maxConcurrency?: number; rpm?: number }, number, number[], number | undefined][] = [
    ['no caps', {}, 50, [now, now, now], undefined],
    ['below max_concurrency', { maxConcurrency: 2 }, 1, [], undefined],
    ['at max_concurrency: frees when an attempt ends', { maxConcurrency: 2 }, 2, [], Infinity],
    ['below rpm', { rpm: 3 }, 0, [now - 10_000, now - 5_000], undefined],
    [
      'at rpm: frees when the oldest start leaves the minute',
      { rpm: 3 },
      0,
      [now - 50_000, now - 10_000, now - 5_000],
      now + 10_000,
    ],
    [
      'starts older than a minute do not count',
      { rpm: 3 },
      0,
      [now - RPM_WINDOW_MS, now - 10_000, now - 5_000],
      undefined,
    ],
    ['both caps held: unknown', { maxConcurrency: 1, rpm: 1 }, 1, [now - 1], Infinity],
  ];
  for (const [name, caps, inflight, starts, want] of rows) {
    const ch = { maxConcurrency: caps.maxConcurrency, rpm: caps.rpm };
    t.equal(cappedUntil(ch, inflight, starts, now), want, name);
  }
});

t.test(
  'selection skips a capped channel without cooling it, and waits only when nothing else is left',
  async (t) => {
    const s = await snapshot(POLICY_YAML);
    const channels = s.channels;
    const cooldowns = createCooldownState();
    const base = {
      channels,
      model: 'claude-sonnet-5-5',
      cooldowns,
      rr: new Map<string, number>(),
      now: 1000,
      policy: { when_all_cooling: 'reject' as const },
    };
    const capped = new Set(['company-a']);
    const sel = select({
      ...base,
      capped: (c) => (capped.has(c.name) ? Number.POSITIVE_INFINITY : undefined),
    });
    t.equal(sel.kind, 'go');
    if (sel.kind === 'go')
      t.notOk(
        sel.candidates.some((c) => c.channel.name === 'company-a'),
        'capped: skipped',
      );
    t.equal(cooldowns.entries.size, 0, 'and not cooled');

    // Everything capped: wait for a slot (even with when_all_cooling: reject), soonest first.
    const until = new Map([
      ['company-a', Number.POSITIVE_INFINITY],
      ['company-b', 5000],
      ['relay', 7000],
    ]);
    const all = select({ ...base, capped: (c) => until.get(c.name) });
    t.match(all, { kind: 'busy', until: 5000 });
    if (all.kind === 'busy') t.equal(all.candidate.channel.name, 'company-b');

    // Capped and cooling: still a busy wait, no longer than the soonest cooldown.
    recordFailure(
      cooldowns,
      { scope: 'channel', reason: 'test', resetAt: 3000 },
      { channel: channels[1]!, keyIndex: 0, model: 'claude-sonnet-5-5' },
      { base: 1000, max: 60_000 },
      1000,
    );
    const mixed = select({
      ...base,
      capped: (c) => (c.name === 'company-b' ? undefined : Number.POSITIVE_INFINITY),
    });
    t.match(mixed, { kind: 'busy', until: 3000 }, 'waits until the cooling one recovers at the latest');
  },
);
