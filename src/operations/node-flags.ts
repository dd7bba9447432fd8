/**
 * The node flags ccload's daemon is started with: by `npm start` (package.json), by the systemd
 * unit (deploy/ccload.service) and by the benchmarks. A test keeps the three in step.
 *
 * `--max-semi-space-size=2` (MiB): V8's young generation otherwise grows to 16 MiB semi-spaces
 * under load. Every young-generation collection copies what is still alive, and with a few hundred
 * streams open that is every stream's state, again and again: collections of 5–10 ms every few
 * hundred ms, which the first token of a stream arriving meanwhile waits out. With 2 MiB they are
 * shorter and the state is promoted sooner. Measured (bench/first-event.js, same run, 200 streams):
 * the first content event's p50 gap to the bare passthrough 1.36 → 0.48 ms, with 4 and 8 MiB
 * halfway; `npm run bench`: 200 streams +0.76 → +0.52 ms (`warn`) and +1.17 → +0.68 ms (`info`),
 * the `info` p99 12.8 → 5.5 ms, RSS about 40 MB lower. The price is paid by floods of tiny
 * requests: 111 B at 19 000 a second, 117 → 126 µs of CPU per request at `warn`, 124 → 142 at
 * `info` (more, smaller collections). Claude Code sends streams and large bodies at a few requests
 * a second (README → Performance → The first content event).
 */
export const DAEMON_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];
