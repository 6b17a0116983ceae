// Router timeouts: a deployment's timeout (whole non-streamed call), stream_timeout (to the first
// chunk and between chunks), router_settings.timeout as the default, and timeouts as a retried
// error class. The client sees 408 (LiteLLM's litellm.Timeout). Tests run concurrently: each
// deployment has its own mock upstream.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { parseSSE } from './lib/clients.mjs';
import { dep } from './lib/config.mjs';

const CHAT = '/v1/chat/completions';


async function chat(sluice, model, text, extra = {}) {
  return fetchJSON(sluice.url(CHAT), {
    method: 'POST',
    headers: authHeaders(),
    body: { model, messages: [{ role: 'user', content: text }], ...extra },
  });
}

async function timed(fn) {
  const t0 = Date.now();
  const res = await fn();
  return { res, ms: Date.now() - t0 };
}

function is408(res) {
  const e = checkErrorEnvelope(assert, res, 408);
  assert.ok(/timeout/i.test(e.message), `a timeout message: ${e.message}`);
  return e;
}

describe('router timeouts', { concurrency: true }, () => {
  const m = {};
  let sluice;

  before(async () => {
    m.slow = await startMock({ delayMs: 3000 });
    m.slowretry = await startMock({ delayMs: 3000 });
    m.rslow = await startMock({ delayMs: 3000 });
    m.stall = await startMock({ streamStallMs: 3000 });
    m.stallhdr = await startMock({ delayMs: 3000 });
    m.stallretry = await startMock({ delayMs: 3000 });
    m.longstream = await startMock({ slowStream: { chunks: 8, intervalMs: 300, text: 'tick' } });
    m.hdr = await startMock({ delayMs: 3000 });
    sluice = await startSluice({
      config: `
model_list:
${dep('slow', 'slow', m.slow, { timeout: 1, num_retries: 0 })}${dep('slowretry', 'slowretry', m.slowretry, { timeout: 1, num_retries: 1 })}${dep('rslow', 'rslow', m.rslow, { num_retries: 0 })}${dep('stall', 'stall', m.stall, { stream_timeout: 1, num_retries: 0 })}${dep('stallhdr', 'stallhdr', m.stallhdr, { stream_timeout: 1, num_retries: 0 })}${dep('stallretry', 'stallretry', m.stallretry, { stream_timeout: 1, num_retries: 1 })}${dep('longstream', 'longstream', m.longstream, { timeout: 1, stream_timeout: 1, num_retries: 0 })}${dep('hdr', 'hdr', m.hdr, { num_retries: 0 })}
router_settings:
  timeout: 1
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

  it('a deployment timeout: 1 with a 3 s upstream → 408 after ~1 s (num_retries: 0: one call)', async () => {
    const { res, ms } = await timed(() => chat(sluice, 'slow', 'slow'));
    is408(res);
    assert.ok(ms >= 900 && ms < 2500, `answered after ${ms} ms`);
    assert.equal(m.slow.count(CHAT), 1);
    assert.ok(await m.slow.waitFor((x) => x.aborted >= 1, 3000), 'the upstream call was abandoned');
  });

  it('a timeout is retried (num_retries: 1): two calls of ~1 s each, then 408', async () => {
    const { res, ms } = await timed(() => chat(sluice, 'slowretry', 'slow twice'));
    is408(res);
    assert.equal(m.slowretry.count(CHAT), 2, `upstream calls: ${m.slowretry.count(CHAT)}`);
    assert.ok(ms >= 1900 && ms < 4500, `answered after ${ms} ms`);
  });

  it('router_settings.timeout: 1 applies to a deployment without its own timeout', async () => {
    const { res, ms } = await timed(() => chat(sluice, 'rslow', 'router timeout'));
    is408(res);
    assert.ok(ms >= 900 && ms < 2500, `answered after ${ms} ms`);
    assert.equal(m.rslow.count(CHAT), 1);
  });

  it('stream_timeout: 1 with an upstream that sends 200 headers and then stalls before the first chunk → 408', async () => {
    const { res, ms } = await timed(() => chat(sluice, 'stall', 'stalled', { stream: true }));
    is408(res);
    assert.ok(ms >= 900 && ms < 2500, `answered after ${ms} ms`);
    assert.equal(m.stall.count(CHAT), 1);
  });

  it('stream_timeout: 1 with an upstream that sends nothing at all → 408', async () => {
    const { res, ms } = await timed(() => chat(sluice, 'stallhdr', 'silent', { stream: true }));
    is408(res);
    assert.ok(ms >= 900 && ms < 2500, `answered after ${ms} ms`);
    assert.equal(m.stallhdr.count(CHAT), 1);
  });

  it('a stream whose upstream sends nothing within stream_timeout is retried like any timeout (num_retries: 1 → 2 calls)', async () => {
    const { res, ms } = await timed(() => chat(sluice, 'stallretry', 'stalled twice', { stream: true }));
    is408(res);
    // no response headers within stream_timeout: LiteLLM raises litellm.Timeout from the call
    // itself, inside the router's retry loop, so num_retries applies (router.h: a timeout is a
    // retried class, TimeoutErrorRetries / num_retries)
    assert.equal(m.stallretry.count(CHAT), 2, `upstream calls: ${m.stallretry.count(CHAT)} after ${ms} ms (expected the stream timeout to be retried once)`);
  });

  it('stream_timeout bounds the gaps, not the whole stream: 8 chunks 300 ms apart (2.4 s) pass with stream_timeout: 1 and timeout: 1', async () => {
    const r = await fetch(sluice.url(CHAT), {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'longstream', messages: [{ role: 'user', content: 'long' }], stream: true }),
      signal: AbortSignal.timeout(15000),
    });
    assert.equal(r.status, 200);
    const events = parseSSE(await r.text());
    assert.equal(events.at(-1), '[DONE]', `stream ends with [DONE]: ${events.slice(-2).join(' | ')}`);
    const text = events
      .filter((d) => d !== '[DONE]')
      .map((d) => JSON.parse(d))
      .map((c) => c.choices?.[0]?.delta?.content ?? '')
      .join('');
    assert.equal(text, Array.from({ length: 8 }, (_, i) => `tick${i} `).join(''));
  });

  it('the x-litellm-timeout request header sets this request\'s timeout', async () => {
    // the router's timeout is 1 s and the upstream takes 3 s: the header's 5 s lets it
    // through, and a 0.5 s header cuts it sooner than the router's 1 s
    const long = await timed(() => fetchJSON(sluice.url(CHAT), {
      method: 'POST',
      headers: { ...authHeaders(), 'x-litellm-timeout': '5' },
      body: { model: 'hdr', messages: [{ role: 'user', content: 'patient' }] },
    }));
    assert.equal(long.res.status, 200, `with x-litellm-timeout: 5 the 3 s upstream answers: ${long.res.text}`);
    assert.ok(long.ms >= 2800, `answered after ${long.ms} ms`);
    const short = await timed(() => fetchJSON(sluice.url(CHAT), {
      method: 'POST',
      headers: { ...authHeaders(), 'x-litellm-timeout': '0.5' },
      body: { model: 'hdr', messages: [{ role: 'user', content: 'impatient' }] },
    }));
    is408(short.res);
    assert.ok(short.ms < 900, `the header's 0.5 s applies: answered after ${short.ms} ms`);
  });
});
