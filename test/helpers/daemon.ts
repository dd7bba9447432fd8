/**
 * Starting a real daemon in this process on loopback (port 0) in a temp dir for tests.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Daemon, startDaemon } from '../../src/daemon.js';
import { type Logger, silentLogger } from '../../src/observability/log.js';
import { testConfig, testEnv } from './config.js';
import { type Teardownable, tmpDir } from './tmp.js';

/** Starts a daemon on `text` written to `<tmp>/ccload.yaml`; closed in teardown. */
export async function startTestDaemon(
  t: Teardownable,
  text = testConfig(),
  opts: {
    env?: Record<string, string | undefined>;
    now?: () => number;
    dir?: string;
    file?: string;
    /** The daemon's logger (default: silent). */
    log?: Logger;
  } = {},
): Promise<{ daemon: Daemon; dir: string; file: string }> {
  const dir = opts.dir ?? tmpDir(t);
  const file = opts.file ?? join(dir, 'ccload.yaml');
  if (!opts.file) writeFileSync(file, text);
  const daemon = await startDaemon({
    configPath: file,
    display: 'ccload.yaml',
    env: { ...testEnv, RUNTIME_DIRECTORY: dir, ...opts.env },
    log: opts.log ?? silentLogger(),
    now: opts.now,
    processMetrics: false,
  });
  t.teardown(() => daemon.close());
  return { daemon, dir, file };
}
