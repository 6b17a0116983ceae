// Embeddings through sluice, base64 (SDK default) and float encodings.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, mockEmbedding, MOCK_EMBEDDING_DIM } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient } from './lib/clients.mjs';

function assertVectorClose(actual, expected, tol = 1e-6) {
  const a = Array.from(actual);
  assert.equal(a.length, expected.length, `dimension ${a.length} != ${expected.length}`);
  a.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= tol, `component ${i}: ${v} vs ${expected[i]}`));
}

describe('embeddings', () => {
  let mock;
  let sluice;
  let client;

  before(async () => {
    mock = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: my-embed
    litellm_params:
      model: openai/text-embedding-upstream
      api_base: ${mock.baseURL}
      api_key: sk-upstream-secret
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

  it('returns the upstream vector with the SDK default (base64) encoding', async () => {
    mock.clearRequests();
    const res = await client.embeddings.create({ model: 'my-embed', input: 'The quick brown fox' });
    assert.equal(res.object, 'list');
    assert.equal(res.data.length, 1);
    assert.equal(res.data[0].index, 0);
    assertVectorClose(res.data[0].embedding, mockEmbedding('The quick brown fox'));
    assert.ok(res.usage && res.usage.prompt_tokens > 0, JSON.stringify(res.usage));
    const up = mock.lastRequest('/v1/embeddings');
    assert.ok(up, 'upstream received /v1/embeddings');
    assert.equal(up.body.model, 'text-embedding-upstream');
    assert.equal(up.body.input, 'The quick brown fox');
    assert.equal(up.headers.authorization, 'Bearer sk-upstream-secret');
  });

  it('returns float arrays with encoding_format "float"', async () => {
    const inputs = ['alpha', 'beta gamma', 'δέλτα'];
    const res = await client.embeddings.create({ model: 'my-embed', input: inputs, encoding_format: 'float' });
    assert.equal(res.data.length, inputs.length);
    res.data
      .sort((a, b) => a.index - b.index)
      .forEach((d, i) => {
        assert.equal(d.index, i);
        assert.ok(Array.isArray(d.embedding), `float format gives an array, got ${typeof d.embedding}`);
        assert.equal(d.embedding.length, MOCK_EMBEDDING_DIM);
        assertVectorClose(d.embedding, mockEmbedding(inputs[i]));
      });
  });

  it('returns a base64 string when base64 is requested explicitly', async () => {
    const res = await fetchJSON(sluice.url('/v1/embeddings'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model: 'my-embed', input: ['x1', 'x2'], encoding_format: 'base64' },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.data.length, 2);
    for (const d of res.body.data) {
      assert.equal(typeof d.embedding, 'string', 'base64 format gives a string');
      const buf = Buffer.from(d.embedding, 'base64');
      assert.equal(buf.length, MOCK_EMBEDDING_DIM * 4);
      const vec = Array.from({ length: MOCK_EMBEDDING_DIM }, (_, i) => buf.readFloatLE(i * 4));
      assertVectorClose(vec, mockEmbedding(['x1', 'x2'][d.index]));
    }
  });

  it('serves /embeddings without the /v1 prefix', async () => {
    const res = await fetchJSON(sluice.url('/embeddings'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model: 'my-embed', input: 'bare', encoding_format: 'float' },
    });
    assert.equal(res.status, 200, res.text);
    assertVectorClose(res.body.data[0].embedding, mockEmbedding('bare'));
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
