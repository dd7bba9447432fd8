/**
 * End to end, what an attacker could get out of the proxy path (issue 10): the client's cookies and
 * address headers reaching an upstream, channel keys echoed back by an upstream's error text, and
 * metric series a client can create at will.
 */
import t from 'tap';
import { MODEL, messagesBody, proxyConfig, send, startProxy, startUpstreams } from './e2e-helpers.js';

const ADDRESS_HEADERS: Record<string, string> = {
  'x-forwarded-for': '203.0.113.7, 10.0.0.2',
  'x-forwarded-host': 'ccload.internal.example',
  'x-forwarded-proto': 'https',
  'x-forwarded-port': '443',
  forwarded: 'for=203.0.113.7;proto=https;host=ccload.internal.example',
  'x-real-ip': '203.0.113.7',
  'true-client-ip': '203.0.113.7',
  'cf-connecting-ip': '203.0.113.7',
};
const COOKIE = 'ccload_session=0123456789abcdef0123456789abcdef; theme=dark';

t.test(
  'regression: client cookies and address headers do not reach the upstream (issue 10, finding 13)',
  async (t) => {
    const [up] = await startUpstreams(t, 1);
    const { url } = await startProxy(t, { channels: [{ name: 'a', url: up!.url }] });
    const res = await send(url, {
      headers: { ...ADDRESS_HEADERS, cookie: COOKIE, 'x-custom-thing': 'kept' },
      body: messagesBody(),
    });
    t.equal(res.status, 200);
    const got = up!.requests.at(-1)!;
    t.equal(got.headers.cookie, undefined, 'cookie is dropped');
    for (const name of Object.keys(ADDRESS_HEADERS))
      t.equal(got.headers[name], undefined, `${name} is dropped`);
    t.equal(got.headers['x-custom-thing'], 'kept', 'other headers still pass');
    t.notOk(got.rawHeaders.join('\n').includes('203.0.113.7'), 'the client address appears nowhere');
    t.notOk(got.rawHeaders.join('\n').includes('0123456789abcdef'), 'the session id appears nowhere');
  },
);

t.test('server.forward_client_address: true passes the address headers, never the cookie', async (t) => {
  const [up] = await startUpstreams(t, 1);
  const text = proxyConfig({ channels: [{ name: 'a', url: up!.url }] }).replace(
    'server:\n',
    'server:\n  forward_client_address: true\n',
  );
  const { url } = await startProxy(t, text);
  const res = await send(url, { headers: { ...ADDRESS_HEADERS, cookie: COOKIE }, body: messagesBody(MODEL) });
  t.equal(res.status, 200);
  const got = up!.requests.at(-1)!;
  for (const [name, value] of Object.entries(ADDRESS_HEADERS))
    t.equal(got.headers[name], value, `${name} forwarded unchanged`);
  t.equal(got.headers.cookie, undefined, 'cookie is still dropped');
});
