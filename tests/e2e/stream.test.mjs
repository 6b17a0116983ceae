// Streaming chat completions: delta assembly, usage-chunk handling, streamed tool calls.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, expectedChatText, mockToolArguments } from './lib/mock-upstream.mjs';
import { startSluice, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf, toolCallsOf, finishReasonsOf, parseSSE } from './lib/clients.mjs';

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: { location: { type: 'string' }, days: { type: 'integer' } },
      required: ['location'],
    },
  },
};

const isUsageChunk = (c) => c.usage != null && Array.isArray(c.choices) && c.choices.length === 0;

describe('streaming chat completions', () => {
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
      if (mock) await mock.close();
    }
  });

  it('streams deltas that concatenate to the full answer; no usage chunk unless asked, but include_usage is requested upstream', async () => {
    mock.clearRequests();
    const question = 'Stream me a fairly long sentence please';
    const stream = await client.chat.completions.create({
      model: 'my-gpt',
      messages: [{ role: 'user', content: question }],
      stream: true,
    });
    const chunks = await collect(stream);
    assert.ok(chunks.length >= 5, `expected several chunks, got ${chunks.length}`);
    assert.equal(contentOf(chunks), expectedChatText(question));
    for (const c of chunks) assert.equal(c.object, 'chat.completion.chunk');
    assert.deepEqual(finishReasonsOf(chunks), ['stop']);
    const usageChunks = chunks.filter(isUsageChunk);
    assert.equal(usageChunks.length, 0, `client did not ask for usage but got: ${JSON.stringify(usageChunks)}`);

    assert.equal(mock.requests.length, 1);
    const up = mock.requests[0].body;
    assert.equal(up.stream, true);
    assert.equal(up.model, 'upstream-model-name');
    assert.ok(up.stream_options && up.stream_options.include_usage === true, `sluice should inject stream_options.include_usage upstream, got ${JSON.stringify(up.stream_options)}`);
  });

  it('passes exactly one usage chunk through when the client asks for it', async () => {
    mock.clearRequests();
    const question = 'count my tokens';
    const stream = await client.chat.completions.create({
      model: 'my-gpt',
      messages: [{ role: 'user', content: question }],
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = await collect(stream);
    assert.equal(contentOf(chunks), expectedChatText(question));
    const usageChunks = chunks.filter(isUsageChunk);
    assert.equal(usageChunks.length, 1, `expected exactly one usage chunk, got ${JSON.stringify(usageChunks)}`);
    assert.equal(chunks[chunks.length - 1], usageChunks[0], 'usage chunk is the last chunk');
    const u = usageChunks[0].usage;
    assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0, JSON.stringify(u));
    assert.equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
    assert.equal(u.completion_tokens, expectedChatText(question).split(/\s+/).length, 'usage is the upstream-reported usage');
    assert.equal(mock.requests[0].body.stream_options?.include_usage, true);
  });

  it('produces a well-formed SSE body ending in [DONE]', async () => {
    const r = await fetch(sluice.url('/v1/chat/completions'), {
      method: 'POST',
      headers: authHeaders(),
      body: JSON.stringify({ model: 'my-gpt', messages: [{ role: 'user', content: 'raw sse' }], stream: true }),
      signal: AbortSignal.timeout(15000),
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') || '', /^text\/event-stream/);
    const text = await r.text();
    const events = parseSSE(text);
    assert.equal(events[events.length - 1], '[DONE]', `last event is [DONE]; body tail: ${text.slice(-200)}`);
    assert.equal(events.filter((e) => e === '[DONE]').length, 1, 'exactly one [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(contentOf(chunks), expectedChatText('raw sse'));
    assert.equal(chunks.filter(isUsageChunk).length, 0);
    const ids = new Set(chunks.map((c) => c.id));
    assert.equal(ids.size, 1, `all chunks share one id: ${[...ids]}`);
  });

  it('streams tool calls that assemble to the right name and arguments', async () => {
    const question = 'Weather in Paris?';
    const stream = await client.chat.completions.create({
      model: 'my-gpt',
      messages: [{ role: 'user', content: question }],
      tools: [WEATHER_TOOL],
      stream: true,
    });
    const chunks = await collect(stream);
    const calls = toolCallsOf(chunks);
    assert.equal(calls.length, 1, JSON.stringify(chunks));
    assert.ok(calls[0].id, 'tool call id present');
    assert.equal(calls[0].type, 'function');
    assert.equal(calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(calls[0].function.arguments), mockToolArguments(WEATHER_TOOL, question));
    assert.deepEqual(finishReasonsOf(chunks), ['tool_calls']);
    assert.equal(chunks.filter(isUsageChunk).length, 0);

    // the SDK's helper agrees
    const runner = client.chat.completions.stream({
      model: 'my-gpt',
      messages: [{ role: 'user', content: question }],
      tools: [WEATHER_TOOL],
    });
    const final = await runner.finalChatCompletion();
    const tc = final.choices[0].message.tool_calls;
    assert.equal(tc.length, 1);
    assert.equal(tc[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(tc[0].function.arguments), mockToolArguments(WEATHER_TOOL, question));
  });

  it('streams the legacy completions endpoint', async () => {
    const stream = await client.completions.create({ model: 'my-gpt', prompt: 'legacy stream', stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.text ?? '';
    assert.equal(text, 'Hello from mock: legacy stream');
  });

  it('handles concurrent streams', async () => {
    const N = 8;
    const outs = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const s = await client.chat.completions.create({
          model: 'my-gpt',
          messages: [{ role: 'user', content: `stream ${i}` }],
          stream: true,
        });
        return contentOf(await collect(s));
      }),
    );
    outs.forEach((o, i) => assert.equal(o, expectedChatText(`stream ${i}`)));
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
