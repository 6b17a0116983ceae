// A PostgreSQL outage while sluice serves: known keys keep working, nothing that needs the
// database pretends to work, and the spend of the outage waits in memory until the database is
// back, then lands in full.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { startPostgres, pgAvailable } from './lib/pg.mjs';

const MOCK_TEXT = 'hello during the outage';
const IN_COST = 0.001;
const OUT_COST = 0.002;
const config = (url) => `
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-mock
      mock_response: "${MOCK_TEXT}"
      input_cost_per_token: ${IN_COST}
      output_cost_per_token: ${OUT_COST}
general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
  database_url: ${url}
`;
const CHAT_BODY = JSON.stringify({ model: 'priced', messages: [{ role: 'user', content: 'are you still there?' }] });
const COST = Math.ceil(Buffer.byteLength(CHAT_BODY) / 4) * IN_COST + Math.ceil(Buffer.byteLength(MOCK_TEXT) / 4) * OUT_COST;
const OUTAGE_CALLS = 50;
const MASTER_CALLS = 10;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const close = (a, b, eps = 1e-9) => Math.abs(a - b) <= eps * Math.max(1, Math.abs(a), Math.abs(b));
const client = (s, key = MASTER_KEY) => {
  const call = (method, p, body) => fetchJSON(s.url(p), { method, headers: authHeaders(key), body });
  return { get: (p) => call('GET', p), post: (p, b = {}) => call('POST', p, b) };
};
async function eventually(fn, { timeoutMs = 10000, everyMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if ((last = await fn())) return last;
    await sleep(everyMs);
  }
  return last;
}
const chat = (s, key) => fetchJSON(s.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(key), body: CHAT_BODY });
const show = (r) => `HTTP ${r.status} ${r.text.slice(0, 400)}`;
// Runs n calls, `width` at a time.
async function drive(n, width, fn) {
  const out = [];
  for (let i = 0; i < n; i += width) out.push(...(await Promise.all(Array.from({ length: Math.min(width, n - i) }, fn))));
  return out;
}

describe('PostgreSQL outage while serving', { skip: !pgAvailable() && 'PostgreSQL server binaries not found' }, () => {
  let pg;
  let sluice;
  let api;
  let key; // used once before the outage
  let beforeId; // its call id
  const outageIds = { key: [], master: [] }; // call ids of the calls answered during the outage
  let outageFailures = [];

  before(async () => {
    pg = await startPostgres();
    sluice = await startSluice({ config: config(pg.url) });
    api = client(sluice);
    const ready = await eventually(async () => {
      const r = await fetchJSON(sluice.url('/health/readiness'));
      return r.status === 200 && r.body.migrating === false ? r : null;
    });
    assert.ok(ready, 'sluice never became ready on PostgreSQL');
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await pg?.stop();
    }
  });

  it('before the outage: a key is generated and used once; its spend is written', async () => {
    const k = await api.post('/key/generate', { key_alias: 'outage', max_budget: 100 });
    assert.equal(k.status, 200, k.text);
    key = k.body;
    const r = await chat(sluice, key.key);
    assert.equal(r.status, 200, show(r));
    beforeId = r.headers.get('x-litellm-call-id');
    const rows = await eventually(async () => {
      const l = await api.get(`/spend/logs?api_key=${key.key}`);
      return l.status === 200 && l.body.length === 1 ? l.body : null;
    });
    assert.ok(rows, 'the first call\'s spend row was never written');
    assert.equal(rows[0].request_id, beforeId);
  });

  it('PostgreSQL stops: /health/readiness is 503 with db "unavailable: <reason>"', async () => {
    await pg.down();
    let r;
    await eventually(async () => {
      r = await fetchJSON(sluice.url('/health/readiness'));
      return r.status !== 200;
    });
    assert.equal(r.status, 503, `readiness while PostgreSQL is down: ${show(r)}`);
    assert.equal(r.body.status, 'db_unavailable');
    assert.match(r.body.db, /^unavailable: \S/, r.text);
    assert.ok(!/not connected yet/.test(r.body.db), `the reason should say what happened: ${r.body.db}`);
    assert.ok(!/password/i.test(r.text));
  });

  it(`while it is down, ${OUTAGE_CALLS} calls with the key used before all succeed`, async (t) => {
    assert.ok(key, 'no key');
    const results = await drive(OUTAGE_CALLS, 10, () => chat(sluice, key.key));
    const ok = results.filter((r) => r.status === 200);
    outageFailures = results.filter((r) => r.status !== 200);
    outageIds.key = ok.map((r) => r.headers.get('x-litellm-call-id'));
    t.diagnostic(`${ok.length} of ${OUTAGE_CALLS} answered 200`);
    const byStatus = {};
    for (const r of outageFailures) byStatus[`${r.status} ${r.body?.error?.message}`] = (byStatus[`${r.status} ${r.body?.error?.message}`] ?? 0) + 1;
    assert.equal(outageFailures.length, 0, `${outageFailures.length} of ${OUTAGE_CALLS} calls failed while the database was down: ${JSON.stringify(byStatus, null, 1)}`);
  });

  it(`while it is down, the master key serves too (${MASTER_CALLS} calls)`, async () => {
    const results = await drive(MASTER_CALLS, 5, () => chat(sluice, MASTER_KEY));
    for (const r of results) assert.equal(r.status, 200, show(r));
    outageIds.master = results.map((r) => r.headers.get('x-litellm-call-id'));
  });

  it('while it is down, the management API answers 503 no_db_connection', async () => {
    for (const r of [await api.post('/key/generate', {}), await api.get(`/key/info?key=${key?.key}`), await api.get('/spend/logs')]) {
      const e = checkErrorEnvelope(assert, r, 503);
      assert.equal(e.type, 'no_db_connection', show(r));
      assert.match(e.message, /^database unavailable/, e.message);
    }
  });

  it('while it is down, an unknown key is 401 saying the database is unavailable', async () => {
    const r = await chat(sluice, 'sk-never-seen-' + crypto.randomBytes(8).toString('hex'));
    const e = checkErrorEnvelope(assert, r, 401);
    assert.match(e.message, /database is unavailable/, e.message);
  });

  it('PostgreSQL comes back: readiness is connected again within seconds', async (t) => {
    await pg.up();
    const t0 = Date.now();
    let r;
    await eventually(async () => {
      r = await fetchJSON(sluice.url('/health/readiness'));
      return r.status === 200;
    }, { timeoutMs: 15000, everyMs: 100 });
    t.diagnostic(`readiness connected ${Date.now() - t0} ms after PostgreSQL accepted connections again`);
    assert.equal(r.status, 200, `readiness after PostgreSQL returned: ${show(r)}`);
    assert.equal(r.body.db, 'connected');
    assert.equal(r.body.schema_version, 1);
    assert.equal(r.body.pending_migrations, 0);
    assert.ok(Date.now() - t0 <= 12000, `reconnected only after ${Date.now() - t0} ms`);
  });

  it('every call answered during the outage is in /spend/logs once the database is back', async () => {
    const want = [...outageIds.key, ...outageIds.master];
    assert.ok(want.length > 0, 'no call was answered during the outage');
    let have = new Set();
    await eventually(async () => {
      const r = await api.get('/spend/logs');
      if (r.status === 200) have = new Set(r.body.map((x) => x.request_id));
      return want.every((id) => have.has(id));
    });
    const missing = want.filter((id) => !have.has(id));
    assert.deepEqual(missing, [], `${missing.length} of ${want.length} calls answered during the outage have no spend row`);
  });

  it(`the key's spend holds the call before and all ${OUTAGE_CALLS} during the outage`, async () => {
    assert.ok(key, 'no key');
    let rows = [];
    let info;
    await eventually(async () => {
      const r = await api.get(`/spend/logs?api_key=${key.key}`);
      rows = r.status === 200 ? r.body : rows;
      info = await api.get(`/key/info?key=${key.key}`);
      // wait for what can be there: the call before and the calls answered during the outage
      const n = 1 + outageIds.key.length;
      return rows.length >= n && close(info.body?.info?.spend, n * COST, 1e-6);
    }, { timeoutMs: 5000 });
    assert.equal(rows.length, 1 + OUTAGE_CALLS, `spend rows of the key: ${rows.length} (1 before + ${outageIds.key.length} answered during the outage; ${outageFailures.length} failed)`);
    for (const row of rows) assert.ok(close(row.spend, COST), `row spend ${row.spend}, expected ${COST}`);
    assert.ok(close(info.body.info.spend, (1 + OUTAGE_CALLS) * COST, 1e-6), `key spend ${info.body?.info?.spend}, expected ${(1 + OUTAGE_CALLS) * COST}`);
    const r = await chat(sluice, key.key);
    assert.equal(r.status, 200, `the key after the outage: ${show(r)}`);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
