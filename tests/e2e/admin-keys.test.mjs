// Management API: virtual keys (/key/*), against a real sluice with its default SQLite database.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';

// ---- helpers (each admin-*.test.mjs carries its own copy) -----------------------------------
const MOCK_TEXT = 'Hello from the admin tests';
const config = (extra = '') => `
model_list:
  - model_name: demo
    litellm_params:
      model: openai/gpt-4o
      mock_response: "${MOCK_TEXT}"
  - model_name: other
    litellm_params:
      model: openai/gpt-4o-mini
      mock_response: "${MOCK_TEXT}"
general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
${extra}`;
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const KEY_RE = /^sk-[A-Za-z0-9_-]{22}$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
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
const chat = (s, key, model = 'demo') =>
  fetchJSON(s.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(key), body: { model, messages: [{ role: 'user', content: 'hi' }] } });
async function eventually(fn, { timeoutMs = 10000, everyMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if ((last = await fn())) return last;
    await sleep(everyMs);
  }
  return last;
}
const near = (iso, ms, tolMs, what) => {
  const t = Date.parse(iso);
  assert.ok(Number.isFinite(t), `${what} is not a time: ${iso}`);
  assert.ok(Math.abs(t - (Date.now() + ms)) <= tolMs, `${what}=${iso} not within ${tolMs} ms of now+${ms} ms`);
};
// ------------------------------------------------------------------------------------------------

describe('management API: keys', () => {
  let sluice;
  let api;

  before(async () => {
    sluice = await startSluice({ config: config() });
    api = client(sluice);
    await waitForDb(sluice);
  });

  after(async () => {
    if (sluice && !sluice.stopRequested) await sluice.stop();
  });

  it('/key/generate returns the plaintext once, the hash, the abbreviation and the echoed fields', async () => {
    const r = await api.post('/key/generate', {
      key_alias: 'gen-shape',
      models: ['demo'],
      max_budget: 12.5,
      budget_duration: '30d',
      metadata: { owner: 'ci' },
      rpm_limit: 100,
      tpm_limit: 100000,
      max_parallel_requests: 4,
    });
    assert.equal(r.status, 200, r.text);
    const k = r.body;
    assert.match(k.key, KEY_RE);
    assert.equal(k.token, sha256(k.key), 'token is the SHA-256 hex of the whole key');
    assert.equal(k.token_id, k.token);
    assert.equal(k.key_name, `sk-...${k.key.slice(-4)}`);
    assert.equal(k.key_alias, 'gen-shape');
    assert.deepEqual(k.models, ['demo']);
    assert.equal(k.max_budget, 12.5);
    assert.equal(k.spend, 0);
    assert.deepEqual(k.metadata, { owner: 'ci' });
    assert.equal(k.rpm_limit, 100);
    assert.equal(k.tpm_limit, 100000);
    assert.equal(k.max_parallel_requests, 4);
    assert.equal(k.expires, null, 'no duration: never expires');
    assert.equal(k.user_id, null);
    assert.equal(k.team_id, null);
    assert.equal(k.blocked, false);
    assert.equal(typeof k.created_at, 'string');
    assert.equal(typeof k.updated_at, 'string');
    near(k.budget_reset_at, 30 * 86400e3, 10e3, 'budget_reset_at');
  });

  it('duration sets expires; a custom key is kept as given', async () => {
    const r = await api.post('/key/generate', { duration: '30s' });
    assert.equal(r.status, 200, r.text);
    near(r.body.expires, 30e3, 5e3, 'expires');
    const custom = 'sk-my-custom-key-' + crypto.randomBytes(6).toString('hex');
    const c = await api.post('/key/generate', { key: custom });
    assert.equal(c.status, 200, c.text);
    assert.equal(c.body.key, custom);
    assert.equal(c.body.token, sha256(custom));
    const again = await api.post('/key/generate', { key: custom });
    checkErrorEnvelope(assert, again, 400);
  });

  it('refuses invalid fields with 400 naming the field', async () => {
    const cases = [
      [{ max_budget: 'ten' }, 'max_budget'],
      [{ duration: '30x' }, 'duration'],
      [{ budget_duration: 'soon' }, 'budget_duration'],
      [{ models: 'demo' }, 'models'],
      [{ rpm_limit: 1.5 }, 'rpm_limit'],
      [{ key: 'not-an-sk-key' }, 'key'],
      [{ metadata: [1, 2] }, 'metadata'],
      [{ team_id: 'no-such-team' }, 'team_id'],
    ];
    for (const [body, field] of cases) {
      const r = await api.post('/key/generate', body);
      const e = checkErrorEnvelope(assert, r, 400);
      assert.ok(e.message.includes(field), `message for ${JSON.stringify(body)} should name ${field}: ${e.message}`);
      assert.equal(e.param, field);
    }
    const bad = await fetchJSON(sluice.url('/key/generate'), { method: 'POST', headers: authHeaders(), body: '{"key_alias": ' });
    checkErrorEnvelope(assert, bad, 400);
  });

  it('refuses a duplicate key_alias', async () => {
    assert.equal((await api.post('/key/generate', { key_alias: 'dup-alias' })).status, 200);
    const r = await api.post('/key/generate', { key_alias: 'dup-alias' });
    const e = checkErrorEnvelope(assert, r, 400);
    assert.match(e.message, /dup-alias/);
  });

  it('a generated key calls /v1/chat/completions', async () => {
    const { body: k } = await api.post('/key/generate', {});
    const r = await chat(sluice, k.key);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.choices[0].message.content, MOCK_TEXT);
  });

  it('a deleted key is refused at once; deleting it again is 404', async () => {
    const { body: k } = await api.post('/key/generate', {});
    assert.equal((await chat(sluice, k.key)).status, 200); // cached now
    const d = await api.post('/key/delete', { keys: [k.key] });
    assert.equal(d.status, 200, d.text);
    assert.deepEqual(d.body, { deleted_keys: [k.key] });
    checkErrorEnvelope(assert, await chat(sluice, k.key), 401);
    checkErrorEnvelope(assert, await api.post('/key/delete', { keys: [k.key] }), 404);
  });

  it('/key/delete by alias and by hash', async () => {
    const a = (await api.post('/key/generate', { key_alias: 'del-by-alias' })).body;
    const b = (await api.post('/key/generate', {})).body;
    const r = await api.post('/key/delete', { key_aliases: ['del-by-alias'] });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.deleted_keys, ['del-by-alias']);
    const r2 = await api.post('/key/delete', { keys: [b.token] });
    assert.deepEqual(r2.body.deleted_keys, [b.token]);
    checkErrorEnvelope(assert, await chat(sluice, a.key), 401);
    checkErrorEnvelope(assert, await chat(sluice, b.key), 401);
    checkErrorEnvelope(assert, await api.post('/key/delete', {}), 400);
  });

  it('a blocked key is refused with 401; unblocking restores it', async () => {
    const { body: k } = await api.post('/key/generate', {});
    assert.equal((await chat(sluice, k.key)).status, 200);
    const b = await api.post('/key/block', { key: k.key });
    assert.equal(b.status, 200, b.text);
    assert.equal(b.body.blocked, true);
    assert.equal(b.body.token, k.token);
    checkErrorEnvelope(assert, await chat(sluice, k.key), 401);
    const u = await api.post('/key/unblock', { key: k.token });
    assert.equal(u.status, 200, u.text);
    assert.equal(u.body.blocked, false);
    assert.equal((await chat(sluice, k.key)).status, 200);
    checkErrorEnvelope(assert, await api.post('/key/block', { key: 'sk-does-not-exist-000000' }), 404);
  });

  it('/key/update of models takes effect at once', async () => {
    const { body: k } = await api.post('/key/generate', { models: ['demo'] });
    assert.equal((await chat(sluice, k.key, 'demo')).status, 200);
    const denied = await chat(sluice, k.key, 'other');
    checkErrorEnvelope(assert, denied, 401);
    const u = await api.post('/key/update', { key: k.key, models: ['demo', 'other'], key_alias: 'updated-alias' });
    assert.equal(u.status, 200, u.text);
    assert.deepEqual(u.body.models, ['demo', 'other']);
    assert.equal(u.body.key_alias, 'updated-alias');
    assert.equal((await chat(sluice, k.key, 'other')).status, 200);
    checkErrorEnvelope(assert, await api.post('/key/update', { key: 'sk-nope-nope-nope-nope' }), 404);
    checkErrorEnvelope(assert, await api.post('/key/update', { models: [] }), 400);
  });

  it('/key/info: admin, the key itself; another key is 403; unknown is 404', async () => {
    const a = (await api.post('/key/generate', { key_alias: 'info-a', max_budget: 3 })).body;
    const b = (await api.post('/key/generate', {})).body;
    const byAdmin = await api.get(`/key/info?key=${a.key}`);
    assert.equal(byAdmin.status, 200, byAdmin.text);
    assert.equal(byAdmin.body.key, a.key);
    assert.equal(byAdmin.body.info.key_alias, 'info-a');
    assert.equal(byAdmin.body.info.max_budget, 3);
    assert.equal(byAdmin.body.info.spend, 0);
    assert.ok(!JSON.stringify(byAdmin.body.info).includes(a.key), 'the info never holds the plaintext');
    const self = await client(sluice, a.key).get('/key/info');
    assert.equal(self.status, 200, self.text);
    assert.equal(self.body.info.key_alias, 'info-a');
    const selfByHash = await client(sluice, a.key).get(`/key/info?key=${a.token}`);
    assert.equal(selfByHash.status, 200, selfByHash.text);
    const other = await client(sluice, a.key).get(`/key/info?key=${b.key}`);
    const e = checkErrorEnvelope(assert, other, 403);
    assert.equal(e.type, 'auth_error');
    assert.match(e.message, /not allowed/);
    const missing = await api.get('/key/info?key=sk-unknown-unknown-unknown');
    assert.equal(checkErrorEnvelope(assert, missing, 404).type, 'not_found_error');
  });

  it('/key/list pages, filters, and returns objects on request', async () => {
    const tag = crypto.randomBytes(4).toString('hex');
    const made = [];
    for (let i = 0; i < 3; i++) made.push((await api.post('/key/generate', { key_alias: `list-${tag}-${i}` })).body);
    const all = await api.get('/key/list?size=2&page=1');
    assert.equal(all.status, 200, all.text);
    assert.equal(all.body.keys.length, 2);
    assert.equal(all.body.current_page, 1);
    assert.ok(all.body.total_count >= 3);
    assert.equal(all.body.total_pages, Math.ceil(all.body.total_count / 2));
    for (const h of all.body.keys) assert.match(h, /^[0-9a-f]{64}$/);
    const one = await api.get(`/key/list?key_alias=list-${tag}-1`);
    assert.deepEqual(one.body.keys, [made[1].token]);
    assert.equal(one.body.total_count, 1);
    const full = await api.get(`/key/list?key_alias=list-${tag}-2&return_full_object=true`);
    assert.equal(full.body.keys[0].key_alias, `list-${tag}-2`);
    assert.equal(full.body.keys[0].token, made[2].token);
    checkErrorEnvelope(assert, await api.get('/key/list?size=0'), 400);
    checkErrorEnvelope(assert, await api.get('/key/list?page=abc'), 400);
  });

  it('/key/regenerate: a new key with the same settings; the old one stops working', async () => {
    const old = (await api.post('/key/generate', { key_alias: 'regen', models: ['demo'], max_budget: 7 })).body;
    assert.equal((await chat(sluice, old.key)).status, 200);
    const r = await api.post('/key/regenerate', { key: old.key });
    assert.equal(r.status, 200, r.text);
    assert.match(r.body.key, KEY_RE);
    assert.notEqual(r.body.key, old.key);
    assert.equal(r.body.token, sha256(r.body.key));
    assert.equal(r.body.key_alias, 'regen');
    assert.deepEqual(r.body.models, ['demo']);
    assert.equal(r.body.max_budget, 7);
    checkErrorEnvelope(assert, await chat(sluice, old.key), 401);
    assert.equal((await chat(sluice, r.body.key)).status, 200);
  });

  it('/key/{key}/regenerate takes the key from the path', async () => {
    const old = (await api.post('/key/generate', {})).body;
    const r = await api.post(`/key/${encodeURIComponent(old.key)}/regenerate`, {});
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.body.key, old.key);
    checkErrorEnvelope(assert, await chat(sluice, old.key), 401);
  });

  it('a non-admin key may create keys for its own user only, and not block keys', async () => {
    const u = await api.post('/user/new', { user_id: `keys-user-${crypto.randomBytes(3).toString('hex')}` });
    assert.equal(u.status, 200, u.text);
    const mine = client(sluice, u.body.key);
    const own = await mine.post('/key/generate', { key_alias: `own-${u.body.user_id}` });
    assert.equal(own.status, 200, own.text);
    assert.equal(own.body.user_id, u.body.user_id, 'the key belongs to the caller');
    const forOther = await mine.post('/key/generate', { user_id: 'someone-else' });
    assert.equal(checkErrorEnvelope(assert, forOther, 403).type, 'auth_error');
    const block = await mine.post('/key/block', { key: own.body.key });
    assert.match(checkErrorEnvelope(assert, block, 403).message, /admin only route/);
    // its own key: update and info are allowed; spend is an admin's field
    assert.equal((await mine.post('/key/update', { key: own.body.key, metadata: { a: 1 } })).status, 200);
    checkErrorEnvelope(assert, await mine.post('/key/update', { key: own.body.key, spend: 0 }), 403);
    const someone = (await api.post('/key/generate', {})).body;
    checkErrorEnvelope(assert, await mine.post('/key/update', { key: someone.key, metadata: {} }), 403);
    checkErrorEnvelope(assert, await mine.post('/key/delete', { keys: [someone.key] }), 403);
    assert.equal((await chat(sluice, someone.key)).status, 200, 'a refused delete deletes nothing');
  });

  // Spend accounting is written by the LLM path (batched every proxy_batch_write_at seconds).
  it('spend appears in /key/info after calls', async () => {
    const { body: k } = await api.post('/key/generate', {});
    for (let i = 0; i < 2; i++) assert.equal((await chat(sluice, k.key)).status, 200);
    const info = await eventually(async () => {
      const r = await api.get(`/key/info?key=${k.key}`);
      return r.body?.info?.spend > 0 ? r : null;
    });
    assert.ok(info, 'key spend stayed 0 after two calls (is spend accounting wired?)');
    assert.ok(info.body.info.spend > 0);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('management API without a database', () => {
  let sluice;

  before(async () => {
    // nothing listens on port 1: the store keeps retrying, the API keeps serving
    sluice = await startSluice({ config: config('  database_url: postgresql://sluice:pw@127.0.0.1:1/sluice') });
  });

  after(async () => {
    if (sluice && !sluice.stopRequested) await sluice.stop();
  });

  it('answers 503 no_db_connection', async () => {
    const r = await client(sluice).post('/key/generate', {});
    const e = checkErrorEnvelope(assert, r, 503);
    assert.equal(e.type, 'no_db_connection');
    assert.match(e.message, /^database unavailable/);
    // validation still answers 400 without the database
    checkErrorEnvelope(assert, await client(sluice).post('/key/generate', { max_budget: 'x' }), 400);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
