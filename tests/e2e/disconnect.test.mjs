// Client disconnects must abort the upstream transfer and leave the gateway healthy.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf } from './lib/clients.mjs';

// Start a request with node:http; resolve once `minDataEvents` body chunks
// have arrived (or, with minDataEvents = 0, once the request is sent).
// Returns {req, res, received}.
function openRequest(sluice, body, { minDataEvents = 2, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const req = http.request({
      host: '127.0.0.1',
      port: sluice.port,
      path: '/v1/chat/completions',
      method: 'POST',
      headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    });
    const t = setTimeout(() => {
      req.destroy();
      reject(new Error(`did not receive ${minDataEvents} chunks within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    let received = '';
    if (minDataEvents === 0) {
      req.on('finish', () => {
        clearTimeout(t);
        resolve({ req, res: null, received: () => received });
      });
    }
    req.on('response', (res) => {
      let n = 0;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        received += d;
        n += 1;
        if (minDataEvents > 0 && n === minDataEvents) {
          clearTimeout(t);
          resolve({ req, res, received: () => received, status: res.statusCode });
        }
      });
      res.on('error', () => {});
    });
    req.end(payload);
  });
}

describe('client disconnects', () => {
  let mock;
  let sluice;
  let client;

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
      timeout: 30
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      // stop() asserts exit code 0 and no sanitizer report
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      if (mock) await mock.close();
    }
  });

  it('aborts the upstream stream when the client goes away mid-stream', async () => {
    mock.reset({ clearRequests: true });
    // 200 chunks x 50 ms = 10 s if nobody hangs up
    mock.setBehavior({ slowStream: { chunks: 200, intervalMs: 50 } });
    const abortedBefore = mock.aborted;
    const { req, received, status } = await openRequest(sluice, {
      model: 'my-gpt',
      messages: [{ role: 'user', content: 'long story' }],
      stream: true,
    });
    assert.equal(status, 200);
    assert.match(received(), /data: /, 'got SSE data before hanging up');
    req.destroy();
    const t0 = Date.now();
    const closed = await mock.waitFor((m) => m.aborted > abortedBefore, 2000);
    assert.ok(closed, `upstream connection still open ${Date.now() - t0} ms after the client disconnected`);
    assert.equal(mock.requests.length, 1);
    assert.equal(mock.requests[0].completed, false, 'upstream stream did not run to completion');
    mock.reset();
  });

  it('aborts a pending non-streaming upstream request when the client goes away', async () => {
    mock.reset({ clearRequests: true });
    mock.setBehavior({ delayMs: 8000 });
    const abortedBefore = mock.aborted;
    const { req } = await openRequest(sluice, { model: 'my-gpt', messages: [{ role: 'user', content: 'slow' }] }, { minDataEvents: 0 });
    // wait until the request has reached the upstream, then hang up
    assert.ok(await mock.waitFor((m) => m.requests.length >= 1, 3000), 'request reached the upstream');
    req.destroy();
    const closed = await mock.waitFor((m) => m.aborted > abortedBefore, 2000);
    assert.ok(closed, 'upstream connection still open 2 s after the client disconnected');
    mock.reset();
  });

  it('keeps serving: 20 parallel requests (half streaming) succeed after the disconnects', async () => {
    mock.reset({ clearRequests: true });
    const jobs = Array.from({ length: 20 }, async (_, i) => {
      const messages = [{ role: 'user', content: `after disconnect ${i}` }];
      if (i % 2 === 0) {
        const s = await client.chat.completions.create({ model: 'my-gpt', messages, stream: true });
        return contentOf(await collect(s));
      }
      const r = await client.chat.completions.create({ model: 'my-gpt', messages });
      return r.choices[0].message.content;
    });
    const outs = await Promise.all(jobs);
    outs.forEach((o, i) => assert.equal(o, expectedChatText(`after disconnect ${i}`)));
  });

  it('survives many abrupt client disconnects in a row', async () => {
    mock.reset({ clearRequests: true });
    mock.setBehavior({ slowStream: { chunks: 100, intervalMs: 20 } });
    const opened = await Promise.all(
      Array.from({ length: 10 }, () =>
        openRequest(sluice, { model: 'my-gpt', messages: [{ role: 'user', content: 'x' }], stream: true }, { minDataEvents: 1 }),
      ),
    );
    for (const o of opened) o.req.destroy();
    const allAborted = (m) => m.requests.length === 10 && m.requests.every((r) => r.aborted);
    assert.ok(await mock.waitFor(allAborted, 3000), `upstream aborted ${mock.requests.filter((r) => r.aborted).length}/${mock.requests.length}`);
    mock.reset();
    const r = await client.chat.completions.create({ model: 'my-gpt', messages: [{ role: 'user', content: 'still alive' }] });
    assert.equal(r.choices[0].message.content, expectedChatText('still alive'));
  });

  it('shuts down cleanly on SIGTERM with a stream in flight (exit 0, no sanitizer report)', async () => {
    mock.reset({ clearRequests: true });
    // ~2 s of stream: sluice may either drain it or cut it, but must exit cleanly
    mock.setBehavior({ slowStream: { chunks: 40, intervalMs: 50 } });
    const { req } = await openRequest(sluice, { model: 'my-gpt', messages: [{ role: 'user', content: 'in flight' }], stream: true }, { minDataEvents: 1 });
    req.on('error', () => {});
    try {
      await sluice.stop();
    } finally {
      req.destroy();
      mock.reset();
    }
  });
});
