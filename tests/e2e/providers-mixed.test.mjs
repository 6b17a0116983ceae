// One gateway, one worker, OpenAI-shaped and translated deployments side by
// side: each request must reach its own upstream whatever the previous
// request on the same worker (and so the same reused upstream handle) was.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import {
  startAnthropicMock,
  startTokenServer,
  startGoogleMock,
  writeServiceAccount,
  isolatedProviderEnv,
  claudeText,
  geminiText,
} from './lib/mock-providers.mjs';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, freePort, makeTempDir, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf } from './lib/clients.mjs';

const CLAUDE = 'claude-sonnet-4@20250514';

describe('providers: mixed deployments on one worker', () => {
  let oai;
  let ant;
  let tok;
  let g;
  let sluice;
  let client;
  let anth;
  let dir;

  before(async () => {
    oai = await startMock();
    ant = await startAnthropicMock();
    tok = await startTokenServer();
    g = await startGoogleMock({ tokens: tok });
    dir = makeTempDir('sluice-e2e-gcp-');
    const creds = writeServiceAccount(dir, tok.tokenUri);
    sluice = await startSluice({
      workers: 1,
      config: `
model_list:
  - model_name: gpt
    litellm_params:
      model: openai/gpt-upstream
      api_base: ${oai.baseURL}
      api_key: sk-openai-upstream
  - model_name: claude
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20241022
      api_base: ${ant.url}
      api_key: sk-ant-test
  - model_name: gemini
    litellm_params:
      model: vertex_ai/gemini-2.0-flash
      vertex_project: test-proj
      vertex_location: us-central1
      vertex_credentials: ${creds}
      api_base: ${g.url}
  - model_name: claude-vertex
    litellm_params:
      model: vertex_ai/${CLAUDE}
      vertex_project: test-proj
      vertex_location: us-central1
      vertex_credentials: ${creds}
      api_base: ${g.vertexModelURL('anthropic', CLAUDE)}
  - model_name: studio
    litellm_params:
      model: gemini/gemini-2.0-flash
      api_key: test-gemini-key
      api_base: ${g.studioBase}
general_settings:
  master_key: ${MASTER_KEY}
`,
      env: isolatedProviderEnv(dir, await freePort()),
    });
    client = openaiClient(sluice);
    anth = new Anthropic({ baseURL: sluice.baseURL, apiKey: MASTER_KEY, maxRetries: 0, timeout: 20000 });
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all([oai?.close(), ant?.close(), tok?.close(), g?.close()]);
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  const chat = async (model, text, stream = false) => {
    try {
      if (stream) return contentOf(await collect(await client.chat.completions.create({ model, messages: [{ role: 'user', content: text }], stream })));
      return (await client.chat.completions.create({ model, messages: [{ role: 'user', content: text }] })).choices[0].message.content;
    } catch (e) {
      return `error ${e.status}: ${e.message}`;
    }
  };
  const messages = async (model, text) => {
    try {
      const m = await anth.messages.create({ model, max_tokens: 50, messages: [{ role: 'user', content: text }] });
      return m.content?.[0]?.text ?? JSON.stringify(m).slice(0, 200);
    } catch (e) {
      return `error ${e.status}: ${e.message}`;
    }
  };

  const cases = [
    ['OpenAI chat -> anthropic/', () => ant, () => chat('claude', 'to claude'), claudeText('to claude')],
    ['OpenAI chat stream -> anthropic/', () => ant, () => chat('claude', 'to claude s', true), claudeText('to claude s')],
    ['OpenAI chat -> vertex_ai/gemini', () => g, () => chat('gemini', 'to gemini'), geminiText('to gemini')],
    ['OpenAI chat stream -> vertex_ai/gemini', () => g, () => chat('gemini', 'to gemini s', true), geminiText('to gemini s')],
    ['OpenAI chat -> gemini/ (AI Studio)', () => g, () => chat('studio', 'to studio'), geminiText('to studio')],
    ['OpenAI chat -> vertex_ai/claude', () => g, () => chat('claude-vertex', 'to vclaude'), claudeText('to vclaude')],
    ['/v1/messages -> anthropic/ (pass-through)', () => ant, () => messages('claude', 'msg claude'), claudeText('msg claude')],
    ['/v1/messages -> vertex_ai/claude (pass-through)', () => g, () => messages('claude-vertex', 'msg vclaude'), claudeText('msg vclaude')],
  ];

  for (const [name, target, run, expected] of cases) {
    it(`after an openai/ request: ${name} reaches its own upstream`, async () => {
      oai.clearRequests();
      target().clearRequests();
      assert.equal(await chat('gpt', 'to gpt'), expectedChatText('to gpt'));
      const got = await run();
      assert.equal(
        oai.requests.length,
        1,
        `the OpenAI upstream got only the gpt request; also got: ${oai.requests
          .slice(1)
          .map((r) => `${r.method} ${r.path} ${r.rawBody.slice(0, 60)}`)
          .join(' | ')}`,
      );
      assert.equal(target().requests.length, 1, 'the target upstream got the request');
      assert.equal(got, expected);
    });
  }

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
