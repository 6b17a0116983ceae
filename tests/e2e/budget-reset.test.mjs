// budget_duration: a key over its budget is refused until its budget period ends, then the
// spend is reset and it works again (SQLite).
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';

const config = `
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-mock
      mock_response: "a fairly long answer so that one call costs more than the budget"
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const api = (s, key = MASTER_KEY) => ({
  post: (p, body = {}) => fetchJSON(s.url(p), { method: 'POST', headers: authHeaders(key), body }),
  get: (p) => fetchJSON(s.url(p), { method: 'GET', headers: authHeaders(key) }),
});
const chat = (s, key) =>
  fetchJSON(s.url('/v1/chat/completions'), {
    method: 'POST', headers: authHeaders(key),
    body: { model: 'priced', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] },
  });

describe('budgets reset after budget_duration', () => {
  let sluice;
  before(async () => {
    sluice = await startSluice({ config, env: { DATABASE_URL: null } });
    const deadline = Date.now() + 15000;
    while ((await api(sluice).get('/key/list')).status === 503 && Date.now() < deadline) await sleep(100);
  });
  after(async () => { await sluice?.kill?.(); });

  it('refuses a spent key until the period ends, then serves it again', async () => {
    const gen = await api(sluice).post('/key/generate', { max_budget: 0.01, budget_duration: '3s' });
    assert.equal(gen.status, 200, gen.text);
    const key = gen.body.key;
    assert.ok(gen.body.budget_reset_at, `budget_reset_at is set: ${gen.text}`);

    const first = await chat(sluice, key);
    assert.equal(first.status, 200, `the first call fits the budget: ${first.text}`);
    assert.ok(Number(first.headers.get('x-litellm-response-cost')) > 0.01, 'one call costs more than the whole budget');

    const refused = await chat(sluice, key);
    const e = checkErrorEnvelope(assert, refused, 400);
    assert.equal(e.type, 'budget_exceeded');
    assert.match(e.message, /Budget has been exceeded!/);

    // the period is 3 s and spend is written every second: within ~6 s the key works again
    const deadline = Date.now() + 8000;
    let r;
    do {
      await sleep(250);
      r = await chat(sluice, key);
    } while (r.status !== 200 && Date.now() < deadline);
    assert.equal(r.status, 200, `after the budget period the key is served again: ${r.text}`);

    const info = await api(sluice).get(`/key/info?key=${encodeURIComponent(key)}`);
    assert.equal(info.status, 200, info.text);
    assert.ok(new Date(info.body.info.budget_reset_at) > new Date(gen.body.budget_reset_at),
      `the next reset is scheduled later: ${info.body.info.budget_reset_at}`);
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
