// Group resolution: model_group_alias (plain and hidden), wildcard model_names ("openai/*" sends
// what the star matched upstream), an exact model_name winning over a wildcard, unknown names.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';

const CHAT = '/v1/chat/completions';

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

describe('router groups: aliases and wildcards', () => {
  const m = {};
  let sluice;

  before(async () => {
    for (const k of ['real', 'wild', 'special']) m[k] = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: real-group
    litellm_params:
      model: openai/up-real
      api_base: ${m.real.baseURL}
      api_key: sk-upstream-real
    model_info:
      id: dep-real
  - model_name: openai/*
    litellm_params:
      model: openai/*
      api_base: ${m.wild.baseURL}
      api_key: sk-upstream-wild
    model_info:
      id: dep-wild
  - model_name: openai/special
    litellm_params:
      model: openai/up-special
      api_base: ${m.special.baseURL}
      api_key: sk-upstream-special
    model_info:
      id: dep-special
router_settings:
  model_group_alias: {"alias-x": "real-group", "hidden-alias": {"model": "real-group", "hidden": true}}
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

  it('an alias routes to its group', async () => {
    const res = await chat(sluice, 'alias-x', 'via alias');
    ok(res, 'via alias');
    assert.equal(res.headers.get('x-litellm-model-group'), 'real-group');
    assert.equal(res.headers.get('x-litellm-model-id'), 'dep-real');
    assert.equal(m.real.count(CHAT), 1);
    assert.equal(m.real.lastRequest(CHAT).body.model, 'up-real', "the group's deployment model goes upstream");
  });

  it('a hidden alias routes too', async () => {
    const res = await chat(sluice, 'hidden-alias');
    ok(res);
    assert.equal(res.headers.get('x-litellm-model-group'), 'real-group');
    assert.equal(m.real.count(CHAT), 2);
  });

  it('/v1/models lists an alias but not a hidden one (router.h: router_alias_count/at "for /v1/models")', async () => {
    const models = await fetchJSON(sluice.url('/v1/models'), { headers: authHeaders() });
    assert.equal(models.status, 200, models.text);
    const ids = models.body.data.map((x) => x.id);
    assert.ok(ids.includes('real-group'), JSON.stringify(ids));
    assert.ok(ids.includes('alias-x'), `the alias is listed: ${JSON.stringify(ids)}`);
    assert.ok(!ids.includes('hidden-alias'), `the hidden alias is not listed: ${JSON.stringify(ids)}`);
  });

  it('wildcard openai/* routes "openai/anything" and the upstream receives "anything"', async () => {
    const res = await chat(sluice, 'openai/anything', 'wild');
    ok(res, 'wild');
    assert.equal(m.wild.count(CHAT), 1);
    assert.equal(m.wild.lastRequest(CHAT).body.model, 'anything');
    assert.equal(res.headers.get('x-litellm-model-id'), 'dep-wild');
    assert.equal(res.headers.get('x-litellm-model-group'), 'openai/*');

    const res2 = await chat(sluice, 'openai/gpt-4o-mini-2024-07-18', 'wild2');
    ok(res2, 'wild2');
    assert.equal(m.wild.lastRequest(CHAT).body.model, 'gpt-4o-mini-2024-07-18');
  });

  it('an exact model_name wins over a matching wildcard', async () => {
    const res = await chat(sluice, 'openai/special');
    ok(res);
    assert.equal(res.headers.get('x-litellm-model-id'), 'dep-special');
    assert.equal(m.special.count(CHAT), 1);
    assert.equal(m.special.lastRequest(CHAT).body.model, 'up-special');
  });

  it('an unknown model is a 400 "Invalid model name passed in model=..."', async () => {
    const before = m.real.count() + m.wild.count() + m.special.count();
    const res = await chat(sluice, 'no-such-model');
    const e = checkErrorEnvelope(assert, res, 400);
    assert.ok(e.message.includes('Invalid model name passed in model=no-such-model'), e.message);
    assert.equal(m.real.count() + m.wild.count() + m.special.count(), before, 'no upstream called');
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
