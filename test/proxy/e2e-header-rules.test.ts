/**
 * End to end, per-channel header rules (`channels[].headers`): drop one anthropic-beta token,
 * allow-list them, set and remove headers — with the credential headers immune and the body
 * forwarded byte for byte — and a rule change applied by a reload.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import t from 'tap';
import { formatIssue } from '../../src/config/snapshot.js';
import type { EchoBody } from '../../src/dev/fake-upstream.js';
import { channelKey, claudeCode, proxyConfig, send, startProxy, startUpstreams } from './e2e-helpers.js';

const BETAS = 'claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27';

/** A config with one channel `relay` on `url` and the given `headers:` block (YAML, indented 4). */
function config(url: string, headers: string): string {
  return `${proxyConfig({ channels: [{ name: 'relay', url }] })}    headers:\n${headers}`;
}

/** What the upstream received for one Claude Code–shaped request with `extra` headers. */
async function relayed(url: string, extra: Record<string, string> = {}) {
  const req = claudeCode();
  const res = await send(url, {
    headers: { ...req.headers, 'anthropic-beta': BETAS, ...extra },
    body: req.body,
  });
  t.equal(res.status, 200);
  const echo = res.json() as EchoBody;
  t.equal(echo.body.sha256, createHash('sha256').update(req.body).digest('hex'), 'the body byte for byte');
  return echo;
}

t.test('beta drop: one token removed, the others forwarded in order', async (t) => {
  const [up] = await startUpstreams(t, 1);
  up!.setDefault({ kind: 'echo' });
  const { url } = await startProxy(
    t,
    config(up!.url, '      beta: { drop: [context-management-2025-06-27] }\n'),
  );
  const echo = await relayed(url);
  t.equal(echo.headers['anthropic-beta'], 'claude-code-20250219,interleaved-thinking-2025-05-14');
  // A value the rule keeps whole is forwarded byte for byte (spaces included).
  const spaced = await relayed(url, {
    'anthropic-beta': 'claude-code-20250219, fine-grained-tool-streaming-2025-05-14',
  });
  t.equal(spaced.headers['anthropic-beta'], 'claude-code-20250219, fine-grained-tool-streaming-2025-05-14');
});

t.test('beta allow: only listed tokens (globs) pass; none left means no header', async (t) => {
  const [up] = await startUpstreams(t, 1);
  up!.setDefault({ kind: 'echo' });
  const { url } = await startProxy(
    t,
    config(up!.url, '      beta: { allow: ["claude-code-*", "interleaved-*"] }\n'),
  );
  const echo = await relayed(url);
  t.equal(echo.headers['anthropic-beta'], 'claude-code-20250219,interleaved-thinking-2025-05-14');
  const none = await relayed(url, { 'anthropic-beta': 'context-management-2025-06-27' });
  t.notOk('anthropic-beta' in none.headers, 'no empty header is sent');
});

t.test('set and remove headers; the credential headers stay ccload’s', async (t) => {
  const [up] = await startUpstreams(t, 1);
  up!.setDefault({ kind: 'echo' });
  const { url } = await startProxy(
    t,
    config(
      up!.url,
      [
        '      set:',
        '        x-gateway-tenant: team-a',
        '        User-Agent: ccload-relay/1',
        '      remove: [x-claude-code-session-id, X-Stainless-Os]',
        '',
      ].join('\n'),
    ),
  );
  const echo = await relayed(url, { authorization: 'Bearer client-secret-9f8e7d' });
  t.equal(echo.headers['x-gateway-tenant'], 'team-a');
  t.equal(echo.headers['user-agent'], 'ccload-relay/1', "the client's value replaced");
  t.equal(echo.rawHeaders.filter((h) => h.toLowerCase() === 'user-agent').length, 1, 'once');
  t.notOk('x-claude-code-session-id' in echo.headers);
  t.notOk('x-stainless-os' in echo.headers, 'names compare case-insensitively');
  t.equal(echo.headers['x-stainless-arch'], claudeCode().headers['x-stainless-arch'], 'others untouched');
  t.equal(echo.headers['anthropic-beta'], BETAS, 'no beta rule: forwarded as sent');
  t.equal(echo.headers['x-api-key'], channelKey('relay'), "the channel's key");
  t.notOk('authorization' in echo.headers, "the client's credential is never forwarded");
});

t.test('a rule change is applied by a reload; an invalid rule is refused with its place', async (t) => {
  const [up] = await startUpstreams(t, 1);
  up!.setDefault({ kind: 'echo' });
  const { url, daemon, file } = await startProxy(
    t,
    config(up!.url, '      beta: { drop: [claude-code-20250219] }\n'),
  );
  t.equal(
    (await relayed(url)).headers['anthropic-beta'],
    'interleaved-thinking-2025-05-14,context-management-2025-06-27',
  );
  writeFileSync(file, config(up!.url, '      beta: { allow: [claude-code-20250219] }\n'));
  await daemon.app.reloader.request('signal');
  t.equal((await relayed(url)).headers['anthropic-beta'], 'claude-code-20250219', 'the new rule serves');

  writeFileSync(file, config(up!.url, '      set: { x-api-key: stolen }\n'));
  const outcome = await daemon.app.reloader.request('signal');
  t.equal(outcome.result, 'rejected');
  const [err] = outcome.errors.map(formatIssue);
  t.match(
    err,
    /^\S+:\d+:\d+ channels\[0\]\.headers\.set\["x-api-key"\]: cannot set x-api-key: a credential header/,
  );
  const echo = await relayed(url);
  t.equal(echo.headers['anthropic-beta'], 'claude-code-20250219', 'the last good rules keep serving');
  t.equal(echo.headers['x-api-key'], channelKey('relay'));
});
