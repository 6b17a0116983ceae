// Routing strategies other than simple-shuffle (router-weights covers that one), as a LiteLLM
// user sees them through the openai SDK. Every deployment is its own mock upstream, so the
// tests count where the calls arrived.
//   least-busy             the deployment with the fewest calls in flight
//   latency-based-routing  the lowest average latency (time to first token for streams); an
//                          untried deployment counts as 0 and is tried first;
//                          routing_strategy_args.lowest_latency_buffer and .ttl
//   usage-based-routing-v2 (and the "usage-based-routing" alias): the lowest tokens used this
//                          minute; a deployment at its rpm is skipped; all at their rpm → 429
//   order                  tiers come before the strategy (latency-based here)
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, MASTER_KEY } from './lib/sluice.mjs';
import { OpenAI, openaiClient, collect, contentOf } from './lib/clients.mjs';
import { dep } from './lib/config.mjs';

const CHAT = '/v1/chat/completions';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


function config(deps, routerSettings) {
  return `
model_list:
${deps.join('')}router_settings:
${routerSettings}general_settings:
  master_key: ${MASTER_KEY}
`;
}

// One non-streaming call through the SDK; checks the answer, returns the deployment id.
async function ask(client, model, text = 'hi') {
  const { data, response } = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content: text }] })
    .withResponse();
  assert.equal(response.status, 200);
  assert.equal(data.choices[0].message.content, expectedChatText(text));
  return response.headers.get('x-litellm-model-id');
}

// One streamed call through the SDK; returns the deployment id.
async function askStream(client, model, text = 'hi') {
  const { data: stream, response } = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content: text }], stream: true })
    .withResponse();
  assert.equal(response.status, 200);
  const chunks = await collect(stream);
  assert.ok(contentOf(chunks).length > 0, 'the stream carried content');
  return response.headers.get('x-litellm-model-id');
}

function tally(ids) {
  const t = {};
  for (const id of ids) t[id] = (t[id] || 0) + 1;
  return t;
}

// Per-minute counters (rpm, tpm): start a test well inside one wall-clock minute.
async function awayFromMinuteEnd(marginS = 6) {
  const s = (Date.now() / 1000) % 60;
  if (s > 60 - marginS) await sleep((60 - s) * 1000 + 200);
}

async function stopAll(sluice, mocks) {
  try {
    if (sluice && !sluice.stopRequested) await sluice.stop();
  } finally {
    await Promise.all(Object.values(mocks).map((x) => x.close()));
  }
}

describe('routing_strategy: least-busy', () => {
  const m = {};
  let sluice, client;

  before(async () => {
    m.slow = await startMock({ delayMs: 1500 });
    m.fast = await startMock();
    m.even1 = await startMock({ delayMs: 1200 });
    m.even2 = await startMock({ delayMs: 1200 });
    sluice = await startSluice({
      config: config(
        [dep('lb-uneven', 'lb-slow', m.slow), dep('lb-uneven', 'lb-fast', m.fast), dep('lb-even', 'lb-even1', m.even1), dep('lb-even', 'lb-even2', m.even2)],
        '  routing_strategy: least-busy\n',
      ),
    });
    client = openaiClient(sluice);
  });
  after(() => stopAll(sluice, m));

  it('a deployment holding a slow call gets no new calls while its idle sibling is free', async () => {
    // lb-slow holds each call 1.5 s; lb-fast answers at once, so between calls it has none in
    // flight. Calls arrive every 80 ms for 1.28 s: lb-slow takes the first one the tie-break gives
    // it, then it is busier than lb-fast for the rest of the window. (A random pick would send
    // it about half.)
    const N = 16;
    const pending = [];
    for (let i = 0; i < N; i++) {
      pending.push(ask(client, 'lb-uneven', `uneven ${i}`));
      await sleep(80);
    }
    const ids = await Promise.all(pending);
    const t = tally(ids);
    assert.equal(m.slow.count(CHAT) + m.fast.count(CHAT), N);
    assert.equal(t['lb-slow'] ?? 0, m.slow.count(CHAT), 'x-litellm-model-id matches where the call arrived');
    assert.ok(m.slow.count(CHAT) <= 2, `lb-slow got ${m.slow.count(CHAT)} of ${N} calls while busy (expected at most 1, 2 with a tie)`);
    assert.ok(m.fast.count(CHAT) >= N - 2, `lb-fast got ${m.fast.count(CHAT)} of ${N}`);
  });

  it('with equally slow deployments, each new call goes to the one with fewer calls in flight', async () => {
    // Both hold every call 1.2 s; the calls are sent one at a time, each after the previous one
    // reached an upstream (so it is counted in flight), all within ~0.3 s: they all overlap.
    // least-busy keeps the in-flight counts within 1 of each other after every call.
    const N = 16;
    const pending = [];
    const seq = [];
    for (let i = 0; i < N; i++) {
      pending.push(ask(client, 'lb-even', `even ${i}`));
      const arrived = await m.even1.waitFor(() => m.even1.count(CHAT) + m.even2.count(CHAT) === i + 1, 3000, 2);
      assert.ok(arrived, `call ${i} did not reach an upstream`);
      seq.push([m.even1.count(CHAT), m.even2.count(CHAT)]);
    }
    // every one of them was in flight together: the last call arrived before the first answer
    const at = [...m.even1.requests, ...m.even2.requests].map((r) => r.receivedAt);
    const span = Math.max(...at) - Math.min(...at);
    assert.ok(span < 1100, `(test too slow: the calls spanned ${span} ms, they must overlap)`);
    const ids = await Promise.all(pending);
    const spread = seq.map(([a, b]) => Math.abs(a - b));
    assert.ok(
      spread.every((d) => d <= 1),
      `in-flight counts drifted apart: ${seq.map(([a, b]) => `${a}/${b}`).join(' ')}`,
    );
    assert.deepEqual([m.even1.count(CHAT), m.even2.count(CHAT)], [N / 2, N / 2]);
    assert.deepEqual(tally(ids), { 'lb-even1': N / 2, 'lb-even2': N / 2 });
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('routing_strategy: latency-based-routing (default routing_strategy_args)', () => {
  const m = {};
  let sluice, client;

  before(async () => {
    m.fast = await startMock();
    m.slow = await startMock({ delayMs: 250 });
    // streams: quick first chunk but a long stream vs a late first chunk and a short stream
    m.ttftQuick = await startMock({ slowStream: { chunks: 2, intervalMs: 50 } });
    m.ttftLate = await startMock({ streamStallMs: 100 });
    m.base = await startMock({ delayMs: 50 });
    m.near = await startMock({ delayMs: 100 });
    m.tier1 = await startMock({ delayMs: 120 });
    m.tier2 = await startMock();
    sluice = await startSluice({
      config: config(
        [
          dep('lat', 'lat-fast', m.fast),
          dep('lat', 'lat-slow', m.slow),
          dep('lat-stream', 'ttft-quick', m.ttftQuick),
          dep('lat-stream', 'ttft-late', m.ttftLate),
          dep('lat-close', 'close-50', m.base),
          dep('lat-close', 'close-100', m.near),
          dep('lat-tier', 'tier1-slow', m.tier1, { order: 1 }),
          dep('lat-tier', 'tier2-fast', m.tier2, { order: 2 }),
        ],
        '  routing_strategy: latency-based-routing\n',
      ),
    });
    client = openaiClient(sluice);
  });
  after(() => stopAll(sluice, m));

  it('after one call each (untried deployments go first), the slower deployment gets no traffic', async () => {
    // lat-slow answers 250 ms later than lat-fast. Expected: lat-slow exactly once (its probe);
    // one more is tolerated (a stall of > 250 ms on a lat-fast call). Random: ~10 of 20.
    const N = 20;
    const ids = [];
    for (let i = 0; i < N; i++) ids.push(await ask(client, 'lat', `lat ${i}`));
    const slow = m.slow.count(CHAT);
    assert.ok(slow >= 1, 'lat-slow was tried (an untried deployment counts as latency 0, as in LiteLLM)');
    assert.ok(slow <= 2, `lat-slow got ${slow} of ${N} calls: ${ids.join(' ')}`);
    assert.equal(m.fast.count(CHAT), N - slow);
    assert.deepEqual(ids.slice(-10), Array(10).fill('lat-fast'), 'the last 10 calls all went to lat-fast');
  });

  it('streams are routed by time to first token, not by total time', async () => {
    // ttft-quick: first chunk at once, whole stream ~150 ms; ttft-late: first chunk after
    // 100 ms, whole stream ~100 ms. By total time ttft-late would get everything.
    const N = 10;
    const ids = [];
    for (let i = 0; i < N; i++) ids.push(await askStream(client, 'lat-stream', `stream ${i}`));
    const late = m.ttftLate.count(CHAT);
    assert.ok(late >= 1 && late <= 2, `ttft-late should get its probe only (1, 2 tolerated); got ${late} of ${N}: ${ids.join(' ')}`);
    assert.equal(m.ttftQuick.count(CHAT), N - late);
  });

  it('without lowest_latency_buffer a deployment 2x slower than the best gets nothing after its probe', async () => {
    // control for the lowest_latency_buffer test below: same upstream delays (50 vs 100 ms)
    const N = 16;
    for (let i = 0; i < N; i++) await ask(client, 'lat-close', `close ${i}`);
    const near = m.near.count(CHAT);
    assert.ok(near >= 1 && near <= 2, `close-100 should get its probe only (1, 2 tolerated); got ${near} of ${N}`);
    assert.equal(m.base.count(CHAT), N - near);
  });

  it('order tiers come first: the slower order: 1 deployment serves everything, the faster order: 2 none', async () => {
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(await ask(client, 'lat-tier', `tier ${i}`));
    assert.deepEqual(ids, Array(6).fill('tier1-slow'));
    assert.equal(m.tier2.count(CHAT), 0);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('routing_strategy: latency-based-routing, routing_strategy_args.lowest_latency_buffer: 1.5', () => {
  const m = {};
  let sluice, client;

  before(async () => {
    m.base = await startMock({ delayMs: 50 });
    m.near = await startMock({ delayMs: 100 });
    m.far = await startMock({ delayMs: 400 });
    sluice = await startSluice({
      config: config(
        [dep('buf', 'buf-50', m.base), dep('buf', 'buf-100', m.near), dep('buf', 'buf-400', m.far)],
        '  routing_strategy: latency-based-routing\n  routing_strategy_args:\n    lowest_latency_buffer: 1.5\n',
      ),
    });
    client = openaiClient(sluice);
  });
  after(() => stopAll(sluice, m));

  it('deployments within best × (1 + buffer) share the calls at random; the one outside gets none', async () => {
    // ~52 ms best → candidates up to ~130 ms (LiteLLM: latency <= best + best * buffer):
    // buf-100 is in, buf-400 is out (after its probe)
    const PROBES = 3;
    const N = 24;
    for (let i = 0; i < PROBES + N; i++) await ask(client, 'buf', `buf ${i}`);
    const far = m.far.count(CHAT);
    const near = m.near.count(CHAT);
    const base = m.base.count(CHAT);
    assert.equal(far + near + base, PROBES + N);
    assert.equal(far, 1, `buf-400 (outside the buffer) got ${far} calls; expected only its probe`);
    // uniform between the two: ~12 each of 24; <= 4 has probability ~0.1% per side
    assert.ok(near - 1 >= 5, `buf-100 (inside the buffer) got ${near - 1} of ${N} after its probe (no buffer: 0)`);
    assert.ok(base - 1 >= 5, `buf-50 got ${base - 1} of ${N} after its probe`);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('routing_strategy: latency-based-routing, routing_strategy_args.ttl: 1', () => {
  const m = {};
  let sluice, client;

  before(async () => {
    m.fast = await startMock();
    m.slow = await startMock({ delayMs: 150 });
    sluice = await startSluice({
      config: config([dep('ttl', 'ttl-fast', m.fast), dep('ttl', 'ttl-slow', m.slow)], '  routing_strategy: latency-based-routing\n  routing_strategy_args:\n    ttl: 1\n'),
    });
    client = openaiClient(sluice);
  });
  after(() => stopAll(sluice, m));

  it('a latency older than ttl is forgotten: the slow deployment is tried again about once per ttl, never sooner', async () => {
    // With the default ttl (1 h, the tests above) the slow deployment gets its probe and then
    // nothing. With ttl: 1 its last sample goes stale 1 s after it was taken, it counts as
    // untried again and gets one call, while ttl-fast keeps getting samples and stays fresh.
    const t0 = Date.now();
    let n = 0;
    while (Date.now() - t0 < 2600) {
      await ask(client, 'ttl', `ttl ${n++}`);
      await sleep(20);
    }
    const at = m.slow.requests.map((r) => r.receivedAt);
    const gaps = at.slice(1).map((t, i) => t - at[i]);
    assert.ok(at.length >= 2, `ttl-slow got ${at.length} call(s) in 2.6 s; expected its probe and at least one more after its latency went stale`);
    assert.ok(at.length <= 4, `ttl-slow got ${at.length} calls in 2.6 s (gaps ${gaps.join(', ')} ms)`);
    assert.ok(
      gaps.every((g) => g >= 900),
      `ttl-slow was tried again before its latency was 1 s old: gaps ${gaps.join(', ')} ms`,
    );
    assert.equal(m.fast.count(CHAT), n - at.length);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

for (const strategy of ['usage-based-routing-v2', 'usage-based-routing']) {
  describe(`routing_strategy: ${strategy}`, () => {
    const m = {};
    let sluice, client;

    before(async () => {
      m.a = await startMock();
      m.b = await startMock();
      m.r1 = await startMock();
      m.r4 = await startMock();
      sluice = await startSluice({
        config: config(
          [dep('ub', 'ub-a', m.a), dep('ub', 'ub-b', m.b), dep('ub-rpm', 'rpm-1', m.r1, { rpm: 1 }), dep('ub-rpm', 'rpm-4', m.r4, { rpm: 4 })],
          `  routing_strategy: ${strategy}\n`,
        ),
      });
      client = openaiClient(sluice);
    });
    after(() => stopAll(sluice, m));

    it("calls go to the deployment that used the fewest tokens this minute", async () => {
      await awayFromMinuteEnd();
      const big = Array.from({ length: 300 }, (_, i) => `w${i}`).join(' '); // ~600 tokens with the answer
      const isBig = (r) => r.body.messages[0].content === big;
      const bigOf = (mock) => mock.requests.filter(isBig).length;
      const smallOf = (mock) => mock.requests.filter((r) => !isBig(r)).length;

      // 1 big call (~604 tokens) lands somewhere; the 20 small ones (6 tokens each) that follow
      // all go to the other deployment, whose usage stays lower
      const first = await ask(client, 'ub', big);
      const [heavy, light] = first === 'ub-a' ? [m.a, m.b] : [m.b, m.a];
      for (let i = 0; i < 20; i++) await ask(client, 'ub', 'hi');
      assert.equal(bigOf(heavy), 1);
      assert.equal(smallOf(heavy), 0, `the deployment that served the big call got ${smallOf(heavy)} of the 20 small ones`);
      assert.equal(smallOf(light), 20);

      // a big call now goes to the lighter one (120 < 604 tokens) and makes it the heavier:
      // the next small calls go back to the first deployment
      const second = await ask(client, 'ub', big);
      assert.notEqual(second, first, 'the second big call went to the deployment with less usage');
      for (let i = 0; i < 10; i++) await ask(client, 'ub', 'hi');
      assert.equal(smallOf(heavy), 10, 'after the second big call, the small calls follow the lower usage');
      assert.deepEqual([bigOf(heavy), bigOf(light), smallOf(light)], [1, 1, 20]);
    });

    it('a deployment at its rpm is skipped even with the lowest usage; all at their rpm → 429 "No deployments available"', async () => {
      await awayFromMinuteEnd();
      // rpm-1 has rpm: 1, rpm-4 has rpm: 4. Usage alone would alternate them; the limits give
      // rpm-1 exactly one call and rpm-4 four, though rpm-1 keeps the lower token count.
      const ids = [];
      for (let i = 0; i < 5; i++) ids.push(await ask(client, 'ub-rpm', 'hi'));
      assert.deepEqual(tally(ids), { 'rpm-1': 1, 'rpm-4': 4 });
      assert.equal(m.r1.count(CHAT), 1);
      assert.equal(m.r4.count(CHAT), 4);

      let err;
      try {
        await client.chat.completions.create({ model: 'ub-rpm', messages: [{ role: 'user', content: 'hi' }] });
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof OpenAI.RateLimitError, `expected RateLimitError, got ${err?.constructor?.name} ${err?.status}: ${err?.message}`);
      assert.equal(err.status, 429);
      const msg = err.error?.message ?? '';
      assert.ok(msg.startsWith('No deployments available for selected model'), msg);
      assert.ok(msg.includes('Passed model=ub-rpm'), msg);
      const ra = err.headers?.get('retry-after');
      assert.match(ra ?? '', /^\d+$/, `retry-after header: ${ra}`);
      assert.ok(Number(ra) >= 1 && Number(ra) <= 60, `retry-after ${ra}: at most until the next minute`);
      assert.equal(m.r1.count(CHAT) + m.r4.count(CHAT), 5, 'no upstream was called for the rejected request');
    });

    it('shuts down cleanly', async () => {
      await sluice.stop();
    });
  });
}
