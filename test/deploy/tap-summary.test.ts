/**
 * scripts/tap-summary.mjs, the filter `.ci/run` pipes the test run through: it echoes the run, ends
 * with `N passed, N failed`, and above that line names each failed assertion by its test path with
 * where it failed and its diff — so a CI log that keeps only its tail still says what broke.
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import t from 'tap';

const SCRIPT = join(resolve(import.meta.dirname, '../../..'), 'scripts/tap-summary.mjs');

function summarise(input: string): string[] {
  const run = spawnSync(process.execPath, [SCRIPT], { input, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`tap-summary exited ${run.status}: ${run.stderr}`);
  return run.stdout.trimEnd().split('\n');
}

const FAILING = `TAP version 14
1..2
# Subtest: dist/test/a.test.js
    # Subtest: outer
        # Subtest: inner
            not ok 1 - one is two
              ---
              compare: ===
              at:
                fileName: dist/test/a.test.js
                lineNumber: 2
                columnNumber: 63
                typeName: Test
              source: >
                t.equal(1, 2)
              diff: |
                --- expected
                +++ actual
                @@ -1,1 +1,1 @@
                -2
                +1
              ...
            1..1
        not ok 1 - inner # time=12.915ms
          ---
          at:
            fileName: dist/test/a.test.js
            lineNumber: 2
            columnNumber: 34
          ...
        1..1
    not ok 1 - outer # time=16.927ms
    1..1
not ok 1 - dist/test/a.test.js # time=400ms
# Subtest: dist/test/b.test.js
    ok 1 - fine
    1..1
ok 2 - dist/test/b.test.js # time=300ms
# { total: 2, pass: 1, fail: 1 }
`;

t.test('a failed run names the failed assertion, once, above the count', async (t) => {
  const out = summarise(FAILING);
  t.equal(out.at(-1), '1 passed, 1 failed');
  const from = out.indexOf('# failed (1):');
  t.ok(from > out.indexOf('# { total: 2, pass: 1, fail: 1 }'), 'the list follows the echoed run');
  t.same(out.slice(from + 1, -1), [
    '#   dist/test/a.test.js > outer > inner > one is two',
    '#       at dist/test/a.test.js:2:63',
    '#       compare: ===',
    '#       -2',
    '#       +1',
  ]);
  t.equal(out.filter((l) => l.includes('> outer > inner')).length, 1, 'parents are not repeated');
});

t.test('a passing run prints no list, and a run that died before tap counts as one failure', async (t) => {
  t.same(summarise('TAP version 14\nok 1 - x\n# { total: 1, pass: 1, fail: 0, skip: 2 }\n').slice(-1), [
    '1 passed, 0 failed, 2 skipped',
  ]);
  t.notOk(summarise('# { total: 1, pass: 1, fail: 0 }\n').some((l) => l.startsWith('# failed')));
  t.equal(summarise('src/x.ts(3,1): error TS1005\n').at(-1), '0 passed, 1 failed');
});
