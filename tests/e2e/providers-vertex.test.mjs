// Vertex AI: Gemini (generateContent) and Claude (rawPredict) with a Google
// service account. The token endpoint, Vertex and the credentials all live on
// 127.0.0.1: the service-account file's token_uri points at the mock token
// server, which checks the RS256 assertion with the fixture public key.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Anthropic from '@anthropic-ai/sdk';
import {
  startTokenServer,
  startGoogleMock,
  writeServiceAccount,
  isolatedProviderEnv,
  geminiText,
  schemaArgs,
  claudeText,
  claudeAnswer,
  GEMINI_BLOCK_TRIGGER,
  GEMINI_CACHED,
  SA_PRIVATE_KEY,
} from './lib/mock-providers.mjs';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, freePort, makeTempDir, fetchJSON, authHeaders, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, OpenAI, collect, contentOf, toolCallsOf, finishReasonsOf } from './lib/clients.mjs';

const CLAUDE = 'claude-sonnet-4@20250514';
const GEMINI_PATH = '/v1/projects/test-proj/locations/us-central1/publishers/google/models/gemini-2.0-flash';
const CLAUDE_PATH = `/v1/projects/test-proj/locations/us-central1/publishers/anthropic/models/${CLAUDE}`;

const TOOLS = [
  {
    type: 'function',
    function: {
      name: 'lookup_order',
      description: 'Find an order',
      parameters: { type: 'object', properties: { query: { type: 'string' }, limit: { type: 'integer' } }, required: ['query'] },
    },
  },
  { type: 'function', function: { name: 'cancel_order', description: 'Cancel an order', parameters: { type: 'object', properties: { id: { type: 'string' } } } } },
];

const partsText = (parts) => (parts || []).filter((p) => typeof p.text === 'string').map((p) => p.text).join('');

describe('providers: vertex_ai (Gemini and Claude) with a service account', () => {
  let tok;
  let g;
  let oai;
  let sluice;
  let client;
  let dir;
  let missingCreds;

  before(async () => {
    tok = await startTokenServer();
    // a slow token endpoint, so that concurrent first requests overlap the fetch
    tok.setBehavior({ delayMs: 300 });
    g = await startGoogleMock({ tokens: tok });
    oai = await startMock();
    dir = makeTempDir('sluice-e2e-gcp-');
    const creds = writeServiceAccount(dir, tok.tokenUri);
    missingCreds = path.join(dir, 'does-not-exist', 'missing-sa.json');
    const vertex = (model, apiBase, credentials = creds) => `
    litellm_params:
      model: vertex_ai/${model}
      vertex_project: test-proj
      vertex_location: us-central1
      vertex_credentials: ${credentials}
      api_base: ${apiBase}`;
    sluice = await startSluice({
      config: `
model_list:
  - model_name: gemini
${vertex('gemini-2.0-flash', g.url)}
  - model_name: claude-vertex
${vertex(CLAUDE, g.url)}
  - model_name: claude-vertex-modelurl
${vertex(CLAUDE, g.vertexModelURL('anthropic', CLAUDE))}
  - model_name: gemini-nocreds
${vertex('gemini-2.0-flash', g.url, missingCreds)}
  - model_name: gpt
    litellm_params:
      model: openai/gpt-upstream
      api_base: ${oai.baseURL}
      api_key: sk-openai-upstream
general_settings:
  master_key: ${MASTER_KEY}
`,
      env: isolatedProviderEnv(dir, await freePort()),
    });
    client = openaiClient(sluice);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all([tok?.close(), g?.close(), oai?.close()]);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const geminiReqs = () => g.requests.filter((r) => r.kind === 'gemini');

  // ---- Gemini

  it('20 concurrent first requests share ONE token fetch (RS256 assertion verified)', async () => {
    const res = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: `concurrent ${i}` }] })),
    );
    res.forEach((r, i) => assert.equal(r.choices[0].message.content, geminiText(`concurrent ${i}`)));
    assert.deepEqual(tok.rejected.map((r) => r.reason), [], 'no assertion was refused');
    assert.equal(tok.fetches, 1, `token fetches: ${tok.fetches}`);
    const t = tok.requests[0];
    assert.equal(t.jwtClaims.iss, 'sluice-e2e@test-proj.iam.gserviceaccount.com');
    assert.equal(t.jwtClaims.aud, tok.tokenUri);
    assert.equal(t.jwtClaims.scope, 'https://www.googleapis.com/auth/cloud-platform');
    assert.equal(geminiReqs().length, 20);
    for (const r of geminiReqs()) {
      assert.equal(r.headers.authorization, 'Bearer ya29.test-1');
      assert.equal(r.path, `${GEMINI_PATH}:generateContent`);
    }
    tok.setBehavior({ delayMs: 0 });
  });

  it('maps the request body: contents user/model, systemInstruction, generationConfig, tools, toolConfig', async () => {
    g.clearRequests();
    const question = 'Where is order 7?';
    const res = await client.chat.completions.create({
      model: 'gemini',
      messages: [
        { role: 'system', content: 'You are an order bot.' },
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Hi! How can I help?' },
        { role: 'user', content: question },
      ],
      temperature: 0.4,
      max_tokens: 64,
      stop: ['END', 'STOP'],
      tools: TOOLS,
      tool_choice: { type: 'function', function: { name: 'lookup_order' } },
    });
    const rec = geminiReqs()[0];
    assert.equal(rec.path, `${GEMINI_PATH}:generateContent`);
    const b = rec.body;
    assert.deepEqual(
      b.contents.map((c) => [c.role, partsText(c.parts)]),
      [
        ['user', 'Hello'],
        ['model', 'Hi! How can I help?'],
        ['user', question],
      ],
    );
    assert.equal(partsText(b.systemInstruction?.parts), 'You are an order bot.', JSON.stringify(b.systemInstruction));
    assert.equal(b.generationConfig?.temperature, 0.4);
    assert.equal(b.generationConfig?.maxOutputTokens, 64);
    assert.deepEqual(b.generationConfig?.stopSequences, ['END', 'STOP']);
    const decls = (b.tools || []).flatMap((t) => t.functionDeclarations || []);
    assert.deepEqual(
      decls.map((d) => d.name),
      ['lookup_order', 'cancel_order'],
      JSON.stringify(b.tools),
    );
    assert.equal(decls[0].description, 'Find an order');
    assert.deepEqual(Object.keys(decls[0].parameters.properties), ['query', 'limit']);
    assert.deepEqual(b.toolConfig, { functionCallingConfig: { mode: 'ANY', allowedFunctionNames: ['lookup_order'] } });

    const choice = res.choices[0];
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.equal(choice.message.tool_calls.length, 1);
    assert.equal(choice.message.tool_calls[0].type, 'function');
    assert.ok(choice.message.tool_calls[0].id, 'tool call id');
    assert.equal(choice.message.tool_calls[0].function.name, 'lookup_order');
    assert.deepEqual(JSON.parse(choice.message.tool_calls[0].function.arguments), schemaArgs(TOOLS[0].function.parameters, question));
  });

  it('round-trips a tool call: functionCall in the model turn, functionResponse in the next', async () => {
    g.clearRequests();
    const messages = [{ role: 'user', content: 'Find order 9' }];
    const first = await client.chat.completions.create({ model: 'gemini', messages, tools: TOOLS });
    const call = first.choices[0].message.tool_calls?.[0];
    assert.ok(call, JSON.stringify(first.choices[0]));
    assert.equal(geminiReqs()[0].body.toolConfig, undefined, 'no toolConfig without tool_choice');
    const result = JSON.stringify({ order: 9, status: 'shipped' });
    messages.push(first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: result });
    const second = await client.chat.completions.create({ model: 'gemini', messages, tools: TOOLS });
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.ok(second.choices[0].message.content.includes('shipped'), second.choices[0].message.content);
    const contents = geminiReqs()[1].body.contents;
    assert.equal(contents.length, 3, JSON.stringify(contents));
    assert.equal(contents[1].role, 'model');
    const fc = contents[1].parts.find((p) => p.functionCall)?.functionCall;
    assert.ok(fc, JSON.stringify(contents[1]));
    assert.equal(fc.name, 'lookup_order');
    assert.deepEqual(fc.args, JSON.parse(call.function.arguments));
    const fr = contents[2].parts.find((p) => p.functionResponse)?.functionResponse;
    assert.ok(fr, JSON.stringify(contents[2]));
    assert.equal(fr.name, 'lookup_order');
    assert.ok(JSON.stringify(fr.response).includes('shipped'), JSON.stringify(fr));
  });

  it('maps usageMetadata to usage (cached tokens included)', async () => {
    g.clearRequests();
    const res = await client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: 'usage please' }] });
    const um = geminiReqs()[0].response.usageMetadata;
    assert.equal(res.usage.prompt_tokens, um.promptTokenCount);
    assert.equal(res.usage.completion_tokens, um.candidatesTokenCount);
    assert.equal(res.usage.total_tokens, um.totalTokenCount);
    assert.equal(res.usage.prompt_tokens_details?.cached_tokens, GEMINI_CACHED, JSON.stringify(res.usage));
    assert.equal(res.choices[0].finish_reason, 'stop');
  });

  it('streams from :streamGenerateContent?alt=sse: deltas concatenate, usage chunk with include_usage', async () => {
    g.clearRequests();
    const chunks = await collect(
      await client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: 'stream a gemini answer' }], stream: true, stream_options: { include_usage: true } }),
    );
    const rec = geminiReqs()[0];
    assert.equal(rec.path, `${GEMINI_PATH}:streamGenerateContent`);
    assert.equal(rec.query.alt, 'sse');
    assert.ok(rec.events.length > 3, 'the answer came in several events');
    assert.equal(contentOf(chunks), geminiText('stream a gemini answer'));
    assert.deepEqual(finishReasonsOf(chunks), ['stop']);
    const withUsage = chunks.filter((c) => c.usage);
    assert.equal(withUsage.length, 1, JSON.stringify(withUsage));
    const um = rec.events[rec.events.length - 1][1].usageMetadata;
    assert.equal(withUsage[0].usage.prompt_tokens, um.promptTokenCount);
    assert.equal(withUsage[0].usage.completion_tokens, um.candidatesTokenCount, 'the last (cumulative) usageMetadata counts, not a sum');
    assert.equal(withUsage[0].usage.total_tokens, um.totalTokenCount);

    const plain = await collect(await client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: 'no usage' }], stream: true }));
    assert.equal(contentOf(plain), geminiText('no usage'));
    assert.ok(plain.every((c) => !c.usage), 'no usage chunk unless asked');
  });

  it('streams a function call as tool_calls', async () => {
    const q = 'stream the lookup';
    const chunks = await collect(await client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: q }], tools: TOOLS, stream: true }));
    const calls = toolCallsOf(chunks);
    assert.equal(calls.length, 1, JSON.stringify(chunks));
    assert.equal(calls[0].function.name, 'lookup_order');
    assert.ok(calls[0].id);
    assert.deepEqual(JSON.parse(calls[0].function.arguments), schemaArgs(TOOLS[0].function.parameters, q));
    assert.deepEqual(finishReasonsOf(chunks), ['tool_calls']);
  });

  it('a safety-blocked answer (finishReason SAFETY) is finish_reason content_filter', async () => {
    const res = await client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: `say ${GEMINI_BLOCK_TRIGGER}` }] });
    assert.equal(res.choices[0].finish_reason, 'content_filter');
    assert.ok(!res.choices[0].message.content, `no content: ${JSON.stringify(res.choices[0].message)}`);
    const chunks = await collect(await client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: `say ${GEMINI_BLOCK_TRIGGER}` }], stream: true }));
    assert.deepEqual(finishReasonsOf(chunks), ['content_filter']);
    assert.equal(contentOf(chunks), '');
  });

  it('maps a Vertex 429 RESOURCE_EXHAUSTED to 429 with the upstream message', async () => {
    g.setBehavior({ error: { status: 429, message: 'Quota exceeded for aiplatform.googleapis.com/generate_content_requests (mock)', statusName: 'RESOURCE_EXHAUSTED' } });
    try {
      await assert.rejects(client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: 'x' }] }), (err) => {
        assert.ok(err instanceof OpenAI.RateLimitError, `${err.constructor.name} ${err.status}: ${err.message}`);
        assert.ok(err.message.includes('Quota exceeded'), err.message);
        return true;
      });
    } finally {
      g.setBehavior({ error: null });
    }
  });

  // ---- Claude on Vertex

  for (const [name, form] of [
    ['claude-vertex', 'api_base = origin'],
    ['claude-vertex-modelurl', 'api_base = full model URL'],
  ]) {
    it(`Claude on Vertex (${form}): OpenAI chat -> :rawPredict / :streamRawPredict, anthropic_version, no model`, async () => {
      g.clearRequests();
      const res = await client.chat.completions.create({
        model: name,
        messages: [
          { role: 'system', content: 'Be kind.' },
          { role: 'user', content: 'hello vertex claude' },
        ],
      });
      const rec = g.requests[0];
      assert.ok(rec, 'Vertex received the request');
      assert.equal(rec.path, `${CLAUDE_PATH}:rawPredict`, `url: ${rec.url}`);
      assert.match(rec.headers.authorization || '', /^Bearer ya29\.test-\d+$/);
      assert.equal(rec.body.anthropic_version, 'vertex-2023-10-16');
      assert.ok(!('model' in rec.body), `no model in the body: ${rec.rawBody}`);
      assert.equal(rec.body.max_tokens, 4096);
      assert.equal(res.choices[0].message.content, claudeText('hello vertex claude'));
      assert.equal(res.choices[0].finish_reason, 'stop');
      assert.ok(res.usage.prompt_tokens > 0);

      g.clearRequests();
      const chunks = await collect(await client.chat.completions.create({ model: name, messages: [{ role: 'user', content: 'stream vertex claude' }], stream: true }));
      const srec = g.requests[0];
      assert.equal(srec.path, `${CLAUDE_PATH}:streamRawPredict`, `url: ${srec.url}`);
      assert.equal(srec.body.anthropic_version, 'vertex-2023-10-16');
      assert.ok(!('model' in srec.body));
      assert.equal(srec.body.stream, true);
      assert.equal(contentOf(chunks), claudeText('stream vertex claude'));
      assert.deepEqual(finishReasonsOf(chunks), ['stop']);
    });

    it(`Claude on Vertex (${form}): Anthropic SDK /v1/messages passes through to rawPredict`, async () => {
      const sent = [];
      const anth = new Anthropic({
        baseURL: sluice.baseURL,
        apiKey: MASTER_KEY,
        maxRetries: 0,
        timeout: 20000,
        fetch: async (url, init) => {
          sent.push(init.body);
          return fetch(url, init);
        },
      });
      g.clearRequests();
      const req = {
        model: name,
        max_tokens: 512,
        system: [{ type: 'text', text: 'Cached system prompt.', cache_control: { type: 'ephemeral' } }],
        messages: [{ role: 'user', content: 'hi through messages' }],
      };
      const msg = await anth.messages.create(req, { headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } });
      const rec = g.requests[0];
      assert.ok(rec, 'Vertex received the request');
      assert.equal(rec.path, `${CLAUDE_PATH}:rawPredict`, `url: ${rec.url}`);
      assert.match(rec.headers.authorization || '', /^Bearer ya29\.test-\d+$/);
      assert.equal(rec.headers['anthropic-beta'], 'prompt-caching-2024-07-31');
      const { model, ...rest } = JSON.parse(sent[0]);
      assert.equal(model, name);
      assert.deepEqual(rec.body, { anthropic_version: 'vertex-2023-10-16', ...rest }, 'body = client body - model + anthropic_version');
      assert.deepEqual({ ...msg }, rec.response);

      g.clearRequests();
      const final = await anth.messages.stream({ ...req, messages: [{ role: 'user', content: 'stream through messages' }] }).finalMessage();
      const srec = g.requests[0];
      assert.ok(srec, 'Vertex received the streaming request');
      assert.equal(srec.path, `${CLAUDE_PATH}:streamRawPredict`, `url: ${srec.url}`);
      assert.equal(srec.body.anthropic_version, 'vertex-2023-10-16');
      assert.ok(!('model' in srec.body));
      assert.deepEqual(final.content, claudeAnswer(srec.body).blocks);
      assert.equal(final.content[0].text, claudeText('stream through messages'));
    });
  }

  // ---- credentials

  it('a deployment whose credentials file is missing answers 401 naming the file; others still work', async () => {
    const before = g.requests.length;
    for (const stream of [false, true]) {
      await assert.rejects(client.chat.completions.create({ model: 'gemini-nocreds', messages: [{ role: 'user', content: 'x' }], stream }), (err) => {
        assert.ok(err instanceof OpenAI.APIError, `${err.constructor.name}: ${err.message}`);
        assert.equal(err.status, 401, err.message);
        assert.ok(err.message.includes(missingCreds), `message names the file: ${err.message}`);
        return true;
      });
    }
    const raw = await fetchJSON(sluice.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(), body: { model: 'gemini-nocreds', messages: [{ role: 'user', content: 'x' }] } });
    assert.equal(raw.status, 401);
    assert.ok(!raw.text.includes('PRIVATE KEY') && !raw.text.includes('ya29.'), raw.text);
    assert.equal(g.requests.length, before, 'nothing sent to Vertex');
    const ok = await client.chat.completions.create({ model: 'gemini', messages: [{ role: 'user', content: 'still here' }] });
    assert.equal(ok.choices[0].message.content, geminiText('still here'));
    const other = await client.chat.completions.create({ model: 'gpt', messages: [{ role: 'user', content: 'other model' }] });
    assert.equal(other.choices[0].message.content, expectedChatText('other model'));
  });

  it('one token fetch in all; shuts down cleanly; no key or token in the logs', async () => {
    assert.equal(tok.fetches, 1, `token fetches over the whole run: ${tok.fetches}`);
    await sluice.stop();
    const logs = sluice.stdout() + sluice.stderr();
    assert.ok(!logs.includes('ya29.test-'), 'access token not logged');
    const keyBody = SA_PRIVATE_KEY.split('\n')[1];
    assert.ok(!logs.includes(keyBody), 'private key not logged');
  });
});
