// In-process mock of an OpenAI-compatible upstream, used by the sluice e2e tests.
//
//   const mock = await startMock();
//   mock.url        -> "http://127.0.0.1:<port>"
//   mock.baseURL    -> "http://127.0.0.1:<port>/v1"  (what goes into api_base)
//   mock.requests   -> every request received: {method, path, headers, body, rawBody, ...}
//   mock.setBehavior({...}) / mock.reset()
//   mock.aborted    -> how many responses were cut off because the peer (sluice) closed the connection
//   mock.count(path?) -> how many requests arrived (optionally only those for one path)
//   mock.countsByPath() -> {path: n}
//   mock.failNext(n, {status, message, headers, ...}) -> the next n requests fail that way
//   await mock.close()
//
//   startMock({ tls: { key, cert } }) serves HTTPS with that PEM key and certificate instead
//   (url/baseURL then start with https://); every other field is a behaviour as above.
//
// Everything the mock answers is deterministic so the tests can compute the
// expected output with the exported helpers (expectedChatText, mockEmbedding, ...).

import http from 'node:http';
import https from 'node:https';

export const MOCK_CREATED = 1700000000;
const STREAM_PIECE = 4; // characters per content delta when streaming
const ARGS_PIECE = 5; // characters per tool-call arguments delta

const DEFAULT_BEHAVIOR = Object.freeze({
  // Wait this many ms before sending anything (timeouts, non-stream disconnects).
  delayMs: 0,
  // Force an error: {status, message, type, param, code, headers}. Sent instead of a normal
  // answer; `headers` (optional) are extra response headers, e.g. {'retry-after': '1'}.
  error: null,
  // Fail only the next `count` requests: {count, status, message, type, param, code, headers}
  // (same fields as `error`); the count goes down with each request, then the mock answers
  // normally again. `error` wins when both are set.
  failNext: null,
  // Streams (chat and completions): close the connection (no terminating chunk, no [DONE])
  // after this many SSE events have been written; 0/null = never.
  dropStreamAfter: null,
  // Streaming chat/completions: send the 200 headers, then wait this many ms before the first
  // SSE event (a stall before the first chunk, as opposed to delayMs which delays everything).
  streamStallMs: 0,
  // Slow/long stream: {chunks, intervalMs, text}. Applies to streaming chat requests.
  slowStream: null,
  // Override the assistant text of chat answers (non tool-call).
  content: null,
});

// ---------------------------------------------------------------------------
// Deterministic content helpers (also used by the tests to compute expectations)

export function textOf(content) {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (typeof part === 'string' ? part : part && part.type === 'text' ? part.text : ''))
      .join('');
  }
  return String(content);
}

export function expectedChatText(userText) {
  return `Hello from mock: ${userText}`;
}

export function expectedToolResultText(toolContent) {
  return `The tool returned: ${toolContent}`;
}

export function expectedCompletionText(prompt) {
  return `Hello from mock: ${prompt}`;
}

// Arguments the mock puts in a tool call for `tool` given the last user text:
// every string property gets the user text, numbers 42, booleans true.
export function mockToolArguments(tool, userText) {
  const props = tool?.function?.parameters?.properties || {};
  const args = {};
  for (const [name, schema] of Object.entries(props)) {
    const t = schema && schema.type;
    if (t === 'number' || t === 'integer') args[name] = 42;
    else if (t === 'boolean') args[name] = true;
    else if (t === 'array') args[name] = [];
    else if (t === 'object') args[name] = {};
    else args[name] = userText;
  }
  return args;
}

export const MOCK_EMBEDDING_DIM = 8;

// Deterministic float32-representable vector for an input string.
export function mockEmbedding(text) {
  let h = 2166136261;
  for (const ch of String(text)) {
    h ^= ch.codePointAt(0);
    h = Math.imul(h, 16777619) >>> 0;
  }
  const out = [];
  for (let j = 0; j < MOCK_EMBEDDING_DIM; j++) {
    const v = ((h >>> (j * 3)) % 1000) / 1000 - 0.5 + j * 0.125;
    out.push(Math.fround(v));
  }
  return out;
}

function countTokens(text) {
  const n = String(text).split(/\s+/).filter(Boolean).length;
  return n;
}

function promptTokensOfMessages(messages) {
  let n = 0;
  for (const m of messages || []) n += countTokens(textOf(m.content)) + 1;
  return Math.max(n, 1);
}

function usage(promptTokens, completionTokens) {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

function splitPieces(s, n) {
  const out = [];
  for (let i = 0; i < s.length; i += n) out.push(s.slice(i, i + n));
  return out;
}

function float32Base64(vec) {
  const buf = Buffer.alloc(vec.length * 4);
  vec.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

function embeddingInputs(input) {
  if (typeof input === 'string') return [input];
  if (Array.isArray(input)) {
    if (input.length > 0 && typeof input[0] === 'number') return [input.join(' ')];
    return input.map((x) => (Array.isArray(x) ? x.join(' ') : String(x)));
  }
  return [String(input)];
}

// ---------------------------------------------------------------------------

export async function startMock(initialBehavior = {}) {
  const { tls = null, ...initial } = initialBehavior;
  const requests = [];
  let behavior = { ...DEFAULT_BEHAVIOR, ...initial };
  let seq = 0;
  const stats = { aborted: 0, completed: 0, dropped: 0 };
  const sockets = new Set();
  const timers = new Set();

  function later(fn, ms) {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  }
  function cancel(t) {
    if (t) {
      clearTimeout(t);
      timers.delete(t);
    }
  }

  const onRequest = (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      let body = null;
      let bodyError = null;
      if (rawBody.length > 0) {
        try {
          body = JSON.parse(rawBody);
        } catch (e) {
          bodyError = e;
        }
      }
      const url = new URL(req.url, 'http://mock');
      const record = {
        method: req.method,
        path: url.pathname,
        url: req.url,
        query: Object.fromEntries(url.searchParams),
        headers: { ...req.headers },
        rawBody,
        body,
        receivedAt: Date.now(),
        aborted: false,
        completed: false,
      };
      requests.push(record);
      const b = { ...behavior };
      if (!b.error && behavior.failNext && behavior.failNext.count > 0) {
        behavior = { ...behavior, failNext: { ...behavior.failNext, count: behavior.failNext.count - 1 } };
        b.error = behavior.failNext;
        if (behavior.failNext.count <= 0) behavior.failNext = null;
      }
      if (b.error) record.forcedStatus = b.error.status || 500;
      handle(req, res, record, bodyError, b);
    });
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, onRequest) : http.createServer(onRequest);

  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });

  function sendJSON(res, status, obj, extraHeaders = {}) {
    const data = JSON.stringify(obj);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(data),
      'x-request-id': `req_mock_${++seq}`,
      ...extraHeaders,
    });
    res.end(data);
  }

  function sendError(res, status, message, type = 'invalid_request_error', param = null, code = null, headers = {}) {
    sendJSON(res, status, { error: { message, type, param, code } }, headers);
  }

  // Tracks whether the response finished or the peer went away first.
  function track(res, record, onAbort) {
    let done = false;
    res.on('finish', () => {
      done = true;
      record.completed = true;
      stats.completed++;
    });
    res.on('close', () => {
      if (!done) {
        record.aborted = true;
        stats.aborted++;
        if (onAbort) onAbort();
      }
    });
  }

  function handle(req, res, record, bodyError, b) {
    let pending = null;
    track(res, record, () => cancel(pending));

    const go = () => {
      pending = null;
      if (res.destroyed) return;
      if (b.error) {
        const e = b.error;
        sendError(res, e.status || 500, e.message || 'mock error', e.type || 'invalid_request_error', e.param ?? null, e.code ?? null, e.headers || {});
        return;
      }
      if (bodyError) {
        sendError(res, 400, `mock upstream could not parse JSON body: ${bodyError.message}`);
        return;
      }
      route(req, res, record, b, (fn, ms) => {
        pending = later(fn, ms);
      });
    };
    if (b.delayMs > 0) pending = later(go, b.delayMs);
    else go();
  }

  function route(req, res, record, b, schedule) {
    const p = record.path.replace(/\/+$/, '');
    const body = record.body || {};
    if (req.method === 'POST' && (p === '/v1/chat/completions' || p === '/chat/completions')) {
      return chat(res, body, b, schedule);
    }
    if (req.method === 'POST' && (p === '/v1/embeddings' || p === '/embeddings')) {
      return embeddings(res, body);
    }
    if (req.method === 'POST' && (p === '/v1/completions' || p === '/completions')) {
      return completions(res, body, schedule, b);
    }
    if (req.method === 'GET' && (p === '/v1/models' || p === '/models')) {
      return sendJSON(res, 200, {
        object: 'list',
        data: [{ id: 'upstream-model-name', object: 'model', created: MOCK_CREATED, owned_by: 'mock' }],
      });
    }
    sendError(res, 404, `mock upstream: no route for ${req.method} ${record.path}`, 'invalid_request_error', null, 'not_found');
  }

  function chat(res, body, b, schedule) {
    const id = `chatcmpl-mock${++seq}`;
    const model = body.model;
    const messages = Array.isArray(body.messages) ? body.messages : [];
    const last = messages[messages.length - 1] || {};
    const lastUser = [...messages].reverse().find((m) => m.role === 'user');
    const promptTokens = promptTokensOfMessages(messages);
    const tools = Array.isArray(body.tools) ? body.tools : [];

    let toolCall = null;
    let content;
    if (tools.length > 0 && last.role === 'user') {
      const tool = tools[0];
      toolCall = {
        id: `call_mock_${seq}`,
        type: 'function',
        function: {
          name: tool?.function?.name,
          arguments: JSON.stringify(mockToolArguments(tool, textOf(last.content))),
        },
      };
    } else if (last.role === 'tool') {
      content = expectedToolResultText(textOf(last.content));
    } else {
      content = b.content ?? expectedChatText(textOf(lastUser?.content));
    }

    if (!body.stream) {
      const completionTokens = toolCall ? countTokens(toolCall.function.arguments) + 1 : countTokens(content);
      const message = toolCall
        ? { role: 'assistant', content: null, tool_calls: [toolCall], refusal: null }
        : { role: 'assistant', content, refusal: null };
      return sendJSON(res, 200, {
        id,
        object: 'chat.completion',
        created: MOCK_CREATED,
        model,
        system_fingerprint: 'fp_mock',
        choices: [{ index: 0, message, logprobs: null, finish_reason: toolCall ? 'tool_calls' : 'stop' }],
        usage: usage(promptTokens, completionTokens),
      });
    }

    // ---- streaming
    const includeUsage = !!(body.stream_options && body.stream_options.include_usage === true);
    const base = (choices) => {
      const c = { id, object: 'chat.completion.chunk', created: MOCK_CREATED, model, system_fingerprint: 'fp_mock', choices };
      if (includeUsage) c.usage = null;
      return c;
    };
    const events = [];
    let completionTokens;
    if (toolCall) {
      events.push(
        base([
          {
            index: 0,
            delta: {
              role: 'assistant',
              content: null,
              tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.function.name, arguments: '' } }],
            },
            logprobs: null,
            finish_reason: null,
          },
        ]),
      );
      for (const piece of splitPieces(toolCall.function.arguments, ARGS_PIECE)) {
        events.push(base([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: piece } }] }, logprobs: null, finish_reason: null }]));
      }
      events.push(base([{ index: 0, delta: {}, logprobs: null, finish_reason: 'tool_calls' }]));
      completionTokens = countTokens(toolCall.function.arguments) + 1;
    } else {
      let pieces;
      if (b.slowStream) {
        const n = b.slowStream.chunks || 100;
        pieces = Array.from({ length: n }, (_, i) => `${b.slowStream.text ?? 'tick'}${i} `);
        content = pieces.join('');
      } else {
        pieces = splitPieces(content, STREAM_PIECE);
      }
      events.push(base([{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }]));
      for (const piece of pieces) {
        events.push(base([{ index: 0, delta: { content: piece }, logprobs: null, finish_reason: null }]));
      }
      events.push(base([{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }]));
      completionTokens = countTokens(content);
    }
    if (includeUsage) {
      events.push({ id, object: 'chat.completion.chunk', created: MOCK_CREATED, model, system_fingerprint: 'fp_mock', choices: [], usage: usage(promptTokens, completionTokens) });
    }
    streamEvents(res, events, b.slowStream ? b.slowStream.intervalMs ?? 50 : 0, schedule, b);
  }

  function streamEvents(res, events, intervalMs, schedule, b = {}) {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-request-id': `req_mock_${++seq}`,
    });
    if (typeof res.flushHeaders === 'function') res.flushHeaders();
    let i = 0;
    const dropAfter = b.dropStreamAfter > 0 ? b.dropStreamAfter : 0;
    const step = () => {
      if (res.destroyed || res.writableEnded) return;
      if (dropAfter && i >= dropAfter) {
        // cut the connection without the terminating chunk: what was written is flushed first
        // (socket.end), so the peer sees exactly `dropAfter` events and then EOF mid-body
        stats.dropped++;
        res.socket?.end();
        return;
      }
      if (i < events.length) {
        res.write(`data: ${JSON.stringify(events[i++])}\n\n`);
        if (intervalMs > 0) schedule(step, intervalMs);
        else step();
        return;
      }
      res.end('data: [DONE]\n\n');
    };
    if (b.streamStallMs > 0) schedule(step, b.streamStallMs);
    else step();
  }

  function embeddings(res, body) {
    const inputs = embeddingInputs(body.input);
    const fmt = body.encoding_format || 'float';
    const data = inputs.map((text, index) => {
      const vec = mockEmbedding(text);
      return { object: 'embedding', index, embedding: fmt === 'base64' ? float32Base64(vec) : vec };
    });
    const pt = Math.max(1, inputs.reduce((n, t) => n + countTokens(t), 0));
    sendJSON(res, 200, {
      object: 'list',
      data,
      model: body.model,
      usage: { prompt_tokens: pt, total_tokens: pt },
    });
  }

  function completions(res, body, schedule, b = {}) {
    const id = `cmpl-mock${++seq}`;
    const prompt = Array.isArray(body.prompt) ? body.prompt.join('') : textOf(body.prompt);
    const text = expectedCompletionText(prompt);
    const u = usage(Math.max(1, countTokens(prompt)), countTokens(text));
    if (!body.stream) {
      return sendJSON(res, 200, {
        id,
        object: 'text_completion',
        created: MOCK_CREATED,
        model: body.model,
        system_fingerprint: 'fp_mock',
        choices: [{ text, index: 0, logprobs: null, finish_reason: 'stop' }],
        usage: u,
      });
    }
    const includeUsage = !!(body.stream_options && body.stream_options.include_usage === true);
    const events = splitPieces(text, STREAM_PIECE).map((piece) => ({
      id,
      object: 'text_completion',
      created: MOCK_CREATED,
      model: body.model,
      choices: [{ text: piece, index: 0, logprobs: null, finish_reason: null }],
    }));
    events.push({ id, object: 'text_completion', created: MOCK_CREATED, model: body.model, choices: [{ text: '', index: 0, logprobs: null, finish_reason: 'stop' }] });
    if (includeUsage) events.push({ id, object: 'text_completion', created: MOCK_CREATED, model: body.model, choices: [], usage: u });
    streamEvents(res, events, 0, schedule, b);
  }

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = server.address().port;
  let closed = null;

  const mock = {
    port,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    baseURL: `${tls ? 'https' : 'http'}://127.0.0.1:${port}/v1`,
    requests,
    get aborted() {
      return stats.aborted;
    },
    get completed() {
      return stats.completed;
    },
    // streams cut on purpose by dropStreamAfter
    get dropped() {
      return stats.dropped;
    },
    get behavior() {
      return { ...behavior };
    },
    setBehavior(patch = {}) {
      behavior = { ...behavior, ...patch };
      return mock;
    },
    // Restore default behaviour; optionally also forget recorded requests.
    reset({ clearRequests = false } = {}) {
      behavior = { ...DEFAULT_BEHAVIOR };
      if (clearRequests) requests.length = 0;
      return mock;
    },
    clearRequests() {
      requests.length = 0;
    },
    // How many requests arrived, all or only those for `path` (e.g. '/v1/chat/completions').
    count(path) {
      if (!path) return requests.length;
      let n = 0;
      for (const r of requests) if (r.path === path) n++;
      return n;
    },
    countsByPath() {
      const out = {};
      for (const r of requests) out[r.path] = (out[r.path] || 0) + 1;
      return out;
    },
    // The next n requests fail with {status, message, type, param, code, headers}.
    failNext(n, err = {}) {
      behavior = { ...behavior, failNext: n > 0 ? { status: 500, ...err, count: n } : null };
      return mock;
    },
    lastRequest(path) {
      for (let i = requests.length - 1; i >= 0; i--) {
        if (!path || requests[i].path === path) return requests[i];
      }
      return undefined;
    },
    // Poll until predicate() is truthy (resolves true) or timeout (resolves false).
    async waitFor(predicate, timeoutMs = 2000, pollMs = 20) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (predicate(mock)) return true;
        if (Date.now() >= deadline) return false;
        await new Promise((r) => setTimeout(r, pollMs));
      }
    },
    close() {
      if (!closed) {
        for (const t of timers) clearTimeout(t);
        timers.clear();
        closed = new Promise((resolve) => {
          server.close(() => resolve());
          for (const s of sockets) s.destroy();
          if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
        });
      }
      return closed;
    },
  };
  return mock;
}
