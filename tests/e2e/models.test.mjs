// Model listing, /model/info, unimplemented providers and health endpoints.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, OpenAI } from './lib/clients.mjs';

const SECRET_A = 'sk-upstream-secret-aaaa';
const SECRET_B = 'sk-upstream-secret-bbbb';
const SECRET_C = 'sk-upstream-secret-cccc';
const MODEL_NAMES = ['my-gpt', 'vllm-model', 'compat-model', 'ollama-model', 'claude-bedrock'];

describe('models and health', () => {
  let mock;
  let sluice;
  let client;

  before(async () => {
    mock = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  # two deployments behind one public name: listed once
  - model_name: my-gpt
    litellm_params:
      model: openai/upstream-a
      api_base: ${mock.baseURL}
      api_key: ${SECRET_A}
  - model_name: my-gpt
    litellm_params:
      model: openai/upstream-b
      api_base: ${mock.baseURL}
      api_key: ${SECRET_B}
  - model_name: vllm-model
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3-8B
      api_base: ${mock.baseURL}
  - model_name: compat-model
    litellm_params:
      model: openai_compatible/some-model
      api_base: ${mock.baseURL}
      api_key: ${SECRET_C}
  - model_name: ollama-model
    litellm_params:
      model: ollama_chat/llama3
      api_base: ${mock.url}
  - model_name: claude-bedrock
    litellm_params:
      model: bedrock/anthropic.claude-3
      aws_region_name: us-east-1
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

  it('lists every configured model_name exactly once', async () => {
    const ids = [];
    for await (const m of client.models.list()) {
      ids.push(m.id);
      assert.equal(m.object, 'model');
    }
    assert.deepEqual([...ids].sort(), [...MODEL_NAMES].sort(), `models.list returned ${JSON.stringify(ids)}`);
  });

  it('GET /model/info returns deployments without secrets', async () => {
    const res = await fetchJSON(sluice.url('/model/info'), { headers: authHeaders() });
    assert.equal(res.status, 200, res.text);
    assert.ok(Array.isArray(res.body.data), res.text);
    const names = new Set(res.body.data.map((d) => d.model_name));
    for (const n of MODEL_NAMES) assert.ok(names.has(n), `/model/info lists ${n}`);
    assert.equal(res.body.data.filter((d) => d.model_name === 'my-gpt').length, 2, 'one entry per deployment');
    const ids = new Set();
    for (const d of res.body.data) {
      assert.ok(d.litellm_params && typeof d.litellm_params === 'object', `litellm_params in ${JSON.stringify(d)}`);
      assert.ok(typeof d.litellm_params.model === 'string', `litellm_params.model in ${JSON.stringify(d)}`);
      assert.ok(!('api_key' in d.litellm_params), `api_key must not be exposed: ${JSON.stringify(d.litellm_params)}`);
      assert.ok(d.model_info && d.model_info.id != null && String(d.model_info.id).length > 0, `model_info.id in ${JSON.stringify(d)}`);
      ids.add(String(d.model_info.id));
    }
    assert.equal(ids.size, res.body.data.length, 'model_info.id is unique per deployment');
    for (const s of [SECRET_A, SECRET_B, SECRET_C]) assert.ok(!res.text.includes(s), `secret ${s} leaked in /model/info`);
    const bedrock = res.body.data.find((d) => d.model_name === 'claude-bedrock');
    assert.equal(bedrock.litellm_params.model, 'bedrock/anthropic.claude-3');
  });

  it('rejects a chat to a model whose provider is not implemented with a 400 naming the provider', async () => {
    mock.clearRequests();
    await assert.rejects(
      client.chat.completions.create({ model: 'claude-bedrock', messages: [{ role: 'user', content: 'hi' }] }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err.constructor.name}: ${err.message}`);
        assert.equal(err.status, 400);
        assert.match(err.message, /bedrock/i);
        return true;
      },
    );
    assert.equal(mock.requests.length, 0, 'nothing was sent upstream');
  });

  it('routes the implemented providers to the mock', async () => {
    for (const name of ['vllm-model', 'compat-model']) {
      const r = await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: name }] });
      assert.equal(r.choices[0].message.content, `Hello from mock: ${name}`);
    }
    mock.clearRequests();
    await client.chat.completions.create({ model: 'vllm-model', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(mock.requests[0].body.model, 'meta-llama/Llama-3-8B', 'provider prefix is stripped, rest of the model kept');
  });

  for (const p of ['/health/liveliness', '/health/liveness']) {
    it(`GET ${p} -> 200 "I'm alive!" (no auth needed)`, async () => {
      const res = await fetchJSON(sluice.url(p));
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body, "I'm alive!", `body: ${res.text}`);
    });
  }

  it('GET /health/readiness -> 200 JSON with status', async () => {
    // readiness includes the (embedded) database, which connects just after sluice listens
    let res;
    const deadline = Date.now() + 5000;
    do {
      res = await fetchJSON(sluice.url('/health/readiness'));
      if (res.status === 200) break;
      await new Promise((r) => setTimeout(r, 50));
    } while (Date.now() < deadline);
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body && typeof res.body === 'object', `JSON object body: ${res.text}`);
    assert.ok('status' in res.body, `status field: ${res.text}`);
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
