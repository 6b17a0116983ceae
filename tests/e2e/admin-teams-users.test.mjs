// Management API: teams (/team/*) and users (/user/*), against a real sluice with SQLite.
import { before, after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startSluice, fetchJSON, authHeaders, checkErrorEnvelope, MASTER_KEY } from './lib/sluice.mjs';

// ---- helpers (each admin-*.test.mjs carries its own copy) -----------------------------------
const MOCK_TEXT = 'Hello from the admin tests';
const config = (extra = '') => `
model_list:
  - model_name: demo
    litellm_params:
      model: openai/gpt-4o
      mock_response: "${MOCK_TEXT}"
  - model_name: other
    litellm_params:
      model: openai/gpt-4o-mini
      mock_response: "${MOCK_TEXT}"
general_settings:
  master_key: ${MASTER_KEY}
  proxy_batch_write_at: 1
${extra}`;
const KEY_RE = /^sk-[A-Za-z0-9_-]{22}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const client = (s, key = MASTER_KEY) => {
  const call = (method, path, body) => fetchJSON(s.url(path), { method, headers: authHeaders(key), body });
  return { get: (p) => call('GET', p), post: (p, b = {}) => call('POST', p, b) };
};
async function waitForDb(s, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await client(s).get('/key/list');
    if (last.status !== 503) return;
    await sleep(100);
  }
  throw new Error(`database not ready after ${timeoutMs} ms: ${last?.status} ${last?.text}`);
}
const chat = (s, key, model = 'demo') =>
  fetchJSON(s.url('/v1/chat/completions'), { method: 'POST', headers: authHeaders(key), body: { model, messages: [{ role: 'user', content: 'hi' }] } });
const uniq = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;
// ------------------------------------------------------------------------------------------------

describe('management API: teams and users', () => {
  let sluice;
  let api;

  before(async () => {
    sluice = await startSluice({ config: config() });
    api = client(sluice);
    await waitForDb(sluice);
  });

  after(async () => {
    if (sluice && !sluice.stopRequested) await sluice.stop();
  });

  it('/team/new generates a team_id and returns the row with its members', async () => {
    const admin = uniq('team-admin');
    const r = await api.post('/team/new', {
      team_alias: 'platform',
      models: ['demo'],
      max_budget: 50,
      budget_duration: '1mo',
      rpm_limit: 60,
      tpm_limit: 6000,
      metadata: { cost_center: 42 },
      members_with_roles: [{ role: 'admin', user_id: admin }, { role: 'user', user_email: `${uniq('m')}@example.com` }],
    });
    assert.equal(r.status, 200, r.text);
    const t = r.body;
    assert.match(t.team_id, UUID_RE);
    assert.equal(t.team_alias, 'platform');
    assert.deepEqual(t.models, ['demo']);
    assert.equal(t.max_budget, 50);
    assert.equal(t.spend, 0);
    assert.equal(t.rpm_limit, 60);
    assert.equal(t.tpm_limit, 6000);
    assert.deepEqual(t.metadata, { cost_center: 42 });
    assert.equal(t.blocked, false);
    assert.equal(t.members_with_roles.length, 2);
    assert.deepEqual(t.admins, [admin]);
    assert.equal(t.members.length, 2, 'the member named by e-mail became a user');
    assert.ok(Date.parse(t.budget_reset_at) > Date.now() + 27 * 86400e3);
    // the admin member exists as a user now, with the team in its teams
    const u = await api.get(`/user/info?user_id=${admin}`);
    assert.equal(u.status, 200, u.text);
    assert.deepEqual(u.body.user_info.teams, [t.team_id]);
    assert.equal(u.body.teams[0].team_id, t.team_id);
  });

  it('/team/new refuses a duplicate team_id, bad members and unknown organizations', async () => {
    const id = uniq('team');
    assert.equal((await api.post('/team/new', { team_id: id })).status, 200);
    assert.match(checkErrorEnvelope(assert, await api.post('/team/new', { team_id: id }), 400).message, /already exists/);
    const bad = await api.post('/team/new', { members_with_roles: [{ role: 'owner', user_id: 'x' }] });
    assert.equal(checkErrorEnvelope(assert, bad, 400).param, 'members_with_roles');
    const org = await api.post('/team/new', { organization_id: 'no-such-org' });
    assert.equal(checkErrorEnvelope(assert, org, 400).param, 'organization_id');
  });

  it('team keys: /key/generate with team_id, /team/info lists them, /team/update, block', async () => {
    const { body: t } = await api.post('/team/new', { team_alias: 'keys-team' });
    const k = await api.post('/key/generate', { team_id: t.team_id, key_alias: uniq('team-key') });
    assert.equal(k.status, 200, k.text);
    assert.equal(k.body.team_id, t.team_id);
    const info = await api.get(`/team/info?team_id=${t.team_id}`);
    assert.equal(info.status, 200, info.text);
    assert.equal(info.body.team_id, t.team_id);
    assert.equal(info.body.team_info.team_alias, 'keys-team');
    assert.deepEqual(info.body.keys.map((x) => x.token), [k.body.token]);
    // the team's key may read its team
    assert.equal((await client(sluice, k.body.key).get(`/team/info?team_id=${t.team_id}`)).status, 200);

    const up = await api.post('/team/update', { team_id: t.team_id, team_alias: 'renamed', max_budget: 9 });
    assert.equal(up.status, 200, up.text);
    assert.equal(up.body.team_id, t.team_id);
    assert.equal(up.body.data.team_alias, 'renamed');
    assert.equal(up.body.data.max_budget, 9);

    assert.equal((await chat(sluice, k.body.key)).status, 200);
    const blk = await api.post('/team/block', { team_id: t.team_id });
    assert.equal(blk.status, 200, blk.text);
    assert.equal(blk.body.blocked, true);
    checkErrorEnvelope(assert, await chat(sluice, k.body.key), 401);
    assert.equal((await api.post('/team/unblock', { team_id: t.team_id })).body.blocked, false);
    assert.equal((await chat(sluice, k.body.key)).status, 200);

    checkErrorEnvelope(assert, await api.get('/team/info?team_id=no-such-team'), 404);
    checkErrorEnvelope(assert, await api.post('/team/update', { team_id: 'no-such-team', team_alias: 'x' }), 404);
    checkErrorEnvelope(assert, await api.post('/team/update', { team_alias: 'x' }), 400);
  });

  it('/team/member_add and /team/member_delete keep both sides in step', async () => {
    const { body: t } = await api.post('/team/new', { team_alias: 'members' });
    const uid = uniq('member');
    const add = await api.post('/team/member_add', { team_id: t.team_id, member: { role: 'user', user_id: uid } });
    assert.equal(add.status, 200, add.text);
    assert.ok(add.body.members_with_roles.some((m) => m.user_id === uid && m.role === 'user'));
    assert.equal(add.body.updated_users[0].user_id, uid);
    assert.deepEqual(add.body.updated_users[0].teams, [t.team_id]);
    const again = await api.post('/team/member_add', { team_id: t.team_id, member: { role: 'user', user_id: uid } });
    assert.match(checkErrorEnvelope(assert, again, 400).message, /already a member/);
    const del = await api.post('/team/member_delete', { team_id: t.team_id, user_id: uid });
    assert.equal(del.status, 200, del.text);
    assert.ok(!del.body.members_with_roles.some((m) => m.user_id === uid));
    assert.deepEqual((await api.get(`/user/info?user_id=${uid}`)).body.user_info.teams, []);
    checkErrorEnvelope(assert, await api.post('/team/member_delete', { team_id: t.team_id, user_id: uid }), 400);
  });

  it('a team admin may manage members; a plain member may not; non-admins cannot create teams', async () => {
    const adminId = uniq('tadmin');
    const memberId = uniq('tmember');
    const { body: t } = await api.post('/team/new', {
      members_with_roles: [{ role: 'admin', user_id: adminId }, { role: 'user', user_id: memberId }],
    });
    const adminKey = (await api.post('/key/generate', { user_id: adminId })).body.key;
    const memberKey = (await api.post('/key/generate', { user_id: memberId })).body.key;
    const ta = client(sluice, adminKey);
    const tm = client(sluice, memberKey);
    const add = await ta.post('/team/member_add', { team_id: t.team_id, member: { role: 'user', user_id: uniq('new') } });
    assert.equal(add.status, 200, add.text);
    checkErrorEnvelope(assert, await tm.post('/team/member_add', { team_id: t.team_id, member: { role: 'user', user_id: 'x' } }), 403);
    checkErrorEnvelope(assert, await ta.post('/team/update', { team_id: t.team_id, max_budget: 1000 }), 403);
    assert.equal((await ta.post('/team/update', { team_id: t.team_id, team_alias: 'by-team-admin' })).status, 200);
    assert.equal((await tm.get(`/team/info?team_id=${t.team_id}`)).status, 200, 'members read their team');
    const other = (await api.post('/team/new', {})).body;
    checkErrorEnvelope(assert, await tm.get(`/team/info?team_id=${other.team_id}`), 403);
    const e = checkErrorEnvelope(assert, await tm.post('/team/new', {}), 403);
    assert.match(e.message, /user not allowed to access this route/);
    // a team admin creates keys for the team
    const tk = await ta.post('/key/generate', { team_id: t.team_id });
    assert.equal(tk.status, 200, tk.text);
    checkErrorEnvelope(assert, await tm.post('/key/generate', { team_id: t.team_id }), 403);
  });

  it('/team/list and /team/delete (which deletes the team keys)', async () => {
    const { body: t } = await api.post('/team/new', { team_alias: 'to-delete' });
    const { body: k } = await api.post('/key/generate', { team_id: t.team_id });
    assert.equal((await chat(sluice, k.key)).status, 200);
    const list = await api.get('/team/list');
    assert.equal(list.status, 200, list.text);
    assert.ok(Array.isArray(list.body));
    const mine = list.body.find((x) => x.team_id === t.team_id);
    assert.ok(mine, 'the team is listed');
    assert.deepEqual(mine.keys.map((x) => x.token), [k.token]);
    const d = await api.post('/team/delete', { team_ids: [t.team_id] });
    assert.equal(d.status, 200, d.text);
    checkErrorEnvelope(assert, await api.get(`/team/info?team_id=${t.team_id}`), 404);
    checkErrorEnvelope(assert, await chat(sluice, k.key), 401);
    checkErrorEnvelope(assert, await api.post('/team/delete', { team_ids: [t.team_id] }), 404);
    checkErrorEnvelope(assert, await api.post('/team/delete', {}), 400);
  });

  it('/user/new creates the user and a key for it', async () => {
    const { body: t } = await api.post('/team/new', {});
    const r = await api.post('/user/new', {
      user_email: `${uniq('new')}@example.com`,
      user_role: 'internal_user',
      max_budget: 20,
      models: ['demo'],
      teams: [t.team_id],
      key_alias: uniq('user-key'),
    });
    assert.equal(r.status, 200, r.text);
    const u = r.body;
    assert.match(u.user_id, UUID_RE);
    assert.equal(u.user_role, 'internal_user');
    assert.equal(u.max_budget, 20);
    assert.deepEqual(u.models, ['demo']);
    assert.deepEqual(u.teams, [t.team_id]);
    assert.match(u.key, KEY_RE);
    assert.equal(u.key_name, `sk-...${u.key.slice(-4)}`);
    assert.equal((await chat(sluice, u.key)).status, 200);
    // joining a team at creation makes the user a member of it
    const ti = await api.get(`/team/info?team_id=${t.team_id}`);
    assert.ok(ti.body.team_info.members_with_roles.some((m) => m.user_id === u.user_id && m.role === 'user'));

    const noKey = await api.post('/user/new', { auto_create_key: false });
    assert.equal(noKey.status, 200, noKey.text);
    assert.equal(noKey.body.key, null);

    checkErrorEnvelope(assert, await api.post('/user/new', { user_id: u.user_id }), 400);
    checkErrorEnvelope(assert, await api.post('/user/new', { user_email: u.user_email }), 400);
    const badRole = await api.post('/user/new', { user_role: 'superuser' });
    assert.equal(checkErrorEnvelope(assert, badRole, 400).param, 'user_role');
    checkErrorEnvelope(assert, await api.post('/user/new', { teams: ['no-such-team'] }), 400);
  });

  it('/user/info: admin, or the user own key; others 403', async () => {
    const a = (await api.post('/user/new', { user_id: uniq('ua') })).body;
    const b = (await api.post('/user/new', { user_id: uniq('ub') })).body;
    const own = await client(sluice, a.key).get(`/user/info?user_id=${a.user_id}`);
    assert.equal(own.status, 200, own.text);
    assert.equal(own.body.user_id, a.user_id);
    assert.equal(own.body.user_info.user_id, a.user_id);
    assert.deepEqual(own.body.keys.map((k) => k.token), [a.token]);
    assert.deepEqual(own.body.teams, []);
    const implicit = await client(sluice, a.key).get('/user/info');
    assert.equal(implicit.body.user_id, a.user_id);
    checkErrorEnvelope(assert, await client(sluice, a.key).get(`/user/info?user_id=${b.user_id}`), 403);
    checkErrorEnvelope(assert, await api.get('/user/info?user_id=no-such-user'), 404);
    checkErrorEnvelope(assert, await client(sluice, a.key).get('/user/list'), 403);
  });

  it('/user/update, /user/list and /user/delete (which deletes the user keys)', async () => {
    const u = (await api.post('/user/new', { user_id: uniq('upd'), user_role: 'internal_user' })).body;
    const up = await api.post('/user/update', { user_id: u.user_id, user_alias: 'Ada', max_budget: 5, user_role: 'internal_user_viewer' });
    assert.equal(up.status, 200, up.text);
    assert.equal(up.body.user_id, u.user_id);
    assert.equal(up.body.data.user_alias, 'Ada');
    assert.equal(up.body.data.max_budget, 5);
    assert.equal(up.body.data.user_role, 'internal_user_viewer');
    checkErrorEnvelope(assert, await api.post('/user/update', { user_id: 'no-such-user', user_alias: 'x' }), 404);
    checkErrorEnvelope(assert, await api.post('/user/update', { user_alias: 'x' }), 400);

    const list = await api.get(`/user/list?user_ids=${u.user_id}`);
    assert.equal(list.status, 200, list.text);
    assert.equal(list.body.total, 1);
    assert.equal(list.body.users[0].user_alias, 'Ada');
    const paged = await api.get('/user/list?page=1&page_size=1');
    assert.equal(paged.body.users.length, 1);
    assert.equal(paged.body.page_size, 1);
    assert.ok(paged.body.total_pages >= 2);
    const viewers = await api.get('/user/list?role=internal_user_viewer');
    assert.ok(viewers.body.users.every((x) => x.user_role === 'internal_user_viewer'));

    assert.equal((await chat(sluice, u.key)).status, 200);
    const d = await api.post('/user/delete', { user_ids: [u.user_id] });
    assert.equal(d.status, 200, d.text);
    checkErrorEnvelope(assert, await chat(sluice, u.key), 401);
    checkErrorEnvelope(assert, await api.get(`/user/info?user_id=${u.user_id}`), 404);
    checkErrorEnvelope(assert, await api.post('/user/delete', { user_ids: [u.user_id] }), 404);
  });

  it('a proxy_admin user key is an admin', async () => {
    const a = (await api.post('/user/new', { user_id: uniq('padmin'), user_role: 'proxy_admin' })).body;
    const r = await client(sluice, a.key).post('/team/new', { team_alias: 'made-by-proxy-admin' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.created_by, a.user_id);
  });

  it('shuts down cleanly', async () => {
    await sluice.stop();
  });
});
