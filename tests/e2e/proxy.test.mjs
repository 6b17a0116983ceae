// Proxy environment variables must not break loopback upstreams.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, freePort, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf } from './lib/clients.mjs';

describe('proxy environment variables', () => {
  let mock;
  let sluice;
  let client;

  before(async () => {
    mock = await startMock();
    const deadProxy = `http://127.0.0.1:${await freePort()}`;
    sluice = await startSluice({
      env: {
        HTTP_PROXY: deadProxy,
        HTTPS_PROXY: deadProxy,
        http_proxy: deadProxy,
        https_proxy: deadProxy,
        ALL_PROXY: deadProxy,
        NO_PROXY: '',
        no_proxy: '',
      },
      config: `
model_list:
  - model_name: via-ip
    litellm_params:
      model: openai/ip-model
      api_base: http://127.0.0.1:${mock.port}/v1
      api_key: sk-upstream-secret
      timeout: 5
  - model_name: via-localhost
    litellm_params:
      model: openai/localhost-model
      api_base: http://localhost:${mock.port}/v1
      api_key: sk-upstream-secret
      timeout: 5
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      if (mock) await mock.close();
    }
  });

  for (const [name, upstreamModel] of [
    ['via-ip', 'ip-model'],
    ['via-localhost', 'localhost-model'],
  ]) {
    it(`reaches a loopback upstream (${name}) directly despite a dead proxy`, async () => {
      mock.clearRequests();
      const r = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: name }] });
      assert.equal(r.choices[0].message.content, expectedChatText(name));
      assert.equal(mock.requests.length, 1);
      assert.equal(mock.requests[0].body.model, upstreamModel);
      // a proxied request would carry an absolute URI; a direct one has just the path
      assert.equal(mock.requests[0].url, '/v1/chat/completions');

      const s = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: `${name} stream` }], stream: true });
      assert.equal(contentOf(await collect(s)), expectedChatText(`${name} stream`));
    });
  }

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
