// HTTP_PROXY / http_proxy / NO_PROXY are honoured for upstreams that are not on loopback.
//
// A small forward proxy runs in this test on 127.0.0.1. It records every request it gets and
// answers it itself (an OpenAI chat.completion, or an SSE stream for stream:true); it never opens
// a connection anywhere. The proxied deployments use `upstream.sluice-test.invalid`: a `.invalid`
// name never resolves, and with an HTTP proxy curl hands the absolute URL to the proxy without
// resolving the name itself, so no DNS query is made.
//
// NO_PROXY: a direct connection to `upstream.sluice-test.invalid` would need a DNS lookup, and
// the resolver may send that query off the machine. So the NO_PROXY cases use the literal host
// 0.0.0.0 instead: sluice does not count it as loopback (the 'HTTP_PROXY' suite checks that it
// is sent to the proxy like any other host), yet Linux connects to 0.0.0.0 over the loopback
// interface (a connect to INADDR_ANY reaches the local host), and a literal needs no DNS. This
// keeps every byte on 127.0.0.1 while still showing that a host listed in NO_PROXY bypasses the
// proxy: the request reaches the mock upstream directly, an unreachable listed host gives 502
// with nothing sent to the proxy, and a host not listed still goes through the proxy.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startMock, expectedChatText, textOf } from './lib/mock-upstream.mjs';
import { startSluice, freePort, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf, finishReasonsOf, OpenAI } from './lib/clients.mjs';

const UPSTREAM_HOST = 'upstream.sluice-test.invalid';
const UPSTREAM_BASE = `http://${UPSTREAM_HOST}/v1`;
const UPSTREAM_CHAT_URL = `${UPSTREAM_BASE}/chat/completions`;
const PROVIDER_KEY = 'sk-proxied-upstream-key';

// What the proxy answers for a given last user message.
const proxyText = (userText) => `Hello via proxy: ${userText}`;

// A forward proxy that answers instead of forwarding.
//   proxy.url        -> "http://127.0.0.1:<port>" (the value for HTTP_PROXY)
//   proxy.requests   -> [{method, url, headers, rawBody, body}]
async function startForwardProxy() {
  const requests = [];
  const sockets = new Set();
  let seq = 0;

  const send = (res, status, obj) => {
    const data = JSON.stringify(obj);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    res.end(data);
  };

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try {
        body = rawBody ? JSON.parse(rawBody) : null;
      } catch {}
      requests.push({ method: req.method, url: req.url, headers: { ...req.headers }, rawBody, body });

      // A forward proxy gets an absolute URL as the request-target; anything else is not for it.
      if (!/^http:\/\//i.test(req.url)) {
        return send(res, 400, { error: { message: `proxy: expected an absolute URL, got ${req.url}`, type: 'invalid_request_error', param: null, code: null } });
      }
      const target = new URL(req.url);
      if (req.method !== 'POST' || !target.pathname.endsWith('/chat/completions') || !body) {
        return send(res, 404, { error: { message: `proxy: no route for ${req.method} ${req.url}`, type: 'invalid_request_error', param: null, code: null } });
      }
      const id = `chatcmpl-proxy${++seq}`;
      const messages = Array.isArray(body.messages) ? body.messages : [];
      const lastUser = [...messages].reverse().find((m) => m.role === 'user');
      const content = proxyText(textOf(lastUser?.content));
      if (!body.stream) {
        return send(res, 200, {
          id,
          object: 'chat.completion',
          created: 1700000000,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
          usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
        });
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const chunk = (delta, finish) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1700000000, model: body.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`;
      res.write(chunk({ role: 'assistant', content: '' }, null));
      for (let i = 0; i < content.length; i += 5) res.write(chunk({ content: content.slice(i, i + 5) }, null));
      res.write(chunk({}, 'stop'));
      res.end('data: [DONE]\n\n');
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = server.address().port;
  let closed = null;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    clear() {
      requests.length = 0;
    },
    close() {
      closed ??= new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}

const config = (deployments) => `
model_list:
${deployments
  .map(
    ([name, apiBase]) => `  - model_name: ${name}
    litellm_params:
      model: openai/upstream-model-name
      api_base: ${apiBase}
      api_key: ${PROVIDER_KEY}
      timeout: 5`,
  )
  .join('\n')}
general_settings:
  master_key: ${MASTER_KEY}
`;

// The checks shared by the HTTP_PROXY and http_proxy suites.
function proxiedChatTests(ctx) {
  it('sends a chat completion through the proxy and returns its answer', async () => {
    ctx.proxy.clear();
    const messages = [{ role: 'user', content: 'hello proxy' }];
    const r = await ctx.client.chat.completions.create({ model: 'proxied-gpt', messages });
    assert.equal(r.choices[0].message.content, proxyText('hello proxy'));
    assert.equal(r.choices[0].finish_reason, 'stop');

    assert.equal(ctx.proxy.requests.length, 1, 'the proxy got exactly one request');
    const seen = ctx.proxy.requests[0];
    assert.equal(seen.method, 'POST');
    assert.equal(seen.url, UPSTREAM_CHAT_URL, 'request-target is the absolute upstream URL');
    assert.equal(seen.headers.host, UPSTREAM_HOST);
    assert.equal(seen.headers.authorization, `Bearer ${PROVIDER_KEY}`, 'provider key from the config, not the master key');
    assert.equal(seen.body.model, 'upstream-model-name', 'model rewritten to the deployment model');
    assert.deepEqual(seen.body.messages, messages);
    assert.ok(!seen.body.stream, 'non-streaming request');
  });

  it('streams through the proxy', async () => {
    ctx.proxy.clear();
    const s = await ctx.client.chat.completions.create({
      model: 'proxied-gpt',
      messages: [{ role: 'user', content: 'stream via proxy' }],
      stream: true,
    });
    const chunks = await collect(s);
    assert.equal(contentOf(chunks), proxyText('stream via proxy'));
    assert.deepEqual(finishReasonsOf(chunks), ['stop']);

    assert.equal(ctx.proxy.requests.length, 1);
    const seen = ctx.proxy.requests[0];
    assert.equal(seen.url, UPSTREAM_CHAT_URL);
    assert.equal(seen.headers.authorization, `Bearer ${PROVIDER_KEY}`);
    assert.equal(seen.body.model, 'upstream-model-name');
    assert.equal(seen.body.stream, true);
  });
}

describe('outbound proxy: HTTP_PROXY', () => {
  const ctx = {};
  let sluice;
  let deadPort;

  before(async () => {
    ctx.proxy = await startForwardProxy();
    deadPort = await freePort(); // nothing listens here; only the proxy is ever contacted
    sluice = await startSluice({
      env: { HTTP_PROXY: ctx.proxy.url },
      config: config([
        ['proxied-gpt', UPSTREAM_BASE],
        ['zero-host', `http://0.0.0.0:${deadPort}/v1`],
      ]),
    });
    ctx.client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await ctx.proxy?.close();
    }
  });

  proxiedChatTests(ctx);

  it('treats 0.0.0.0 as a non-loopback host (proxied; the NO_PROXY suite relies on this)', async () => {
    ctx.proxy.clear();
    const r = await ctx.client.chat.completions.create({ model: 'zero-host', messages: [{ role: 'user', content: 'zero' }] });
    assert.equal(r.choices[0].message.content, proxyText('zero'));
    assert.equal(ctx.proxy.requests.length, 1);
    assert.equal(ctx.proxy.requests[0].url, `http://0.0.0.0:${deadPort}/v1/chat/completions`);
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});

describe('outbound proxy: lower-case http_proxy', () => {
  const ctx = {};
  let sluice;

  before(async () => {
    ctx.proxy = await startForwardProxy();
    sluice = await startSluice({ env: { http_proxy: ctx.proxy.url }, config: config([['proxied-gpt', UPSTREAM_BASE]]) });
    ctx.client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await ctx.proxy?.close();
    }
  });

  proxiedChatTests(ctx);

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});

describe('outbound proxy: http_proxy wins over HTTP_PROXY', () => {
  let lower;
  let upper;
  let sluice;
  let client;

  before(async () => {
    lower = await startForwardProxy();
    upper = await startForwardProxy();
    sluice = await startSluice({ env: { http_proxy: lower.url, HTTP_PROXY: upper.url }, config: config([['proxied-gpt', UPSTREAM_BASE]]) });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all([lower?.close(), upper?.close()]);
    }
  });

  it('uses the lower-case variable when both are set', async () => {
    const r = await client.chat.completions.create({ model: 'proxied-gpt', messages: [{ role: 'user', content: 'which one' }] });
    assert.equal(r.choices[0].message.content, proxyText('which one'));
    assert.equal(lower.requests.length, 1, 'http_proxy got the request');
    assert.equal(lower.requests[0].url, UPSTREAM_CHAT_URL);
    assert.equal(upper.requests.length, 0, 'HTTP_PROXY got nothing');
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});

// See the header comment for why the listed host is 0.0.0.0 and not the .invalid name.
describe('outbound proxy: NO_PROXY', () => {
  let proxy;
  let mock;
  let deadPort;
  let sluice;
  let client;

  before(async () => {
    proxy = await startForwardProxy();
    mock = await startMock();
    deadPort = await freePort(); // nothing listens here
    sluice = await startSluice({
      env: { HTTP_PROXY: proxy.url, NO_PROXY: '0.0.0.0' },
      config: config([
        ['listed-up', `http://0.0.0.0:${mock.port}/v1`],
        ['listed-down', `http://0.0.0.0:${deadPort}/v1`],
        ['proxied-gpt', UPSTREAM_BASE],
      ]),
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all([proxy?.close(), mock?.close()]);
    }
  });

  it('connects directly to a host listed in NO_PROXY', async () => {
    proxy.clear();
    mock.clearRequests();
    const r = await client.chat.completions.create({ model: 'listed-up', messages: [{ role: 'user', content: 'direct' }] });
    assert.equal(r.choices[0].message.content, expectedChatText('direct'), 'answered by the mock upstream');
    const s = await client.chat.completions.create({ model: 'listed-up', messages: [{ role: 'user', content: 'direct stream' }], stream: true });
    assert.equal(contentOf(await collect(s)), expectedChatText('direct stream'));

    assert.equal(proxy.requests.length, 0, 'the proxy got nothing');
    assert.equal(mock.requests.length, 2);
    for (const seen of mock.requests) {
      // a direct request carries just the path, a proxied one the absolute URL
      assert.equal(seen.url, '/v1/chat/completions');
      assert.equal(seen.headers.authorization, `Bearer ${PROVIDER_KEY}`);
      assert.equal(seen.body.model, 'upstream-model-name');
    }
  });

  it('gives 502 for an unreachable listed host without falling back to the proxy', async () => {
    proxy.clear();
    await assert.rejects(client.chat.completions.create({ model: 'listed-down', messages: [{ role: 'user', content: 'down' }] }), (err) => {
      assert.ok(err instanceof OpenAI.APIError, `expected APIError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 502, err.message);
      assert.ok(!err.message.includes(PROVIDER_KEY), 'provider key leaked');
      return true;
    });
    const raw = await fetchJSON(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: authHeaders(),
      body: { model: 'listed-down', messages: [{ role: 'user', content: 'down' }], stream: true },
    });
    checkErrorEnvelope(assert, raw, 502);
    assert.equal(proxy.requests.length, 0, 'the proxy got nothing');
  });

  it('still proxies a host that is not listed', async () => {
    proxy.clear();
    mock.clearRequests();
    const r = await client.chat.completions.create({ model: 'proxied-gpt', messages: [{ role: 'user', content: 'not listed' }] });
    assert.equal(r.choices[0].message.content, proxyText('not listed'));
    assert.equal(proxy.requests.length, 1);
    assert.equal(proxy.requests[0].url, UPSTREAM_CHAT_URL);
    assert.equal(mock.requests.length, 0);
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
