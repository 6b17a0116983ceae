// simple-shuffle weights: weight: 1 vs weight: 3 in one group, many calls at concurrency 20;
// each deployment is its own mock upstream, so the split is counted where the calls arrive.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock } from './lib/mock-upstream.mjs';
import { startSluice, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { dep } from './lib/config.mjs';

const CHAT = '/v1/chat/completions';
const CALLS = 3000;
const CONCURRENCY = 20;


// `n` calls of `model`, `conc` at a time; returns {status: count} and {model-id: count}.
async function hammer(sluice, model, n, conc) {
  const statuses = {};
  const ids = {};
  let next = 0;
  const body = JSON.stringify({ model, messages: [{ role: 'user', content: 'w' }] });
  const headers = authHeaders();
  async function worker() {
    while (next < n) {
      next++;
      const r = await fetch(sluice.url(CHAT), { method: 'POST', headers, body, signal: AbortSignal.timeout(15000) });
      await r.arrayBuffer();
      statuses[r.status] = (statuses[r.status] || 0) + 1;
      const id = r.headers.get('x-litellm-model-id');
      ids[id] = (ids[id] || 0) + 1;
    }
  }
  await Promise.all(Array.from({ length: conc }, worker));
  return { statuses, ids };
}

describe('router weights (simple-shuffle)', () => {
  const m = {};
  let sluice;

  before(async () => {
    m.w1 = await startMock();
    m.w3 = await startMock();
    m.r1 = await startMock();
    m.r2 = await startMock();
    sluice = await startSluice({
      workers: 4,
      config: `
model_list:
${dep('weighted', 'w1', m.w1, { weight: 1 })}${dep('weighted', 'w3', m.w3, { weight: 3 })}${dep('byrpm', 'r1', m.r1, { rpm: 100000 })}${dep('byrpm', 'r2', m.r2, { rpm: 300000 })}
router_settings:
  routing_strategy: simple-shuffle
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all(Object.values(m).map((x) => x.close()));
    }
  });

  it(`weight: 3 gets ~3x the calls of weight: 1 (${CALLS} calls, concurrency ${CONCURRENCY})`, async () => {
    const { statuses, ids } = await hammer(sluice, 'weighted', CALLS, CONCURRENCY);
    assert.deepEqual(statuses, { 200: CALLS });
    const a = m.w1.count(CHAT);
    const b = m.w3.count(CHAT);
    assert.equal(a + b, CALLS, 'every call reached exactly one upstream (no retries)');
    assert.deepEqual(ids, { w1: a, w3: b }, 'x-litellm-model-id names the deployment that served');
    const ratio = b / a;
    // 3000 calls at p = 0.75: the share's standard deviation is ~0.0079, so 3 ± 0.5 (share
    // 0.714..0.778) is more than 3.5 sigma on either side
    assert.ok(Math.abs(ratio - 3) <= 0.5, `w3/w1 = ${b}/${a} = ${ratio.toFixed(3)}, expected 3 ± 0.5`);
  });

  it('without weights, rpm weighs the shuffle (rpm 300000 vs 100000 → ~3x)', async () => {
    const { statuses } = await hammer(sluice, 'byrpm', CALLS, CONCURRENCY);
    assert.deepEqual(statuses, { 200: CALLS });
    const a = m.r1.count(CHAT);
    const b = m.r2.count(CHAT);
    assert.equal(a + b, CALLS);
    const ratio = b / a;
    assert.ok(Math.abs(ratio - 3) <= 0.5, `r2/r1 = ${b}/${a} = ${ratio.toFixed(3)}, expected 3 ± 0.5`);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
