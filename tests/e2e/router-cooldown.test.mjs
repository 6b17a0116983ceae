// Router cooldowns and order tiers (LiteLLM's rules, see src/router/router.h): a 429 cools a
// deployment at once when it has a sibling; 5xx cool it when > 50% of this minute's calls
// (>= 5) failed; allowed_fails switches to a failure counter; a cooled deployment gets nothing
// until cooldown_time has passed; every deployment cooling → 429 "No deployments available";
// order: 1 serves everything while healthy, order: 2 takes over while it cools.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { dep } from './lib/config.mjs';

const CHAT = '/v1/chat/completions';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function chat(sluice, model, text = 'hi') {
  return fetchJSON(sluice.url(CHAT), {
    method: 'POST',
    headers: authHeaders(),
    body: { model, messages: [{ role: 'user', content: text }] },
  });
}

function ok(res, text = 'hi') {
  assert.equal(res.status, 200, `expected 200, got ${res.status}: ${res.text}`);
  assert.equal(res.body?.choices?.[0]?.message?.content, expectedChatText(text), res.text);
}

// The failure-rate rule counts this wall-clock minute: start a test well inside one.
async function awayFromMinuteEnd(marginS = 4) {
  const s = (Date.now() / 1000) % 60;
  if (s > 60 - marginS) await sleep((60 - s) * 1000 + 200);
}

const ERR429 = { status: 429, message: 'Rate limit reached (mock)', type: 'requests', code: 'rate_limit_exceeded' };
const ERR500 = { status: 500, message: 'mock internal error', type: 'server_error' };

describe('router cooldowns (failure-rate rule, cooldown_time: 1)', () => {
  const m = {};
  let sluice;

  before(async () => {
    for (const k of ['a429', 'b429', 'a500', 'b500', 'all1', 'all2', 'tier1', 'tier2']) m[k] = await startMock();
    sluice = await startSluice({
      config: `
model_list:
${dep('cool429', 'a429', m.a429)}${dep('cool429', 'b429', m.b429)}${dep('cool500', 'a500', m.a500, { cooldown_time: 30 })}${dep('cool500', 'b500', m.b500)}${dep('allcool', 'all1', m.all1, { cooldown_time: 2 })}${dep('allcool', 'all2', m.all2, { cooldown_time: 2 })}${dep('tiered', 'tier1', m.tier1, { order: 1 })}${dep('tiered', 'tier2', m.tier2, { order: 2 })}
router_settings:
  num_retries: 2
  cooldown_time: 1
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

  it('a 429 cools that deployment at once: the request is retried on its sibling, then only the sibling serves; after cooldown_time the first serves again', async () => {
    m.a429.setBehavior({ error: ERR429 });
    // simple-shuffle picks at random: call until a429 has been tried once
    let first;
    for (let i = 0; i < 60 && m.a429.count(CHAT) === 0; i++) {
      const res = await chat(sluice, 'cool429');
      ok(res);
      if (m.a429.count(CHAT) === 1) first = res;
    }
    assert.equal(m.a429.count(CHAT), 1, 'a429 was picked within 60 calls');
    assert.equal(first.headers.get('x-litellm-model-id'), 'b429', 'the 429 was retried on the sibling');
    assert.equal(first.headers.get('x-litellm-attempted-retries'), '1');
    const cooledAt = Date.now();

    // cooling (cooldown_time: 1): everything goes to b429
    for (let i = 0; i < 15; i++) {
      const res = await chat(sluice, 'cool429');
      ok(res);
      assert.equal(res.headers.get('x-litellm-model-id'), 'b429');
    }
    const busy = Date.now() - cooledAt;
    assert.ok(busy < 900, `(test too slow to observe the 1 s cooldown: ${busy} ms)`);
    assert.equal(m.a429.count(CHAT), 1, 'a cooling deployment gets no request');

    // recovered upstream, cooldown over: a429 serves again
    m.a429.reset();
    await sleep(Math.max(0, 1000 - (Date.now() - cooledAt)) + 250);
    let served = 0;
    for (let i = 0; i < 40 && served === 0; i++) {
      const res = await chat(sluice, 'cool429');
      ok(res);
      if (res.headers.get('x-litellm-model-id') === 'a429') served++;
    }
    assert.equal(served, 1, 'a429 serves again after its cooldown');
    assert.equal(m.a429.count(CHAT), 2);
  });

  it('500s cool a deployment once > 50% of this minute\'s calls failed with >= 5 calls (not before)', async () => {
    await awayFromMinuteEnd();
    m.a500.setBehavior({ error: ERR500 }); // a500 has cooldown_time: 30
    // every call succeeds (a500's failures are retried on b500 at once); a500 must be tried
    // 5 times before it cools: with a cooldown after fewer failures it would get no 5th call
    let calls = 0;
    while (m.a500.count(CHAT) < 5 && calls < 120) {
      const res = await chat(sluice, 'cool500');
      ok(res);
      assert.equal(res.headers.get('x-litellm-model-id'), 'b500');
      calls++;
    }
    assert.equal(m.a500.count(CHAT), 5, `a500 was called ${m.a500.count(CHAT)} times in ${calls} requests (cooled before its 5th failure?)`);
    for (let i = 0; i < 20; i++) {
      const res = await chat(sluice, 'cool500');
      ok(res);
      assert.equal(res.headers.get('x-litellm-model-id'), 'b500');
    }
    assert.equal(m.a500.count(CHAT), 5, 'after its 5th failure (100% of >= 5 calls) a500 is cooling: no more calls');
  });

  it('every deployment cooling → 429 "No deployments available for selected model" with retry-after', async () => {
    m.all1.setBehavior({ error: ERR429 });
    m.all2.setBehavior({ error: ERR429 });
    // both are tried (the first 429 is retried on the sibling), both cool down (cooldown_time: 2)
    const first = await chat(sluice, 'allcool');
    checkErrorEnvelope(assert, first, 429, { exactCode: false });
    assert.equal(m.all1.count(CHAT), 1);
    assert.equal(m.all2.count(CHAT), 1);

    const res = await chat(sluice, 'allcool');
    const e = checkErrorEnvelope(assert, res, 429, { exactCode: false });
    assert.ok(e.message.includes('No deployments available for selected model'), e.message);
    assert.ok(e.message.includes('Passed model=allcool'), e.message);
    const ra = res.headers.get('retry-after');
    assert.match(ra ?? '', /^\d+$/, `retry-after header: ${ra}`);
    assert.ok(Number(ra) >= 1 && Number(ra) <= 2, `retry-after ${ra} should be the cooldown left (<= 2 s)`);
    assert.equal(m.all1.count(CHAT) + m.all2.count(CHAT), 2, 'no upstream was called while all cool');

    // after the cooldown, healthy again
    m.all1.reset();
    m.all2.reset();
    await sleep(Number(ra) * 1000 + 300);
    ok(await chat(sluice, 'allcool'));
  });

  it('order: 1 serves everything while healthy; while it cools order: 2 takes over; then order: 1 again', async () => {
    for (let i = 0; i < 10; i++) {
      const res = await chat(sluice, 'tiered');
      ok(res);
      assert.equal(res.headers.get('x-litellm-model-id'), 'tier1');
    }
    assert.equal(m.tier2.count(CHAT), 0, 'order: 2 is not used while order: 1 is healthy');

    m.tier1.failNext(1, ERR429); // one 429 cools tier1 (it has a sibling) for cooldown_time: 1
    const t0 = Date.now();
    const res = await chat(sluice, 'tiered');
    ok(res);
    assert.equal(res.headers.get('x-litellm-model-id'), 'tier2', 'the 429 was retried on order: 2');
    assert.equal(res.headers.get('x-litellm-attempted-retries'), '1');
    for (let i = 0; i < 5; i++) {
      const r = await chat(sluice, 'tiered');
      ok(r);
      assert.equal(r.headers.get('x-litellm-model-id'), 'tier2', 'order: 2 serves while order: 1 cools');
    }
    assert.ok(Date.now() - t0 < 900, '(test too slow to observe the 1 s cooldown)');
    assert.equal(m.tier1.count(CHAT), 11);

    await sleep(Math.max(0, 1000 - (Date.now() - t0)) + 250);
    for (let i = 0; i < 5; i++) {
      const r = await chat(sluice, 'tiered');
      ok(r);
      assert.equal(r.headers.get('x-litellm-model-id'), 'tier1', 'order: 1 is back after its cooldown');
    }
    assert.equal(m.tier2.count(CHAT), 6);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('router cooldowns (allowed_fails: 1 → failure counter)', () => {
  const m = {};
  let sluice;

  before(async () => {
    for (const k of ['fa', 'fb']) m[k] = await startMock();
    sluice = await startSluice({
      config: `
model_list:
${dep('counted', 'fa', m.fa)}${dep('counted', 'fb', m.fb)}
router_settings:
  num_retries: 2
  allowed_fails: 1
  cooldown_time: 30
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

  it('the failure that exceeds allowed_fails (the 2nd) cools the deployment', async () => {
    m.fa.setBehavior({ error: ERR500 });
    let calls = 0;
    while (m.fa.count(CHAT) < 2 && calls < 80) {
      const res = await chat(sluice, 'counted');
      ok(res);
      assert.equal(res.headers.get('x-litellm-model-id'), 'fb');
      calls++;
    }
    assert.equal(m.fa.count(CHAT), 2, `fa was called ${m.fa.count(CHAT)} times in ${calls} requests`);
    for (let i = 0; i < 20; i++) {
      const res = await chat(sluice, 'counted');
      ok(res);
      assert.equal(res.headers.get('x-litellm-model-id'), 'fb');
    }
    assert.equal(m.fa.count(CHAT), 2, 'fa is cooling after its 2nd failure (allowed_fails: 1)');
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
