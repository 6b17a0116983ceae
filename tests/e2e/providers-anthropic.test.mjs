// anthropic/ deployments behind the OpenAI API: chat requests translated to
// the Messages API and the answers (and event streams) translated back.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startAnthropicMock,
  isolatedProviderEnv,
  claudeText,
  claudeToolResultText,
  schemaArgs,
  CLAUDE_TOOL_PREAMBLE,
  CLAUDE_CACHE_READ,
  CLAUDE_CACHE_CREATION,
} from './lib/mock-providers.mjs';
import { startSluice, freePort, makeTempDir, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, OpenAI, collect, contentOf, toolCallsOf, finishReasonsOf } from './lib/clients.mjs';
import fs from 'node:fs';

const UPSTREAM_MODEL = 'claude-3-5-sonnet-20241022';

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'lookup_order',
      description: 'Find an order by customer question',
      parameters: {
        type: 'object',
        properties: { query: { type: 'string' }, limit: { type: 'integer' }, urgent: { type: 'boolean' } },
        required: ['query'],
      },
    },
  },
];

// Text of an Anthropic `content`/`system` value (string or text blocks).
function textOf(v) {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.filter((b) => b.type === 'text').map((b) => b.text).join('');
  return '';
}

function config(mockURL, extra = '') {
  return `
model_list:
  - model_name: claude
    litellm_params:
      model: anthropic/${UPSTREAM_MODEL}
      api_base: ${mockURL}
      api_key: sk-ant-test
general_settings:
  master_key: ${MASTER_KEY}
${extra}`;
}

describe('providers: anthropic (OpenAI API in front)', () => {
  let ant;
  let sluice;
  let client;
  let env;
  let home;

  before(async () => {
    ant = await startAnthropicMock();
    home = makeTempDir('sluice-e2e-home-');
    env = isolatedProviderEnv(home, await freePort());
    sluice = await startSluice({ config: config(ant.url), env });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await ant?.close();
      if (home) fs.rmSync(home, { recursive: true, force: true });
    }
  });

  // The upstream usage of a recorded request: the body's, or message_start's
  // with message_delta's output_tokens for a stream.
  function upstreamUsage(rec) {
    if (rec.response) return rec.response.usage;
    const start = rec.events.find(([n]) => n === 'message_start')[1].message.usage;
    const delta = rec.events.find(([n]) => n === 'message_delta')[1].usage;
    return { ...start, ...delta };
  }

  function checkUsage(usage, rec) {
    const up = upstreamUsage(rec);
    assert.ok(usage, 'usage present');
    // LiteLLM counts every input token the request was billed for: plain
    // input plus cache reads plus cache writes.
    const expectPrompt = up.input_tokens + CLAUDE_CACHE_READ + CLAUDE_CACHE_CREATION;
    assert.equal(usage.prompt_tokens, expectPrompt, `prompt_tokens = input_tokens + cache_read + cache_creation (${JSON.stringify(usage)}, upstream ${JSON.stringify(up)})`);
    assert.equal(usage.completion_tokens, up.output_tokens);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert.equal(usage.prompt_tokens_details?.cached_tokens, CLAUDE_CACHE_READ, `prompt_tokens_details.cached_tokens: ${JSON.stringify(usage)}`);
  }

  it('translates a chat request to POST /v1/messages (system extracted, max_tokens defaulted, x-api-key)', async () => {
    ant.clearRequests();
    const res = await client.chat.completions.create({
      model: 'claude',
      messages: [
        { role: 'system', content: 'You are terse.' },
        { role: 'user', content: 'Say hi' },
      ],
      temperature: 0.3,
      top_p: 0.9,
      stop: ['END'],
    });
    assert.equal(ant.requests.length, 1);
    const rec = ant.requests[0];
    assert.equal(rec.method, 'POST');
    assert.equal(rec.path, '/v1/messages');
    assert.equal(rec.headers['x-api-key'], 'sk-ant-test');
    assert.match(rec.headers['anthropic-version'] || '', /^\d{4}-\d{2}-\d{2}$/, 'anthropic-version header');
    assert.equal(rec.headers.authorization, undefined, 'no Authorization header to Anthropic');
    assert.ok(!rec.rawBody.includes(MASTER_KEY), 'the client key does not reach Anthropic');
    const b = rec.body;
    assert.equal(b.model, UPSTREAM_MODEL);
    assert.equal(textOf(b.system), 'You are terse.', `system: ${JSON.stringify(b.system)}`);
    assert.equal(b.messages.length, 1, `messages: ${JSON.stringify(b.messages)}`);
    assert.equal(b.messages[0].role, 'user');
    assert.equal(textOf(b.messages[0].content), 'Say hi');
    assert.ok(!b.messages.some((m) => m.role === 'system'), 'no system role left in messages');
    assert.equal(b.max_tokens, 4096, 'max_tokens defaults to 4096');
    assert.equal(b.temperature, 0.3);
    assert.equal(b.top_p, 0.9);
    assert.deepEqual(b.stop_sequences, ['END']);
    assert.ok(!b.stream, 'not streamed');

    assert.equal(res.object, 'chat.completion');
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.equal(res.choices[0].message.content, claudeText('Say hi'));
    assert.equal(res.choices[0].finish_reason, 'stop', 'end_turn -> stop');
    checkUsage(res.usage, rec);
  });

  it('passes an explicit max_tokens through', async () => {
    ant.clearRequests();
    await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'short' }], max_tokens: 77 });
    assert.equal(ant.requests[0].body.max_tokens, 77);
    ant.clearRequests();
    await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'short' }], max_completion_tokens: 55 });
    assert.equal(ant.requests[0].body.max_tokens, 55, 'max_completion_tokens -> max_tokens');
  });

  it('maps stop_reason max_tokens -> length and stop_sequence -> stop (streamed and not)', async () => {
    const q = 'tell me a long story';
    const full = claudeText(q).split(' ');
    ant.clearRequests();
    const res = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: q }], max_tokens: 3 });
    assert.equal(ant.requests[0].response.stop_reason, 'max_tokens');
    assert.equal(res.choices[0].finish_reason, 'length');
    assert.equal(res.choices[0].message.content, full.slice(0, 3).join(' '));
    const chunks = await collect(await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: q }], max_tokens: 3, stream: true }));
    assert.deepEqual(finishReasonsOf(chunks), ['length']);
    assert.equal(contentOf(chunks), full.slice(0, 3).join(' '));

    ant.clearRequests();
    const cut = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'one two STOPHERE three' }], stop: 'STOPHERE' });
    assert.deepEqual(ant.requests[0].body.stop_sequences, ['STOPHERE'], 'a string stop becomes a one-element stop_sequences');
    assert.equal(ant.requests[0].response.stop_reason, 'stop_sequence');
    assert.equal(cut.choices[0].finish_reason, 'stop');
    assert.equal(cut.choices[0].message.content, claudeText('one two '));
  });

  it('round-trips tools: input_schema out, tool_use back as tool_calls, tool results as tool_result blocks', async () => {
    ant.clearRequests();
    const question = 'Where is my order #123?';
    const messages = [{ role: 'user', content: question }];
    const first = await client.chat.completions.create({ model: 'claude', messages, tools: TOOLS, tool_choice: 'auto' });

    const up1 = ant.requests[0].body;
    assert.deepEqual(up1.tools, [
      { name: 'lookup_order', description: 'Find an order by customer question', input_schema: TOOLS[0].function.parameters },
    ]);
    assert.deepEqual(up1.tool_choice, { type: 'auto' });

    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls', 'tool_use -> tool_calls');
    assert.equal(choice.message.content, CLAUDE_TOOL_PREAMBLE, 'the text block before tool_use is the content');
    const calls = choice.message.tool_calls;
    assert.ok(Array.isArray(calls) && calls.length === 1, JSON.stringify(choice.message));
    const toolUse = ant.requests[0].response.content[1];
    assert.equal(calls[0].id, toolUse.id);
    assert.equal(calls[0].type, 'function');
    assert.equal(calls[0].function.name, 'lookup_order');
    assert.deepEqual(JSON.parse(calls[0].function.arguments), schemaArgs(TOOLS[0].function.parameters, question));

    const toolResult = JSON.stringify({ order: 123, status: 'shipped' });
    messages.push(choice.message, { role: 'tool', tool_call_id: calls[0].id, content: toolResult });
    const second = await client.chat.completions.create({ model: 'claude', messages, tools: TOOLS });
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.equal(second.choices[0].message.content, claudeToolResultText(toolResult));

    const up2 = ant.requests[1].body;
    assert.equal(up2.messages.length, 3, JSON.stringify(up2.messages));
    assert.equal(up2.messages[1].role, 'assistant');
    const blocks = up2.messages[1].content;
    assert.ok(Array.isArray(blocks), 'assistant content is a block list');
    const use = blocks.find((bl) => bl.type === 'tool_use');
    assert.ok(use, `tool_use block in the assistant turn: ${JSON.stringify(blocks)}`);
    assert.equal(use.id, calls[0].id);
    assert.equal(use.name, 'lookup_order');
    assert.deepEqual(use.input, JSON.parse(calls[0].function.arguments));
    assert.equal(up2.messages[2].role, 'user');
    const res = up2.messages[2].content;
    assert.ok(Array.isArray(res), 'tool result turn is a block list');
    assert.equal(res[0].type, 'tool_result');
    assert.equal(res[0].tool_use_id, calls[0].id);
    assert.equal(textOf(res[0].content), toolResult);
  });

  it('streams text: deltas concatenate, finish_reason stop, no usage chunk unless asked', async () => {
    ant.clearRequests();
    const chunks = await collect(await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'stream please' }], stream: true }));
    assert.equal(ant.requests[0].body.stream, true);
    assert.equal(contentOf(chunks), claudeText('stream please'));
    assert.deepEqual(finishReasonsOf(chunks), ['stop']);
    assert.ok(chunks.every((c) => c.object === 'chat.completion.chunk'));
    assert.ok(chunks.every((c) => c.usage == null), `no usage without include_usage: ${JSON.stringify(chunks.filter((c) => c.usage))}`);
    assert.ok(chunks.every((c) => c.choices.length === 1), 'every chunk has a choice (no usage-only chunk)');
  });

  it('streams with include_usage: one final usage chunk with cached tokens', async () => {
    ant.clearRequests();
    const chunks = await collect(
      await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'count me' }], stream: true, stream_options: { include_usage: true } }),
    );
    assert.equal(contentOf(chunks), claudeText('count me'));
    const withUsage = chunks.filter((c) => c.usage);
    assert.equal(withUsage.length, 1, `exactly one chunk carries usage: ${JSON.stringify(withUsage)}`);
    const last = chunks[chunks.length - 1];
    assert.equal(last, withUsage[0], 'the usage chunk is the last one');
    assert.deepEqual(last.choices, []);
    checkUsage(last.usage, ant.requests[0]);
  });

  it('streams a tool call: id, name and input_json_delta pieces assembled', async () => {
    ant.clearRequests();
    const q = 'stream the lookup';
    const chunks = await collect(await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: q }], tools: TOOLS, stream: true }));
    const calls = toolCallsOf(chunks);
    assert.equal(calls.length, 1, JSON.stringify(chunks));
    const toolUse = ant.requests[0].events.find(([n, d]) => n === 'content_block_start' && d.content_block.type === 'tool_use')[1].content_block;
    assert.equal(calls[0].id, toolUse.id);
    assert.equal(calls[0].type, 'function');
    assert.equal(calls[0].function.name, 'lookup_order');
    assert.deepEqual(JSON.parse(calls[0].function.arguments), schemaArgs(TOOLS[0].function.parameters, q));
    assert.equal(contentOf(chunks), CLAUDE_TOOL_PREAMBLE);
    assert.deepEqual(finishReasonsOf(chunks), ['tool_calls']);
  });

  for (const [status, type, message, expectStatus] of [
    [429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit (mock)', 429],
    // LiteLLM maps Anthropic's 529 "overloaded" to InternalServerError (500), and so does sluice
    [529, 'overloaded_error', 'Overloaded (mock anthropic)', 500],
  ]) {
    for (const stream of [false, true]) {
      it(`maps an Anthropic ${status} ${type} to ${expectStatus} with the upstream message (stream=${stream})`, async () => {
        ant.setBehavior({ error: { status, type, message } });
        try {
          await assert.rejects(
            client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'x' }], stream }),
            (err) => {
              assert.ok(err instanceof OpenAI.APIError, `expected APIError, got ${err.constructor.name}: ${err.message}`);
              assert.equal(err.status, expectStatus, `status ${err.status}: ${err.message}`);
              assert.ok(err.message.includes(message), `message contains the upstream text: ${err.message}`);
              assert.ok(!err.message.includes('sk-ant-test'), 'provider key leaked');
              return true;
            },
          );
        } finally {
          ant.setBehavior({ error: null });
        }
      });
    }
  }

  it('refuses an unsupported parameter (logit_bias) with a 400 naming it, without calling Anthropic', async () => {
    ant.clearRequests();
    await assert.rejects(
      client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'x' }], logit_bias: { 50256: -100 } }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${err.constructor.name} ${err.status}: ${err.message}`);
        assert.equal(err.status, 400);
        assert.ok(err.message.includes('logit_bias'), `message names the param: ${err.message}`);
        return true;
      },
    );
    assert.equal(ant.requests.length, 0, 'nothing sent upstream');
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
    assert.ok(!sluice.stderr().includes('sk-ant-test') && !sluice.stdout().includes('sk-ant-test'), 'provider key not logged');
  });
});

describe('providers: anthropic with litellm_settings.drop_params', () => {
  let ant;
  let sluice;
  let home;

  before(async () => {
    ant = await startAnthropicMock();
    home = makeTempDir('sluice-e2e-home-');
    sluice = await startSluice({ config: config(ant.url, 'litellm_settings:\n  drop_params: true\n'), env: isolatedProviderEnv(home, await freePort()) });
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await ant?.close();
      if (home) fs.rmSync(home, { recursive: true, force: true });
    }
  });

  it('drops logit_bias instead of refusing it', async () => {
    const client = openaiClient(sluice);
    const res = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'drop it' }], logit_bias: { 50256: -100 } });
    assert.equal(res.choices[0].message.content, claudeText('drop it'));
    assert.equal(ant.requests.length, 1);
    assert.ok(!('logit_bias' in ant.requests[0].body), `logit_bias reached the upstream: ${ant.requests[0].rawBody}`);
    assert.ok(!ant.requests[0].rawBody.includes('logit_bias'));
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
