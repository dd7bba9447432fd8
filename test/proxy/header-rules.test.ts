import t from 'tap';
import { ConfigSchema } from '../../src/config/schema.js';
import { applyHeaderRules, compileHeaderRules, filterBeta } from '../../src/proxy/header-rules.js';

function rules(headers: unknown) {
  const c = ConfigSchema.parse({ version: 1, channels: [{ name: 'c', url: 'https://x.example', headers }] });
  return compileHeaderRules(c.channels[0]!.headers);
}

t.test('filterBeta keeps a value whole when nothing is refused, and drops an emptied header', async (t) => {
  const keepAll = () => true;
  t.equal(filterBeta('a, b ,c', keepAll), 'a, b ,c', 'unchanged bytes');
  t.equal(
    filterBeta('a, b ,c', (x) => x !== 'b'),
    'a,c',
  );
  t.equal(
    filterBeta('a', () => false),
    undefined,
  );
});

t.test('no rules compile to nothing; credential headers never reach the rules', async (t) => {
  t.equal(rules(undefined), undefined);
  t.equal(rules({}), undefined);
  // The schema refuses them; a rule object built around the schema still cannot touch them.
  const r = compileHeaderRules({
    set: { 'X-Api-Key': 'x', 'x-extra': '1' },
    remove: ['authorization', 'host'],
  })!;
  const out = applyHeaderRules(['x-api-key', 'sk-channel', 'authorization', 'Bearer sk-channel'], r);
  t.same(out, ['x-api-key', 'sk-channel', 'authorization', 'Bearer sk-channel', 'x-extra', '1']);
});

t.test(
  'applyHeaderRules: beta drop by glob, set replaces, remove is case-insensitive, order kept',
  async (t) => {
    const r = rules({
      beta: { drop: ['context-*'] },
      set: { 'User-Agent': 'relay' },
      remove: ['X-Drop-Me'],
    })!;
    const out = applyHeaderRules(
      [
        'user-agent',
        'claude-cli',
        'Anthropic-Beta',
        'a-1,context-management-2025-06-27,b-2',
        'x-drop-me',
        '1',
        'x-keep',
        '2',
        'anthropic-beta',
        'context-x',
      ],
      r,
    );
    t.same(out, ['Anthropic-Beta', 'a-1,b-2', 'x-keep', '2', 'User-Agent', 'relay']);
  },
);

t.test(
  'the schema refuses header values with line breaks, duplicate names and set+remove of one name',
  async (t) => {
    const parse = (headers: unknown) =>
      ConfigSchema.safeParse({ version: 1, channels: [{ name: 'c', url: 'https://x.example', headers }] });
    const messages = (headers: unknown) => {
      const r = parse(headers);
      return r.success ? [] : r.error.issues.map((i) => `${i.path.slice(3).join('.')}: ${i.message}`);
    };
    t.same(messages({ set: { 'x-a': 'one\r\nx-injected: 1' } }), [
      'set.x-a: a header value cannot hold a line break or NUL',
    ]);
    t.same(messages({ set: { 'X-A': '1', 'x-a': '2' } }), ['set.x-a: x-a is also set as X-A']);
    t.same(messages({ set: { 'x-a': '1' }, remove: ['X-A'] }), ['remove.0: X-A is both set and removed']);
    t.same(messages({ set: { 'x-a': '1' }, remove: ['x-b'], beta: { allow: ['a*'] } }), []);
  },
);
