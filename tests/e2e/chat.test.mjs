// Chat completions through sluice: request rewriting, upstream auth, response
// headers, routes without /v1 and the legacy text completions endpoint.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText, expectedCompletionText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient } from './lib/clients.mjs';

const UPSTREAM_KEY = 'sk-upstream-secret';

describe('chat completions', () => {
  let mock;
  let sluice;
  let client;

  before(async () => {
    mock = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: my-gpt
    litellm_params:
      model: openai/upstream-model-name
      api_base: ${mock.baseURL}
      api_key: ${UPSTREAM_KEY}
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

  it('answers a non-streaming chat with the upstream content', async () => {
    mock.clearRequests();
    const messages = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'Say hello' },
    ];
    const res = await client.chat.completions.create({ model: 'my-gpt', messages, temperature: 0.3, max_tokens: 50 });
    assert.equal(res.object, 'chat.completion');
    assert.ok(res.id, 'response has an id');
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(res.choices[0].message.content, expectedChatText('Say hello'));
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.ok(res.usage, 'usage present');
    assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);
    assert.ok(res.usage.completion_tokens > 0);
  });

  it('rewrites the model, uses the configured upstream key and forwards other fields unchanged', async () => {
    mock.clearRequests();
    const messages = [
      { role: 'system', content: 'sys prompt' },
      { role: 'user', content: 'Forward me, please: ünïcödé ✓ "quotes" \\ backslash' },
    ];
    const res = await client.chat.completions.create({
      model: 'my-gpt',
      messages,
      temperature: 0.3,
      max_tokens: 77,
      user: 'end-user-42',
      // not part of OpenAI's schema: must reach the upstream untouched
      top_k: 5,
      custom_extra: { nested: [1, 2, { deep: true }] },
    });
    assert.equal(res.choices[0].message.content, expectedChatText(messages[1].content));

    assert.equal(mock.requests.length, 1, `upstream should get exactly one request, got ${mock.requests.length}`);
    const up = mock.requests[0];
    assert.equal(up.method, 'POST');
    assert.equal(up.path, '/v1/chat/completions');
    assert.equal(up.body.model, 'upstream-model-name');
    assert.equal(up.headers.authorization, `Bearer ${UPSTREAM_KEY}`);
    assert.ok(!JSON.stringify(up.headers).includes(MASTER_KEY), `client key leaked upstream: ${JSON.stringify(up.headers)}`);
    assert.ok(!up.rawBody.includes(MASTER_KEY), 'client key leaked in upstream body');
    assert.equal(up.body.temperature, 0.3);
    assert.equal(up.body.max_tokens, 77);
    assert.equal(up.body.user, 'end-user-42');
    assert.deepEqual(up.body.messages, messages);
    assert.equal(up.body.top_k, 5);
    assert.deepEqual(up.body.custom_extra, { nested: [1, 2, { deep: true }] });
    assert.ok(!up.body.stream, 'non-stream request must not be turned into a stream upstream');
  });

  it('sets x-litellm-* response headers', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'my-gpt', messages: [{ role: 'user', content: 'headers?' }] })
      .withResponse();
    assert.equal(data.choices[0].message.content, expectedChatText('headers?'));
    assert.equal(response.status, 200);
    const callId = response.headers.get('x-litellm-call-id');
    const modelId = response.headers.get('x-litellm-model-id');
    const overhead = response.headers.get('x-litellm-overhead-duration-ms');
    assert.ok(callId && callId.length > 0, 'x-litellm-call-id present');
    assert.ok(modelId && modelId.length > 0, 'x-litellm-model-id present');
    assert.ok(overhead !== null, 'x-litellm-overhead-duration-ms present');
    assert.ok(Number.isFinite(Number(overhead)) && Number(overhead) >= 0, `overhead is a non-negative number: ${overhead}`);

    // a second call gets a different call id
    const second = await client.chat.completions
      .create({ model: 'my-gpt', messages: [{ role: 'user', content: 'again' }] })
      .withResponse();
    const callId2 = second.response.headers.get('x-litellm-call-id');
    assert.notEqual(callId2, callId, 'call ids are unique per request');
    // UUID v7: the first 48 bits are the Unix time in ms, so ids sort by time (and so does the
    // spend log's primary key)
    const V7 = /^([0-9a-f]{8})-([0-9a-f]{4})-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    for (const id of [callId, callId2]) {
      const m = V7.exec(id);
      assert.ok(m, `call id ${id} is a UUID v7`);
      const ms = parseInt(m[1] + m[2], 16);
      assert.ok(Math.abs(ms - Date.now()) < 60_000, `call id ${id} carries the time: ${new Date(ms).toISOString()}`);
    }
    assert.ok(callId2.slice(0, 13) >= callId.slice(0, 13), `a later call sorts after: ${callId} then ${callId2}`);
    assert.equal(second.response.headers.get('x-litellm-model-id'), modelId, 'same deployment, same model id');

    // the model id is the deployment id reported by /model/info
    const info = await fetchJSON(sluice.url('/model/info'), { headers: authHeaders() });
    assert.equal(info.status, 200, info.text);
    const entry = info.body.data.find((d) => d.model_name === 'my-gpt');
    assert.ok(entry, '/model/info lists my-gpt');
    assert.equal(String(entry.model_info.id), modelId);
  });

  it('serves POST /chat/completions without the /v1 prefix', async () => {
    const res = await fetchJSON(sluice.url('/chat/completions'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model: 'my-gpt', messages: [{ role: 'user', content: 'no prefix' }] },
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.choices[0].message.content, expectedChatText('no prefix'));
    assert.match(res.headers.get('content-type') || '', /application\/json/);

    // and through the SDK with a base URL lacking /v1
    const bare = openaiClient(sluice, { prefix: '' });
    const r2 = await bare.chat.completions.create({ model: 'my-gpt', messages: [{ role: 'user', content: 'sdk bare' }] });
    assert.equal(r2.choices[0].message.content, expectedChatText('sdk bare'));
  });

  it('serves GET /models and /v1/models', async () => {
    for (const p of ['/models', '/v1/models']) {
      const res = await fetchJSON(sluice.url(p), { headers: authHeaders() });
      assert.equal(res.status, 200, `${p}: ${res.text}`);
      assert.equal(res.body.object, 'list');
      assert.ok(res.body.data.some((m) => m.id === 'my-gpt'), `${p} lists my-gpt: ${res.text}`);
    }
  });

  it('serves the legacy /v1/completions endpoint', async () => {
    mock.clearRequests();
    const res = await client.completions.create({ model: 'my-gpt', prompt: 'Once upon a time', max_tokens: 10 });
    assert.equal(res.object, 'text_completion');
    assert.equal(res.choices[0].text, expectedCompletionText('Once upon a time'));
    const up = mock.lastRequest('/v1/completions');
    assert.ok(up, `upstream got /v1/completions; got paths ${mock.requests.map((r) => r.path)}`);
    assert.equal(up.body.model, 'upstream-model-name');
    assert.equal(up.body.prompt, 'Once upon a time');
    assert.equal(up.body.max_tokens, 10);
    assert.equal(up.headers.authorization, `Bearer ${UPSTREAM_KEY}`);

    // without /v1 as well
    const raw = await fetchJSON(sluice.url('/completions'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model: 'my-gpt', prompt: 'bare' },
    });
    assert.equal(raw.status, 200, raw.text);
    assert.equal(raw.body.choices[0].text, expectedCompletionText('bare'));
  });

  it('handles several concurrent requests', async () => {
    const N = 16;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        client.chat.completions.create({ model: 'my-gpt', messages: [{ role: 'user', content: `parallel ${i}` }] }),
      ),
    );
    results.forEach((r, i) => assert.equal(r.choices[0].message.content, expectedChatText(`parallel ${i}`)));
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
