#!/usr/bin/env node
// Echoes a test run's output and ends it with the line CI reads: `N passed, N failed`.
// tap's own closing line is `# { total: 7, pass: 4, fail: 1, todo: 1, skip: 1 }`; when the run died
// before tap printed it (typecheck, lint or build failure) the run counts as one failure.
import { createInterface } from 'node:readline';

let summary;
const rl = createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY });
rl.on('line', (line) => {
  process.stdout.write(`${line}\n`);
  if (/^# \{ total: .*\}$/.test(line)) summary = line;
});
rl.on('close', () => {
  const n = {};
  for (const [, k, v] of (summary ?? '').matchAll(/(\w+): (\d+)/g)) n[k] = Number(v);
  const failed = summary ? (n.fail ?? 0) : 1;
  const extra = summary && n.skip ? `, ${n.skip} skipped` : '';
  process.stdout.write(`${summary ? (n.pass ?? 0) : 0} passed, ${failed} failed${extra}\n`);
});
