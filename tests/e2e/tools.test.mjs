// Tool calling round trip through sluice (non-streaming).
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startMock, mockToolArguments, expectedToolResultText } from './lib/mock-upstream.mjs';
import { startSluice, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient } from './lib/clients.mjs';

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
  {
    type: 'function',
    function: { name: 'unused_tool', parameters: { type: 'object', properties: {} } },
  },
];

describe('tool calling', () => {
  let mock;
  let sluice;
  let client;

  before(async () => {
    mock = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: tool-model
    litellm_params:
      model: hosted_vllm/upstream-tool-model
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

  it('round-trips tools -> tool_calls -> tool result -> final text', async () => {
    mock.clearRequests();
    const question = 'Where is my order #123?';
    const messages = [{ role: 'user', content: question }];

    const first = await client.chat.completions.create({ model: 'tool-model', messages, tools: TOOLS, tool_choice: 'auto' });
    const choice = first.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.role, 'assistant');
    const calls = choice.message.tool_calls;
    assert.ok(Array.isArray(calls) && calls.length === 1, JSON.stringify(choice.message));
    assert.equal(calls[0].type, 'function');
    assert.ok(calls[0].id, 'tool call id present');
    assert.equal(calls[0].function.name, 'lookup_order');
    const args = JSON.parse(calls[0].function.arguments);
    assert.deepEqual(args, mockToolArguments(TOOLS[0], question));

    // upstream got the tools unchanged
    const up1 = mock.requests[0].body;
    assert.deepEqual(up1.tools, TOOLS);
    assert.equal(up1.tool_choice, 'auto');
    assert.equal(up1.model, 'upstream-tool-model');

    // run the "tool" and send the result back
    const toolResult = JSON.stringify({ order: 123, status: 'shipped', eta: 'tomorrow' });
    messages.push(choice.message);
    messages.push({ role: 'tool', tool_call_id: calls[0].id, content: toolResult });
    const second = await client.chat.completions.create({ model: 'tool-model', messages, tools: TOOLS });
    assert.equal(second.choices[0].finish_reason, 'stop');
    const text = second.choices[0].message.content;
    assert.equal(text, expectedToolResultText(toolResult));
    assert.ok(text.includes('shipped'));

    // upstream saw the assistant tool_calls message and the tool message intact
    const up2 = mock.requests[1].body;
    assert.equal(up2.messages.length, 3);
    assert.equal(up2.messages[1].role, 'assistant');
    assert.equal(up2.messages[1].tool_calls[0].id, calls[0].id);
    assert.equal(up2.messages[1].tool_calls[0].function.name, 'lookup_order');
    assert.deepEqual(JSON.parse(up2.messages[1].tool_calls[0].function.arguments), args);
    assert.deepEqual(up2.messages[2], { role: 'tool', tool_call_id: calls[0].id, content: toolResult });
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
