/**
 * Which proxy a channel uses: its own `proxy:`, else HTTPS_PROXY / HTTP_PROXY by the upstream's
 * scheme, unless NO_PROXY exempts the host (undici EnvHttpProxyAgent's rules); credentials masked.
 */
import t from 'tap';
import { bypassesProxy, resolveOutboundProxy } from '../../src/config/outbound-proxy.js';

t.test('NO_PROXY rules', async (t) => {
  const rows: [string | undefined, string, string, boolean][] = [
    [undefined, 'api.anthropic.com', '443', false],
    ['', 'api.anthropic.com', '443', false],
    ['*', 'anything.example', '80', true],
    ['api.anthropic.com', 'api.anthropic.com', '443', true],
    ['anthropic.com', 'api.anthropic.com', '443', false],
    ['.anthropic.com', 'api.anthropic.com', '443', true],
    ['*.anthropic.com', 'api.anthropic.com', '443', true],
    ['localhost, 127.0.0.1:8080', '127.0.0.1', '8080', true],
    ['localhost 127.0.0.1:8080', '127.0.0.1', '9090', false],
    ['API.Anthropic.COM', 'api.anthropic.com', '443', true],
    ['[::1]', '[::1]', '80', true],
  ];
  for (const [noProxy, host, port, want] of rows)
    t.equal(bypassesProxy(noProxy, host, port), want, `NO_PROXY=${noProxy} ${host}:${port}`);
});

t.test(
  'the channel proxy wins; the environment by scheme; NO_PROXY exempts; credentials masked',
  async (t) => {
    const env = {
      HTTPS_PROXY: 'http://corp:s3cret-pass@proxy.example:3128',
      http_proxy: 'http://plain.example:8080',
      NO_PROXY: '.internal.example',
    };
    t.same(resolveOutboundProxy('https://api.anthropic.com', undefined, undefined, env), {
      url: 'http://corp:s3cret-pass@proxy.example:3128',
      shown: 'http://…:…@proxy.example:3128',
      source: 'HTTPS_PROXY',
    });
    t.match(resolveOutboundProxy('http://relay.example', undefined, undefined, env), {
      url: 'http://plain.example:8080',
      source: 'HTTP_PROXY',
    });
    t.equal(resolveOutboundProxy('https://llm.internal.example', undefined, undefined, env), undefined);
    t.same(
      resolveOutboundProxy(
        'https://llm.internal.example',
        'http://office:pw-value-123@office.example:3128',
        'http://office:${OFFICE_PASS}@office.example:3128',
        env,
      ),
      {
        url: 'http://office:pw-value-123@office.example:3128',
        shown: 'http://…:${OFFICE_PASS}@office.example:3128',
        source: 'channel',
      },
      'its own proxy even where NO_PROXY would exempt the host; shown as written',
    );
    t.equal(resolveOutboundProxy('https://api.anthropic.com', undefined, undefined, {}), undefined, 'direct');
  },
);
