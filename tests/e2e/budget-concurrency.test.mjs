// Budgets under concurrency (SQLite): a key whose max_budget pays for ten requests, hit by fifty
// at once through a slow upstream, must not be overrun; the spend that was let through is
// accounted exactly (key spend, one spend-log row per successful call, response headers).
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { startMock } from './lib/mock-upstream.mjs';
import { pricedModelList } from './lib/config.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const words = (s) => String(s).split(/\s+/).filter(Boolean).length;
const close = (a, b, eps = 1e-9) => Math.abs(a - b) <= eps * Math.max(1, Math.abs(a), Math.abs(b));

const IN_COST = 0.001;
const OUT_COST = 0.002;
const ANSWER = 'ok ok ok'; // the upstream's answer: 3 completion tokens (the mock counts words)
const MAX_TOKENS = 3; // so sluice's admission estimate is exactly the real cost (below)
const UPSTREAM_DELAY_MS = 400; // every admitted request is still in flight when the others arrive
const N = 50;
const AFFORDABLE = 10;

// sluice reserves ceil(body bytes / 4) input tokens + max_tokens output tokens at admission; the
// mock upstream bills (words + 1) input tokens for one message. Pad the prompt until both agree,
// so the cost of a request is known in advance and equals what was reserved for it.
function tunedBody() {
  for (let k = 0; k < 400; k++) {
    for (let m = 1; m <= 8; m++) {
      const content = 'a '.repeat(k) + 'b'.repeat(m);
      const body = JSON.stringify({ model: 'priced', max_tokens: MAX_TOKENS, messages: [{ role: 'user', content }] });
      const promptTokens = words(content) + 1;
      if (Math.ceil(Buffer.byteLength(body) / 4) === promptTokens) return { body, promptTokens };
    }
  }
  throw new Error('no prompt makes the estimate equal the cost');
}
const { body: BODY, promptTokens: PROMPT_TOKENS } = tunedBody();
const COMPLETION_TOKENS = words(ANSWER);
const COST = PROMPT_TOKENS * IN_COST + COMPLETION_TOKENS * OUT_COST; // one request
const BUDGET = AFFORDABLE * COST;

const config = (mock) => `
${pricedModelList(mock, IN_COST, OUT_COST)}general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
`;

const client = (s, key = MASTER_KEY) => {
  const call = (method, path, body) => fetchJSON(s.url(path), { method, headers: authHeaders(key), body });
  return { get: (p) => call('GET', p), post: (p, b = {}) => call('POST', p, b) };
};
// Migrations run in the background after sluice starts serving.
async function waitForDb(s, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await client(s).get('/key/list');
    if (last.status !== 503) return;
    await sleep(100);
  }
  throw new Error(`database not ready after ${timeoutMs} ms: ${last?.status} ${last?.text}`);
}
async function eventually(fn, { timeoutMs = 8000, everyMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if ((last = await fn())) return last;
    await sleep(everyMs);
  }
  return last;
}
const chat = (s, key) => fetchJSON(s.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(key), body: BODY, signal: AbortSignal.timeout(20000) });
const describeRes = (r) => `HTTP ${r.status} ${r.text.slice(0, 400)}`;

describe('budget: concurrent requests on one key (SQLite)', () => {
  let sluice;
  let mock;
  let api;
  let key; // the budgeted key of the burst
  let okCallIds = []; // x-litellm-call-id of the burst's successful answers

  before(async () => {
    mock = await startMock({ delayMs: UPSTREAM_DELAY_MS, content: ANSWER });
    sluice = await startSluice({ config: config(mock), env: { DATABASE_URL: null } }); // SQLite: ./sluice.db in its temp cwd
    api = client(sluice);
    await waitForDb(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await mock?.close();
    }
  });

  it(`${N} concurrent calls on a budget worth ${AFFORDABLE}: at most ${AFFORDABLE} succeed, the rest are 400 budget_exceeded`, async (t) => {
    const r = await api.post('/key/generate', { key_alias: 'burst', max_budget: BUDGET });
    assert.equal(r.status, 200, r.text);
    key = r.body.key;
    const results = await Promise.all(Array.from({ length: N }, () => chat(sluice, key)));
    const ok = results.filter((x) => x.status === 200);
    const refused = results.filter((x) => x.status !== 200);
    t.diagnostic(`${ok.length} of ${N} succeeded (cost ${COST} each, max_budget ${BUDGET})`);
    for (const x of refused) {
      const e = checkErrorEnvelope(assert, x, 400);
      assert.equal(e.type, 'budget_exceeded', describeRes(x));
      assert.match(e.message, /^Budget has been exceeded!/, describeRes(x));
      assert.match(e.message, /Max budget: /, describeRes(x));
    }
    // the upstream saw exactly the admitted calls, and they overlapped (the point of the test)
    assert.equal(mock.requests.length, ok.length, 'every admitted call went upstream, no refused one did');
    const at = mock.requests.map((q) => q.receivedAt).sort((a, b) => a - b);
    if (at.length > 1) assert.ok(at[at.length - 1] - at[0] < UPSTREAM_DELAY_MS, `admitted calls did not overlap: ${at.map((x) => x - at[0])}`);
    assert.ok(ok.length <= AFFORDABLE, `${ok.length} of ${N} calls succeeded on a budget for ${AFFORDABLE} (cost ${COST} each, max_budget ${BUDGET})`);
    // the estimate equals the real cost here, so the whole budget can be used
    assert.ok(ok.length >= AFFORDABLE - 1, `only ${ok.length} of ${N} calls succeeded on a budget for ${AFFORDABLE} (cost ${COST} each, max_budget ${BUDGET}); refusals: ${refused.slice(0, 2).map(describeRes).join(' | ')}`);
    for (const x of ok) {
      assert.equal(x.body.choices[0].message.content, ANSWER);
      assert.equal(x.body.usage.prompt_tokens, PROMPT_TOKENS);
      assert.equal(x.body.usage.completion_tokens, COMPLETION_TOKENS);
    }
    okCallIds = ok.map((x) => x.headers.get('x-litellm-call-id'));
    assert.ok(okCallIds.every(Boolean), 'every answer has x-litellm-call-id');
  });

  it('after the flush, /key/info spend is the successful calls\' cost, within max_budget + one call', async () => {
    assert.ok(key, 'the burst did not run');
    const want = okCallIds.length * COST;
    let info;
    await eventually(async () => {
      info = await api.get(`/key/info?key=${key}`);
      return info.status === 200 && close(info.body.info.spend, want, 1e-6);
    });
    assert.equal(info.status, 200, info.text);
    const spend = info.body.info.spend;
    assert.ok(close(info.body.info.max_budget, BUDGET), `max_budget ${info.body.info.max_budget}`);
    assert.ok(spend <= BUDGET + COST + 1e-9, `key spend ${spend} > max_budget ${BUDGET} + one call ${COST}`);
    assert.ok(close(spend, want, 1e-6), `key spend ${spend}, expected ${okCallIds.length} × ${COST} = ${want}`);
  });

  it('/spend/logs has one row per successful call, with its cost and tokens', async () => {
    assert.ok(key, 'the burst did not run');
    let rows;
    await eventually(async () => {
      const r = await api.get(`/spend/logs?api_key=${key}`);
      rows = r.status === 200 ? r.body : [];
      return rows.length >= okCallIds.length;
    });
    assert.equal(rows.length, okCallIds.length, `spend rows ${rows.length}, successful calls ${okCallIds.length}: ${JSON.stringify(rows.slice(0, 2))}`);
    assert.deepEqual(rows.map((r) => r.request_id).sort(), [...okCallIds].sort(), 'one row per successful call, by request id');
    for (const row of rows) {
      assert.equal(row.api_key, sha256(key));
      assert.equal(row.status, 'success');
      assert.equal(row.model_group, 'priced');
      assert.equal(row.prompt_tokens, PROMPT_TOKENS);
      assert.equal(row.completion_tokens, COMPLETION_TOKENS);
      assert.equal(row.total_tokens, PROMPT_TOKENS + COMPLETION_TOKENS);
      assert.ok(close(row.spend, COST, 1e-9), `row spend ${row.spend}, expected ${COST}`);
    }
  });

  it('the spent key stays refused with budget_exceeded', async () => {
    assert.ok(key, 'the burst did not run');
    const r = await chat(sluice, key);
    const e = checkErrorEnvelope(assert, r, 400);
    assert.equal(e.type, 'budget_exceeded');
    assert.match(e.message, /^Budget has been exceeded! Current cost: \S+, Max budget: \S+/);
  });

  it('a successful non-streamed call carries x-litellm-response-cost and x-litellm-key-spend', async () => {
    const { body: k } = await api.post('/key/generate', { key_alias: 'headers', max_budget: 100 });
    const first = await chat(sluice, k.key);
    assert.equal(first.status, 200, first.text);
    const cost = first.headers.get('x-litellm-response-cost');
    assert.ok(cost !== null, `no x-litellm-response-cost; headers: ${JSON.stringify(Object.fromEntries(first.headers))}`);
    assert.ok(close(Number(cost), COST, 1e-9), `x-litellm-response-cost ${cost}, expected ${COST}`);
    const ks1 = first.headers.get('x-litellm-key-spend');
    assert.ok(ks1 !== null, `no x-litellm-key-spend on a virtual key's answer; headers: ${JSON.stringify(Object.fromEntries(first.headers))}`);
    assert.ok(Number(ks1) >= 0 && Number(ks1) <= COST + 1e-9, `x-litellm-key-spend ${ks1} after the key's first call (cost ${COST})`);
    const second = await chat(sluice, k.key);
    assert.equal(second.status, 200, second.text);
    const ks2 = Number(second.headers.get('x-litellm-key-spend'));
    assert.ok(ks2 >= COST - 1e-9 && ks2 <= 2 * COST + 1e-9, `x-litellm-key-spend ${ks2} after the second call (cost ${COST} each)`);
  });

  it('a key without a budget: x-litellm-key-spend follows the flushes without waiting for the key cache TTL', async () => {
    const { body: k } = await api.post('/key/generate', { key_alias: 'no-budget' });
    const first = await chat(sluice, k.key);
    assert.equal(first.status, 200, first.text);
    await sleep(1500); // past proxy_batch_write_at: the first call's spend is written
    const second = await chat(sluice, k.key);
    assert.equal(second.status, 200, second.text);
    const ks = Number(second.headers.get('x-litellm-key-spend'));
    assert.ok(ks >= COST - 1e-9 && ks <= 2 * COST + 1e-9, `x-litellm-key-spend ${ks} after one written call (cost ${COST}); the cached record is 1.5 s old and the TTL 60 s`);
  });

  it('a key and its team stay exact across spend flushes: every call counted once, refused right at the budget', async () => {
    // calls spaced past proxy_batch_write_at, so the cached key record is sometimes read
    // before a flush wrote earlier calls and sometimes after
    const team = await api.post('/team/new', { team_alias: 'flushes', max_budget: 5 * COST });
    assert.equal(team.status, 200, team.text);
    const { body: k } = await api.post('/key/generate', { key_alias: 'flushes', team_id: team.body.team_id, max_budget: 100 });
    for (let i = 1; i <= 5; i++) {
      const r = await chat(sluice, k.key);
      assert.equal(r.status, 200, `call ${i}: ${describeRes(r)}`);
      const ks = Number(r.headers.get('x-litellm-key-spend'));
      assert.ok(close(ks, i * COST, 1e-6), `call ${i}: x-litellm-key-spend ${ks}, expected ${i * COST}`);
      await sleep(i % 2 ? 1300 : 200);
    }
    const refused = await chat(sluice, k.key);
    const e = checkErrorEnvelope(assert, refused, 400);
    assert.equal(e.type, 'budget_exceeded', describeRes(refused));
    const current = Number(/Current cost: (\S+),/.exec(e.message)?.[1]);
    assert.ok(close(current, 5 * COST, 1e-6), `refusal says current cost ${current}, expected ${5 * COST}: ${e.message}`);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
