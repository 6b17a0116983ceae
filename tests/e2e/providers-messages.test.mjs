// The Anthropic Messages API as sluice serves it (POST /v1/messages), driven by
// the official Anthropic SDK: passed through to anthropic/ deployments, and
// translated to OpenAI chat (and back) for OpenAI-shaped ones.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import { startMock, expectedChatText, expectedToolResultText, mockToolArguments, textOf as oaiText } from './lib/mock-upstream.mjs';
import { startAnthropicMock, isolatedProviderEnv, claudeText, claudeAnswer, schemaArgs, words } from './lib/mock-providers.mjs';
import { startSluice, freePort, makeTempDir, fetchJSON, MASTER_KEY } from './lib/sluice.mjs';

const UPSTREAM_MODEL = 'claude-3-5-sonnet-20241022';
const BETA = 'prompt-caching-2024-07-31,interleaved-thinking-2025-05-14';

const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Current weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
};

// What the OpenAI mock counts as prompt tokens (words + 1 per message).
function oaiPromptTokens(messages) {
  return Math.max(
    1,
    messages.reduce((n, m) => n + words(oaiText(m.content)) + 1, 0),
  );
}

// Event names of an SDK raw event stream, with the ping events dropped (they
// may or may not be there); the rest must be Anthropic's exact order.
function checkEventOrder(names, blockKinds) {
  const got = names.filter((n) => n !== 'ping');
  let i = 0;
  const fail = (what) => assert.fail(`event sequence: expected ${what} at position ${i}, got ${got[i]} (all: ${names.join(' ')})`);
  if (got[i++] !== 'message_start') fail('message_start');
  for (let b = 0; b < blockKinds; b++) {
    if (got[i] !== 'content_block_start') fail('content_block_start');
    i++;
    while (got[i] === 'content_block_delta') i++;
    if (got[i] !== 'content_block_stop') fail('content_block_stop');
    i++;
  }
  if (got[i] !== 'message_delta') fail('message_delta');
  i++;
  if (got[i] !== 'message_stop') fail('message_stop');
  i++;
  assert.equal(got.length, i, `nothing after message_stop: ${names.join(' ')}`);
}

describe('providers: /v1/messages with the Anthropic SDK', () => {
  let ant;
  let oai;
  let sluice;
  let client;
  let home;
  const sent = []; // raw request bodies as the SDK sent them

  before(async () => {
    ant = await startAnthropicMock();
    oai = await startMock();
    home = makeTempDir('sluice-e2e-home-');
    sluice = await startSluice({
      config: `
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/${UPSTREAM_MODEL}
      api_base: ${ant.url}
      api_key: sk-ant-test
  - model_name: gpt-backend
    litellm_params:
      model: openai/gpt-upstream
      api_base: ${oai.baseURL}
      api_key: sk-openai-upstream
general_settings:
  master_key: ${MASTER_KEY}
`,
      env: isolatedProviderEnv(home, await freePort()),
    });
    client = new Anthropic({
      baseURL: sluice.baseURL,
      apiKey: MASTER_KEY,
      maxRetries: 0,
      timeout: 20000,
      fetch: async (url, init) => {
        sent.push({ url: String(url), body: typeof init?.body === 'string' ? init.body : null, headers: new Headers(init?.headers) });
        return fetch(url, init);
      },
    });
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all([ant?.close(), oai?.close()]);
      if (home) fs.rmSync(home, { recursive: true, force: true });
    }
  });

  // ---- (a) anthropic/ deployment: pass-through

  const richRequest = (extra = {}) => ({
    model: 'claude',
    max_tokens: 2048,
    system: [{ type: 'text', text: 'You are a careful assistant. '.repeat(8), cache_control: { type: 'ephemeral' } }],
    thinking: { type: 'enabled', budget_tokens: 1024 },
    metadata: { user_id: 'user-e2e-1' },
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'Earlier question', cache_control: { type: 'ephemeral', ttl: '5m' } }] },
      { role: 'assistant', content: 'Earlier answer' },
      { role: 'user', content: 'What is new?' },
    ],
    ...extra,
  });

  function checkPassThrough(rec, sentReq) {
    const clientRaw = sentReq.body;
    assert.equal(rec.path, '/v1/messages');
    assert.equal(rec.headers['x-api-key'], 'sk-ant-test', 'the deployment key replaces the client key');
    assert.equal(rec.headers.authorization, undefined);
    assert.ok(!JSON.stringify(rec.headers).includes(MASTER_KEY), 'the master key does not reach Anthropic');
    assert.equal(rec.headers['anthropic-version'], sentReq.headers.get('anthropic-version'), "the client's anthropic-version forwarded");
    assert.equal(rec.headers['anthropic-beta'], BETA, 'anthropic-beta forwarded');
    const client = JSON.parse(clientRaw);
    assert.deepEqual(rec.body, { ...client, model: UPSTREAM_MODEL }, 'body identical except model');
    // member order (and so the bytes of every member) unchanged
    assert.deepEqual(
      Object.keys(rec.body).filter((k) => k !== 'model'),
      Object.keys(client).filter((k) => k !== 'model'),
    );
  }

  it('(a) passes a request through to Anthropic untouched except model (cache_control, thinking, anthropic-beta)', async () => {
    ant.clearRequests();
    sent.length = 0;
    const msg = await client.messages.create(richRequest(), { headers: { 'anthropic-beta': BETA } });
    assert.equal(ant.requests.length, 1);
    const rec = ant.requests[0];
    checkPassThrough(rec, sent[0]);
    // the answer comes back as Anthropic sent it
    assert.deepEqual({ ...msg }, rec.response);
    assert.equal(msg.content[0].text, claudeText('What is new?'));
  });

  it('(a) streams a pass-through request: the exact upstream events, and messages.stream() finalMessage()', async () => {
    ant.clearRequests();
    sent.length = 0;
    const stream = await client.messages.create(richRequest({ stream: true }), { headers: { 'anthropic-beta': BETA } });
    const got = [];
    for await (const ev of stream) got.push(ev);
    const rec = ant.requests[0];
    checkPassThrough(rec, sent[0]);
    assert.deepEqual(
      got.map((e) => ({ ...e })),
      rec.events.filter(([n]) => n !== 'ping').map(([, d]) => d),
      'every event as Anthropic sent it (the SDK hides ping)',
    );

    // the raw SSE, ping included, is what Anthropic sent
    ant.clearRequests();
    const r = await fetch(sluice.url('/v1/messages'), {
      method: 'POST',
      headers: { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'raw events' }] }),
      signal: AbortSignal.timeout(15000),
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /^text\/event-stream/);
    const raw = await r.text();
    const blocks = raw.split(/\r?\n\r?\n/).filter((b) => b.trim());
    const parsed = blocks.map((b) => {
      const ev = /^event: ?(.*)$/m.exec(b)?.[1];
      const data = b
        .split(/\r?\n/)
        .filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, ''))
        .join('\n');
      return [ev, JSON.parse(data)];
    });
    assert.deepEqual(parsed, ant.requests[0].events, `raw SSE:\n${raw}`);

    ant.clearRequests();
    sent.length = 0;
    const s = client.messages.stream(
      {
        model: 'claude',
        max_tokens: 1000,
        tools: [{ ...WEATHER_TOOL, cache_control: { type: 'ephemeral' } }],
        messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      },
      { headers: { 'anthropic-beta': BETA } },
    );
    const final = await s.finalMessage();
    const up = ant.requests[0];
    checkPassThrough(up, sent[0]);
    const expected = claudeAnswer(up.body);
    assert.deepEqual(final.content, expected.blocks);
    assert.equal(final.content[1].type, 'tool_use');
    assert.deepEqual(final.content[1].input, schemaArgs(WEATHER_TOOL.input_schema, 'Weather in Oslo?'));
    assert.equal(final.stop_reason, 'tool_use');
    assert.equal(final.id, up.events[0][1].message.id);
    assert.equal(final.usage.output_tokens, up.events.find(([n]) => n === 'message_delta')[1].usage.output_tokens);
    assert.equal(final.usage.input_tokens, up.events[0][1].message.usage.input_tokens);
  });

  // ---- (c) count_tokens

  it('(c) messages.countTokens returns input_tokens > 0 (anthropic/ forwarded, others estimated)', async () => {
    ant.clearRequests();
    const params = { system: 'Count carefully.', messages: [{ role: 'user', content: 'How many tokens is this sentence, roughly?' }] };
    const a = await client.messages.countTokens({ model: 'claude', ...params });
    assert.ok(Number.isInteger(a.input_tokens) && a.input_tokens > 0, JSON.stringify(a));
    const rec = ant.lastRequest();
    assert.ok(rec, 'count_tokens reached Anthropic');
    assert.equal(rec.path, '/v1/messages/count_tokens');
    assert.equal(rec.body.model, UPSTREAM_MODEL);
    assert.equal(a.input_tokens, rec.response.input_tokens);
    const b = await client.messages.countTokens({ model: 'gpt-backend', ...params });
    assert.ok(Number.isInteger(b.input_tokens) && b.input_tokens > 0, JSON.stringify(b));
  });

  // ---- (d) errors

  it('(d) an unknown model is a 400 in Anthropic error format', async () => {
    await assert.rejects(client.messages.create({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (err) => {
      assert.ok(err instanceof Anthropic.APIError, `expected APIError, got ${err.constructor.name}: ${err.message}`);
      assert.equal(err.status, 400, err.message);
      assert.ok(err instanceof Anthropic.BadRequestError);
      assert.equal(err.error?.type, 'error', JSON.stringify(err.error));
      assert.equal(err.error?.error?.type, 'invalid_request_error');
      assert.ok(String(err.error?.error?.message).includes('no-such-model'), JSON.stringify(err.error));
      return true;
    });
    const raw = await fetchJSON(sluice.url('/v1/messages'), {
      method: 'POST',
      headers: { 'x-api-key': MASTER_KEY, 'anthropic-version': '2023-06-01' },
      body: { model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] },
    });
    assert.equal(raw.status, 400);
    assert.deepEqual(Object.keys(raw.body).sort(), ['error', 'type'], raw.text);
    assert.equal(raw.body.type, 'error');
    assert.deepEqual(Object.keys(raw.body.error).sort(), ['message', 'type'], raw.text);
    // streaming requests fail the same way, before any event
    await assert.rejects(client.messages.create({ model: 'no-such-model', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'x' }] }), (err) => {
      assert.equal(err.status, 400, err.message);
      return true;
    });
  });

  it('(d) an Anthropic upstream error passes through in Anthropic format with its status', async () => {
    ant.setBehavior({ error: { status: 529, type: 'overloaded_error', message: 'Overloaded (mock anthropic)' } });
    try {
      await assert.rejects(client.messages.create({ model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (err) => {
        assert.equal(err.status, 529, err.message);
        assert.equal(err.error?.error?.type, 'overloaded_error');
        assert.ok(err.message.includes('Overloaded (mock anthropic)'), err.message);
        return true;
      });
    } finally {
      ant.setBehavior({ error: null });
    }
  });

  // ---- (b) OpenAI-shaped deployment: translated (after the pass-through tests)

  it('(b) translates to OpenAI chat for an openai/ deployment and answers with an Anthropic message', async () => {
    oai.clearRequests();
    const msg = await client.messages.create({
      model: 'gpt-backend',
      max_tokens: 300,
      system: 'You are a helpful bot.',
      messages: [{ role: 'user', content: 'Hi there' }],
      temperature: 0.5,
      stop_sequences: ['###'],
    });
    assert.equal(oai.requests.length, 1);
    const up = oai.requests[0];
    assert.equal(up.path, '/v1/chat/completions');
    assert.equal(up.headers.authorization, 'Bearer sk-openai-upstream');
    assert.equal(up.body.model, 'gpt-upstream');
    assert.equal(up.body.messages.length, 2, JSON.stringify(up.body.messages));
    assert.equal(up.body.messages[0].role, 'system');
    assert.equal(oaiText(up.body.messages[0].content), 'You are a helpful bot.');
    assert.equal(up.body.messages[1].role, 'user');
    assert.equal(oaiText(up.body.messages[1].content), 'Hi there');
    assert.equal(up.body.max_tokens ?? up.body.max_completion_tokens, 300);
    assert.equal(up.body.temperature, 0.5);
    assert.deepEqual(up.body.stop, ['###']);

    assert.equal(msg.type, 'message');
    assert.equal(msg.role, 'assistant');
    assert.ok(typeof msg.id === 'string' && msg.id.length > 0, 'message id');
    assert.equal(msg.model, 'gpt-backend');
    assert.deepEqual(msg.content, [{ type: 'text', text: expectedChatText('Hi there') }]);
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.usage.input_tokens, oaiPromptTokens(up.body.messages));
    assert.equal(msg.usage.output_tokens, words(expectedChatText('Hi there')));
  });

  it('(b) translates tools to functions and tool_use / tool_result back and forth', async () => {
    oai.clearRequests();
    const question = 'Weather in Bergen?';
    const first = await client.messages.create({
      model: 'gpt-backend',
      max_tokens: 300,
      tools: [WEATHER_TOOL],
      tool_choice: { type: 'auto' },
      messages: [{ role: 'user', content: question }],
    });
    const up1 = oai.requests[0].body;
    assert.deepEqual(up1.tools, [
      { type: 'function', function: { name: 'get_weather', description: 'Current weather for a city', parameters: WEATHER_TOOL.input_schema } },
    ]);
    assert.equal(up1.tool_choice, 'auto');
    const oaiTool = up1.tools[0];
    assert.equal(first.stop_reason, 'tool_use');
    const uses = first.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1, JSON.stringify(first.content));
    assert.equal(uses[0].name, 'get_weather');
    assert.ok(uses[0].id, 'tool_use id');
    assert.deepEqual(uses[0].input, mockToolArguments(oaiTool, question));
    assert.ok(first.content.every((b) => b.type !== 'text' || b.text === ''), `no text besides the tool call: ${JSON.stringify(first.content)}`);

    const result = JSON.stringify({ temp_c: 7, sky: 'rain' });
    const second = await client.messages.create({
      model: 'gpt-backend',
      max_tokens: 300,
      tools: [WEATHER_TOOL],
      messages: [
        { role: 'user', content: question },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: uses[0].id, content: result }] },
      ],
    });
    const up2 = oai.requests[1].body;
    const asst = up2.messages.find((m) => m.role === 'assistant');
    assert.ok(asst, JSON.stringify(up2.messages));
    assert.equal(asst.tool_calls.length, 1);
    assert.equal(asst.tool_calls[0].id, uses[0].id);
    assert.equal(asst.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(asst.tool_calls[0].function.arguments), uses[0].input);
    const tool = up2.messages[up2.messages.length - 1];
    assert.equal(tool.role, 'tool');
    assert.equal(tool.tool_call_id, uses[0].id);
    assert.equal(oaiText(tool.content), result);
    assert.deepEqual(second.content, [{ type: 'text', text: expectedToolResultText(result) }]);
    assert.equal(second.stop_reason, 'end_turn');
  });

  it('(b) streams Anthropic events translated from OpenAI chunks (text)', async () => {
    oai.clearRequests();
    const stream = await client.messages.create({ model: 'gpt-backend', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'stream to me' }] });
    const evs = [];
    for await (const ev of stream) evs.push(ev);
    assert.equal(oai.requests[0].body.stream, true);
    assert.equal(oai.requests[0].body.stream_options?.include_usage, true, 'usage is requested from the OpenAI upstream');
    checkEventOrder(evs.map((e) => e.type), 1);
    const start = evs[0].message;
    assert.equal(start.role, 'assistant');
    assert.match(start.id, /^msg_/);
    assert.deepEqual(start.content, []);
    const cbs = evs.find((e) => e.type === 'content_block_start');
    assert.deepEqual(cbs.content_block, { type: 'text', text: '' });
    const text = evs
      .filter((e) => e.type === 'content_block_delta')
      .map((e) => {
        assert.equal(e.delta.type, 'text_delta');
        return e.delta.text;
      })
      .join('');
    assert.equal(text, expectedChatText('stream to me'));
    const md = evs.find((e) => e.type === 'message_delta');
    assert.equal(md.delta.stop_reason, 'end_turn');
    assert.equal(md.usage.output_tokens, words(expectedChatText('stream to me')));
  });

  it('(b) messages.stream() with a tool call: finalMessage() has the tool_use with parsed input and usage', async () => {
    oai.clearRequests();
    const q = 'Weather in Tromso, streamed';
    const s = client.messages.stream({ model: 'gpt-backend', max_tokens: 200, tools: [WEATHER_TOOL], messages: [{ role: 'user', content: q }] });
    const names = [];
    s.on('streamEvent', (e) => names.push(e.type));
    const final = await s.finalMessage();
    checkEventOrder(names, final.content.length);
    const oaiTool = oai.requests[0].body.tools[0];
    const uses = final.content.filter((b) => b.type === 'tool_use');
    assert.equal(uses.length, 1, JSON.stringify(final.content));
    assert.equal(uses[0].name, 'get_weather');
    assert.ok(uses[0].id);
    assert.deepEqual(uses[0].input, mockToolArguments(oaiTool, q));
    assert.equal(final.stop_reason, 'tool_use');
    const up = oai.requests[0].body;
    assert.equal(final.usage.input_tokens, oaiPromptTokens(up.messages));
    assert.ok(final.usage.output_tokens > 0, JSON.stringify(final.usage));

    // plain text through the helper too
    const t = await client.messages.stream({ model: 'gpt-backend', max_tokens: 50, messages: [{ role: 'user', content: 'plain helper' }] }).finalMessage();
    assert.deepEqual(t.content, [{ type: 'text', text: expectedChatText('plain helper') }]);
    assert.equal(t.stop_reason, 'end_turn');
    assert.equal(t.usage.output_tokens, words(expectedChatText('plain helper')));
  });

  it('(d) a bad client key (x-api-key) is refused with 401', async () => {
    const bad = new Anthropic({ baseURL: sluice.baseURL, apiKey: 'sk-wrong', maxRetries: 0 });
    await assert.rejects(bad.messages.create({ model: 'claude', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }), (err) => {
      assert.equal(err.status, 401, err.message);
      return true;
    });
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
