/**
 * The control file `ccload reload` finds the daemon through: created exclusively with mode 0600 in
 * a private 0700 folder (or $RUNTIME_DIRECTORY), never written through a planted symlink, never
 * inheriting a planted file's mode, and not read from a folder others can write.
 */
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { controlFilePath, readControlFile, writeControlFile } from '../../src/operations/control.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { tmpDir } from '../helpers/tmp.js';

const INFO = { pid: 1, url: 'http://127.0.0.1:1', token: 'tok-0123456789' };
const mode = (p: string) => statSync(p).mode & 0o777;
const uid = process.getuid!();

t.test('regression: a symlink planted at the control file name is not followed', async (t) => {
  const run = tmpDir(t);
  const victim = join(tmpDir(t), 'victim');
  writeFileSync(victim, 'precious\n', { mode: 0o644 });
  const path = controlFilePath(join(run, 'ccload.yaml'), { RUNTIME_DIRECTORY: run });
  symlinkSync(victim, path);
  writeControlFile(path, INFO);
  t.equal(readFileSync(victim, 'utf8'), 'precious\n', 'the symlink target is untouched');
  t.equal(mode(victim), 0o644, 'and keeps its mode');
  t.ok(lstatSync(path).isFile(), 'the name now holds a regular file of its own');
  t.same(readControlFile(path), INFO);
  t.same(readdirSync(run), [path.split('/').pop()], 'no temporary file is left behind');
});

t.test(
  'regression: the control file is 0600 even over a planted 0666 file, and under a wide umask',
  async (t) => {
    const run = tmpDir(t);
    const path = controlFilePath(join(run, 'ccload.yaml'), { RUNTIME_DIRECTORY: run });
    writeFileSync(path, 'planted\n');
    chmodSync(path, 0o666);
    const old = process.umask(0);
    try {
      writeControlFile(path, INFO);
    } finally {
      process.umask(old);
    }
    t.equal(mode(path), 0o600);
    t.same(readControlFile(path), INFO);
  },
);

t.test('regression: outside systemd the folder is a private 0700 folder of this user', async (t) => {
  const tmp = tmpDir(t);
  const env = { TMPDIR: tmp };
  const path = controlFilePath(join(tmp, 'ccload.yaml'), env);
  t.equal(dirname(path), join(tmp, `ccload-${uid}`), 'not the shared temp folder itself');
  const old = process.umask(0);
  try {
    writeControlFile(path, INFO);
  } finally {
    process.umask(old);
  }
  t.equal(mode(dirname(path)), 0o700, 'folder 0700');
  t.equal(mode(path), 0o600, 'file 0600');
  t.same(readControlFile(path), INFO);

  t.test('a folder others can write, or a symlink in its place, is refused', async (t) => {
    const wide = tmpDir(t);
    mkdirSync(join(wide, `ccload-${uid}`), { mode: 0o777 });
    chmodSync(join(wide, `ccload-${uid}`), 0o777);
    const p = controlFilePath(join(wide, 'ccload.yaml'), { TMPDIR: wide });
    t.throws(() => writeControlFile(p, INFO), /writable by other users/);
    writeFileSync(p, `${JSON.stringify(INFO)}\n`, { mode: 0o600 });
    t.equal(readControlFile(p), undefined, 'a file there is not trusted by `ccload reload` either');

    const linked = tmpDir(t);
    symlinkSync(tmpDir(t), join(linked, `ccload-${uid}`));
    const q = controlFilePath(join(linked, 'ccload.yaml'), { TMPDIR: linked });
    t.throws(() => writeControlFile(q, INFO), /not a directory/);
  });

  t.test('a daemon started without $RUNTIME_DIRECTORY writes it there', async (t) => {
    const tmp2 = tmpDir(t);
    const { daemon, file } = await startTestDaemon(t, undefined, {
      env: { RUNTIME_DIRECTORY: undefined, TMPDIR: tmp2 },
    });
    const p = controlFilePath(file, { TMPDIR: tmp2 });
    t.equal(dirname(p), join(tmp2, `ccload-${uid}`));
    t.equal(readControlFile(p)?.url, daemon.url);
    t.equal(mode(dirname(p)), 0o700);
    t.equal(mode(p), 0o600);
  });
});
