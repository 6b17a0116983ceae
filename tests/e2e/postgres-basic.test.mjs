// sluice on PostgreSQL (a throwaway server from scripts/pg.sh): `sluice migrate`, readiness, the
// management API, and spend rows that land in PostgreSQL.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startSluice, runSluice, fetchJSON, authHeaders, makeTempDir, assertNoSanitizerReport, MASTER_KEY } from './lib/sluice.mjs';
import { startPostgres, pgAvailable } from './lib/pg.mjs';

const MOCK_TEXT = 'hello from postgres';
const IN_COST = 0.001;
const OUT_COST = 0.002;
const config = (url) => `
model_list:
  - model_name: priced
    litellm_params:
      model: openai/priced-mock
      mock_response: "${MOCK_TEXT}"
      input_cost_per_token: ${IN_COST}
      output_cost_per_token: ${OUT_COST}
general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
  database_url: ${url}
`;
// The in-process mock bills ceil(bytes / 4) tokens for the request body and the answer.
const CHAT_BODY = JSON.stringify({ model: 'priced', messages: [{ role: 'user', content: 'hi from the postgres test' }] });
const PROMPT_TOKENS = Math.ceil(Buffer.byteLength(CHAT_BODY) / 4);
const COMPLETION_TOKENS = Math.ceil(Buffer.byteLength(MOCK_TEXT) / 4);
const COST = PROMPT_TOKENS * IN_COST + COMPLETION_TOKENS * OUT_COST;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');
const uniq = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;
const close = (a, b, eps = 1e-9) => Math.abs(a - b) <= eps * Math.max(1, Math.abs(a), Math.abs(b));
const client = (s, key = MASTER_KEY) => {
  const call = (method, p, body) => fetchJSON(s.url(p), { method, headers: authHeaders(key), body });
  return { get: (p) => call('GET', p), post: (p, b = {}) => call('POST', p, b) };
};
async function eventually(fn, { timeoutMs = 10000, everyMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    if ((last = await fn())) return last;
    await sleep(everyMs);
  }
  return last;
}
const chat = (s, key) => fetchJSON(s.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(key), body: CHAT_BODY });

describe('PostgreSQL: migrate, readiness, management API, spend', { skip: !pgAvailable() && 'PostgreSQL server binaries not found' }, () => {
  let pg;
  let sluice;
  let api;
  let cfgDir;
  let cfgPath;

  before(async () => {
    pg = await startPostgres();
    cfgDir = makeTempDir('sluice-pg-cfg-');
    cfgPath = path.join(cfgDir, 'config.yaml');
    fs.writeFileSync(cfgPath, config(pg.url));
  });

  after(async () => {
    try {
      if (sluice && !sluice.stopRequested) await sluice.stop();
    } finally {
      try {
        await pg?.stop();
      } finally {
        if (cfgDir) fs.rmSync(cfgDir, { recursive: true, force: true });
      }
    }
  });

  it('`sluice migrate` applies the schema to a fresh database; a second run says it is up to date', async () => {
    const first = await runSluice(['migrate', '--config', cfgPath], { cwd: cfgDir, timeoutMs: 40000 });
    assertNoSanitizerReport(first.stdout + first.stderr, 'sluice migrate');
    assert.equal(first.code, 0, `first migrate: code ${first.code}\n${first.stdout}${first.stderr}`);
    assert.match(first.stdout, /schema is at version 1 \(1 migration applied\)/, first.stdout + first.stderr);
    assert.ok(first.stdout.includes(`database: ${pg.url}`), `names the database: ${first.stdout}`);
    const second = await runSluice(['migrate', '--config', cfgPath], { cwd: cfgDir, timeoutMs: 40000 });
    assertNoSanitizerReport(second.stdout + second.stderr, 'sluice migrate');
    assert.equal(second.code, 0, `second migrate: code ${second.code}\n${second.stdout}${second.stderr}`);
    assert.match(second.stdout, /schema is up to date \(version 1\)/, second.stdout + second.stderr);
    assert.ok(!/migration applied/.test(second.stdout), second.stdout);
    assert.ok(!fs.existsSync(path.join(cfgDir, 'sluice.db')), 'migrate made a SQLite file instead of using database_url');
    assert.equal(await pg.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'sluice_spend_logs'"), '1');
  });

  it('/health/readiness: connected, postgresql, schema_version 1, pending_migrations 0', async () => {
    sluice = await startSluice({ config: config(pg.url) });
    api = client(sluice);
    let r;
    await eventually(async () => {
      r = await fetchJSON(sluice.url('/health/readiness'));
      return r.status === 200 && r.body?.db === 'connected' && r.body?.migrating === false;
    });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.status, 'connected');
    assert.equal(r.body.db, 'connected');
    assert.equal(r.body.db_type, 'postgresql');
    assert.equal(r.body.database, pg.url);
    assert.equal(r.body.schema_version, 1);
    assert.equal(r.body.pending_migrations, 0);
    assert.equal(r.body.migrating, false);
  });

  let key; // /key/generate answer
  let team;
  let user;

  it('management API: team, user, key; /key/info shape', async () => {
    assert.ok(sluice, 'sluice did not start');
    const t = await api.post('/team/new', { team_alias: uniq('pg-team'), max_budget: 50, rpm_limit: 100 });
    assert.equal(t.status, 200, t.text);
    team = t.body;
    const u = await api.post('/user/new', { user_id: uniq('pg-user'), teams: [team.team_id], max_budget: 20 });
    assert.equal(u.status, 200, u.text);
    user = u.body;
    assert.equal(typeof user.key, 'string', 'a user comes with a key');
    const k = await api.post('/key/generate', { key_alias: uniq('pg-key'), team_id: team.team_id, user_id: user.user_id, max_budget: 10, models: ['priced'], metadata: { env: 'pg' } });
    assert.equal(k.status, 200, k.text);
    key = k.body;
    assert.equal(key.token, sha256(key.key));

    const info = await api.get(`/key/info?key=${key.key}`);
    assert.equal(info.status, 200, info.text);
    assert.equal(info.body.key, key.key);
    const i = info.body.info;
    assert.equal(i.key_alias, key.key_alias);
    assert.equal(i.key_name, `sk-...${key.key.slice(-4)}`);
    assert.equal(i.team_id, team.team_id);
    assert.equal(i.user_id, user.user_id);
    assert.equal(i.max_budget, 10);
    assert.equal(i.spend, 0);
    assert.deepEqual(i.models, ['priced']);
    assert.deepEqual(i.metadata, { env: 'pg' });
    assert.equal(i.blocked, false);
    assert.equal(typeof i.created_at, 'string');
    assert.ok(!JSON.stringify(i).includes(key.key), 'the info never holds the plaintext');

    const ti = await api.get(`/team/info?team_id=${team.team_id}`);
    assert.equal(ti.status, 200, ti.text);
    assert.equal(ti.body.team_id, team.team_id);
    assert.ok(ti.body.team_info.members_with_roles.some((m) => m.user_id === user.user_id), ti.text);
    const ui = await api.get(`/user/info?user_id=${user.user_id}`);
    assert.equal(ui.status, 200, ui.text);
    assert.deepEqual(ui.body.user_info.teams, [team.team_id]);
    const list = await api.get(`/key/list?key_alias=${encodeURIComponent(key.key_alias)}`);
    assert.deepEqual(list.body.keys, [key.token]);

    // the rows are in PostgreSQL itself
    assert.equal(await pg.query(`SELECT team_id || ' ' || user_id FROM sluice_keys WHERE token = '${key.token}'`), `${team.team_id} ${user.user_id}`);
    assert.ok(!fs.existsSync(path.join(sluice.dir, 'sluice.db')), 'sluice made ./sluice.db although database_url is set');
  });

  it('spend rows land in PostgreSQL (/spend/logs, /key/info spend)', async () => {
    assert.ok(key, 'no key');
    const ids = [];
    for (let n = 0; n < 3; n++) {
      const r = await chat(sluice, key.key);
      assert.equal(r.status, 200, r.text);
      assert.ok(close(Number(r.headers.get('x-litellm-response-cost')), COST), `x-litellm-response-cost ${r.headers.get('x-litellm-response-cost')}, expected ${COST}`);
      ids.push(r.headers.get('x-litellm-call-id'));
    }
    let rows = [];
    await eventually(async () => {
      const r = await api.get(`/spend/logs?api_key=${key.key}`);
      rows = r.status === 200 ? r.body : [];
      return rows.length >= 3;
    });
    assert.deepEqual(rows.map((r) => r.request_id).sort(), [...ids].sort(), `spend rows: ${JSON.stringify(rows)}`);
    for (const row of rows) {
      assert.equal(row.api_key, key.token);
      assert.equal(row.team_id, team.team_id);
      assert.equal(row.user, user.user_id);
      assert.equal(row.model_group, 'priced');
      assert.equal(row.status, 'success');
      assert.equal(row.prompt_tokens, PROMPT_TOKENS);
      assert.equal(row.completion_tokens, COMPLETION_TOKENS);
      assert.equal(row.total_tokens, PROMPT_TOKENS + COMPLETION_TOKENS);
      assert.ok(close(row.spend, COST), `row spend ${row.spend}, expected ${COST}`);
    }
    assert.equal(await pg.query(`SELECT count(*) FROM sluice_spend_logs WHERE api_key = '${key.token}'`), '3');
    let info;
    await eventually(async () => {
      info = await api.get(`/key/info?key=${key.key}`);
      return close(info.body?.info?.spend, 3 * COST, 1e-6);
    });
    assert.ok(close(info.body.info.spend, 3 * COST, 1e-6), `key spend ${info.body.info.spend}, expected ${3 * COST}`);
    const ti = await api.get(`/team/info?team_id=${team.team_id}`);
    assert.ok(close(ti.body.team_info.spend, 3 * COST, 1e-6), `team spend ${ti.body.team_info.spend}, expected ${3 * COST}`);
  });

  it('shuts down cleanly', async () => {
    assert.ok(sluice, 'sluice did not start');
    await sluice.stop();
  });
});
