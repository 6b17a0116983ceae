// gemini/ deployments (Google AI Studio): generateContent under /v1beta with
// the key in x-goog-api-key (never in the URL, no bearer token).
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startGoogleMock, isolatedProviderEnv, geminiText, schemaArgs, GEMINI_BLOCK_TRIGGER } from './lib/mock-providers.mjs';
import { startSluice, freePort, makeTempDir, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, OpenAI, collect, contentOf, finishReasonsOf } from './lib/clients.mjs';

const KEY = 'test-gemini-key';

describe('providers: gemini (AI Studio)', () => {
  let g;
  let sluice;
  let client;
  let home;

  before(async () => {
    g = await startGoogleMock({ apiKey: KEY });
    home = makeTempDir('sluice-e2e-home-');
    sluice = await startSluice({
      config: `
model_list:
  - model_name: studio
    litellm_params:
      model: gemini/gemini-2.0-flash
      api_key: ${KEY}
      api_base: ${g.studioBase}
  - model_name: studio-env-key
    litellm_params:
      model: gemini/gemini-2.0-flash
      api_base: ${g.studioBase}
general_settings:
  master_key: ${MASTER_KEY}
`,
      env: isolatedProviderEnv(home, await freePort(), { GEMINI_API_KEY: KEY }),
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await g?.close();
      if (home) fs.rmSync(home, { recursive: true, force: true });
    }
  });

  function checkStudio(rec, method) {
    assert.ok(rec, 'AI Studio received the request');
    assert.equal(rec.kind, 'studio', `path: ${rec.url}`);
    assert.equal(rec.path, `/v1beta/models/gemini-2.0-flash:${method}`);
    assert.equal(rec.headers['x-goog-api-key'], KEY);
    assert.equal(rec.headers.authorization, undefined, 'no Authorization header');
    assert.ok(!rec.url.includes(KEY), `the key is not in the URL: ${rec.url}`);
    assert.ok(!JSON.stringify(rec.headers).includes(MASTER_KEY), 'the client key does not reach Google');
  }

  it('chat -> POST /v1beta/models/gemini-2.0-flash:generateContent with x-goog-api-key', async () => {
    g.clearRequests();
    const res = await client.chat.completions.create({
      model: 'studio',
      messages: [
        { role: 'system', content: 'Short answers.' },
        { role: 'user', content: 'hello studio' },
      ],
      temperature: 0.1,
      max_completion_tokens: 33,
    });
    const rec = g.requests[0];
    checkStudio(rec, 'generateContent');
    assert.deepEqual(rec.query, {});
    assert.equal(rec.body.systemInstruction?.parts?.[0]?.text, 'Short answers.');
    assert.deepEqual(rec.body.contents, [{ role: 'user', parts: [{ text: 'hello studio' }] }]);
    assert.equal(rec.body.generationConfig.temperature, 0.1);
    assert.equal(rec.body.generationConfig.maxOutputTokens, 33);
    assert.equal(res.choices[0].message.content, geminiText('hello studio'));
    assert.equal(res.choices[0].finish_reason, 'stop');
    const um = rec.response.usageMetadata;
    assert.equal(res.usage.prompt_tokens, um.promptTokenCount);
    assert.equal(res.usage.completion_tokens, um.candidatesTokenCount);
    assert.equal(res.usage.total_tokens, um.totalTokenCount);
  });

  it('streams from :streamGenerateContent?alt=sse', async () => {
    g.clearRequests();
    const chunks = await collect(await client.chat.completions.create({ model: 'studio', messages: [{ role: 'user', content: 'stream from studio' }], stream: true }));
    const rec = g.requests[0];
    checkStudio(rec, 'streamGenerateContent');
    assert.deepEqual(rec.query, { alt: 'sse' });
    assert.equal(contentOf(chunks), geminiText('stream from studio'));
    assert.deepEqual(finishReasonsOf(chunks), ['stop']);
  });

  it('function calling and safety blocks work the same as on Vertex', async () => {
    const tools = [{ type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } } }];
    const r = await client.chat.completions.create({ model: 'studio', messages: [{ role: 'user', content: 'time in Oslo' }], tools, tool_choice: 'required' });
    assert.equal(r.choices[0].finish_reason, 'tool_calls');
    assert.equal(r.choices[0].message.tool_calls[0].function.name, 'get_time');
    assert.deepEqual(JSON.parse(r.choices[0].message.tool_calls[0].function.arguments), schemaArgs(tools[0].function.parameters, 'time in Oslo'));
    assert.equal(g.lastRequest().body.toolConfig?.functionCallingConfig?.mode, 'ANY', 'tool_choice required -> mode ANY');
    const b = await client.chat.completions.create({ model: 'studio', messages: [{ role: 'user', content: GEMINI_BLOCK_TRIGGER }] });
    assert.equal(b.choices[0].finish_reason, 'content_filter');
  });

  it('GEMINI_API_KEY is used when the config has no api_key', async () => {
    g.clearRequests();
    const res = await client.chat.completions.create({ model: 'studio-env-key', messages: [{ role: 'user', content: 'env key' }] });
    assert.equal(res.choices[0].message.content, geminiText('env key'));
    checkStudio(g.requests[0], 'generateContent');
  });

  // LiteLLM turns Google's "API key not valid" 400 into an AuthenticationError.
  it('maps an invalid key (400 INVALID_ARGUMENT "API key not valid") to 401 with the upstream message', async () => {
    g.setBehavior({ error: { status: 400, message: 'API key not valid. Please pass a valid API key. (mock)', statusName: 'INVALID_ARGUMENT' } });
    try {
      await assert.rejects(client.chat.completions.create({ model: 'studio', messages: [{ role: 'user', content: 'x' }] }), (err) => {
        assert.ok(err instanceof OpenAI.AuthenticationError, `${err.constructor.name} ${err.status}: ${err.message}`);
        assert.equal(err.status, 401);
        assert.ok(err.message.includes('API key not valid'), err.message);
        assert.ok(!err.message.includes(KEY), 'key not echoed');
        return true;
      });
      // any other 400 stays a 400
      g.setBehavior({ error: { status: 400, message: 'Invalid value at generation_config.temperature (mock)', statusName: 'INVALID_ARGUMENT' } });
      await assert.rejects(client.chat.completions.create({ model: 'studio', messages: [{ role: 'user', content: 'x' }] }), (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `${err.constructor.name} ${err.status}: ${err.message}`);
        assert.ok(err.message.includes('generation_config.temperature'), err.message);
        return true;
      });
    } finally {
      g.setBehavior({ error: null });
    }
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
    assert.ok(!(sluice.stdout() + sluice.stderr()).includes(KEY), 'key not logged');
  });
});
