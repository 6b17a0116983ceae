// Azure OpenAI deployments: the deployment in the path, api-version as a
// query, the key in an api-key header (never a bearer token); AZURE_API_*
// environment variables fill in what the config leaves out.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startMock, expectedChatText, mockEmbedding } from './lib/mock-upstream.mjs';
import { startAzureMock, isolatedProviderEnv } from './lib/mock-providers.mjs';
import { startSluice, freePort, makeTempDir, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf } from './lib/clients.mjs';

describe('providers: azure', () => {
  let openai; // the OpenAI-format answers behind both Azure mocks
  let az; // configured explicitly
  let azEnv; // configured through AZURE_API_* only
  let sluice;
  let client;
  let empty;

  before(async () => {
    openai = await startMock();
    az = await startAzureMock({ upstream: openai });
    azEnv = await startAzureMock({ upstream: openai });
    empty = makeTempDir('sluice-e2e-home-');
    sluice = await startSluice({
      config: `
model_list:
  - model_name: azure-chat
    litellm_params:
      model: azure/my-deployment
      api_base: ${az.url}
      api_version: "2024-10-21"
      api_key: azure-key
  - model_name: azure-from-env
    litellm_params:
      model: azure/env-deployment
general_settings:
  master_key: ${MASTER_KEY}
`,
      env: isolatedProviderEnv(empty, await freePort(), {
        AZURE_API_KEY: 'azure-env-key',
        AZURE_API_BASE: azEnv.url,
        AZURE_API_VERSION: '2024-06-01',
      }),
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all([az?.close(), azEnv?.close(), openai?.close()]);
      if (empty) fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  function checkAzureRequest(rec, { deployment, endpoint, version, key }) {
    assert.ok(rec, 'the Azure mock received a request');
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, `/openai/deployments/${deployment}/${endpoint}`, `path: ${rec.url}`);
    assert.deepEqual(rec.query, { 'api-version': version }, `query: ${rec.url}`);
    assert.equal(rec.headers['api-key'], key, 'api-key header');
    assert.equal(rec.headers.authorization, undefined, `no Authorization header to Azure (got ${rec.headers.authorization})`);
    assert.ok(!rec.rawBody.includes(MASTER_KEY), 'the client key does not reach Azure');
  }

  it('chat goes to /openai/deployments/<dep>/chat/completions?api-version=… with api-key', async () => {
    az.clearRequests();
    const res = await client.chat.completions.create({
      model: 'azure-chat',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'hello azure' },
      ],
      temperature: 0.2,
    });
    assert.equal(res.choices[0].message.content, expectedChatText('hello azure'));
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.ok(res.usage.prompt_tokens > 0);
    assert.equal(az.requests.length, 1);
    const rec = az.requests[0];
    checkAzureRequest(rec, { deployment: 'my-deployment', endpoint: 'chat/completions', version: '2024-10-21', key: 'azure-key' });
    assert.deepEqual(rec.body.messages, [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'hello azure' },
    ]);
    assert.equal(rec.body.temperature, 0.2);
  });

  it('streams chat from Azure', async () => {
    az.clearRequests();
    const chunks = await collect(await client.chat.completions.create({ model: 'azure-chat', messages: [{ role: 'user', content: 'stream me' }], stream: true }));
    assert.equal(contentOf(chunks), expectedChatText('stream me'));
    checkAzureRequest(az.requests[0], { deployment: 'my-deployment', endpoint: 'chat/completions', version: '2024-10-21', key: 'azure-key' });
    assert.equal(az.requests[0].body.stream, true);
  });

  it('embeddings go to /openai/deployments/<dep>/embeddings?api-version=…', async () => {
    az.clearRequests();
    const res = await client.embeddings.create({ model: 'azure-chat', input: ['alpha', 'beta'], encoding_format: 'float' });
    assert.equal(res.data.length, 2);
    assert.deepEqual(res.data[0].embedding, mockEmbedding('alpha'));
    assert.deepEqual(res.data[1].embedding, mockEmbedding('beta'));
    checkAzureRequest(az.requests[0], { deployment: 'my-deployment', endpoint: 'embeddings', version: '2024-10-21', key: 'azure-key' });
    assert.deepEqual(az.requests[0].body.input, ['alpha', 'beta']);
  });

  it('uses AZURE_API_KEY / AZURE_API_BASE / AZURE_API_VERSION when the config omits them', async () => {
    azEnv.clearRequests();
    az.clearRequests();
    const res = await client.chat.completions.create({ model: 'azure-from-env', messages: [{ role: 'user', content: 'from env' }] });
    assert.equal(res.choices[0].message.content, expectedChatText('from env'));
    assert.equal(az.requests.length, 0, 'the explicitly configured Azure mock was not used');
    checkAzureRequest(azEnv.requests[0], { deployment: 'env-deployment', endpoint: 'chat/completions', version: '2024-06-01', key: 'azure-env-key' });
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
