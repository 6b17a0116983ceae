// Router retries (LiteLLM's num_retries, retry_policy, Retry-After backoff): what the client
// sees (status, body, x-litellm-attempted-retries, x-litellm-model-id/-group) and how many
// requests each upstream received. See src/router/router.h for the rules.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { dep } from './lib/config.mjs';

const CHAT = '/v1/chat/completions';

// One deployment of `group` served by `mock`, with model_info.id `id` and extra litellm_params.

async function chat(sluice, model, text, extra = {}, headers = {}) {
  return fetchJSON(sluice.url(CHAT), {
    method: 'POST',
    headers: { ...authHeaders(), ...headers },
    body: { model, messages: [{ role: 'user', content: text }], ...extra },
  });
}

function okAnswer(res, text) {
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.text}`);
  assert.equal(res.body?.choices?.[0]?.message?.content, expectedChatText(text), res.text);
}

describe('router retries (num_retries: 1)', () => {
  const mocks = {};
  let sluice;

  before(async () => {
    for (const k of ['r500', 'r429', 'rdep', 'rreq']) mocks[k] = await startMock();
    sluice = await startSluice({
      config: `
model_list:
${dep('g-500', 'dep-r500', mocks.r500)}${dep('g-429', 'dep-r429', mocks.r429)}${dep('g-dep', 'dep-rdep', mocks.rdep, { num_retries: 2 })}${dep('g-req', 'dep-rreq', mocks.rreq)}
router_settings:
  num_retries: 1
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all(Object.values(mocks).map((m) => m.close()));
    }
  });

  it('retries an upstream 500 once and answers 200 (upstream saw 2 requests, attempted-retries 1)', async () => {
    const m = mocks.r500;
    m.reset({ clearRequests: true });
    m.failNext(1, { status: 500, message: 'mock internal error', type: 'server_error' });
    const res = await chat(sluice, 'g-500', 'retry me');
    okAnswer(res, 'retry me');
    assert.equal(m.count(CHAT), 2, `upstream requests: ${m.count(CHAT)}`);
    assert.equal(m.requests[0].forcedStatus, 500);
    assert.equal(m.requests[1].forcedStatus, undefined);
    assert.equal(res.headers.get('x-litellm-attempted-retries'), '1');
    assert.ok([null, '0'].includes(res.headers.get('x-litellm-attempted-fallbacks')), 'no fallback was attempted');
    assert.equal(res.headers.get('x-litellm-model-id'), 'dep-r500');
    assert.equal(res.headers.get('x-litellm-model-group'), 'g-500');
    // the retry sends the same request
    assert.deepEqual(m.requests[1].body, m.requests[0].body);
    assert.equal(m.requests[1].body.model, 'up-dep-r500');
  });

  it('gives up after num_retries and passes the upstream 500 on (1 + 1 requests)', async () => {
    const m = mocks.r500;
    m.reset({ clearRequests: true });
    m.setBehavior({ error: { status: 500, message: 'mock always fails', type: 'server_error' } });
    try {
      const res = await chat(sluice, 'g-500', 'always');
      const e = checkErrorEnvelope(assert, res, 500, { exactCode: false });
      assert.ok(e.message.includes('mock always fails'), e.message);
      assert.equal(m.count(CHAT), 2, `upstream requests: ${m.count(CHAT)}`);
    } finally {
      m.reset();
    }
  });

  it('waits for Retry-After: 1 on a 429 before retrying, then answers', async () => {
    const m = mocks.r429;
    m.reset({ clearRequests: true });
    m.failNext(1, { status: 429, message: 'Rate limit reached (mock)', type: 'requests', code: 'rate_limit_exceeded', headers: { 'retry-after': '1' } });
    const t0 = Date.now();
    const res = await chat(sluice, 'g-429', 'patience');
    const elapsed = Date.now() - t0;
    okAnswer(res, 'patience');
    assert.equal(m.count(CHAT), 2, `upstream requests: ${m.count(CHAT)}`);
    const gap = m.requests[1].receivedAt - m.requests[0].receivedAt;
    assert.ok(gap >= 950, `the retry came ${gap} ms after the 429 (Retry-After: 1 asks for >= 1000 ms)`);
    assert.ok(gap < 3000, `the retry came ${gap} ms after the 429 (Retry-After: 1)`);
    assert.ok(elapsed >= 950, `answered after ${elapsed} ms`);
    assert.equal(res.headers.get('x-litellm-attempted-retries'), '1');
  });

  it("a deployment's num_retries (2) overrides router_settings.num_retries (1)", async () => {
    const m = mocks.rdep;
    m.reset({ clearRequests: true });
    m.failNext(2, { status: 503, message: 'mock overloaded', type: 'server_error' });
    const res = await chat(sluice, 'g-dep', 'two strikes');
    okAnswer(res, 'two strikes');
    assert.equal(m.count(CHAT), 3, `upstream requests: ${m.count(CHAT)}`);
    assert.equal(res.headers.get('x-litellm-attempted-retries'), '2');
  });

  it('the request body num_retries: 0 turns retries off for that request', async () => {
    const m = mocks.rreq;
    m.reset({ clearRequests: true });
    m.failNext(1, { status: 500, message: 'mock one-off', type: 'server_error' });
    const res = await chat(sluice, 'g-req', 'no retry', { num_retries: 0 });
    checkErrorEnvelope(assert, res, 500, { exactCode: false });
    assert.equal(m.count(CHAT), 1, `upstream requests: ${m.count(CHAT)}`);
    assert.equal(m.requests[0].body.num_retries, undefined, 'num_retries is not forwarded upstream');
  });

  it('the x-litellm-num-retries header asks for retries (router default 1 → 2)', async () => {
    const m = mocks.rreq;
    m.reset({ clearRequests: true });
    m.failNext(2, { status: 500, message: 'mock twice', type: 'server_error' });
    const res = await chat(sluice, 'g-req', 'two retries', {}, { 'x-litellm-num-retries': '2' });
    okAnswer(res, 'two retries');
    assert.equal(m.count(CHAT), 3, `upstream requests: ${m.count(CHAT)}`);
    assert.equal(res.headers.get('x-litellm-attempted-retries'), '2');
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('router retry_policy and retry_after', () => {
  const mocks = {};
  let sluice;

  before(async () => {
    for (const k of ['p500', 'p429']) mocks[k] = await startMock();
    sluice = await startSluice({
      config: `
model_list:
${dep('p-500', 'dep-p500', mocks.p500)}${dep('p-429', 'dep-p429', mocks.p429)}
router_settings:
  num_retries: 3
  retry_after: 1
  retry_policy: {"InternalServerErrorRetries": 1, "RateLimitErrorRetries": 0}
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all(Object.values(mocks).map((m) => m.close()));
    }
  });

  it('InternalServerErrorRetries: 1 wins over num_retries: 3 for a 500; retry_after: 1 is the least backoff', async () => {
    const m = mocks.p500;
    m.setBehavior({ error: { status: 500, message: 'mock 500 forever', type: 'server_error' } });
    const res = await chat(sluice, 'p-500', 'policy');
    checkErrorEnvelope(assert, res, 500, { exactCode: false });
    assert.equal(m.count(CHAT), 2, `upstream requests: ${m.count(CHAT)}`);
    // the first backoff would be 0.5 s * jitter; retry_after raises it to 1 s
    const gap = m.requests[1].receivedAt - m.requests[0].receivedAt;
    assert.ok(gap >= 950 && gap < 3000, `the retry came ${gap} ms after the 500 (retry_after: 1)`);
  });

  it('RateLimitErrorRetries: 0 passes a 429 straight on', async () => {
    const m = mocks.p429;
    m.setBehavior({ error: { status: 429, message: 'mock 429 forever', type: 'requests', code: 'rate_limit_exceeded' } });
    const res = await chat(sluice, 'p-429', 'policy');
    const e = checkErrorEnvelope(assert, res, 429, { exactCode: false });
    assert.ok(e.message.includes('mock 429 forever'), e.message);
    assert.equal(m.count(CHAT), 1, `upstream requests: ${m.count(CHAT)}`);
    assert.ok(res.headers.get('retry-after'), 'a 429 carries retry-after');
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
