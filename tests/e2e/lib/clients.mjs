// Client factories and stream helpers shared by the e2e tests.
import OpenAI from 'openai';
import { MASTER_KEY } from './sluice.mjs';

export { OpenAI };

// OpenAI SDK client pointed at a running sluice. Retries are disabled so every
// status code reaches the test exactly as sluice sent it.
export function openaiClient(sluice, { apiKey = MASTER_KEY, prefix = '/v1', ...opts } = {}) {
  return new OpenAI({ baseURL: sluice.baseURL + prefix, apiKey, maxRetries: 0, timeout: 20000, ...opts });
}

// Collect every chunk of an SDK stream.
export async function collect(stream) {
  const chunks = [];
  for await (const c of stream) chunks.push(c);
  return chunks;
}

export function contentOf(chunks) {
  let s = '';
  for (const c of chunks) for (const ch of c.choices || []) if (ch.delta && typeof ch.delta.content === 'string') s += ch.delta.content;
  return s;
}

// Assemble streamed tool calls (by index) into [{id, type, function:{name, arguments}}].
export function toolCallsOf(chunks) {
  const calls = [];
  for (const c of chunks) {
    for (const ch of c.choices || []) {
      for (const tc of ch.delta?.tool_calls || []) {
        const i = tc.index ?? 0;
        calls[i] ??= { id: undefined, type: undefined, function: { name: '', arguments: '' } };
        if (tc.id) calls[i].id = tc.id;
        if (tc.type) calls[i].type = tc.type;
        if (tc.function?.name) calls[i].function.name += tc.function.name;
        if (tc.function?.arguments) calls[i].function.arguments += tc.function.arguments;
      }
    }
  }
  return calls;
}

export function finishReasonsOf(chunks) {
  const out = [];
  for (const c of chunks) for (const ch of c.choices || []) if (ch.finish_reason) out.push(ch.finish_reason);
  return out;
}

// Parse an SSE body (string) into the list of `data:` payloads (strings).
export function parseSSE(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (data) out.push(data);
  }
  return out;
}
