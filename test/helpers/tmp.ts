/** Temporary directories for tests, removed when the test ends. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The part of a tap test this helper needs (kept structural so any tap `Test` fits). */
export interface Teardownable {
  teardown(fn: () => unknown): void;
}

/** A fresh directory under os.tmpdir(), deleted with its contents in `t.teardown`. */
export function tmpDir(t: Teardownable, prefix = 'ccload-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
