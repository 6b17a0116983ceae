// Upstream failures: unreachable host, timeout, and upstream error statuses.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock } from './lib/mock-upstream.mjs';
import { startSluice, freePort, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, OpenAI } from './lib/clients.mjs';

const SECRET = 'sk-upstream-secret-do-not-leak';

describe('upstream errors', () => {
  let slow; // answers after 3 s
  let failing; // answers with forced error statuses
  let deadPort;
  let sluice;
  let client;

  before(async () => {
    slow = await startMock({ delayMs: 3000 });
    failing = await startMock();
    deadPort = await freePort(); // nothing listens here
    sluice = await startSluice({
      config: `
model_list:
  - model_name: down-model
    litellm_params:
      model: openai/down
      api_base: http://127.0.0.1:${deadPort}/v1
      api_key: ${SECRET}
      timeout: 5
  - model_name: slow-model
    litellm_params:
      model: openai/slow
      api_base: ${slow.baseURL}
      api_key: ${SECRET}
      timeout: 1
  - model_name: failing-model
    litellm_params:
      model: openai/failing
      api_base: ${failing.baseURL}
      api_key: ${SECRET}
      timeout: 5
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all([slow?.close(), failing?.close()]);
    }
  });

  it('maps an unreachable upstream to 502 naming host:port without leaking the key', async () => {
    await assert.rejects(client.chat.completions.create({ model: 'down-model', messages: [{ role: 'user', content: 'hi' }] }), (err) => {
      assert.ok(err instanceof OpenAI.APIError, `expected APIError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 502, err.message);
      assert.ok(err.message.includes(`127.0.0.1:${deadPort}`), `message names host:port: ${err.message}`);
      assert.ok(!err.message.includes(SECRET), 'provider key leaked');
      return true;
    });
    const raw = await fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model: 'down-model', messages: [{ role: 'user', content: 'hi' }] },
    });
    checkErrorEnvelope(assert, raw, 502);
    assert.ok(!raw.text.includes(SECRET), 'provider key leaked in body');

    // streaming requests fail the same way (before any SSE is sent)
    await assert.rejects(
      client.chat.completions.create({ model: 'down-model', messages: [{ role: 'user', content: 'hi' }], stream: true }),
      (err) => {
        assert.equal(err.status, 502, err.message);
        return true;
      },
    );
  });

  it('maps an upstream slower than timeout to 408', async () => {
    slow.clearRequests();
    const t0 = Date.now();
    await assert.rejects(client.chat.completions.create({ model: 'slow-model', messages: [{ role: 'user', content: 'slow' }] }), (err) => {
      assert.ok(err instanceof OpenAI.APIError, `expected APIError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 408, err.message);
      assert.ok(!err.message.includes(SECRET), 'provider key leaked');
      return true;
    });
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 900, `timed out too early (${elapsed} ms)`);
    const attempts = slow.requests.length;
    assert.ok(attempts >= 1, 'the upstream was called');
    // each attempt must give up after ~1 s (the mock would answer after 3 s)
    assert.ok(elapsed < attempts * 1000 + 1900, `timeout: 1 should fire after ~1 s per attempt, took ${elapsed} ms for ${attempts} attempt(s)`);
    // the gateway gives up on the upstream connection(s)
    assert.ok(await slow.waitFor((m) => m.aborted >= attempts, 2000), `upstream connection closed after the timeout (aborted ${slow.aborted}/${attempts})`);
  });

  for (const [status, ErrClass, message, type, code] of [
    [429, OpenAI.RateLimitError, 'Rate limit reached for requests (mock upstream)', 'requests', 'rate_limit_exceeded'],
    [400, OpenAI.BadRequestError, "Invalid value for 'temperature': mock upstream says no", 'invalid_request_error', 'invalid_value'],
  ]) {
    it(`passes an upstream ${status} through with the upstream message`, async () => {
      failing.setBehavior({ error: { status, message, type, param: null, code } });
      try {
        await assert.rejects(
          client.chat.completions.create({ model: 'failing-model', messages: [{ role: 'user', content: 'x' }] }),
          (err) => {
            assert.ok(err instanceof ErrClass, `expected ${ErrClass.name}, got ${err.constructor.name}: ${err.message}`);
            assert.equal(err.status, status);
            assert.ok(err.message.includes(message), `message contains upstream text: ${err.message}`);
            assert.ok(!err.message.includes(SECRET), 'provider key leaked');
            return true;
          },
        );
        const raw = await fetchJSON(sluice.url('/v1/chat/completions'), {
          method: 'POST',
          headers: authHeaders(),
          body: { model: 'failing-model', messages: [{ role: 'user', content: 'x' }] },
        });
        const e = checkErrorEnvelope(assert, raw, status, { exactCode: false });
        assert.ok(e.message.includes(message), e.message);

        // same for a streaming request: the error status arrives before any SSE
        await assert.rejects(
          client.chat.completions.create({ model: 'failing-model', messages: [{ role: 'user', content: 'x' }], stream: true }),
          (err) => {
            assert.equal(err.status, status, err.message);
            assert.ok(err.message.includes(message), err.message);
            return true;
          },
        );
      } finally {
        failing.reset();
      }
    });
  }

  it('still serves a healthy deployment afterwards', async () => {
    const r = await client.chat.completions.create({ model: 'failing-model', messages: [{ role: 'user', content: 'ok now' }] });
    assert.equal(r.choices[0].message.content, 'Hello from mock: ok now');
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
