/**
 * `protocol: openai` on the admin side: the channel list shows it, the channel form and the admin
 * API write it to the file, and the channel test checks an OpenAI-compatible key with `GET /models`.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { editFromForm } from '../../src/admin/pages/channel-form.js';
import { startFakeOpenAIUpstream } from '../../src/dev/fake-openai-upstream.js';
import { testEnv } from '../helpers/config.js';
import { startTestDaemon } from '../helpers/daemon.js';
import { call, login } from '../helpers/http.js';

const KEY = 'sk-openai-admin-test-SECRET-0042';

t.test('channel list, API create and channel test of an openai channel', async (t) => {
  const up = await startFakeOpenAIUpstream({ models: ['deepseek-chat'] });
  t.teardown(() => up.close());
  const text = `version: 1
server:
  listen: 127.0.0.1:0
  database: file:state/ccload.db
admin:
  password: \${TEST_PASS}
channels:
  - name: deepseek
    protocol: openai
    url: ${up.url}/v1
    api_key: \${OA_KEY}
    models: [claude-sonnet-5-5]
    model_map: { claude-sonnet-5-5: deepseek-chat }
  - name: wrong-model
    protocol: openai
    url: ${up.url}/v1
    api_key: \${OA_KEY}
    models: [gpt-nope]
`;
  const { daemon, file } = await startTestDaemon(t, text, { env: { ...testEnv, OA_KEY: KEY } });
  const cookie = await login(daemon.url);
  const api = (method: 'GET' | 'POST', path: string, body?: unknown) =>
    call(daemon.url, method, path, { cookie, body });

  const list = await api('GET', '/admin/channels');
  t.match(list.json.channels, [
    { name: 'deepseek', protocol: 'openai' },
    { name: 'wrong-model', protocol: 'openai' },
  ]);

  const ok = await api('POST', '/admin/channels/deepseek/test');
  t.match(ok.json, {
    ok: true,
    status: 200,
    model: 'claude-sonnet-5-5',
    probe: 'models',
    keys: [{ ok: true, fingerprint: '…0042' }],
  });
  const req = up.requests[0]!;
  t.equal(req.method, 'GET');
  t.equal(req.path, '/v1/models');
  t.equal(req.headers.authorization, `Bearer ${KEY}`);
  t.notOk(ok.text.includes(KEY), 'no key value in the answer');

  const wrong = await api('POST', '/admin/channels/wrong-model/test');
  t.match(wrong.json, { ok: false, status: 200, error: /do not include "gpt-nope"/ });

  up.enqueue({ kind: 'status', status: 401, body: { error: { message: 'Incorrect API key provided' } } });
  const rejected = await api('POST', '/admin/channels/deepseek/test');
  t.match(rejected.json, { ok: false, status: 401, error: /^HTTP 401: Incorrect API key/ });

  const created = await api('POST', '/admin/channels', {
    name: 'local-llama',
    protocol: 'openai',
    url: 'http://127.0.0.1:8081/v1',
    api_key: '${OA_KEY}',
  });
  t.equal(created.status, 201, created.text);
  t.match(
    readFileSync(file, 'utf8'),
    /- name: local-llama\n {4}protocol: openai\n {4}url: http:\/\/127\.0\.0\.1:8081\/v1\n/,
  );
  t.equal(daemon.app.reloader.current.channels.find((c) => c.name === 'local-llama')?.protocol, 'openai');
});

t.test('the channel form posts the protocol', async (t) => {
  const add = editFromForm(
    new URLSearchParams({
      name: 'ds',
      url: 'https://api.deepseek.com/v1',
      protocol: 'openai',
      newkey: '${K}',
    }),
    undefined,
  );
  t.match(add, { action: 'add', channel: { name: 'ds', protocol: 'openai' } });
  const plain = editFromForm(new URLSearchParams({ name: 'a', url: 'https://x', newkey: '${K}' }), undefined);
  t.notOk(
    typeof plain === 'object' && plain.action === 'add' && 'protocol' in plain.channel,
    'anthropic is the default, not written',
  );
});

t.test('a url ending in /chat/completions on an openai channel is warned about at load', async (t) => {
  const text = `version: 1
server:
  listen: 127.0.0.1:0
  database: file:state/ccload.db
channels:
  - name: full-url
    protocol: openai
    url: https://api.example.com/v1/chat/completions
    api_key: \${OA_KEY}
`;
  const { daemon } = await startTestDaemon(t, text, { env: { ...testEnv, OA_KEY: KEY } });
  const w = daemon.app.reloader.current.warnings.find((x) => x.path === 'channels[0].url');
  t.match(w, { severity: 'warning', message: /url is the OpenAI base URL.*appends \/chat\/completions/ });
});
