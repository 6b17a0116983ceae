// mock_response deployments answer without any upstream.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice, fetchJSON, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf, finishReasonsOf } from './lib/clients.mjs';

const TEXT = 'Hi from the demo';

describe('mock_response deployments', () => {
  let sluice;
  let client;

  before(async () => {
    sluice = await startSluice({
      config: `
model_list:
  - model_name: demo
    litellm_params:
      model: openai/gpt-4o
      mock_response: "${TEXT}"
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    if (sluice && !sluice.stopRequested) await sluice.stop();
  });

  it('answers a non-streaming chat with the mock text', async () => {
    const r = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'hello?' }] });
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(r.choices[0].message.content, TEXT);
    assert.equal(r.choices[0].finish_reason, 'stop');
  });

  it('answers a streaming chat with the mock text', async () => {
    const s = await client.chat.completions.create({ model: 'demo', messages: [{ role: 'user', content: 'stream?' }], stream: true });
    const chunks = await collect(s);
    assert.equal(contentOf(chunks), TEXT);
    assert.deepEqual(finishReasonsOf(chunks), ['stop']);
    assert.equal(chunks.filter((c) => c.usage != null && c.choices.length === 0).length, 0, 'no usage chunk unless asked');
  });

  it('answers the raw endpoint without /v1 too', async () => {
    const r = await fetchJSON(sluice.url('/chat/completions'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model: 'demo', messages: [{ role: 'user', content: 'raw' }] },
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.choices[0].message.content, TEXT);
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
