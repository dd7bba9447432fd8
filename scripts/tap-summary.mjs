#!/usr/bin/env node
// Echoes a test run's output and ends it with the line CI reads: `N passed, N failed`.
// tap's own closing line is `# { total: 7, pass: 4, fail: 1, todo: 1, skip: 1 }`; when the run died
// before tap printed it (typecheck, lint or build failure) the run counts as one failure.
// Above that line it repeats each failed assertion with its test path and the start of its
// diagnostics, so a CI log that keeps only its tail still names what failed.
import { createInterface } from 'node:readline';

let summary;
/** Subtest names by nesting depth (TAP indents four spaces per level). */
const names = [];
/** Failures as [path, diagnostic lines]; a parent test's failure is dropped when a child's is kept. */
const failures = [];
let diagnostics; // the YAML block of the failure being read, if any
const rl = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
rl.on('line', (line) => {
  process.stdout.write(`${line}\n`);
  if (/^# \{ total: .*\}$/.test(line)) summary = line;
  if (diagnostics) {
    if (/^\s*\.\.\.$/.test(line)) diagnostics = undefined;
    else if (diagnostics.length < 400) diagnostics.push(line.trim());
    return;
  }
  const sub = /^( *)# Subtest: (.*)$/.exec(line);
  if (sub) {
    const depth = sub[1].length / 4;
    names.length = depth;
    names[depth] = sub[2];
    return;
  }
  const bad = /^( *)not ok \d+ - (.*?)(?: # time=.*)?$/.exec(line);
  if (bad) {
    const depth = bad[1].length / 4;
    const path = [...names.slice(0, depth), bad[2]].join(' > ');
    diagnostics = [];
    failures.push([path, diagnostics]);
  }
});
/** The telling part of a failure's YAML block: where, and what was found against what was wanted. */
function brief(diag) {
  const at = (key) => diag.find((d) => d.startsWith(`${key}: `))?.slice(key.length + 2);
  const out = [];
  if (at('fileName')) out.push(`at ${at('fileName')}:${at('lineNumber')}:${at('columnNumber')}`);
  for (const d of diag) {
    if (/^(found|wanted|doesNotMatch|pattern|message|code|compare|name|signal|exitCode):/.test(d))
      out.push(d);
    else if (/^[-+][^-+]/.test(d)) out.push(d);
  }
  return out.slice(0, 10);
}
rl.on('close', () => {
  const leaves = failures.filter(([p]) => !failures.some(([q]) => q !== p && q.startsWith(`${p} > `)));
  if (leaves.length > 0) {
    process.stdout.write(`\n# failed (${leaves.length}):\n`);
    for (const [path, diag] of leaves.slice(0, 20)) {
      process.stdout.write(`#   ${path}\n`);
      for (const d of brief(diag)) process.stdout.write(`#       ${d}\n`);
    }
  }
  const n = {};
  for (const [, k, v] of (summary ?? '').matchAll(/(\w+): (\d+)/g)) n[k] = Number(v);
  const failed = summary ? (n.fail ?? 0) : 1;
  const extra = summary && n.skip ? `, ${n.skip} skipped` : '';
  process.stdout.write(`${summary ? (n.pass ?? 0) : 0} passed, ${failed} failed${extra}\n`);
});
