// Streaming backpressure: a client that stops reading pauses the upstream transfer; sluice does
// not buffer the rest of the stream in memory.
//
// A dedicated upstream (in this file) streams 40 MiB of SSE in 1 KiB `data:` events as fast as
// its socket accepts them and records how far it got and whether res.write() pushed back. The
// client (node:http, so it can stop reading) reads a few KiB, pauses for ~2 s, then reads the
// rest. During the pause sluice's RSS must stay near its start value and the upstream must be
// stuck well short of 40 MiB; afterwards the whole stream must arrive intact.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { startSluice, MASTER_KEY } from './lib/sluice.mjs';
import { openaiClient, collect, contentOf } from './lib/clients.mjs';

const EVENT_BYTES = 1024;
const EVENTS = 40 * 1024; // 40 MiB of content events
const TOTAL_BYTES = EVENTS * EVENT_BYTES;
const FLOOD_PROMPT = 'flood';
const MB = 1024 * 1024;
// RSS may grow by this much over its value right after start (ASan's shadow memory and
// allocator caches need some room; buffering the stream would need ~40 MiB more).
const RSS_HEADROOM = 30 * MB;
const PAUSE_MS = 2000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function rssBytes(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

const chunkJSON = (id, delta, finish) =>
  JSON.stringify({ id, object: 'chat.completion.chunk', created: 1700000000, model: 'flood-model', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });

// Content event i, exactly EVENT_BYTES long: "data: {...\"content\":\"<i, 8 digits>:xxxx...\"...}\n\n".
const SEQ_DIGITS = 8;
const EVENT_OVERHEAD = `data: ${chunkJSON('chatcmpl-flood', { content: '' }, null)}\n\n`.length;
const PAD = 'x'.repeat(EVENT_BYTES - EVENT_OVERHEAD - SEQ_DIGITS - 1);
const contentEvent = (i) => `data: ${chunkJSON('chatcmpl-flood', { content: `${String(i).padStart(SEQ_DIGITS, '0')}:${PAD}` }, null)}\n\n`;
if (contentEvent(0).length !== EVENT_BYTES) throw new Error('event size miscomputed');

// Upstream: a streaming request whose last message is FLOOD_PROMPT gets the 40 MiB stream
// (written as fast as the socket takes it, waiting for 'drain' when res.write() returns false);
// any other chat request gets a short answer "ok: <prompt>" (JSON or a 3-chunk stream).
async function startFloodUpstream() {
  const sockets = new Set();
  const st = {
    requests: 0,
    floods: 0,
    written: 0, // bytes handed to res.write() for the current flood
    writeFalse: 0, // times res.write() returned false (backpressure seen by the upstream)
    waitingDrain: false, // blocked right now
    finished: false, // the current flood was written completely
    aborted: false, // the current flood's connection closed before the end
    socket: null,
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      st.requests++;
      let body = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {}
      const messages = Array.isArray(body.messages) ? body.messages : [];
      const prompt = String(messages[messages.length - 1]?.content ?? '');
      if (body.stream && prompt === FLOOD_PROMPT) return flood(res);
      const text = `ok: ${prompt}`;
      if (body.stream) {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${chunkJSON('chatcmpl-short', { role: 'assistant', content: '' }, null)}\n\n`);
        res.write(`data: ${chunkJSON('chatcmpl-short', { content: text }, null)}\n\n`);
        res.write(`data: ${chunkJSON('chatcmpl-short', {}, 'stop')}\n\n`);
        return res.end('data: [DONE]\n\n');
      }
      const data = JSON.stringify({
        id: 'chatcmpl-short',
        object: 'chat.completion',
        created: 1700000000,
        model: body.model,
        choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
      res.end(data);
    });
  });

  function flood(res) {
    st.floods++;
    st.written = 0;
    st.writeFalse = 0;
    st.waitingDrain = false;
    st.finished = false;
    st.aborted = false;
    st.socket = res.socket;
    res.on('close', () => {
      if (!st.finished) st.aborted = true;
    });
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const first = `data: ${chunkJSON('chatcmpl-flood', { role: 'assistant', content: '' }, null)}\n\n`;
    res.write(first);
    let i = 0;
    const pump = () => {
      st.waitingDrain = false;
      while (i < EVENTS) {
        if (res.destroyed) return;
        const ev = contentEvent(i++);
        st.written += ev.length;
        if (!res.write(ev)) {
          st.writeFalse++;
          st.waitingDrain = true;
          res.once('drain', pump);
          return;
        }
      }
      res.write(`data: ${chunkJSON('chatcmpl-flood', {}, 'stop')}\n\n`);
      res.end('data: [DONE]\n\n');
      st.finished = true;
    };
    pump();
  }

  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const port = server.address().port;
  let closed = null;
  return {
    port,
    baseURL: `http://127.0.0.1:${port}/v1`,
    st,
    close() {
      closed ??= new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}

// Incremental SSE reader for the flood: checks every event as it arrives.
function floodChecker() {
  const c = { events: 0, nextSeq: 0, sawRole: false, sawStop: false, sawDone: false, afterDone: 0, errors: [], bytes: 0 };
  let rest = '';
  c.feed = (text) => {
    c.bytes += Buffer.byteLength(text);
    rest += text;
    let k;
    while ((k = rest.indexOf('\n\n')) >= 0) {
      const block = rest.slice(0, k);
      rest = rest.slice(k + 2);
      if (!block.startsWith('data: ')) {
        if (block.trim()) c.errors.push(`unexpected SSE block: ${block.slice(0, 120)}`);
        continue;
      }
      const data = block.slice(6);
      if (c.sawDone) {
        c.afterDone++;
        continue;
      }
      if (data === '[DONE]') {
        c.sawDone = true;
        continue;
      }
      c.events++;
      let obj;
      try {
        obj = JSON.parse(data);
      } catch (e) {
        c.errors.push(`event ${c.events}: bad JSON (${e.message})`);
        continue;
      }
      const ch = obj.choices?.[0];
      if (ch?.finish_reason === 'stop') c.sawStop = true;
      else if (ch?.delta?.role === 'assistant') c.sawRole = true;
      else {
        const want = `${String(c.nextSeq).padStart(SEQ_DIGITS, '0')}:${PAD}`;
        if (ch?.delta?.content !== want && c.errors.length < 5) {
          c.errors.push(`event ${c.events}: expected content #${c.nextSeq}, got ${String(ch?.delta?.content).slice(0, 20)}`);
        }
        c.nextSeq++;
      }
    }
  };
  c.rest = () => rest;
  return c;
}

describe('streaming backpressure', () => {
  let upstream;
  let sluice;
  let client;
  let rssStart;

  before(async () => {
    upstream = await startFloodUpstream();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: flood
    litellm_params:
      model: openai/flood-model
      api_base: ${upstream.baseURL}
      api_key: sk-upstream-secret
      timeout: 60
general_settings:
  master_key: ${MASTER_KEY}
`,
    });
    client = openaiClient(sluice);
    rssStart = rssBytes(sluice.pid);
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      if (upstream) await upstream.close();
    }
  });

  it('pauses the upstream while the client is not reading, then delivers the whole stream', async () => {
    const checker = floodChecker();
    let res;
    let req;
    const t0 = Date.now();
    const ended = new Promise((resolve, reject) => {
      const payload = JSON.stringify({ model: 'flood', stream: true, messages: [{ role: 'user', content: FLOOD_PROMPT }] });
      req = http.request({
        host: '127.0.0.1',
        port: sluice.port,
        path: '/v1/chat/completions',
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${MASTER_KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      });
      req.on('error', reject);
      req.on('response', (r) => {
        res = r;
        r.setEncoding('utf8');
        let pausedOnce = false;
        r.on('data', (d) => {
          checker.feed(d);
          // Read the first few KiB, then stop reading (resumed further down).
          if (!pausedOnce && checker.bytes >= 4096) {
            pausedOnce = true;
            r.pause();
          }
        });
        r.on('end', resolve);
        r.on('error', reject);
      });
      req.end(payload);
    });
    ended.catch(() => {}); // observed below; keeps an early failure from going unhandled

    try {
      const deadline = Date.now() + 10000;
      while (!(res && res.isPaused()) && Date.now() < deadline) await sleep(2);
      assert.ok(res, 'response started');
      assert.equal(res.statusCode, 200);
      assert.ok(res.isPaused(), `client did not get 4 KiB within 10 s (${checker.bytes} bytes)`);
      const pausedAt = Date.now();
      const readAtPause = checker.bytes;

      // Sample upstream progress and sluice's RSS for the length of the pause.
      const samples = [];
      let rssMax = 0;
      while (Date.now() - pausedAt < PAUSE_MS) {
        await sleep(100);
        const rss = rssBytes(sluice.pid);
        rssMax = Math.max(rssMax, rss);
        samples.push({ t: Date.now() - pausedAt, written: upstream.st.written, waiting: upstream.st.waitingDrain, rss });
      }
      const last = samples[samples.length - 1];
      // the value the upstream reached 1 s before the end of the pause
      const oneSecBefore = samples.filter((s) => s.t <= last.t - 1000).pop();
      const trace = () =>
        `rss at start ${(rssStart / MB).toFixed(1)} MiB; client read ${readAtPause} bytes before pausing\n` +
        samples.map((s) => `  +${s.t} ms: upstream wrote ${(s.written / MB).toFixed(2)} MiB${s.waiting ? ' (blocked)' : ''}, sluice rss ${(s.rss / MB).toFixed(1)} MiB`).join('\n');

      assert.ok(checker.bytes < 1 * MB, `client was still receiving after pause() (${checker.bytes} bytes)\n${trace()}`);
      assert.ok(rssMax < rssStart + RSS_HEADROOM, `sluice RSS grew to ${(rssMax / MB).toFixed(1)} MiB (start ${(rssStart / MB).toFixed(1)} MiB): it buffers the stream\n${trace()}`);
      assert.ok(upstream.st.writeFalse > 0, `the upstream never saw backpressure\n${trace()}`);
      assert.ok(!upstream.st.finished, `the upstream wrote all ${TOTAL_BYTES} bytes while the client was not reading\n${trace()}`);
      assert.ok(last.waiting, `the upstream is not blocked at the end of the pause\n${trace()}`);
      assert.ok(last.written < TOTAL_BYTES / 2, `the upstream got ${(last.written / MB).toFixed(2)} MiB out while the client read ${readAtPause} bytes\n${trace()}`);
      assert.ok(oneSecBefore, `no sample 1 s before the end of the pause\n${trace()}`);
      assert.equal(last.written, oneSecBefore.written, `the upstream kept writing during the last second of the pause\n${trace()}`);

      // Resume: everything arrives, in order, ending with the finish chunk and [DONE].
      res.resume();
      await ended;
      assert.deepEqual(checker.errors, [], 'stream content intact');
      assert.equal(checker.nextSeq, EVENTS, `all ${EVENTS} content events arrived`);
      assert.equal(checker.events, EVENTS + 2, 'role chunk + content events + finish chunk');
      assert.ok(checker.sawRole, 'role chunk');
      assert.ok(checker.sawStop, 'finish chunk');
      assert.ok(checker.sawDone, 'data: [DONE]');
      assert.equal(checker.afterDone, 0, 'nothing after [DONE]');
      assert.equal(checker.rest().trim(), '', 'no partial event at the end');
      assert.ok(upstream.st.finished && !upstream.st.aborted, 'the upstream wrote the whole stream');
      assert.ok(Date.now() - t0 < 12000, `took ${Date.now() - t0} ms`);
    } finally {
      req?.destroy();
    }
  });

  it('serves normal requests afterwards', async () => {
    const r = await client.chat.completions.create({ model: 'flood', messages: [{ role: 'user', content: 'after' }] });
    assert.equal(r.choices[0].message.content, 'ok: after');
    const s = await client.chat.completions.create({ model: 'flood', messages: [{ role: 'user', content: 'after stream' }], stream: true });
    assert.equal(contentOf(await collect(s)), 'ok: after stream');
  });

  it('shuts down cleanly on SIGTERM (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});
