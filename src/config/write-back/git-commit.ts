/**
 * Committing the written config file in the git repository that holds it, time-bounded.
 */
import { execFile } from 'node:child_process';
import { dirname } from 'node:path';

/** Runs git with a time bound; resolves with its output or the reason it failed. */
function git(
  args: string[],
  cwd: string,
  timeoutMs: number,
): Promise<{ ok: true; out: string } | { ok: false; err: string }> {
  return new Promise((done) => {
    execFile(
      'git',
      args,
      { cwd, timeout: timeoutMs, env: { ...process.env, GIT_TERMINAL_PROMPT: '0' }, maxBuffer: 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) {
          const detail = String(stderr).trim().split('\n').slice(-3).join(' ') || err.message;
          done({ ok: false, err: detail });
        } else done({ ok: true, out: String(stdout).trim() });
      },
    );
  });
}

/**
 * Commits exactly `file` (`git commit --only`, so whatever else is staged stays staged and
 * uncommitted) in the repository holding it. An untracked file is added first. `author` is
 * `Name <email>`; when git has no committer identity configured it is used as committer too.
 */
export async function gitCommit(
  file: string,
  message: string,
  author: string | undefined,
  timeoutMs: number,
): Promise<{ commit: string } | { error: string }> {
  const dir = dirname(file);
  const top = await git(['rev-parse', '--show-toplevel'], dir, timeoutMs);
  if (!top.ok) return { error: `not in a git repository (${top.err})` };
  const tracked = await git(['ls-files', '--error-unmatch', '--', file], dir, timeoutMs);
  if (!tracked.ok) {
    const added = await git(['add', '--', file], dir, timeoutMs);
    if (!added.ok) return { error: `git add failed: ${added.err}` };
  }
  const identity: string[] = [];
  const m = author ? /^([^<>]+?) <([^<>]+)>$/.exec(author) : null;
  if (m && !(await git(['var', 'GIT_COMMITTER_IDENT'], dir, timeoutMs)).ok) {
    identity.push('-c', `user.name=${m[1]}`, '-c', `user.email=${m[2]}`);
  }
  const args = [...identity, 'commit', '--only', '--quiet', '-m', message];
  if (author) args.push(`--author=${author}`);
  args.push('--', file);
  const c = await git(args, dir, timeoutMs);
  if (!c.ok) return { error: `git commit failed: ${c.err}` };
  const head = await git(['rev-parse', 'HEAD'], dir, timeoutMs);
  if (!head.ok) return { error: `git rev-parse failed: ${head.err}` };
  return { commit: head.out };
}
