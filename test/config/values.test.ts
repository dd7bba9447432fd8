import t from 'tap';
import { formatDuration, parseDuration, parseSize } from '../../src/config/values.js';

t.test('durations', async (t) => {
  const table: [string | number, number | undefined][] = [
    ['500ms', 500],
    ['30s', 30_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['30d', 2_592_000_000],
    [250, 250],
    [0, 0],
    ['', undefined],
    ['5 minutes', undefined],
    [-1, undefined],
    ['10', undefined],
  ];
  for (const [input, want] of table) t.equal(parseDuration(input), want, JSON.stringify(input));
});

t.test('sizes', async (t) => {
  const table: [string | number, number | undefined][] = [
    ['512KiB', 524_288],
    ['32MiB', 33_554_432],
    ['1GB', 1_000_000_000],
    ['100b', 100],
    [1024, 1024],
    ['1.5MiB', 1_572_864],
    ['12 parsecs', undefined],
    [1.5, undefined],
  ];
  for (const [input, want] of table) t.equal(parseSize(input), want, JSON.stringify(input));
});

t.test('formatDuration', async (t) => {
  t.equal(formatDuration(250), '250ms');
  t.equal(formatDuration(1500), '1.5s');
  t.equal(formatDuration(42_000), '42s');
  t.equal(formatDuration(125_000), '2m 5s');
  t.equal(formatDuration(3 * 3_600_000 + 600_000), '3h 10m');
});
