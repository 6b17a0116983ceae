// GET /health (admin): a live probe of every deployment, LiteLLM's response shape.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, MASTER_KEY } from './lib/sluice.mjs';

describe('GET /health probes the deployments', () => {
  let mock;
  let sluice;
  before(async () => {
    mock = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: up
    litellm_params:
      model: openai/up-model
      api_base: ${mock.baseURL}
      api_key: sk-upstream-secret-health
  - model_name: down
    litellm_params:
      model: openai/down-model
      api_base: http://127.0.0.1:9/v1
      api_key: sk-upstream-secret-health
    model_info:
      health_check_timeout: 2
  - model_name: demo
    litellm_params:
      model: openai/demo
      mock_response: hi
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
  });
  after(async () => {
    try { if (sluice && !sluice.stopRequested) await sluice.stop(); } finally { await mock?.close(); }
  });

  it('reports healthy and unhealthy endpoints with errors, without secrets', async () => {
    const r = await fetchJSON(sluice.url('/health'), { headers: authHeaders() });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.healthy_count, 2, r.text);
    assert.equal(r.body.unhealthy_count, 1, r.text);
    const healthy = r.body.healthy_endpoints.map((e) => e.model_name).sort();
    assert.deepEqual(healthy, ['demo', 'up']);
    const bad = r.body.unhealthy_endpoints[0];
    assert.equal(bad.model_name, 'down');
    assert.match(bad.error, /127\.0\.0\.1:9/);
    assert.ok(!r.text.includes('sk-upstream-secret-health'), 'no provider key in the answer');
    assert.ok(mock.requests.some((q) => q.path === '/v1/chat/completions' && q.body.model === 'up-model'),
      'the healthy deployment was really called');
  });

  it('?model= limits the probe to one model group', async () => {
    const r = await fetchJSON(sluice.url('/health?model=up'), { headers: authHeaders() });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.healthy_count, 1);
    assert.equal(r.body.unhealthy_count, 0);
  });

  it('?model= of a model with no healthy endpoint answers 503 with the same body (LiteLLM)', async () => {
    const r = await fetchJSON(sluice.url('/health?model=down'), { headers: authHeaders() });
    assert.equal(r.status, 503, r.text);
    assert.equal(r.body.healthy_count, 0);
    assert.equal(r.body.unhealthy_count, 1);
    assert.equal(r.body.unhealthy_endpoints[0].model_name, 'down');
  });

  it('is for admins only', async () => {
    const gen = await fetchJSON(sluice.url('/key/generate'), { method: 'POST', headers: authHeaders(), body: {} });
    let r = gen;
    for (let i = 0; i < 100 && r.status === 503; i++) {
      await new Promise((res) => setTimeout(res, 100));
      r = await fetchJSON(sluice.url('/key/generate'), { method: 'POST', headers: authHeaders(), body: {} });
    }
    assert.equal(r.status, 200, r.text);
    const h = await fetchJSON(sluice.url('/health'), { headers: authHeaders(r.body.key) });
    assert.equal(h.status, 403, h.text);
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
