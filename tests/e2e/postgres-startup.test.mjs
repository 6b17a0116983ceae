// Start-up against a PostgreSQL that is not there: sluice serves at once (liveness, the master
// key) and says in /health/readiness why the database is unavailable. A SQLAlchemy-style URL
// with a driver suffix is refused at start with a message saying what to change.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { startSluice, runSluice, fetchJSON, authHeaders, checkErrorEnvelope, freePort, makeTempDir, assertNoSanitizerReport, MASTER_KEY } from './lib/sluice.mjs';

const MOCK_TEXT = 'served without a database';
const config = (url) => `
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-mock
      mock_response: "${MOCK_TEXT}"
      input_cost_per_token: 0.001
      output_cost_per_token: 0.002
general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
${url ? `  database_url: ${url}\n` : ''}`;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function eventually(fn, { timeoutMs = 5000, everyMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if ((last = await fn())) return last;
    await sleep(everyMs);
  }
  return last;
}
const chat = (s, key) =>
  fetchJSON(s.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(key), body: { model: 'priced', messages: [{ role: 'user', content: 'hi' }] } });
const show = (r) => `HTTP ${r.status} ${r.text.slice(0, 400)}`;

describe('PostgreSQL unreachable at start-up', () => {
  let sluice;
  let port;
  const PASSWORD = 's3cr3t-pw';

  after(async () => {
    if (sluice && !sluice.stopRequested) await sluice.stop();
  });

  it('sluice answers /health/liveliness within 1 s of being started', async (t) => {
    port = await freePort(); // nothing listens there: connection refused
    const t0 = performance.now();
    // startSluice returns once /health/liveliness answers 200 (polled every 50 ms)
    sluice = await startSluice({ config: config(`postgresql://sluice:${PASSWORD}@127.0.0.1:${port}/sluice`), env: { DATABASE_URL: null } });
    const ms = performance.now() - t0;
    t.diagnostic(`live after ${ms.toFixed(0)} ms`);
    const r = await fetchJSON(sluice.url('/health/liveliness'));
    assert.equal(r.status, 200, show(r));
    assert.ok(ms < 1000, `sluice took ${ms.toFixed(0)} ms to answer /health/liveliness with the database unreachable`);
  });

  it('/health/readiness is 503 and says why: connection refused', async () => {
    assert.ok(sluice, 'sluice did not start');
    let r;
    await eventually(async () => {
      r = await fetchJSON(sluice.url('/health/readiness'));
      return /refused/i.test(r.body?.db ?? '');
    });
    assert.equal(r.status, 503, show(r));
    assert.equal(r.body.status, 'db_unavailable');
    assert.match(r.body.db, /^unavailable: .*Connection refused/i, r.text);
    assert.ok(r.body.db.includes(String(port)), `the reason names the port: ${r.body.db}`);
    assert.equal(r.body.db_type, 'postgresql');
    assert.equal(r.body.database, `postgresql://sluice:***@127.0.0.1:${port}/sluice`);
    assert.ok(!r.text.includes(PASSWORD), 'readiness shows the password');
    assert.ok(!sluice.stderr().includes(PASSWORD), 'the log shows the password');
  });

  it('the master key still serves chat', async () => {
    const r = await chat(sluice, MASTER_KEY);
    assert.equal(r.status, 200, show(r));
    assert.equal(r.body.choices[0].message.content, MOCK_TEXT);
  });

  it('a virtual key is 401 saying the database is unavailable', async () => {
    const r = await chat(sluice, 'sk-not-checkable-0000000000');
    const e = checkErrorEnvelope(assert, r, 401);
    assert.match(e.message, /database is unavailable/, e.message);
  });

  it('shuts down cleanly with the database still away', async () => {
    await sluice.stop();
  });
});

describe('a database URL with a driver suffix', () => {
  let dir;

  after(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const expectRefused = (res, what) => {
    const out = res.stdout + res.stderr;
    assertNoSanitizerReport(out, what);
    assert.equal(res.timedOut, false, `${what} kept running with a postgresql+psycopg:// URL:\n${out}`);
    assert.ok(res.code !== 0 && res.code !== null, `${what} exited ${res.code} (signal ${res.signal}):\n${out}`);
    assert.match(out, /drop the '\+psycopg' driver suffix/, `${what} should tell to drop "+psycopg":\n${out}`);
  };

  it('in general_settings.database_url: sluice exits non-zero telling to drop "+psycopg"', async () => {
    dir = makeTempDir('sluice-psycopg-');
    const port = await freePort();
    const cfg = path.join(dir, 'config.yaml');
    fs.writeFileSync(cfg, config(`postgresql+psycopg://sluice:pw@127.0.0.1:${port}/sluice`));
    const res = await runSluice(['--config', cfg, '--port', String(await freePort()), '--host', '127.0.0.1', '--num_workers', '1'], { cwd: dir, env: { DATABASE_URL: null } });
    expectRefused(res, 'sluice');
    const mig = await runSluice(['migrate', '--config', cfg], { cwd: dir, env: { DATABASE_URL: null } });
    expectRefused(mig, 'sluice migrate');
  });

  it('in DATABASE_URL: the same', async () => {
    const cfg = path.join(dir, 'env.yaml');
    fs.writeFileSync(cfg, config(null));
    const port = await freePort();
    const res = await runSluice(['--config', cfg, '--port', String(await freePort()), '--host', '127.0.0.1', '--num_workers', '1'], {
      cwd: dir,
      env: { DATABASE_URL: `postgresql+psycopg://sluice:pw@127.0.0.1:${port}/sluice` },
    });
    expectRefused(res, 'sluice');
  });
});
