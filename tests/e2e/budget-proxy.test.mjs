// litellm_settings.max_budget: one budget for the whole proxy. Every call's cost counts,
// master key and virtual keys alike; once the spend reaches it, calls are refused with LiteLLM's
// budget_exceeded error, and concurrent calls cannot overrun it together.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { startMock } from './lib/mock-upstream.mjs';
import { pricedModelList } from './lib/config.mjs';

const IN_COST = 0.001;
const OUT_COST = 0.002;
const ANSWER = 'ok ok ok'; // 3 completion tokens: the mock counts words
const words = (s) => String(s).split(/\s+/).filter(Boolean).length;
const PROMPT = 'how much';
const COST = (words(PROMPT) + 1) * IN_COST + words(ANSWER) * OUT_COST; // the mock bills words + 1 input tokens

const config = (mock, maxBudget) => `
${pricedModelList(mock, IN_COST, OUT_COST)}litellm_settings:
  max_budget: ${maxBudget}
general_settings:
  master_key: ${MASTER_KEY}
`;

describe('litellm_settings.max_budget (proxy-wide budget)', () => {
  let mock;
  let sluice;
  before(async () => {
    mock = await startMock({ content: ANSWER, delayMs: 300 });
  });
  after(async () => {
    if (sluice && !sluice.stopRequested) await sluice.stop();
    await mock?.close();
  });

  it('master-key calls are refused with budget_exceeded once the proxy spent max_budget', async () => {
    sluice = await startSluice({ config: config(mock, 2.5 * COST), env: { DATABASE_URL: null } });
    const client = new OpenAI({ apiKey: MASTER_KEY, baseURL: sluice.baseURL, maxRetries: 0 });
    // LiteLLM's rule: a call passes while the spend is below the budget
    for (let i = 1; i <= 3; i++) {
      const r = await client.chat.completions.create({ model: 'priced', messages: [{ role: 'user', content: PROMPT }] });
      assert.equal(r.choices[0].message.content, ANSWER, `call ${i}`);
    }
    const before = mock.requests.length;
    await assert.rejects(
      client.chat.completions.create({ model: 'priced', messages: [{ role: 'user', content: PROMPT }] }),
      (err) => {
        assert.equal(err.status, 400);
        assert.equal(err.error?.type, 'budget_exceeded', JSON.stringify(err.error));
        assert.match(err.message, /Budget has been exceeded! Current cost: \S+, Max budget: \S+/);
        const current = Number(/Current cost: ([^,]+),/.exec(err.message)[1]);
        assert.ok(Math.abs(current - 3 * COST) < 1e-9, `current cost ${current}, expected ${3 * COST}`);
        return true;
      },
    );
    assert.equal(mock.requests.length, before, 'the refused call never reached the upstream');
    await sluice.stop();
  });

  it('concurrent calls cannot overrun it, and virtual keys count too', async () => {
    sluice = await startSluice({ config: config(mock, 4 * COST), env: { DATABASE_URL: null } });
    const deadline = Date.now() + 15000;
    let key;
    while (Date.now() < deadline) { // migrations run in the background after start
      const r = await fetchJSON(sluice.url('/key/generate'), { method: 'POST', headers: authHeaders(), body: {} });
      if (r.status === 200) { key = r.body.key; break; }
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(key, 'no virtual key');
    const call = (k) => fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST', headers: authHeaders(k),
      body: { model: 'priced', max_tokens: 3, messages: [{ role: 'user', content: PROMPT }] },
    });
    const before = mock.requests.length;
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => call(i % 2 ? key : MASTER_KEY)));
    const ok = results.filter((r) => r.status === 200);
    for (const r of results.filter((x) => x.status !== 200)) {
      const e = checkErrorEnvelope(assert, r, 400);
      assert.equal(e.type, 'budget_exceeded', r.text);
    }
    assert.ok(ok.length >= 1 && ok.length <= 5, `${ok.length} of 20 concurrent calls passed a budget worth 4 (+1 for the estimate's rounding)`);
    assert.equal(mock.requests.length - before, ok.length, 'only admitted calls went upstream');
    await sluice.stop();
  });
});
