import t from 'tap';
import { compileGlob, isGlob } from '../../src/config/glob.js';
import { prng } from '../helpers/random.js';

/** The regular expression ccload used to compile globs to: the semantics the matcher keeps. */
function regexGlob(pattern: string): (name: string) => boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  const re = new RegExp(`^${source}$`);
  return (name) => re.test(name);
}

t.test('glob semantics table', async (t) => {
  const table: [pattern: string, name: string, matches: boolean][] = [
    ['claude-sonnet-4-5', 'claude-sonnet-4-5', true],
    ['claude-sonnet-4-5', 'claude-sonnet-4-50', false],
    ['claude-*', 'claude-opus-4-1', true],
    ['claude-*', 'claude-', true],
    ['claude-*', 'claude', false],
    ['claude-*', 'xclaude-opus', false],
    ['*', '', true],
    ['*', 'anything at all', true],
    ['**', 'x', true],
    ['*-haiku-*', 'claude-haiku-4-5', true],
    ['*-haiku-*', 'claude-sonnet-4-5', false],
    ['*haiku', 'claude-3-haiku', true],
    ['*haiku', 'claude-3-haiku-x', false],
    ['claude-?-haiku', 'claude-3-haiku', true],
    ['claude-?-haiku', 'claude-35-haiku', false],
    ['claude-?-haiku', 'claude--haiku', false],
    ['???', 'abc', true],
    ['???', 'ab', false],
    ['???', 'abcd', false],
    ['a*b*c', 'abc', true],
    ['a*b*c', 'aXbYc', true],
    ['a*b*c', 'acb', false],
    ['a*ab', 'aab', true],
    ['a*ab', 'ab', false],
    ['*ab*ab*', 'abab', true],
    ['*ab*ab*', 'aba', false],
    ['*a?c*', 'xxabcxx', true],
    ['*a?c*', 'xxacxx', false],
    ['*?', '', false],
    ['*?', 'z', true],
    ['?*?', 'zz', true],
    ['?*?', 'z', false],
    // Everything but * and ? is literal: no regular-expression or class syntax.
    ['claude.4', 'claude.4', true],
    ['claude.4', 'claudeX4', false],
    ['[ab]*', '[ab]x', true],
    ['[ab]*', 'ax', false],
    ['a\\*', 'a\\xyz', true],
    ['a+b*', 'a+bc', true],
    ['a+b*', 'aab', false],
    ['(x|y)*', '(x|y)z', true],
    ['$*^', '$mid^', true],
    // A wildcard never matches a line break (as with the regular expression's `.`).
    ['claude-*', 'claude-\nopus', false],
    ['claude-?', 'claude-\r', false],
    ['*', 'a\u2028b', false],
    // `?` is one UTF-16 code unit: an astral character is two.
    ['x?y', 'x\u{1F600}y', false],
    ['x??y', 'x\u{1F600}y', true],
  ];
  // Names are shown escaped: a raw U+2028 would split the TAP line.
  const show = (s: string) =>
    JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
  for (const [pattern, name, want] of table) {
    t.equal(compileGlob(pattern)(name), want, `${show(pattern)} ~ ${show(name)}`);
    t.equal(regexGlob(pattern)(name), want, `the old regex agrees on ${show(pattern)} ~ ${show(name)}`);
  }
});

t.test('the matcher agrees with the regular expression on random patterns and names', async (t) => {
  // A small alphabet makes overlapping segments (the hard cases) common.
  const rnd = prng(0x2545f491);
  const rand = (n: number) => Math.floor(rnd() * n);
  const word = (alphabet: string, max: number) =>
    Array.from({ length: rand(max + 1) }, () => alphabet[rand(alphabet.length)]).join('');
  let disagreements = 0;
  let matched = 0;
  for (let i = 0; i < 5000; i++) {
    const pattern = word('ab*?', 7);
    const name = word('ab', 9);
    const want = regexGlob(pattern)(name);
    if (want) matched++;
    if (compileGlob(pattern)(name) !== want) {
      disagreements++;
      if (disagreements < 5) t.fail(`${JSON.stringify(pattern)} ~ ${JSON.stringify(name)}: expected ${want}`);
    }
  }
  t.equal(disagreements, 0, 'no disagreement in 5000 cases');
  t.ok(matched > 200, `both outcomes occur (${matched} matches)`);
});

t.test(
  'regression: a backtracking pattern does not stall the event loop (issue 10, finding 12)',
  async (t) => {
    const cases: [string, string][] = [
      ['*a*a*a*a*a*a*a*a*b', 'a'.repeat(40)],
      ['*a*a*a*a*a*a*a*a*a*a*a*a*b', 'a'.repeat(200)],
      ['*?a*?a*?a*?a*?a*?a*?b', 'a'.repeat(200)],
      ['*aaaaaaaaaaaaaaaab', 'a'.repeat(100_000)],
      ['*a?a?a?a?a?a?a?b', 'a'.repeat(100_000)],
    ];
    // The regular expression this replaced took about a second on the first case and, being
    // exponential, would not finish the second. The bound is far above a linear matcher's
    // microseconds, and the best of three runs keeps a GC pause or a busy CI core out of it.
    for (const [pattern, name] of cases) {
      const match = compileGlob(pattern);
      let ms = Number.POSITIVE_INFINITY;
      let got: boolean | undefined;
      for (let run = 0; run < 3; run++) {
        const start = performance.now();
        got = match(name);
        ms = Math.min(ms, performance.now() - start);
      }
      t.equal(got, false, `${pattern} does not match ${name.length} a's`);
      t.ok(ms < 250, `${pattern} against ${name.length} characters took ${ms.toFixed(2)} ms (< 250)`);
    }
  },
);

t.test('isGlob', async (t) => {
  t.equal(isGlob('claude-*'), true);
  t.equal(isGlob('claude-?'), true);
  t.equal(isGlob('claude-sonnet-4-5'), false);
  t.equal(isGlob('[a]'), false, 'brackets are literal');
});
