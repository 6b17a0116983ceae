// In-process mocks of the non-OpenAI upstreams sluice translates to, for the
// providers-*.test.mjs suites. Everything listens on 127.0.0.1 only.
//
//   const tok = await startTokenServer();                 // Google OAuth token endpoint
//   tok.tokenUri, tok.fetches, tok.rejected, tok.issued, tok.setBehavior({delayMs})
//   writeServiceAccount(dir, tok.tokenUri)  -> path of a service-account JSON (fixture key)
//
//   const ant = await startAnthropicMock();                // api.anthropic.com stand-in
//   ant.url  (api_base),  ant.requests, ant.setBehavior({error, ...})
//
//   const g = await startGoogleMock({ tokens: tok, apiKey: 'test-gemini-key' });
//   // Vertex AI (Gemini generateContent + Claude rawPredict) and AI Studio (v1beta)
//   g.url (Vertex api_base), g.studioBase (AI Studio api_base), g.requests
//
//   const az = await startAzureMock({ upstream: openaiMock });  // /openai/deployments/...
//
// All answers are deterministic; the exported helpers compute what a test
// should expect (claudeText, geminiText, schemaArgs, ...).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const FIXTURES_DIR = path.resolve(here, '..', 'fixtures');
export const SA_PRIVATE_KEY = fs.readFileSync(path.join(FIXTURES_DIR, 'test-sa-key.pem'), 'utf8');
export const SA_PUBLIC_KEY = fs.readFileSync(path.join(FIXTURES_DIR, 'test-sa-key.pub.pem'), 'utf8');
export const SA_EMAIL = 'sluice-e2e@test-proj.iam.gserviceaccount.com';
export const SA_KEY_ID = 'e2e0000000000000000000000000000000000001';
export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';

// ---------------------------------------------------------------------------
// Deterministic content helpers

export function words(s) {
  return String(s ?? '')
    .split(/\s+/)
    .filter(Boolean).length;
}

function pieces(s, n) {
  const out = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

// Arguments a mock puts into a tool call, from a JSON schema (any type case):
// strings get `text`, numbers 42, booleans true, arrays [], objects {}.
export function schemaArgs(schema, text) {
  const props = (schema && schema.properties) || {};
  const args = {};
  for (const [name, s] of Object.entries(props)) {
    const t = String((s && s.type) || 'string').toLowerCase();
    if (t === 'number' || t === 'integer') args[name] = 42;
    else if (t === 'boolean') args[name] = true;
    else if (t === 'array') args[name] = [];
    else if (t === 'object') args[name] = {};
    else args[name] = text;
  }
  return args;
}

export const claudeText = (userText) => `Hello from claude: ${userText}`;
export const claudeToolResultText = (content) => `Claude saw the tool result: ${content}`;
export const CLAUDE_TOOL_PREAMBLE = 'Let me look that up.';
export const geminiText = (userText) => `Hello from gemini: ${userText}`;
export const geminiToolResultText = (response) => `Gemini saw the function response: ${response}`;
// A user text containing this makes the Gemini mock answer with a safety block.
export const GEMINI_BLOCK_TRIGGER = 'PLEASE-BLOCK-ME';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// A tiny recording HTTP server shared by the mocks.

async function recordingServer(handler) {
  const requests = [];
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body = null;
      try {
        body = rawBody ? JSON.parse(rawBody) : null;
      } catch {
        body = null;
      }
      const u = new URL(req.url, 'http://mock.invalid');
      let p = u.pathname;
      try {
        p = decodeURIComponent(p);
      } catch {}
      const record = {
        method: req.method,
        url: req.url,
        path: p,
        query: Object.fromEntries(u.searchParams),
        headers: { ...req.headers },
        rawBody,
        body,
        status: null,
      };
      requests.push(record);
      Promise.resolve()
        .then(() => handler(req, res, record))
        .catch((e) => {
          if (!res.headersSent) {
            res.writeHead(500, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ error: { message: `mock crashed: ${e.stack || e}` } }));
          } else res.destroy();
        });
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = server.address().port;
  let closed = null;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    clearRequests() {
      requests.length = 0;
    },
    lastRequest(pred) {
      for (let i = requests.length - 1; i >= 0; i--) if (!pred || pred(requests[i])) return requests[i];
      return undefined;
    },
    close() {
      if (!closed) {
        closed = new Promise((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
          server.closeAllConnections?.();
        });
      }
      return closed;
    },
  };
}

function sendJSON(res, record, status, obj, headers = {}) {
  const data = JSON.stringify(obj);
  record.status = status;
  record.response = obj;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...headers });
  res.end(data);
}

// ---------------------------------------------------------------------------
// Google OAuth token endpoint

function b64urlJSON(part) {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
}

/**
 * Verifies the RS256 JWT-bearer assertion with the fixture public key and the
 * claims a service account must send; answers ya29.test-<n>.
 *   tok.tokenUri     what goes into the credentials file
 *   tok.fetches      accepted token requests
 *   tok.rejected     [{reason, ...}] refused ones
 *   tok.issued       Set of tokens handed out
 */
export async function startTokenServer({ publicKey = SA_PUBLIC_KEY, clientEmail = SA_EMAIL, keyId = SA_KEY_ID } = {}) {
  let behavior = { delayMs: 0, expiresIn: 3600 };
  const issued = new Set();
  const rejected = [];
  let fetches = 0;
  let n = 0;
  const pub = crypto.createPublicKey(publicKey);
  let tokenUri;
  const srv = await recordingServer(async (req, res, record) => {
    const reject = (reason) => {
      rejected.push({ reason, record });
      sendJSON(res, record, 400, { error: 'invalid_grant', error_description: `mock token server: ${reason}` });
    };
    if (req.method !== 'POST' || record.path !== '/token') return reject(`unexpected ${req.method} ${record.path}`);
    if (!/^application\/x-www-form-urlencoded/i.test(record.headers['content-type'] || '')) return reject(`content-type ${record.headers['content-type']}`);
    const form = new URLSearchParams(record.rawBody);
    if (form.get('grant_type') !== JWT_BEARER_GRANT) return reject(`grant_type ${form.get('grant_type')}`);
    const jwt = form.get('assertion') || '';
    const parts = jwt.split('.');
    if (parts.length !== 3) return reject('assertion is not a JWS compact serialization');
    let header, claims;
    try {
      header = b64urlJSON(parts[0]);
      claims = b64urlJSON(parts[1]);
    } catch (e) {
      return reject(`assertion not base64url JSON: ${e.message}`);
    }
    record.jwtHeader = header;
    record.jwtClaims = claims;
    if (header.alg !== 'RS256') return reject(`alg ${header.alg}`);
    if (keyId && header.kid !== keyId) return reject(`kid ${header.kid}`);
    const ok = crypto.verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), pub, Buffer.from(parts[2], 'base64url'));
    if (!ok) return reject('bad RS256 signature');
    if (claims.iss !== clientEmail) return reject(`iss ${claims.iss}`);
    if (claims.aud !== tokenUri) return reject(`aud ${claims.aud} (expected ${tokenUri})`);
    const scopes = String(claims.scope || '').split(/\s+/);
    if (!scopes.includes(CLOUD_PLATFORM_SCOPE)) return reject(`scope ${claims.scope}`);
    const now = Math.floor(Date.now() / 1000);
    if (!Number.isInteger(claims.iat) || Math.abs(claims.iat - now) > 300) return reject(`iat ${claims.iat} (now ${now})`);
    if (!Number.isInteger(claims.exp) || claims.exp <= now || claims.exp - claims.iat > 3600) return reject(`exp ${claims.exp}`);
    fetches++;
    const token = `ya29.test-${++n}`;
    if (behavior.delayMs > 0) await sleep(behavior.delayMs);
    issued.add(token);
    sendJSON(res, record, 200, { access_token: token, expires_in: behavior.expiresIn, token_type: 'Bearer' });
  });
  tokenUri = `${srv.url}/token`;
  return {
    ...srv,
    tokenUri,
    issued,
    rejected,
    get fetches() {
      return fetches;
    },
    setBehavior(patch) {
      behavior = { ...behavior, ...patch };
    },
  };
}

// A service-account credentials file for the fixture key; returns its path.
export function writeServiceAccount(dir, tokenUri, { name = 'sa.json', projectId = 'test-proj' } = {}) {
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    JSON.stringify(
      {
        type: 'service_account',
        project_id: projectId,
        private_key_id: SA_KEY_ID,
        private_key: SA_PRIVATE_KEY,
        client_email: SA_EMAIL,
        client_id: '100000000000000000001',
        auth_uri: `${tokenUri.replace(/\/token$/, '')}/auth`,
        token_uri: tokenUri,
      },
      null,
      2,
    ),
  );
  return file;
}

// ---------------------------------------------------------------------------
// Anthropic Messages API (also the body of Claude on Vertex rawPredict)

function anthText(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((b) => b && b.type === 'text')
    .map((b) => b.text)
    .join('');
}

function anthInputTokens(body) {
  let n = words(typeof body.system === 'string' ? body.system : anthText(body.system));
  for (const m of body.messages || []) {
    if (typeof m.content === 'string') n += words(m.content) + 1;
    else for (const b of m.content || []) n += words(b.text ?? (b.content !== undefined ? JSON.stringify(b.content) : JSON.stringify(b.input ?? ''))) + 1;
  }
  return Math.max(1, n);
}

// The content blocks the mock answers with, for a Messages request body.
export function claudeAnswer(body) {
  const msgs = Array.isArray(body.messages) ? body.messages : [];
  const last = msgs[msgs.length - 1] || {};
  const results = Array.isArray(last.content) ? last.content.filter((b) => b && b.type === 'tool_result') : [];
  const tools = Array.isArray(body.tools) ? body.tools : [];
  if (results.length > 0) {
    const r = results[0];
    const c = typeof r.content === 'string' ? r.content : anthText(r.content);
    return { blocks: [{ type: 'text', text: claudeToolResultText(c) }], stop: 'end_turn' };
  }
  const userText = anthText(last.content);
  const choice = body.tool_choice?.type;
  if (tools.length > 0 && choice !== 'none') {
    const tool = choice === 'tool' ? tools.find((t) => t.name === body.tool_choice.name) || tools[0] : tools[0];
    return {
      blocks: [
        { type: 'text', text: CLAUDE_TOOL_PREAMBLE },
        { type: 'tool_use', id: 'toolu_01MockA1b2C3d4E5f6G7h8', name: tool.name, input: schemaArgs(tool.input_schema, userText) },
      ],
      stop: 'tool_use',
    };
  }
  // Plain text, cut like the real API at a stop sequence or at max_tokens
  // (one token per word here).
  let text = claudeText(userText);
  for (const seq of body.stop_sequences || []) {
    const at = text.indexOf(seq);
    if (at >= 0) return { blocks: [{ type: 'text', text: text.slice(0, at) }], stop: 'stop_sequence', stopSequence: seq };
  }
  const w = text.split(' ');
  if (Number.isInteger(body.max_tokens) && body.max_tokens < w.length) {
    return { blocks: [{ type: 'text', text: w.slice(0, body.max_tokens).join(' ') }], stop: 'max_tokens' };
  }
  return { blocks: [{ type: 'text', text }], stop: 'end_turn' };
}

export const CLAUDE_CACHE_READ = 11;
export const CLAUDE_CACHE_CREATION = 3;

function claudeUsage(body, blocks) {
  const out = blocks.reduce((n, b) => n + (b.type === 'text' ? words(b.text) : words(JSON.stringify(b.input)) + 1), 0);
  return {
    input_tokens: anthInputTokens(body),
    cache_creation_input_tokens: CLAUDE_CACHE_CREATION,
    cache_read_input_tokens: CLAUDE_CACHE_READ,
    output_tokens: Math.max(1, out),
    service_tier: 'standard',
  };
}

let msgSeq = 0;

function claudeMessage(body, model) {
  const { blocks, stop, stopSequence = null } = claudeAnswer(body);
  return {
    id: `msg_01Mock${String(++msgSeq).padStart(6, '0')}`,
    type: 'message',
    role: 'assistant',
    model,
    content: blocks,
    stop_reason: stop,
    stop_sequence: stopSequence,
    usage: claudeUsage(body, blocks),
  };
}

// Anthropic's SSE event sequence for a message (text in 5-char deltas, tool
// input JSON in 7-char deltas).
export function claudeEvents(msg) {
  const ev = [];
  const { content, usage, ...rest } = msg;
  ev.push(['message_start', { type: 'message_start', message: { ...rest, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } } }]);
  content.forEach((b, index) => {
    if (b.type === 'text') {
      ev.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } }]);
      if (index === 0) ev.push(['ping', { type: 'ping' }]);
      for (const p of pieces(b.text, 5)) ev.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: p } }]);
    } else {
      ev.push(['content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } }]);
      if (index === 0) ev.push(['ping', { type: 'ping' }]);
      ev.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } }]);
      for (const p of pieces(JSON.stringify(b.input), 7)) ev.push(['content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: p } }]);
    }
    ev.push(['content_block_stop', { type: 'content_block_stop', index }]);
  });
  ev.push(['message_delta', { type: 'message_delta', delta: { stop_reason: msg.stop_reason, stop_sequence: msg.stop_sequence }, usage: { output_tokens: usage.output_tokens } }]);
  ev.push(['message_stop', { type: 'message_stop' }]);
  return ev;
}

function writeEvents(res, record, events, format) {
  record.status = 200;
  record.events = events;
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
  for (const [name, data] of events) {
    if (format === 'anthropic') res.write(`event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
    else res.write(`data: ${JSON.stringify(data)}\r\n\r\n`);
  }
  res.end();
}

const ANTHROPIC_ERROR_TYPES = { 400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error', 413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error', 529: 'overloaded_error' };

function anthropicError(res, record, status, message, type) {
  sendJSON(res, record, status, { type: 'error', error: { type: type || ANTHROPIC_ERROR_TYPES[status] || 'api_error', message } }, { 'request-id': 'req_mock_err' });
}

function serveClaude(res, record, b, { model, stream }) {
  const body = record.body;
  if (b.error) return anthropicError(res, record, b.error.status, b.error.message, b.error.type);
  if (!body || typeof body !== 'object') return anthropicError(res, record, 400, 'mock: body is not JSON');
  if (!Array.isArray(body.messages) || body.messages.length === 0) return anthropicError(res, record, 400, 'messages: Field required');
  if (!Number.isInteger(body.max_tokens)) return anthropicError(res, record, 400, 'max_tokens: Field required');
  const msg = claudeMessage(body, model);
  if (stream) return writeEvents(res, record, claudeEvents(msg), 'anthropic');
  sendJSON(res, record, 200, msg, { 'request-id': `req_mock_${msgSeq}` });
}

/** Anthropic API: POST /v1/messages and /v1/messages/count_tokens. */
export async function startAnthropicMock({ apiKey = 'sk-ant-test' } = {}) {
  let behavior = { error: null };
  const srv = await recordingServer(async (req, res, record) => {
    const b = behavior;
    if (record.headers['x-api-key'] !== apiKey) return anthropicError(res, record, 401, `invalid x-api-key`);
    if (req.method === 'POST' && record.path === '/v1/messages/count_tokens') {
      if (!record.body) return anthropicError(res, record, 400, 'mock: body is not JSON');
      return sendJSON(res, record, 200, { input_tokens: anthInputTokens(record.body) });
    }
    if (req.method === 'POST' && record.path === '/v1/messages') {
      return serveClaude(res, record, b, { model: record.body?.model, stream: record.body?.stream === true });
    }
    anthropicError(res, record, 404, `mock: no route for ${req.method} ${record.path}`, 'not_found_error');
  });
  return {
    ...srv,
    setBehavior(patch) {
      behavior = { ...behavior, ...patch };
    },
    reset() {
      behavior = { error: null };
      srv.clearRequests();
    },
  };
}

// ---------------------------------------------------------------------------
// Gemini generateContent (Vertex AI and AI Studio)

function partsText(parts) {
  return (parts || [])
    .filter((p) => typeof p.text === 'string')
    .map((p) => p.text)
    .join('');
}

function geminiPromptTokens(body) {
  let n = words(partsText(body.systemInstruction?.parts));
  for (const c of body.contents || []) n += words(partsText(c.parts)) + 1;
  return Math.max(1, n);
}

export function geminiAnswer(body) {
  const contents = Array.isArray(body.contents) ? body.contents : [];
  const last = contents[contents.length - 1] || {};
  const fr = (last.parts || []).find((p) => p.functionResponse);
  if (fr) return { parts: [{ text: geminiToolResultText(JSON.stringify(fr.functionResponse.response)) }], finish: 'STOP' };
  const text = partsText(last.parts);
  if (text.includes(GEMINI_BLOCK_TRIGGER)) return { blocked: true };
  const decls = (body.tools || []).flatMap((t) => t.functionDeclarations || t.function_declarations || []);
  const mode = body.toolConfig?.functionCallingConfig?.mode;
  if (decls.length > 0 && mode !== 'NONE') {
    const allowed = body.toolConfig?.functionCallingConfig?.allowedFunctionNames;
    const d = (allowed && decls.find((x) => allowed.includes(x.name))) || decls[0];
    return { parts: [{ functionCall: { name: d.name, args: schemaArgs(d.parameters, text) } }], finish: 'STOP' };
  }
  return { parts: [{ text: geminiText(text) }], finish: 'STOP' };
}

export const GEMINI_CACHED = 4;

let gSeq = 0;

function geminiResponses(body, { stream }) {
  const a = geminiAnswer(body);
  const prompt = geminiPromptTokens(body);
  const responseId = `mockResp${++gSeq}`;
  const common = { modelVersion: 'gemini-2.0-flash-001', createTime: '2025-01-01T00:00:00.000000Z', responseId };
  if (a.blocked) {
    const ratings = [
      { category: 'HARM_CATEGORY_DANGEROUS_CONTENT', probability: 'HIGH', probabilityScore: 0.93, severity: 'HARM_SEVERITY_HIGH', severityScore: 0.9, blocked: true },
      { category: 'HARM_CATEGORY_HARASSMENT', probability: 'NEGLIGIBLE', probabilityScore: 0.01, severity: 'HARM_SEVERITY_NEGLIGIBLE', severityScore: 0.01 },
    ];
    return [{ candidates: [{ finishReason: 'SAFETY', safetyRatings: ratings }], usageMetadata: { promptTokenCount: prompt, totalTokenCount: prompt }, ...common }];
  }
  const outTokens = a.parts.reduce((n, p) => n + (p.text ? words(p.text) : words(JSON.stringify(p.functionCall.args)) + 1), 0);
  const usageAt = (cand) => ({ promptTokenCount: prompt, candidatesTokenCount: cand, totalTokenCount: prompt + cand, cachedContentTokenCount: GEMINI_CACHED });
  const cand = (parts, finish) => {
    const c = { content: { role: 'model', parts } };
    if (finish) {
      c.finishReason = finish;
      c.avgLogprobs = -0.12;
    }
    return c;
  };
  if (!stream || a.parts[0].functionCall) {
    return [{ candidates: [cand(a.parts, a.finish)], usageMetadata: usageAt(outTokens), ...common }];
  }
  // Text in 6-char pieces; usage grows with every chunk as Google's does.
  const ps = pieces(a.parts[0].text, 6);
  let sofar = '';
  return ps.map((p, i) => {
    sofar += p;
    const lastOne = i === ps.length - 1;
    return { candidates: [cand([{ text: p }], lastOne ? a.finish : undefined)], usageMetadata: usageAt(lastOne ? outTokens : words(sofar)), ...common };
  });
}

function googleError(res, record, status, message, statusName) {
  sendJSON(res, record, status, { error: { code: status, message, status: statusName } });
}

const VERTEX_RE = /^\/v1\/projects\/([^/]+)\/locations\/([^/]+)\/publishers\/(google|anthropic)\/models\/([^/:]+):([A-Za-z]+)$/;
const STUDIO_RE = /^\/v1beta\/models\/([^/:]+):([A-Za-z]+)$/;

/**
 * Vertex AI (bearer token from `tokens`) and AI Studio (x-goog-api-key) on one port.
 *   g.url         Vertex api_base (bare origin: sluice appends /v1/projects/...)
 *   g.studioBase  AI Studio api_base (…/v1beta)
 *   g.vertexModelURL(publisher, model)  the full model URL (…/publishers/<p>/models/<m>)
 * Each record gets .kind: 'gemini' | 'claude' | 'studio', and .model/.method.
 */
export async function startGoogleMock({ tokens, apiKey = 'test-gemini-key', project = 'test-proj', location = 'us-central1' } = {}) {
  let behavior = { error: null, delayMs: 0 };
  const srv = await recordingServer(async (req, res, record) => {
    const b = behavior;
    if (b.delayMs > 0) await sleep(b.delayMs);
    let m;
    if (req.method === 'POST' && (m = VERTEX_RE.exec(record.path))) {
      const [, proj, loc, publisher, model, method] = m;
      Object.assign(record, { kind: publisher === 'google' ? 'gemini' : 'claude', model, method, project: proj, location: loc });
      const auth = record.headers.authorization || '';
      const tok = /^Bearer (ya29\.test-\d+)$/.exec(auth);
      if (!tok || (tokens && !tokens.issued.has(tok[1]))) return googleError(res, record, 401, 'Request had invalid authentication credentials. Expected OAuth 2 access token.', 'UNAUTHENTICATED');
      if (proj !== project || loc !== location) return googleError(res, record, 404, `mock: unknown project/location ${proj}/${loc}`, 'NOT_FOUND');
      if (publisher === 'anthropic') {
        if (method !== 'rawPredict' && method !== 'streamRawPredict') return googleError(res, record, 404, `mock: no method ${method}`, 'NOT_FOUND');
        return serveClaude(res, record, b, { model, stream: method === 'streamRawPredict' });
      }
      return serveGemini(res, record, b, method);
    }
    if (req.method === 'POST' && (m = STUDIO_RE.exec(record.path))) {
      Object.assign(record, { kind: 'studio', model: m[1], method: m[2] });
      if (record.headers['x-goog-api-key'] !== apiKey) return googleError(res, record, 400, 'API key not valid. Please pass a valid API key.', 'INVALID_ARGUMENT');
      return serveGemini(res, record, b, m[2]);
    }
    googleError(res, record, 404, `mock: no route for ${req.method} ${record.path}`, 'NOT_FOUND');
  });

  function serveGemini(res, record, b, method) {
    if (b.error) return googleError(res, record, b.error.status, b.error.message, b.error.statusName || 'INTERNAL');
    const body = record.body;
    if (!body || !Array.isArray(body.contents) || body.contents.length === 0) return googleError(res, record, 400, 'mock: contents is required', 'INVALID_ARGUMENT');
    if (method === 'generateContent') return sendJSON(res, record, 200, geminiResponses(body, { stream: false })[0]);
    if (method === 'streamGenerateContent') {
      const evs = geminiResponses(body, { stream: true }).map((r) => ['', r]);
      if (record.query.alt !== 'sse') return sendJSON(res, record, 200, evs.map((e) => e[1])); // JSON array form
      return writeEvents(res, record, evs, 'google');
    }
    googleError(res, record, 404, `mock: no method ${method}`, 'NOT_FOUND');
  }

  return {
    ...srv,
    studioBase: `${srv.url}/v1beta`,
    vertexModelURL: (publisher, model) => `${srv.url}/v1/projects/${project}/locations/${location}/publishers/${publisher}/models/${model}`,
    setBehavior(patch) {
      behavior = { ...behavior, ...patch };
    },
    reset() {
      behavior = { error: null, delayMs: 0 };
      srv.clearRequests();
    },
  };
}

// ---------------------------------------------------------------------------
// Azure OpenAI: checks the Azure URL shape, then hands the request to an
// OpenAI mock (lib/mock-upstream.mjs) at /v1/<endpoint> and relays its answer.

const AZURE_RE = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings|completions)$/;

export async function startAzureMock({ upstream }) {
  const srv = await recordingServer(
    (req, res, record) =>
      new Promise((resolve) => {
        const m = AZURE_RE.exec(record.path);
        if (req.method !== 'POST' || !m) {
          sendJSON(res, record, 404, { error: { code: '404', message: `mock azure: Resource not found (${req.method} ${record.url})` } });
          return resolve();
        }
        record.deployment = m[1];
        record.endpoint = m[2];
        const fwd = http.request(
          `${upstream.url}/v1/${m[2]}`,
          { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(record.rawBody) } },
          (up) => {
            record.status = up.statusCode;
            res.writeHead(up.statusCode, { 'content-type': up.headers['content-type'] || 'application/json' });
            up.pipe(res);
            up.on('end', resolve);
          },
        );
        fwd.on('error', (e) => {
          sendJSON(res, record, 502, { error: { message: `mock azure relay: ${e.message}` } });
          resolve();
        });
        fwd.end(record.rawBody);
      }),
  );
  return srv;
}

// ---------------------------------------------------------------------------

// Environment for a sluice under test that must not pick up the machine's
// provider settings or reach a real Google host: provider variables removed,
// gcloud's ADC looked up in an empty directory, the GCE metadata server
// pointed at a loopback port nothing listens on.
export function isolatedProviderEnv(emptyDir, deadPort, extra = {}) {
  return {
    AZURE_API_KEY: null,
    AZURE_API_BASE: null,
    AZURE_API_VERSION: null,
    ANTHROPIC_API_BASE: null,
    GEMINI_API_KEY: null,
    GOOGLE_API_KEY: null,
    GOOGLE_APPLICATION_CREDENTIALS: null,
    VERTEXAI_PROJECT: null,
    VERTEXAI_LOCATION: null,
    VERTEX_PROJECT: null,
    VERTEX_LOCATION: null,
    CLOUDSDK_CONFIG: emptyDir,
    HOME: emptyDir,
    GCE_METADATA_HOST: `127.0.0.1:${deadPort}`,
    ...extra,
  };
}
