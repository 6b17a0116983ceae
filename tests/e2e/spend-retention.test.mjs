// general_settings.maximum_spend_logs_retention_period: spend-log rows older than the period are
// deleted by a background job every maximum_spend_logs_retention_interval; newer rows and the
// keys' spend totals stay.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startSluice, fetchJSON, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { startMock } from './lib/mock-upstream.mjs';
import { pricedModelList } from './lib/config.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe('spend-log retention', () => {
  let mock;
  let sluice;
  before(async () => {
    mock = await startMock({ content: 'ok ok' });
    sluice = await startSluice({
      config: `${pricedModelList(mock, 0.001, 0.002)}general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 0.5
  maximum_spend_logs_retention_period: 3s
  maximum_spend_logs_retention_interval: 1s
`,
      env: { DATABASE_URL: null },
    });
  });
  after(async () => {
    if (sluice && !sluice.stopRequested) await sluice.stop();
    await mock?.close();
  });

  const api = (method, path, body) => fetchJSON(sluice.url(path), { method, headers: authHeaders(), body });
  const chat = (key) => fetchJSON(sluice.url('/v1/chat/completions'), {
    method: 'POST', headers: authHeaders(key), body: { model: 'priced', messages: [{ role: 'user', content: 'hi' }] },
  });
  async function logsOf(key) {
    const r = await api('GET', `/spend/logs?api_key=${key}`);
    assert.equal(r.status, 200, r.text);
    return r.body;
  }

  it('rows past the period are deleted, newer rows and the key spend stay', async () => {
    let gen;
    for (let i = 0; i < 100; i++) { // migrations run in the background after start
      gen = await api('POST', '/key/generate', {});
      if (gen.status === 200) break;
      await sleep(100);
    }
    assert.equal(gen.status, 200, gen.text);
    const key = gen.body.key;
    const old = await chat(key);
    assert.equal(old.status, 200, old.text);
    const oldId = old.headers.get('x-litellm-call-id');
    await sleep(1000);
    let rows = await logsOf(key);
    assert.deepEqual(rows.map((r) => r.request_id), [oldId], 'the first call was logged');
    // past the 3 s period (start_time has whole seconds) plus a cleanup interval
    await sleep(3500);
    const fresh = await chat(key);
    assert.equal(fresh.status, 200, fresh.text);
    const freshId = fresh.headers.get('x-litellm-call-id');
    let ids = [];
    for (let i = 0; i < 30; i++) {
      rows = await logsOf(key);
      ids = rows.map((r) => r.request_id);
      if (!ids.includes(oldId) && ids.includes(freshId)) break;
      await sleep(100);
    }
    assert.deepEqual(ids, [freshId], 'the old row was deleted, the new one kept');
    const info = await api('GET', `/key/info?key=${key}`);
    assert.equal(info.status, 200, info.text);
    assert.ok(info.body.info.spend > 0, `the key's spend total is kept: ${info.body.info.spend}`);
    await sleep(300);
    assert.match(sluice.stderr(), /spend logs: deleted \d+ rows that started before \S+ \(maximum_spend_logs_retention_period 3s\)/);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
