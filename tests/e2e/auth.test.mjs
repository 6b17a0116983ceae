// Authentication and request validation.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, OpenAI } from './lib/clients.mjs';

const chatBody = (content = 'auth check') => ({ model: 'my-gpt', messages: [{ role: 'user', content }] });

// POST a raw body with node:http so a server that answers early (413) and
// closes the connection while we are still sending is handled gracefully.
function rawPost(url, headers, body, { chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const h = { ...headers };
    if (!chunked) h['content-length'] = Buffer.byteLength(body);
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: h });
    let settled = false;
    const t = setTimeout(() => {
      if (!settled) {
        settled = true;
        req.destroy();
        reject(new Error('no response within 15 s'));
      }
    }, 15000);
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      const done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {}
        resolve({ status: res.statusCode, headers: res.headers, text, body: parsed });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    req.on('error', (e) => {
      // A write error after the server already answered is expected; before that it is a failure.
      setTimeout(() => {
        if (!settled) {
          settled = true;
          clearTimeout(t);
          reject(new Error(`request failed before any response: ${e.code || e.message}`));
        }
      }, 200);
    });
    if (chunked) {
      const piece = body.slice(0, 64 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < body.length) {
          const ok = req.write(body.slice(sent, sent + piece.length));
          sent += piece.length;
          if (!ok) return req.once('drain', pump);
        }
        req.end();
      };
      pump();
    } else {
      req.end(body);
    }
  });
}

describe('authentication and request validation', () => {
  let mock;
  let sluice;

  before(async () => {
    mock = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: my-gpt
    litellm_params:
      model: openai/upstream-model-name
      api_base: ${mock.baseURL}
      api_key: sk-upstream-secret
general_settings:
  master_key: ${MASTER_KEY}
  max_request_size_mb: 1
`,
    });
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      if (mock) await mock.close();
    }
  });

  for (const [label, headers] of [
    ['Authorization: Bearer', { authorization: `Bearer ${MASTER_KEY}` }],
    ['x-api-key', { 'x-api-key': MASTER_KEY }],
    ['api-key', { 'api-key': MASTER_KEY }],
  ]) {
    it(`accepts the master key via ${label}`, async () => {
      const res = await fetchJSON(sluice.url('/v1/chat/completions'), { method: 'POST', headers, body: chatBody(label) });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.choices[0].message.content, expectedChatText(label));
      const models = await fetchJSON(sluice.url('/v1/models'), { headers });
      assert.equal(models.status, 200, models.text);
    });
  }

  it('rejects a request without a key with 401 AuthenticationError', async () => {
    const noKey = openaiClient(sluice, { apiKey: 'unused', defaultHeaders: { Authorization: null } });
    mock.clearRequests();
    await assert.rejects(noKey.chat.completions.create(chatBody()), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `expected AuthenticationError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 401);
      return true;
    });
    assert.equal(mock.requests.length, 0, 'unauthenticated request must not reach the upstream');
  });

  it('rejects a wrong key with 401 AuthenticationError', async () => {
    const bad = openaiClient(sluice, { apiKey: 'sk-wrong-key' });
    await assert.rejects(bad.chat.completions.create(chatBody()), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `expected AuthenticationError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 401);
      assert.ok(!err.message.includes(MASTER_KEY), 'error must not echo the master key');
      return true;
    });
    await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
  });

  it('uses the error envelope with a string code for 401', async () => {
    const missing = await fetchJSON(sluice.url('/v1/chat/completions'), { method: 'POST', body: chatBody() });
    checkErrorEnvelope(assert, missing, 401);
    const wrong = await fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { authorization: 'Bearer sk-nope' },
      body: chatBody(),
    });
    checkErrorEnvelope(assert, wrong, 401);
    const models = await fetchJSON(sluice.url('/v1/models'));
    checkErrorEnvelope(assert, models, 401);
  });

  it('rejects an unknown model with 400 naming the model', async () => {
    const client = openaiClient(sluice);
    await assert.rejects(client.chat.completions.create({ model: 'no-such-model-xyz', messages: [{ role: 'user', content: 'x' }] }), (err) => {
      assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 400);
      assert.ok(err.message.includes('no-such-model-xyz'), `message names the model: ${err.message}`);
      return true;
    });
    const raw = await fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}` },
      body: { model: 'no-such-model-xyz', messages: [{ role: 'user', content: 'x' }] },
    });
    checkErrorEnvelope(assert, raw, 400);
  });

  it('rejects a malformed JSON body with a 400 envelope', async () => {
    mock.clearRequests();
    const res = await fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      body: '{"model": "my-gpt", "messages": [ {"role": "user", "content": "unterminated',
    });
    checkErrorEnvelope(assert, res, 400);
    const notObject = await fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      body: '[1,2,3]',
    });
    assert.equal(notObject.status, 400, `JSON array body: ${notObject.text}`);
    assert.equal(mock.requests.length, 0, 'malformed requests must not reach the upstream');
  });

  it('rejects a body over max_request_size_mb with 413', async () => {
    mock.clearRequests();
    const big = JSON.stringify({ model: 'my-gpt', messages: [{ role: 'user', content: 'x'.repeat(2 * 1024 * 1024) }] });
    const res = await rawPost(sluice.url('/v1/chat/completions'), { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' }, big);
    assert.equal(res.status, 413, `status ${res.status}: ${res.text.slice(0, 300)}`);
    assert.equal(mock.requests.length, 0, 'oversized request must not reach the upstream');
    // still serving afterwards
    const ok = await fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}` },
      body: chatBody('after 413'),
    });
    assert.equal(ok.status, 200, ok.text);
  });

  it('rejects an oversized chunked body (no Content-Length) with 413', async () => {
    const big = JSON.stringify({ model: 'my-gpt', messages: [{ role: 'user', content: 'y'.repeat(2 * 1024 * 1024) }] });
    const res = await rawPost(
      sluice.url('/v1/chat/completions'),
      { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' },
      big,
      { chunked: true },
    );
    assert.equal(res.status, 413, `status ${res.status}: ${res.text.slice(0, 300)}`);
    const ok = await fetchJSON(sluice.url('/health/liveliness'));
    assert.equal(ok.status, 200);
  });

  it('accepts a body just under the limit', async () => {
    const body = JSON.stringify({ model: 'my-gpt', messages: [{ role: 'user', content: 'z'.repeat(900 * 1024) }] });
    const res = await rawPost(sluice.url('/v1/chat/completions'), { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json' }, body);
    assert.equal(res.status, 200, `status ${res.status}: ${res.text.slice(0, 300)}`);
    assert.equal(res.body.choices[0].message.content, expectedChatText('z'.repeat(900 * 1024)));
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
