// Background health checks (general_settings.background_health_checks + health_check_interval):
// worker 0 probes every deployment each interval; a deployment whose probe gets no answer, a
// 401, 404 or 5xx is routed around while its group has a healthy deployment, until a check
// passes again; GET /health answers from the latest round without calling anyone; a group whose
// deployments are all unhealthy is still routed to (no "No deployments available" from health
// checks alone). Probes are told apart from real calls by their body: "ping", max_tokens 1.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startMock, expectedChatText } from './lib/mock-upstream.mjs';
import { startSluice, fetchJSON, authHeaders, makeTempDir, MASTER_KEY } from './lib/sluice.mjs';

const CHAT = '/v1/chat/completions';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const isProbe = (q) => q.path === CHAT && q.body?.max_tokens === 1 && q.body?.messages?.[0]?.content === 'ping';
const chats = (mock) => mock.requests.filter((q) => q.path === CHAT && !isProbe(q)).length;
const probes = (mock) => mock.requests.filter(isProbe).length;

async function chat(sluice, model, text) {
  return fetchJSON(sluice.url(CHAT), {
    method: 'POST',
    headers: authHeaders(),
    body: { model, messages: [{ role: 'user', content: text }] },
  });
}

async function health(sluice, query = '') {
  const r = await fetchJSON(sluice.url('/health' + query), { headers: authHeaders() });
  // LiteLLM's rule: a check of one model (?model= / ?model_id=) with no healthy endpoint is a
  // 503 with the same body; everything else is a 200
  const targeted = /[?&]model(_id)?=/.test(query);
  assert.equal(r.status, targeted && r.body?.healthy_count === 0 ? 503 : 200, r.text);
  return r;
}

const ids = (list) => list.map((e) => e.model_id).sort();

// Polls /health until pred(body) holds; returns {res, ms} or fails after timeoutMs.
async function until(sluice, pred, timeoutMs, what) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < timeoutMs) {
    last = await health(sluice);
    if (pred(last.body)) return { res: last, ms: Date.now() - t0 };
    await sleep(100);
  }
  assert.fail(`${what}: not within ${timeoutMs} ms; last /health: ${last?.text}`);
}

describe('background health checks route around unhealthy deployments (interval 1 s)', () => {
  const m = {};
  let sluice;
  const SECRET_B = 'sk-upstream-secret-bbbbbbbb';
  before(async () => {
    m.a = await startMock();
    m.b = await startMock();
    m.solo = await startMock({ error: { status: 503, message: 'solo is down', type: 'server_error' } });
    sluice = await startSluice({
      config: `
model_list:
  - model_name: pair
    litellm_params:
      model: openai/pair-a
      api_base: ${m.a.baseURL}
      api_key: sk-upstream-secret-aaaaaaaa
    model_info:
      id: dep-a
  - model_name: pair
    litellm_params:
      model: openai/pair-b
      api_base: ${m.b.baseURL}
      api_key: ${SECRET_B}
    model_info:
      id: dep-b
      health_check_timeout: 2
  - model_name: solo
    litellm_params:
      model: openai/solo
      api_base: ${m.solo.baseURL}
      api_key: sk-upstream-secret-solosolo
      num_retries: 0
    model_info:
      id: dep-solo
general_settings:
  master_key: ${MASTER_KEY}
  background_health_checks: true
  health_check_interval: 1
`,
    });
  });
  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all(Object.values(m).map((x) => x.close()));
    }
  });

  it('while both are healthy, /health lists them and requests go to both', async () => {
    const { res } = await until(sluice, (b) => ids(b.healthy_endpoints).join() === 'dep-a,dep-b', 3000,
      'first background round');
    assert.deepEqual(ids(res.body.unhealthy_endpoints), ['dep-solo']);
    assert.equal(res.body.healthy_count, 2);
    assert.equal(res.body.unhealthy_count, 1);
    assert.ok(probes(m.a) >= 1 && probes(m.b) >= 1, 'the background round probed both');
    for (let i = 0; i < 20; i++) {
      const r = await chat(sluice, 'pair', `both ${i}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.choices[0].message.content, expectedChatText(`both ${i}`));
    }
    assert.ok(chats(m.a) > 0 && chats(m.b) > 0, `both served: a=${chats(m.a)} b=${chats(m.b)}`);
  });

  it('a deployment that starts failing is found within ~3 s and gets no requests, only probes', async () => {
    m.b.setBehavior({ error: { status: 500, message: `upstream exploded (key ${SECRET_B})`, type: 'server_error' } });
    const { res, ms } = await until(sluice, (b) => ids(b.unhealthy_endpoints).includes('dep-b'), 3500,
      'dep-b reported unhealthy');
    assert.ok(ms < 3500, `found after ${ms} ms`);
    const bad = res.body.unhealthy_endpoints.find((e) => e.model_id === 'dep-b');
    assert.equal(bad.model_name, 'pair');
    assert.match(bad.error, /HTTP 500/);
    assert.match(bad.error, /upstream exploded/);
    assert.ok(!('api_key' in bad), 'no api_key field');
    assert.ok(!res.text.includes('sk-upstream-secret'), `no provider key in /health: ${res.text}`);
    assert.deepEqual(ids(res.body.healthy_endpoints), ['dep-a']);

    const bChats = chats(m.b);
    const bProbes = probes(m.b);
    for (let i = 0; i < 20; i++) {
      const r = await chat(sluice, 'pair', `one ${i}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-litellm-model-id'), 'dep-a');
      assert.equal(r.body.choices[0].message.content, expectedChatText(`one ${i}`));
    }
    await sleep(1300); // another round or two
    assert.equal(chats(m.b), bChats, 'the unhealthy deployment got no chat request');
    assert.ok(probes(m.b) > bProbes, 'it is still probed');
    // still unhealthy in /health, and one log line for the change, without the key
    const again = await health(sluice);
    assert.ok(ids(again.body.unhealthy_endpoints).includes('dep-b'), again.text);
    const lines = sluice.stderr().split('\n').filter((l) => l.includes('(id dep-b) is unhealthy'));
    assert.equal(lines.length, 1, `one state-change line: ${lines.join('\n')}`);
    assert.match(lines[0], /model pair \(id dep-b\) is unhealthy: HTTP 500/);
    assert.match(lines[0], /requests avoid it/);
    assert.ok(!sluice.stderr().includes('sk-upstream-secret'), 'no provider key in the log');
  });

  it('once it answers again it gets requests after the next check', async () => {
    m.b.setBehavior({ error: null });
    const { ms } = await until(sluice, (b) => ids(b.healthy_endpoints).includes('dep-b'), 3500,
      'dep-b healthy again');
    assert.ok(ms < 3500);
    const before = chats(m.b);
    for (let i = 0; i < 30; i++) {
      const r = await chat(sluice, 'pair', `again ${i}`);
      assert.equal(r.status, 200, r.text);
    }
    assert.ok(chats(m.b) > before, `dep-b serves again: ${chats(m.b) - before} of 30`);
    await sleep(300); // worker log lines are written every 100 ms
    const back = sluice.stderr().split('\n').filter((l) => l.includes('(id dep-b) is healthy again'));
    assert.equal(back.length, 1, back.join('\n'));
  });

  it('a group whose only deployment is unhealthy is still routed to (no 429 from health checks alone)', async () => {
    const h = await health(sluice, '?model=solo');
    assert.equal(h.body.healthy_count, 0, h.text);
    assert.equal(h.body.unhealthy_count, 1, h.text);
    assert.match(h.body.unhealthy_endpoints[0].error, /HTTP 503.*solo is down/);
    const before = chats(m.solo);
    const r = await chat(sluice, 'solo', 'anyone there');
    assert.notEqual(r.status, 429, r.text);
    assert.ok(r.status >= 500, r.text);
    assert.equal(chats(m.solo), before + 1, 'the call reached the deployment');
    // healthy again: back in /health at the next round
    m.solo.setBehavior({ error: null });
    await until(sluice, (b) => ids(b.healthy_endpoints).includes('dep-solo'), 3500, 'dep-solo healthy');
    const ok = await chat(sluice, 'solo', 'hello');
    assert.equal(ok.status, 200, ok.text);
  });

  it('shuts down cleanly while checks run (exit 0, no sanitizer report)', async () => {
    await sluice.stop();
  });
});

describe('enable_health_check_routing: false keeps the checks for /health only', () => {
  const m = {};
  let sluice;
  before(async () => {
    m.a = await startMock();
    m.b = await startMock({ error: { status: 500, message: 'b is down', type: 'server_error' } });
    sluice = await startSluice({
      config: `
model_list:
  - model_name: pair
    litellm_params: {model: openai/pair-a, api_base: "${m.a.baseURL}", api_key: sk-upstream-a, num_retries: 0}
    model_info: {id: dep-a}
  - model_name: pair
    litellm_params: {model: openai/pair-b, api_base: "${m.b.baseURL}", api_key: sk-upstream-b, num_retries: 0}
    model_info: {id: dep-b}
router_settings:
  allowed_fails: 1000
general_settings:
  master_key: ${MASTER_KEY}
  background_health_checks: true
  health_check_interval: 1
  enable_health_check_routing: false
`,
    });
  });
  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await Promise.all(Object.values(m).map((x) => x.close()));
    }
  });

  it('an unhealthy deployment shows in /health but still gets requests', async () => {
    await until(sluice, (b) => ids(b.unhealthy_endpoints).includes('dep-b'), 3500, 'dep-b reported unhealthy');
    const before = chats(m.b);
    for (let i = 0; i < 20; i++) await chat(sluice, 'pair', `still ${i}`);
    assert.ok(chats(m.b) > before, `dep-b still routed to: ${chats(m.b) - before} of 20`);
    await sleep(300);
    assert.match(sluice.stderr(), /\(id dep-b\) is unhealthy: .*still routed to \(general_settings\.enable_health_check_routing is false\)/);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('GET /health with background checks answers from the last round', () => {
  let mock;
  let sluice;
  before(async () => {
    mock = await startMock();
    sluice = await startSluice({
      config: `
model_list:
  - model_name: one
    litellm_params:
      model: openai/one
      api_base: ${mock.baseURL}
      api_key: sk-upstream-secret-one
    model_info:
      id: dep-one
  - model_name: canned
    litellm_params:
      model: openai/canned
      mock_response: hi
    model_info:
      id: dep-canned
general_settings:
  master_key: ${MASTER_KEY}
  background_health_checks: true
  health_check_interval: 300
`,
    });
  });
  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await mock?.close();
    }
  });

  it('calls no upstream, filters by ?model= and ?model_id=', async () => {
    await until(sluice, (b) => b.healthy_count === 2, 3000, 'first round');
    await sleep(100);
    const n = mock.requests.length;
    assert.ok(n >= 1, 'the first round probed the upstream');
    for (let i = 0; i < 3; i++) {
      const r = await health(sluice);
      assert.deepEqual(ids(r.body.healthy_endpoints), ['dep-canned', 'dep-one']);
      assert.equal(r.body.unhealthy_count, 0);
    }
    let r = await health(sluice, '?model=one');
    assert.deepEqual(ids(r.body.healthy_endpoints), ['dep-one']);
    assert.equal(r.body.healthy_count, 1);
    r = await health(sluice, '?model_id=dep-canned');
    assert.deepEqual(ids(r.body.healthy_endpoints), ['dep-canned']);
    r = await health(sluice, '?model=nope');
    assert.deepEqual(r.body, { healthy_endpoints: [], unhealthy_endpoints: [], healthy_count: 0, unhealthy_count: 0 });
    assert.equal(mock.requests.length, n, 'answered from the cached round: no new upstream call');
    assert.ok(!JSON.stringify(r.body).includes('sk-upstream'));
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});

describe('shutdown with a background probe in flight', () => {
  it('cancels the probe and exits at once, cleanly', async () => {
    const slow = await startMock({ delayMs: 30000 });
    const sluice = await startSluice({
      config: `
model_list:
  - model_name: slow
    litellm_params:
      model: openai/slow
      api_base: ${slow.baseURL}
      api_key: sk-upstream-secret-slow
    model_info:
      health_check_timeout: 20
general_settings:
  master_key: ${MASTER_KEY}
  background_health_checks: true
  health_check_interval: 5
`,
    });
    try {
      for (let i = 0; i < 50 && probes(slow) === 0; i++) await sleep(50);
      assert.equal(probes(slow), 1, 'the probe is in flight');
      const t0 = Date.now();
      await sluice.stop();
      assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
    } finally {
      sluice.kill();
      await slow.close();
    }
  });
});

describe('probes use the deployment\'s TLS settings', () => {
  let dir;
  let mock;
  let sluice;
  before(async () => {
    // a self-signed certificate for 127.0.0.1: verifying it fails, ssl_verify: false does not
    dir = makeTempDir('sluice-health-tls-');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    mock = await startMock({ tls: { key: fs.readFileSync(path.join(dir, 'key.pem')), cert: fs.readFileSync(path.join(dir, 'cert.pem')) } });
    sluice = await startSluice({
      config: `
model_list:
  - model_name: tls
    litellm_params:
      model: openai/tls-a
      api_base: ${mock.baseURL}
      api_key: sk-upstream-secret-tls-insecure
      ssl_verify: false
    model_info:
      id: dep-insecure
  - model_name: tls
    litellm_params:
      model: openai/tls-b
      api_base: ${mock.baseURL}
      api_key: sk-upstream-secret-tls-verify
    model_info:
      id: dep-verify
general_settings:
  master_key: ${MASTER_KEY}
  background_health_checks: true
  health_check_interval: 300
`,
    });
  });
  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      await mock?.close();
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ssl_verify: false probes healthy; a certificate that does not verify is unhealthy and routed around', async () => {
    const { res } = await until(sluice, (b) => b.healthy_count + b.unhealthy_count === 2, 3000, 'first round');
    assert.deepEqual(ids(res.body.healthy_endpoints), ['dep-insecure'], res.text);
    assert.deepEqual(ids(res.body.unhealthy_endpoints), ['dep-verify'], res.text);
    assert.match(res.body.unhealthy_endpoints[0].error, /TLS certificate problem with 127\.0\.0\.1/);
    for (let i = 0; i < 10; i++) {
      const r = await chat(sluice, 'tls', `tls ${i}`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers.get('x-litellm-model-id'), 'dep-insecure');
    }
    await sluice.stop();
  });
});
