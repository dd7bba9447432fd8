/**
 * The official Anthropic TypeScript SDK through ccload, streaming and not, against fake upstreams:
 * it gets the same answer as direct, and a failing first channel stays invisible to it.
 */
import Anthropic from '@anthropic-ai/sdk';
import t from 'tap';
import { MODEL } from '../helpers/messages.js';
import { CLIENT_TOKEN, startProxy, startUpstreams } from './e2e-helpers.js';

t.test('the SDK gets the same message through ccload as direct', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'only', url: up!.url }] });
  const direct = new Anthropic({ baseURL: up!.url, apiKey: 'direct-key', maxRetries: 0 });
  const via = new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  const params = { model: MODEL, max_tokens: 64, messages: [{ role: 'user' as const, content: 'hello' }] };

  const a = await direct.messages.create(params);
  const b = await via.messages.create(params);
  t.same(b, a, 'non-streaming: the same message object');

  const collect = async (client: Anthropic) => {
    const stream = client.messages.stream(params);
    const texts: string[] = [];
    stream.on('text', (x) => texts.push(x));
    const final = await stream.finalMessage();
    return { text: texts.join(''), final };
  };
  const sa = await collect(direct);
  const sb = await collect(via);
  t.equal(sb.text, sa.text, 'streaming: the same text deltas');
  t.same(sb.final, sa.final, 'streaming: the same final message (usage included)');
  t.ok(sb.final.usage.input_tokens > 0);
});

t.test('the SDK does not notice a failing first channel (529, then a reset)', async (t) => {
  const [bad, good] = await startUpstreams(t, 2);
  bad!.setDefault({ kind: 'status', status: 529 });
  const { url } = await startProxy(t, {
    channels: [
      { name: 'bad', url: bad!.url, priority: 10 },
      { name: 'good', url: good!.url, priority: 5 },
    ],
  });
  const via = new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  const params = { model: MODEL, max_tokens: 64, messages: [{ role: 'user' as const, content: 'hello' }] };
  const m = await via.messages.create(params);
  t.equal(m.type, 'message');
  t.ok(bad!.requests.length >= 1, 'the failing channel was tried first');
  bad!.setDefault({ kind: 'reset' });
  const s = await via.messages.stream(params).finalMessage();
  t.equal(s.stop_reason, 'end_turn', 'the stream completed from the healthy channel');
});

t.test('the SDK reports ccload errors as Anthropic API errors', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const { url } = await startProxy(t, { channels: [{ name: 'only', url: up!.url, models: ['claude-*'] }] });
  const wrong = new Anthropic({ baseURL: url, apiKey: 'not-a-ccload-token', maxRetries: 0 });
  const e1 = await wrong.messages
    .create({ model: MODEL, max_tokens: 8, messages: [] })
    .catch((e: unknown) => e);
  t.ok(e1 instanceof Anthropic.AuthenticationError, 'a wrong client token is an AuthenticationError');
  const via = new Anthropic({ baseURL: url, apiKey: CLIENT_TOKEN, maxRetries: 0 });
  const e2 = await via.messages
    .create({ model: 'gpt-4o', max_tokens: 8, messages: [] })
    .catch((e: unknown) => e);
  t.ok(e2 instanceof Anthropic.NotFoundError, 'an unserved model is a NotFoundError');
  t.match((e2 as Error).message, /gpt-4o/);
});
