// Router fallbacks (LiteLLM's fallbacks, context_window_fallbacks, content_policy_fallbacks and a
// request's own "fallbacks"): which group answers, the x-litellm-attempted-fallbacks and
// x-litellm-model-group headers, and which upstreams were called. See src/router/router.h.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { dep } from './lib/config.mjs';

const CHAT = '/v1/chat/completions';


async function chat(sluice, model, text, extra = {}) {
  return fetchJSON(sluice.url(CHAT), {
    method: 'POST',
    headers: authHeaders(),
    body: { model, messages: [{ role: 'user', content: text }], ...extra },
  });
}

const FAIL500 = (who) => ({ status: 500, message: `mock ${who} is down`, type: 'server_error' });
const CONTEXT = {
  status: 400,
  message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. (mock)",
  type: 'invalid_request_error',
  param: 'messages',
  code: 'context_length_exceeded',
};
const POLICY = {
  status: 400,
  message: 'Your request was rejected as a result of our safety system. (mock)',
  type: 'invalid_request_error',
  param: null,
  code: 'content_policy_violation',
};

describe('router fallbacks', () => {
  // one mock per group, so every upstream's requests can be counted
  const groups = ['a', 'b', 'c', 'd', 'e', 'x', 'cw', 'big', 'generic', 'cp', 'safe'];
  const m = {};
  let sluice;

  before(async () => {
    for (const g of groups) m[g] = await startMock();
    sluice = await startSluice({
      config: `
model_list:
${groups.map((g) => dep(`group-${g}`, `dep-${g}`, m[g])).join('')}
router_settings:
  num_retries: 0
  fallbacks: [{"group-a": ["group-b", "group-c"]}, {"group-d": ["group-e"]}, {"group-e": ["group-c"]}, {"group-cw": ["group-generic"]}, {"group-cp": ["group-generic"]}]
  context_window_fallbacks: [{"group-cw": ["group-big"]}]
  content_policy_fallbacks: [{"group-cp": ["group-safe"]}]
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

  function resetAll() {
    for (const g of groups) m[g].reset({ clearRequests: true });
  }

  function counts() {
    return Object.fromEntries(groups.map((g) => [g, m[g].count(CHAT)]));
  }

  function servedBy(res, group, text) {
    assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.text}`);
    assert.equal(res.body?.choices?.[0]?.message?.content, expectedChatText(text), res.text);
    assert.equal(res.headers.get('x-litellm-model-group'), `group-${group}`);
    assert.equal(res.headers.get('x-litellm-model-id'), `dep-${group}`);
  }

  it('group-a (500) → group-b (500) → group-c: the client gets group-c, attempted-fallbacks 2', async () => {
    resetAll();
    m.a.setBehavior({ error: FAIL500('a') });
    m.b.setBehavior({ error: FAIL500('b') });
    const res = await chat(sluice, 'group-a', 'fall through');
    servedBy(res, 'c', 'fall through');
    assert.equal(res.headers.get('x-litellm-attempted-fallbacks'), '2');
    assert.deepEqual(counts(), { a: 1, b: 1, c: 1, d: 0, e: 0, x: 0, cw: 0, big: 0, generic: 0, cp: 0, safe: 0 });
    assert.equal(m.c.requests[0].body.model, 'up-dep-c', 'group-c is called with its own model');
  });

  it('the first fallback that answers ends the list (group-a → group-b, group-c not called)', async () => {
    resetAll();
    m.a.setBehavior({ error: FAIL500('a') });
    const res = await chat(sluice, 'group-a', 'first fallback');
    servedBy(res, 'b', 'first fallback');
    assert.equal(res.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.deepEqual([m.a.count(CHAT), m.b.count(CHAT), m.c.count(CHAT)], [1, 1, 0]);
  });

  it('a request-body fallbacks: ["group-c"] works for a group without configured fallbacks', async () => {
    resetAll();
    m.x.setBehavior({ error: FAIL500('x') });
    const res = await chat(sluice, 'group-x', 'body fallback', { fallbacks: ['group-c'] });
    servedBy(res, 'c', 'body fallback');
    assert.equal(res.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.equal(m.x.count(CHAT), 1);
    assert.equal(m.c.count(CHAT), 1);
    assert.equal(m.c.requests[0].body.fallbacks, undefined, '"fallbacks" is not forwarded upstream');
  });

  it("a request's fallbacks win over the configured ones", async () => {
    resetAll();
    m.a.setBehavior({ error: FAIL500('a') });
    const res = await chat(sluice, 'group-a', 'mine first', { fallbacks: ['group-safe'] });
    servedBy(res, 'safe', 'mine first');
    assert.equal(m.b.count(CHAT) + m.c.count(CHAT), 0, 'the configured fallbacks of group-a were not used');
  });

  it('when every fallback fails too, the client gets the last group\'s error', async () => {
    resetAll();
    m.a.setBehavior({ error: FAIL500('a') });
    m.b.setBehavior({ error: FAIL500('b') });
    m.c.setBehavior({ error: FAIL500('c') });
    const res = await chat(sluice, 'group-a', 'nobody home');
    const e = checkErrorEnvelope(assert, res, 500, { exactCode: false });
    assert.ok(e.message.includes('mock c is down'), `the last fallback's error: ${e.message}`);
    assert.deepEqual([m.a.count(CHAT), m.b.count(CHAT), m.c.count(CHAT)], [1, 1, 1]);
  });

  it('context_window_fallbacks take a 400 context_length_exceeded (not retried, generic fallbacks unused)', async () => {
    resetAll();
    m.cw.setBehavior({ error: CONTEXT });
    // num_retries: 2 would retry other errors; a context-window error with its own fallbacks is not retried
    const res = await chat(sluice, 'group-cw', 'too long', { num_retries: 2 });
    servedBy(res, 'big', 'too long');
    assert.equal(res.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.equal(m.cw.count(CHAT), 1, 'not retried');
    assert.equal(m.generic.count(CHAT), 0, 'the generic fallbacks are not used for a context-window error');
  });

  it('content_policy_fallbacks take a content-policy 400 (not retried, generic fallbacks unused)', async () => {
    resetAll();
    m.cp.setBehavior({ error: POLICY });
    const res = await chat(sluice, 'group-cp', 'naughty', { num_retries: 2 });
    servedBy(res, 'safe', 'naughty');
    assert.equal(res.headers.get('x-litellm-attempted-fallbacks'), '1');
    assert.equal(m.cp.count(CHAT), 1, 'not retried');
    assert.equal(m.generic.count(CHAT), 0, 'the generic fallbacks are not used for a content-policy error');
  });

  it('a plain 500 from group-cw uses the generic fallbacks, not context_window_fallbacks', async () => {
    resetAll();
    m.cw.setBehavior({ error: FAIL500('cw') });
    const res = await chat(sluice, 'group-cw', 'plain error');
    servedBy(res, 'generic', 'plain error');
    assert.equal(m.big.count(CHAT), 0);
  });

  it("chained entries (group-d → group-e, group-e → group-c) reach group-c, as LiteLLM's recursive fallbacks do", async () => {
    resetAll();
    m.d.setBehavior({ error: FAIL500('d') });
    m.e.setBehavior({ error: FAIL500('e') });
    const res = await chat(sluice, 'group-d', 'chain');
    // LiteLLM's run_async_fallback calls async_function_with_fallbacks for group-e, which looks
    // up group-e's own entry; the client gets group-c's answer
    assert.equal(res.status, 200, `expected group-c's 200 through group-e's own fallbacks, got ${res.status}: ${res.text.slice(0, 300)} (upstream calls: ${JSON.stringify(counts())})`);
    servedBy(res, 'c', 'chain');
    assert.deepEqual([m.d.count(CHAT), m.e.count(CHAT), m.c.count(CHAT)], [1, 1, 1]);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
