// Per-key and per-team limits as a client sees them (SQLite): rpm, tpm, max_parallel_requests,
// model access, blocked and expired keys.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { startMock } from './lib/mock-upstream.mjs';

const MOCK_TEXT = 'hello there friend';
const SLOW_MS = 500;
const config = (mock) => `
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-mock
      mock_response: "${MOCK_TEXT}"
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
  - model_name: other
    litellm_params:
      model: openai/other-mock
      mock_response: "${MOCK_TEXT}"
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
  - model_name: slow
    litellm_params:
      model: openai/slow-mock
      api_base: ${mock.baseURL}
      api_key: sk-upstream-test
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const uniq = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;
const client = (s, key = MASTER_KEY) => {
  const call = (method, path, body) => fetchJSON(s.url(path), { method, headers: authHeaders(key), body });
  return { get: (p) => call('GET', p), post: (p, b = {}) => call('POST', p, b) };
};
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
const chat = (s, key, model = 'priced') =>
  fetchJSON(s.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(key), body: { model, messages: [{ role: 'user', content: 'hi' }] } });
const hdrs = (r) => JSON.stringify(Object.fromEntries(r.headers));
const show = (r) => `HTTP ${r.status} ${r.text.slice(0, 500)} headers ${hdrs(r)}`;

// A 429 from the limiter: LiteLLM's envelope, message, retry-after and rate_limit_type.
function check429(r, { descriptor, value, type }) {
  const e = checkErrorEnvelope(assert, r, 429);
  assert.ok(
    e.message.startsWith(`Rate limit exceeded for ${descriptor}: ${value}. Limit type: ${type}.`),
    `429 message: ${e.message} (expected "Rate limit exceeded for ${descriptor}: ${value}. Limit type: ${type}. ...")`,
  );
  const ra = r.headers.get('retry-after');
  assert.match(String(ra), /^[1-9][0-9]*$/, `retry-after should be a positive integer: ${show(r)}`);
  assert.ok(Number(ra) <= 60, `retry-after ${ra} beyond the 60 s window`);
  assert.equal(r.headers.get('rate_limit_type'), type, `rate_limit_type header: ${show(r)}`);
  return e;
}

describe('limits: rpm, tpm, parallel requests, model access, blocked and expired keys', () => {
  let sluice;
  let mock;
  let api;
  let expiring; // {key, at}: generated with duration "1s" at start

  before(async () => {
    mock = await startMock({ delayMs: SLOW_MS });
    sluice = await startSluice({ config: config(mock), env: { DATABASE_URL: null } }); // SQLite: ./sluice.db in its temp cwd
    api = client(sluice);
    await waitForDb(sluice);
    const r = await api.post('/key/generate', { duration: '1s' });
    assert.equal(r.status, 200, r.text);
    expiring = { key: r.body.key, at: Date.now() };
    await chat(sluice, expiring.key); // cached now (it may already be expired at a second boundary)
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await mock?.close();
    }
  });

  it('rpm_limit 2: the third call in the window is 429 with retry-after and LiteLLM\'s message', async () => {
    const { body: k } = await api.post('/key/generate', { rpm_limit: 2 });
    assert.equal((await chat(sluice, k.key)).status, 200);
    assert.equal((await chat(sluice, k.key)).status, 200);
    const third = await chat(sluice, k.key);
    const e = check429(third, { descriptor: 'api_key', value: sha256(k.key), type: 'requests' });
    assert.match(e.message, /Current limit: 2, Remaining: 0\. Limit resets at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    // other keys have their own window
    const { body: other } = await api.post('/key/generate', { rpm_limit: 2 });
    assert.equal((await chat(sluice, other.key)).status, 200);
  });

  it('rpm_limit 2: x-ratelimit-*-requests on the answers and on the 429', async () => {
    const { body: k } = await api.post('/key/generate', { rpm_limit: 2 });
    const seen = [];
    for (let i = 0; i < 3; i++) {
      const r = await chat(sluice, k.key);
      seen.push({
        status: r.status,
        'x-ratelimit-limit-requests': r.headers.get('x-ratelimit-limit-requests'),
        'x-ratelimit-remaining-requests': r.headers.get('x-ratelimit-remaining-requests'),
      });
    }
    assert.deepEqual(seen, [
      { status: 200, 'x-ratelimit-limit-requests': '2', 'x-ratelimit-remaining-requests': '1' },
      { status: 200, 'x-ratelimit-limit-requests': '2', 'x-ratelimit-remaining-requests': '0' },
      { status: 429, 'x-ratelimit-limit-requests': '2', 'x-ratelimit-remaining-requests': '0' },
    ]);
  });

  it('max_parallel_requests 1: a second call while the first is in flight is 429; afterwards it passes', async () => {
    const { body: k } = await api.post('/key/generate', { max_parallel_requests: 1 });
    const sent = mock.requests.length;
    const first = chat(sluice, k.key, 'slow');
    assert.ok(await mock.waitFor((m) => m.requests.length > sent, 5000), 'the first call never reached the upstream');
    const second = await chat(sluice, k.key, 'slow');
    check429(second, { descriptor: 'api_key', value: sha256(k.key), type: 'max_parallel_requests' });
    const r1 = await first;
    assert.equal(r1.status, 200, show(r1));
    const third = await chat(sluice, k.key, 'slow');
    assert.equal(third.status, 200, `the slot was not released after the first call: ${show(third)}`);
  });

  it('tpm_limit: once a call used more tokens than the limit, the next call is 429 (tokens)', async () => {
    const { body: k } = await api.post('/key/generate', { tpm_limit: 10 });
    const first = await chat(sluice, k.key);
    assert.equal(first.status, 200, show(first));
    assert.ok(first.body.usage.total_tokens > 10, `the first call used only ${first.body.usage.total_tokens} tokens`);
    const second = await chat(sluice, k.key);
    const e = check429(second, { descriptor: 'api_key', value: sha256(k.key), type: 'tokens' });
    assert.match(e.message, /Current limit: 10, /);
  });

  it('a team rpm_limit counts the calls of all its keys together', async () => {
    const t = await api.post('/team/new', { team_alias: uniq('rpm-team'), rpm_limit: 2 });
    assert.equal(t.status, 200, t.text);
    const teamId = t.body.team_id;
    const { body: a } = await api.post('/key/generate', { team_id: teamId });
    const { body: b } = await api.post('/key/generate', { team_id: teamId });
    assert.equal((await chat(sluice, a.key)).status, 200);
    assert.equal((await chat(sluice, b.key)).status, 200);
    check429(await chat(sluice, a.key), { descriptor: 'team', value: teamId, type: 'requests' });
    check429(await chat(sluice, b.key), { descriptor: 'team', value: teamId, type: 'requests' });
    const { body: solo } = await api.post('/key/generate', {});
    assert.equal((await chat(sluice, solo.key)).status, 200, 'a key outside the team is not limited by it');
  });

  it('a key whose models exclude the model: 401 key_model_access_denied naming the allowed models', async () => {
    const { body: k } = await api.post('/key/generate', { models: ['priced'] });
    assert.equal((await chat(sluice, k.key, 'priced')).status, 200);
    const r = await chat(sluice, k.key, 'other');
    const e = checkErrorEnvelope(assert, r, 401);
    assert.equal(e.type, 'key_model_access_denied', show(r));
    assert.match(e.message, /only access models=\['priced'\]/, e.message);
    assert.match(e.message, /Tried to access other/, e.message);
  });

  it('a blocked key is refused with 401; unblocked it works again at once', async () => {
    const { body: k } = await api.post('/key/generate', {});
    assert.equal((await chat(sluice, k.key)).status, 200);
    assert.equal((await api.post('/key/block', { key: k.key })).status, 200);
    const r = await chat(sluice, k.key);
    const e = checkErrorEnvelope(assert, r, 401);
    assert.match(e.message, /blocked/i, e.message);
    assert.equal((await api.post('/key/unblock', { key: k.key })).status, 200);
    const again = await chat(sluice, k.key);
    assert.equal(again.status, 200, `unblocked key still refused: ${show(again)}`);
  });

  it('a key generated with duration "1s" is refused with 401 two seconds later', async () => {
    const wait = expiring.at + 2000 - Date.now();
    if (wait > 0) await sleep(wait);
    const r = await chat(sluice, expiring.key);
    const e = checkErrorEnvelope(assert, r, 401);
    assert.equal(e.type, 'expired_key', show(r));
    assert.match(e.message, /Expired Key/, e.message);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
