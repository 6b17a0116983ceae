// Router and streams: a stream whose upstream fails before its first byte is retried and the
// client gets one clean stream; once bytes have reached the client nothing is retried: a
// connection dropped mid-stream ends the client's stream with an SSE error event, and the text
// it received is a prefix of the answer (no repeated text from a second attempt).
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { parseSSE, openaiClient, collect, contentOf } from './lib/clients.mjs';
import { dep } from './lib/config.mjs';

const CHAT = '/v1/chat/completions';
const ANSWER = 'The quick brown fox jumps over the lazy dog, twice over, for the router test.';


// A raw streaming call: status, headers, and the SSE data payloads.
async function stream(sluice, model, text) {
  const r = await fetch(sluice.url(CHAT), {
    method: 'POST',
    headers: authHeaders(),
    body: JSON.stringify({ model, messages: [{ role: 'user', content: text }], stream: true }),
    signal: AbortSignal.timeout(15000),
  });
  const body = await r.text();
  return { status: r.status, headers: r.headers, body, events: parseSSE(body) };
}

function deltas(events) {
  const chunks = events.filter((d) => d !== '[DONE]').map((d) => JSON.parse(d));
  return {
    chunks,
    text: chunks.map((c) => c.choices?.[0]?.delta?.content ?? '').join(''),
    roles: chunks.filter((c) => c.choices?.[0]?.delta?.role).length,
    errors: chunks.filter((c) => c.error),
  };
}

describe('router and streams', () => {
  const m = {};
  let sluice;

  before(async () => {
    m.solo = await startMock({ content: ANSWER });
    m.drop1 = await startMock({ content: ANSWER });
    m.drop2 = await startMock({ content: ANSWER });
    m.pair1 = await startMock({ content: ANSWER });
    m.pair2 = await startMock({ content: ANSWER });
    sluice = await startSluice({
      config: `
model_list:
${dep('solo', 'solo', m.solo)}${dep('dropper', 'drop1', m.drop1, { order: 1 })}${dep('dropper', 'drop2', m.drop2, { order: 2 })}${dep('pair', 'pair1', m.pair1, { order: 1 })}${dep('pair', 'pair2', m.pair2, { order: 2 })}
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

  it('a 500 before the first byte is retried: one clean stream, attempted-retries 1', async () => {
    m.solo.failNext(1, { status: 500, message: 'mock stream refused', type: 'server_error' });
    const s = await stream(sluice, 'solo', 'q');
    assert.equal(s.status, 200, s.body);
    assert.match(s.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.equal(s.headers.get('x-litellm-attempted-retries'), '1');
    assert.equal(s.headers.get('x-litellm-model-id'), 'solo');
    assert.equal(s.events.at(-1), '[DONE]');
    assert.equal(s.events.filter((e) => e === '[DONE]').length, 1, 'one [DONE]');
    const d = deltas(s.events);
    assert.equal(d.errors.length, 0, `no error event: ${s.body.slice(0, 500)}`);
    assert.equal(d.roles, 1, 'one role delta: one stream, not two');
    assert.equal(d.text, ANSWER);
    assert.equal(new Set(d.chunks.map((c) => c.id)).size, 1, 'every chunk from the same upstream answer');
    assert.equal(m.solo.count(CHAT), 2);
  });

  it('the SDK sees the same: a 429 before the first byte on order: 1 is retried on order: 2', async () => {
    m.pair1.failNext(1, { status: 429, message: 'mock busy', type: 'requests', code: 'rate_limit_exceeded' });
    const client = openaiClient(sluice);
    const { data, response } = await client.chat.completions
      .create({ model: 'pair', messages: [{ role: 'user', content: 'q' }], stream: true })
      .withResponse();
    const chunks = await collect(data);
    assert.equal(contentOf(chunks), ANSWER);
    assert.equal(response.headers.get('x-litellm-model-id'), 'pair2');
    assert.equal(response.headers.get('x-litellm-attempted-retries'), '1');
    assert.equal(m.pair1.count(CHAT), 1);
    assert.equal(m.pair2.count(CHAT), 1);
  });

  it('a connection dropped after the first chunks ends the stream with an SSE error event and no repeated text', async () => {
    m.drop1.setBehavior({ dropStreamAfter: 5 }); // role chunk + 4 content chunks, then EOF mid-body
    const s = await stream(sluice, 'dropper', 'q');
    assert.equal(s.status, 200, 'the headers had been sent');
    assert.ok(await m.drop1.waitFor((x) => x.dropped >= 1, 2000), 'the mock cut the stream');
    const d = deltas(s.events);
    assert.ok(d.text.length > 0, 'the client got the first chunks');
    assert.ok(ANSWER.startsWith(d.text), `the client's text is a prefix of the answer (no duplicates): ${JSON.stringify(d.text)}`);
    assert.ok(d.text.length < ANSWER.length, 'the stream was cut short');
    assert.equal(d.roles, 1, 'one role delta: no second stream spliced in');
    assert.ok(!s.events.includes('[DONE]'), 'no [DONE] after a failure');
    const last = JSON.parse(s.events.at(-1));
    assert.ok(last.error && typeof last.error === 'object', `the last event is data: {"error":...}: ${s.events.at(-1)}`);
    assert.equal(typeof last.error.message, 'string');
    assert.ok(last.error.message.length > 0);
    assert.equal(d.errors.length, 1, 'one error event');
    // bytes had reached the client: no retry, no other deployment
    assert.equal(m.drop1.count(CHAT), 1);
    assert.equal(m.drop2.count(CHAT), 0, 'not retried on the other deployment');
    // the access line reports the 200 the client got, with the failure named in error=
    let line;
    for (let i = 0; i < 40 && !line; i++) { // access lines are written in batches
      line = sluice.stderr().split('\n').filter((l) => l.includes(' access ') && l.includes('model=dropper')).at(-1);
      if (!line) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(line, `an access line for the stream: ${sluice.stderr().split('\n').slice(-5).join('\n')}`);
    assert.match(line, / 200 /, `access line: ${line}`);
    assert.match(line, /error=/, `access line names the failure: ${line}`);
  });

  it('the SDK raises on that error event after yielding the prefix', async () => {
    m.drop1.setBehavior({ dropStreamAfter: 3 });
    const client = openaiClient(sluice);
    const got = [];
    await assert.rejects(
      (async () => {
        const st = await client.chat.completions.create({ model: 'dropper', messages: [{ role: 'user', content: 'q' }], stream: true });
        for await (const c of st) got.push(c);
      })(),
      (err) => {
        assert.ok(err instanceof Error, String(err));
        return true;
      },
    );
    const text = contentOf(got);
    assert.ok(ANSWER.startsWith(text) && text.length > 0 && text.length < ANSWER.length, `prefix: ${JSON.stringify(text)}`);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
