/**
 * Starting a real daemon on loopback (port 0) in a temp dir for tests.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Daemon, startDaemon } from '../../src/daemon.js';
import { silentLogger } from '../../src/log.js';
import { type Teardownable, tmpDir } from '../helpers/tmp.js';

/** A config with one channel at `url`; extra YAML is appended verbatim. */
export function configText(opts: { url?: string; extra?: string; priority?: number } = {}): string {
  return `version: 1
server:
  listen: 127.0.0.1:0
  database: file:state/ccload.db
admin:
  password: \${TEST_PASS}
channels:
  - name: main
    url: ${opts.url ?? 'http://127.0.0.1:9'}
    api_key: \${TEST_KEY}
    priority: ${opts.priority ?? 10}
${opts.extra ?? ''}`;
}

/** The environment test daemons run with. */
export const testEnv = { TEST_KEY: 'sk-ant-test-key-0001', TEST_PASS: 'correct horse battery' };

/** Starts a daemon on `text` written to `<tmp>/ccload.yaml`; closed in teardown. */
export async function startTestDaemon(
  t: Teardownable,
  text = configText(),
  opts: { env?: Record<string, string | undefined>; now?: () => number; dir?: string; file?: string } = {},
): Promise<{ daemon: Daemon; dir: string; file: string }> {
  const dir = opts.dir ?? tmpDir(t);
  const file = opts.file ?? join(dir, 'ccload.yaml');
  if (!opts.file) writeFileSync(file, text);
  const daemon = await startDaemon({
    configPath: file,
    display: 'ccload.yaml',
    env: { ...testEnv, RUNTIME_DIRECTORY: dir, ...opts.env },
    log: silentLogger(),
    now: opts.now,
    processMetrics: false,
  });
  t.teardown(() => daemon.close());
  return { daemon, dir, file };
}
