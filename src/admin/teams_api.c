/* admin/teams_api — /team/new, /team/update, /team/delete, /team/info, /team/list,
 * /team/member_add, /team/member_delete, /team/block, /team/unblock; and team membership, which
 * is kept on both sides as LiteLLM keeps it: the team's members_with_roles and each user's
 * teams list. Members named only by e-mail are looked up, or created as internal users.
 *
 * Admins manage every team; a team's admins (members with role "admin") may update it and add
 * or remove members, but not change its budget, limits, models or organization; members and
 * the team's keys may read /team/info. Deleting a team deletes its keys, as LiteLLM does. */
#include "admin/admin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

static int load_team(db_conn *c, adm_job *j, const char *team_id, db_result *r)
{
    const char *p[] = {team_id};
    return adm_exec(c, j, "SELECT * FROM sluice_teams WHERE team_id = $1", 1, p, r);
}

static int load_user(db_conn *c, adm_job *j, const char *user_id, db_result *r)
{
    const char *p[] = {user_id};
    return adm_exec(c, j, "SELECT * FROM sluice_users WHERE user_id = $1", 1, p, r);
}

static cJSON *parse_arr(const char *s)
{
    cJSON *a = s ? cJSON_Parse(s) : NULL;
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        a = cJSON_CreateArray();
    }
    return a;
}

/* ---- membership --------------------------------------------------------------------------- */

int adm_ensure_user(db_conn *c, adm_job *j, const cJSON *member, char **user_id)
{
    *user_id = NULL;
    const char *uid = adm_str(member, "user_id");
    const char *mail = adm_str(member, "user_email");
    db_result r;
    if (uid) {
        if (load_user(c, j, uid, &r) < 0)
            return -1;
        int n = r.nrows;
        db_result_free(&r);
        if (n > 0) {
            *user_id = strdup(uid);
            return 0;
        }
    } else {
        const char *p[] = {mail};
        if (adm_exec(c, j, "SELECT user_id FROM sluice_users WHERE user_email = $1", 1, p, &r) <
            0)
            return -1;
        if (r.nrows > 0)
            *user_id = strdup(adm_col(&r, 0, "user_id"));
        db_result_free(&r);
        if (*user_id)
            return 0;
    }
    char gen[37], now[32];
    if (!uid) {
        if (adm_uuid(gen) < 0)
            return adm_fail(j, 500, "internal_server_error", NULL, "random generator failed");
        uid = gen;
    }
    adm_now(now);
    const char *p[] = {uid, mail, now};
    if (adm_exec(c, j, "INSERT INTO sluice_users (user_id, user_email, user_role, teams, "
                       "created_at, updated_at) VALUES ($1, $2, 'internal_user', '[]', $3, $3)",
                 3, p, NULL) < 0)
        return -1;
    *user_id = strdup(uid);
    return 0;
}

int adm_user_teams_edit(db_conn *c, adm_job *j, const char *user_id, const char *team_id,
                        bool add)
{
    db_result r;
    const char *p[] = {user_id};
    if (adm_exec(c, j, "SELECT teams FROM sluice_users WHERE user_id = $1", 1, p, &r) < 0)
        return -1;
    if (r.nrows == 0) {
        db_result_free(&r);
        return 0;
    }
    cJSON *teams = parse_arr(adm_col(&r, 0, "teams"));
    db_result_free(&r);
    int at = -1, i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, teams)
    {
        if (cJSON_IsString(it) && !strcmp(it->valuestring, team_id))
            at = i;
        i++;
    }
    bool changed = false;
    if (add && at < 0) {
        cJSON_AddItemToArray(teams, cJSON_CreateString(team_id));
        changed = true;
    } else if (!add && at >= 0) {
        cJSON_DeleteItemFromArray(teams, at);
        changed = true;
    }
    int rc = 0;
    if (changed) {
        char *s = cJSON_PrintUnformatted(teams);
        char now[32];
        adm_now(now);
        const char *q[] = {s, now, user_id};
        rc = adm_exec(c, j, "UPDATE sluice_users SET teams = $1, updated_at = $2 "
                            "WHERE user_id = $3", 3, q, NULL) < 0 ? -1 : 0;
        free(s);
    }
    cJSON_Delete(teams);
    return rc;
}

static bool in_members(const cJSON *members, const char *user_id)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        const char *uid = adm_str(m, "user_id");
        if (uid && !strcmp(uid, user_id))
            return true;
    }
    return false;
}

/* Sets (role) or removes (NULL) one member in a members_with_roles array. */
static void members_set(cJSON *members, const char *user_id, const char *email, const char *role)
{
    int i = 0, at = -1;
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        const char *uid = adm_str(m, "user_id");
        if (uid && !strcmp(uid, user_id))
            at = i;
        i++;
    }
    if (at >= 0)
        cJSON_DeleteItemFromArray(members, at);
    if (!role)
        return;
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "user_id", user_id);
    cJSON_AddItemToObject(n, "user_email", email ? cJSON_CreateString(email) : cJSON_CreateNull());
    cJSON_AddStringToObject(n, "role", role);
    cJSON_AddItemToArray(members, n);
}

int adm_team_members_edit(db_conn *c, adm_job *j, const char *team_id, const char *user_id,
                          const char *role)
{
    db_result r;
    const char *p[] = {team_id};
    if (adm_exec(c, j, "SELECT members_with_roles FROM sluice_teams WHERE team_id = $1", 1, p,
                 &r) < 0)
        return -1;
    if (r.nrows == 0) {
        db_result_free(&r);
        return 0;
    }
    cJSON *members = parse_arr(adm_col(&r, 0, "members_with_roles"));
    db_result_free(&r);
    members_set(members, user_id, NULL, role);
    char *s = cJSON_PrintUnformatted(members);
    cJSON_Delete(members);
    char now[32];
    adm_now(now);
    const char *q[] = {s, now, team_id};
    int rc = adm_exec(c, j, "UPDATE sluice_teams SET members_with_roles = $1, updated_at = $2 "
                            "WHERE team_id = $3", 3, q, NULL) < 0 ? -1 : 0;
    free(s);
    return rc;
}

/* The members a team request names: members_with_roles, plus LiteLLM's older admins / members
 * lists of user ids. Each is resolved to a user (created if needed); a user named twice keeps
 * the last role. Returns the normalized array, or NULL (answered or db error in *rc). */
static cJSON *resolve_members(db_conn *c, adm_job *j, const cJSON *in, int *rc)
{
    cJSON *all = cJSON_CreateArray();
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(in, "members_with_roles"))
        cJSON_AddItemToArray(all, cJSON_Duplicate(m, 1));
    static const char *const lists[][2] = {{"members", "user"}, {"admins", "admin"}};
    for (size_t i = 0; i < 2; i++) {
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(in, lists[i][0]))
        {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "user_id", m->valuestring);
            cJSON_AddStringToObject(o, "role", lists[i][1]);
            cJSON_AddItemToArray(all, o);
        }
    }
    cJSON *out = cJSON_CreateArray();
    *rc = 0;
    cJSON_ArrayForEach(m, all)
    {
        char *uid;
        *rc = adm_ensure_user(c, j, m, &uid);
        if (*rc)
            break;
        members_set(out, uid, adm_str(m, "user_email"), adm_str(m, "role"));
        free(uid);
    }
    cJSON_Delete(all);
    if (*rc) {
        cJSON_Delete(out);
        return NULL;
    }
    return out;
}

/* Adds the team to the teams list of users in `now_m` but not in `before`, removes it from those
 * only in `before`. */
static int sync_user_teams(db_conn *c, adm_job *j, const char *team_id, const cJSON *before,
                           const cJSON *now_m)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, now_m)
    {
        const char *uid = adm_str(m, "user_id");
        if (uid && adm_user_teams_edit(c, j, uid, team_id, true) < 0)
            return -1;
    }
    cJSON_ArrayForEach(m, before)
    {
        const char *uid = adm_str(m, "user_id");
        bool kept = false;
        const cJSON *n;
        cJSON_ArrayForEach(n, now_m)
        {
            const char *nid = adm_str(n, "user_id");
            if (uid && nid && !strcmp(uid, nid))
                kept = true;
        }
        if (uid && !kept) {
            if (adm_user_teams_edit(c, j, uid, team_id, false) < 0)
                return -1;
            adm_inval_owner(j, NULL, uid);
        }
    }
    return 0;
}

static int reply_team(db_conn *c, adm_job *j, const char *team_id, bool wrap)
{
    db_result r;
    if (load_team(c, j, team_id, &r) < 0)
        return -1;
    cJSON *t = r.nrows ? adm_team_json(&r, 0) : cJSON_CreateObject();
    db_result_free(&r);
    if (wrap) { /* /team/update's shape */
        cJSON *out = cJSON_CreateObject();
        cJSON_AddStringToObject(out, "team_id", team_id);
        cJSON_AddItemToObject(out, "data", t);
        t = out;
    }
    adm_ok(j, t);
    return 0;
}

static int check_org(db_conn *c, adm_job *j, const cJSON *in)
{
    const char *org = adm_str(in, "organization_id");
    if (!org)
        return 0;
    int e = adm_exists(c, j, "sluice_organizations", "organization_id", org);
    if (e < 0)
        return -1;
    if (!e)
        return adm_fail(j, 400, "bad_request_error", "organization_id",
                        "organization_id '%s' does not exist", org);
    return 0;
}

/* ---- /team/new ---------------------------------------------------------------------------- */

static int new_body(db_conn *c, adm_job *j)
{
    char gen[37];
    const char *team_id = adm_str(j->in, "team_id");
    if (!team_id) {
        if (adm_uuid(gen) < 0)
            return adm_fail(j, 500, "internal_server_error", NULL, "random generator failed");
        team_id = gen;
    }
    int e = adm_exists(c, j, "sluice_teams", "team_id", team_id);
    if (e < 0)
        return -1;
    if (e)
        return adm_fail(j, 400, "bad_request_error", "team_id",
                        "Team id = %s already exists. Use a different team_id", team_id);
    int rc = check_org(c, j, j->in);
    if (rc)
        return rc;
    cJSON *members = resolve_members(c, j, j->in, &rc);
    if (!members)
        return rc;
    char now[32];
    time_t tnow = time(NULL);
    adm_iso_time(tnow, now);
    adm_qb q;
    qb_init(&q);
    static const char *const skip[] = {"metadata", NULL};
    qb_set(&q, false, "team_id", team_id);
    qb_fields(&q, false, j->in, adm_team_fields, adm_team_nfields, skip);
    qb_set_own(&q, false, "members_with_roles", cJSON_PrintUnformatted(members));
    char *md = adm_metadata_text(j->in, NULL);
    if (md)
        qb_set_own(&q, false, "metadata", md);
    qb_times(&q, false, j->in, tnow, false);
    qb_set(&q, false, "created_at", now);
    qb_set(&q, false, "updated_at", now);
    qb_set(&q, false, "created_by", adm_actor(j));
    qb_set(&q, false, "updated_by", adm_actor(j));
    char *sql = qb_insert_sql(&q, "sluice_teams");
    int n = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, NULL) : -1;
    free(sql);
    qb_free(&q);
    if (n >= 0)
        n = sync_user_teams(c, j, team_id, NULL, members);
    cJSON_Delete(members);
    if (n < 0)
        return -1;
    return reply_team(c, j, team_id, false);
}

static int new_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    return adm_tx(c, j, new_body);
}

void adm_h_team_new(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_team_fields, adm_team_nfields)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, new_run, in, NULL);
}

/* ---- loading a team for a change, with the permission check ------------------------------- */

/* Loads team_id (from in) into *r; 0 when the caller may manage it, else answered (1) or -1. */
static int team_for_change(db_conn *c, adm_job *j, db_result *r)
{
    memset(r, 0, sizeof *r);
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *team_id = adm_str(j->in, "team_id");
    if (load_team(c, j, team_id, r) < 0)
        return -1;
    if (!j->admin && (r->nrows == 0 || !adm_is_team_admin(adm_col(r, 0, "members_with_roles"),
                                                          j->user_id)))
        return adm_forbidden(j, "only admins and the team's admins may change a team");
    if (r->nrows == 0)
        return adm_fail(j, 404, "not_found_error", "team_id", "Team not found, team_id=%s",
                        team_id);
    return 0;
}

/* ---- /team/update ------------------------------------------------------------------------- */

static int update_body(db_conn *c, adm_job *j)
{
    db_result r;
    int rc = team_for_change(c, j, &r);
    if (rc) {
        db_result_free(&r);
        return rc;
    }
    const char *team_id = adm_str(j->in, "team_id");
    if (!j->admin) {
        static const char *const admin_only[] = {"max_budget", "budget_duration", "rpm_limit",
                                                 "tpm_limit", "max_parallel_requests", "models",
                                                 "organization_id", "blocked"};
        for (size_t i = 0; i < sizeof admin_only / sizeof *admin_only; i++)
            if (adm_has(j->in, admin_only[i])) {
                db_result_free(&r);
                char why[128];
                snprintf(why, sizeof why, "only admins may change a team's '%s'",
                         admin_only[i]);
                return adm_forbidden(j, why);
            }
    }
    rc = check_org(c, j, j->in);
    cJSON *before = parse_arr(adm_col(&r, 0, "members_with_roles"));
    cJSON *old_md = cJSON_Parse(adm_col(&r, 0, "metadata") ? adm_col(&r, 0, "metadata") : "{}");
    db_result_free(&r);
    cJSON *members = NULL;
    bool set_members = adm_has(j->in, "members_with_roles") || adm_has(j->in, "members") ||
                       adm_has(j->in, "admins");
    if (!rc && set_members) {
        members = resolve_members(c, j, j->in, &rc);
        if (members && sync_user_teams(c, j, team_id, before, members) < 0)
            rc = -1;
    }
    if (rc) {
        cJSON_Delete(before);
        cJSON_Delete(old_md);
        cJSON_Delete(members);
        return rc;
    }
    char now[32];
    time_t tnow = time(NULL);
    adm_iso_time(tnow, now);
    adm_qb q;
    qb_init(&q);
    static const char *const skip[] = {"metadata", NULL};
    qb_fields(&q, true, j->in, adm_team_fields, adm_team_nfields, skip);
    if (members)
        qb_set_own(&q, true, "members_with_roles", cJSON_PrintUnformatted(members));
    char *md = adm_metadata_text(j->in, old_md);
    if (md)
        qb_set_own(&q, true, "metadata", md);
    qb_times(&q, true, j->in, tnow, false);
    qb_set(&q, true, "updated_at", now);
    qb_set(&q, true, "updated_by", adm_actor(j));
    char *sql = qb_update_sql(&q, "sluice_teams", "team_id", team_id);
    int n = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, NULL) : -1;
    free(sql);
    qb_free(&q);
    cJSON_Delete(before);
    cJSON_Delete(old_md);
    cJSON_Delete(members);
    if (n < 0)
        return -1;
    adm_inval_owner(j, team_id, NULL);
    return reply_team(c, j, team_id, true);
}

static int update_run(db_conn *c, adm_job *j)
{
    return adm_tx(c, j, update_body);
}

static bool need_team_id(struct evhttp_request *req, const cJSON *in)
{
    const char *t = adm_str(in, "team_id");
    if (t && *t)
        return true;
    adm_reply_error(req, 400, "bad_request_error", "team_id", "Missing required field 'team_id'");
    return false;
}

void adm_h_team_update(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_team_fields, adm_team_nfields) || !need_team_id(req, in)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, update_run, in, NULL);
}

/* ---- /team/delete ------------------------------------------------------------------------- */

static int delete_body(db_conn *c, adm_job *j)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j->in, "team_ids");
    const cJSON *it;
    cJSON_ArrayForEach(it, ids)
    {
        int e = adm_exists(c, j, "sluice_teams", "team_id", it->valuestring);
        if (e < 0)
            return -1;
        if (!e)
            return adm_fail(j, 404, "not_found_error", "team_ids", "Team not found, team_id=%s",
                            it->valuestring);
    }
    cJSON_ArrayForEach(it, ids)
    {
        const char *p[] = {it->valuestring};
        db_result r;
        if (adm_exec(c, j, "SELECT token FROM sluice_keys WHERE team_id = $1", 1, p, &r) < 0)
            return -1;
        for (int i = 0; i < r.nrows; i++)
            adm_inval_key(j, adm_col(&r, i, "token"));
        db_result_free(&r);
        if (adm_exec(c, j, "DELETE FROM sluice_keys WHERE team_id = $1", 1, p, NULL) < 0 ||
            load_team(c, j, it->valuestring, &r) < 0)
            return -1;
        cJSON *members = parse_arr(adm_col(&r, 0, "members_with_roles"));
        db_result_free(&r);
        int rc = sync_user_teams(c, j, it->valuestring, members, NULL);
        cJSON_Delete(members);
        if (rc < 0 || adm_exec(c, j, "DELETE FROM sluice_teams WHERE team_id = $1", 1, p, NULL) < 0)
            return -1;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "deleted_teams", cJSON_Duplicate(ids, 1));
    adm_ok(j, out);
    return 0;
}

static int delete_run(db_conn *c, adm_job *j)
{
    return adm_tx(c, j, delete_body);
}

void adm_h_team_delete(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(in, "team_ids");
    if (!adm_string_array(ids) || cJSON_GetArraySize(ids) == 0) {
        adm_reply_error(req, 400, "bad_request_error", "team_ids",
                        "Invalid value for 'team_ids': expected a non-empty array of team ids");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, delete_run, in, NULL);
}

/* ---- /team/info --------------------------------------------------------------------------- */

static cJSON *team_keys(db_conn *c, adm_job *j, const char *team_id)
{
    db_result r;
    const char *p[] = {team_id};
    if (adm_exec(c, j, "SELECT * FROM sluice_keys WHERE team_id = $1 ORDER BY created_at", 1, p,
                 &r) < 0)
        return NULL;
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < r.nrows; i++)
        cJSON_AddItemToArray(a, adm_key_json(&r, i));
    db_result_free(&r);
    return a;
}

static int info_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *team_id = adm_str(j->in, "team_id");
    if (!team_id)
        team_id = j->team_id; /* LiteLLM: the calling key's team */
    if (!team_id)
        return adm_fail(j, 400, "bad_request_error", "team_id",
                        "Pass the team to look up: /team/info?team_id=...");
    db_result r;
    if (load_team(c, j, team_id, &r) < 0)
        return -1;
    bool allowed = j->admin || (r.nrows > 0 && ((j->team_id && !strcmp(j->team_id, team_id)) ||
                                                adm_is_team_member(
                                                    adm_col(&r, 0, "members_with_roles"),
                                                    j->user_id)));
    int rc = 0;
    if (!allowed)
        rc = adm_forbidden(j, "only admins, the team's members and the team's keys may read "
                              "a team's info");
    else if (r.nrows == 0)
        rc = adm_fail(j, 404, "not_found_error", "team_id", "Team not found, team_id=%s",
                      team_id);
    if (rc) {
        db_result_free(&r);
        return rc;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "team_id", team_id);
    cJSON_AddItemToObject(out, "team_info", adm_team_json(&r, 0));
    db_result_free(&r);
    cJSON *keys = team_keys(c, j, team_id);
    if (!keys) {
        cJSON_Delete(out);
        return -1;
    }
    cJSON_AddItemToObject(out, "keys", keys);
    cJSON_AddItemToObject(out, "team_memberships", cJSON_CreateArray());
    adm_ok(j, out);
    return 0;
}

void adm_h_team_info(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    adm_submit(w, req, id, info_run, adm_query(req), NULL);
}

/* ---- /team/list --------------------------------------------------------------------------- */

static int list_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *user_id = adm_str(j->in, "user_id");
    const char *org = adm_str(j->in, "organization_id");
    if (!j->admin) {
        if (user_id && !(j->user_id && !strcmp(user_id, j->user_id)))
            return adm_forbidden(j, "a non-admin key may only list its own user's teams");
    }
    db_result r, k;
    int rc;
    if (org) {
        const char *p[] = {org};
        rc = adm_exec(c, j, "SELECT * FROM sluice_teams WHERE organization_id = $1 "
                            "ORDER BY created_at, team_id", 1, p, &r);
    } else {
        rc = adm_exec(c, j, "SELECT * FROM sluice_teams ORDER BY created_at, team_id", 0, NULL,
                      &r);
    }
    if (rc < 0)
        return -1;
    if (adm_exec(c, j, "SELECT * FROM sluice_keys WHERE team_id IS NOT NULL ORDER BY created_at",
                 0, NULL, &k) < 0) {
        db_result_free(&r);
        return -1;
    }
    cJSON *out = cJSON_CreateArray();
    for (int i = 0; i < r.nrows; i++) {
        const char *tid = adm_col(&r, i, "team_id");
        const char *members = adm_col(&r, i, "members_with_roles");
        bool mine = (j->team_id && !strcmp(j->team_id, tid)) ||
                    adm_is_team_member(members, j->user_id);
        if (!j->admin && !mine)
            continue;
        if (user_id && !adm_is_team_member(members, user_id))
            continue;
        cJSON *t = adm_team_json(&r, i);
        cJSON *keys = cJSON_AddArrayToObject(t, "keys");
        for (int x = 0; x < k.nrows; x++)
            if (!strcmp(adm_col(&k, x, "team_id"), tid))
                cJSON_AddItemToArray(keys, adm_key_json(&k, x));
        cJSON_AddItemToObject(t, "team_memberships", cJSON_CreateArray());
        cJSON_AddItemToArray(out, t);
    }
    db_result_free(&r);
    db_result_free(&k);
    adm_ok(j, out);
    return 0;
}

void adm_h_team_list(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    adm_submit(w, req, id, list_run, adm_query(req), NULL);
}

/* ---- /team/member_add, /team/member_delete ------------------------------------------------ */

static int member_add_body(db_conn *c, adm_job *j)
{
    db_result r;
    int rc = team_for_change(c, j, &r);
    if (rc) {
        db_result_free(&r);
        return rc;
    }
    const char *team_id = adm_str(j->in, "team_id");
    cJSON *members = parse_arr(adm_col(&r, 0, "members_with_roles"));
    db_result_free(&r);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j->in, "member");
    if (!m)
        m = cJSON_GetObjectItemCaseSensitive(j->in, "members_with_roles");
    cJSON *list = cJSON_IsArray(m) ? cJSON_Duplicate(m, 1) : cJSON_CreateArray();
    if (cJSON_IsObject(m))
        cJSON_AddItemToArray(list, cJSON_Duplicate(m, 1));
    cJSON *users = cJSON_CreateArray(), *memberships = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        char *uid;
        rc = adm_ensure_user(c, j, it, &uid);
        if (rc)
            break;
        if (in_members(members, uid)) {
            rc = adm_fail(j, 400, "bad_request_error", "member",
                          "User %s is already a member of team %s", uid, team_id);
            free(uid);
            break;
        }
        const char *role = adm_str(it, "role");
        members_set(members, uid, adm_str(it, "user_email"), role);
        if (adm_user_teams_edit(c, j, uid, team_id, true) < 0) {
            free(uid);
            rc = -1;
            break;
        }
        db_result u;
        if (load_user(c, j, uid, &u) < 0) {
            free(uid);
            rc = -1;
            break;
        }
        if (u.nrows)
            cJSON_AddItemToArray(users, adm_user_json(&u, 0));
        db_result_free(&u);
        cJSON *ms = cJSON_CreateObject();
        cJSON_AddStringToObject(ms, "user_id", uid);
        cJSON_AddStringToObject(ms, "team_id", team_id);
        cJSON_AddNumberToObject(ms, "spend", 0);
        cJSON_AddNullToObject(ms, "budget_id");
        cJSON_AddItemToArray(memberships, ms);
        adm_inval_owner(j, NULL, uid);
        free(uid);
    }
    cJSON_Delete(list);
    if (!rc) {
        char *s = cJSON_PrintUnformatted(members);
        char now[32];
        adm_now(now);
        const char *p[] = {s, now, team_id};
        if (adm_exec(c, j, "UPDATE sluice_teams SET members_with_roles = $1, updated_at = $2 "
                           "WHERE team_id = $3", 3, p, NULL) < 0)
            rc = -1;
        free(s);
    }
    cJSON_Delete(members);
    if (!rc)
        rc = reply_team(c, j, team_id, false);
    if (rc || !j->out) {
        cJSON_Delete(users);
        cJSON_Delete(memberships);
        return rc;
    }
    cJSON_AddItemToObject(j->out, "updated_users", users);
    cJSON_AddItemToObject(j->out, "updated_team_memberships", memberships);
    adm_inval_owner(j, team_id, NULL);
    return 0;
}

static int member_add_run(db_conn *c, adm_job *j)
{
    return adm_tx(c, j, member_add_body);
}

void adm_h_team_member_add(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_team_fields, adm_team_nfields) || !need_team_id(req, in)) {
        cJSON_Delete(in);
        return;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(in, "member");
    const cJSON *mr = cJSON_GetObjectItemCaseSensitive(in, "members_with_roles");
    if ((!cJSON_IsObject(m) && cJSON_GetArraySize(m) == 0) &&
        (!cJSON_IsArray(mr) || cJSON_GetArraySize(mr) == 0)) {
        adm_reply_error(req, 400, "bad_request_error", "member",
                        "Missing required field 'member': {\"role\": \"admin\" | \"user\", "
                        "\"user_id\" or \"user_email\"}, or an array of them");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, member_add_run, in, NULL);
}

static int member_delete_body(db_conn *c, adm_job *j)
{
    db_result r;
    int rc = team_for_change(c, j, &r);
    if (rc) {
        db_result_free(&r);
        return rc;
    }
    const char *team_id = adm_str(j->in, "team_id");
    cJSON *members = parse_arr(adm_col(&r, 0, "members_with_roles"));
    db_result_free(&r);
    char *uid = NULL;
    const char *given = adm_str(j->in, "user_id");
    if (given) {
        uid = strdup(given);
    } else {
        const char *p[] = {adm_str(j->in, "user_email")};
        if (adm_exec(c, j, "SELECT user_id FROM sluice_users WHERE user_email = $1", 1, p, &r) <
            0) {
            cJSON_Delete(members);
            return -1;
        }
        if (r.nrows)
            uid = strdup(adm_col(&r, 0, "user_id"));
        db_result_free(&r);
        /* a member added by e-mail only may have no user row: match the e-mail in the team */
        const cJSON *m;
        cJSON_ArrayForEach(m, members)
        {
            const char *e = adm_str(m, "user_email");
            if (!uid && e && !strcmp(e, p[0]) && adm_str(m, "user_id"))
                uid = strdup(adm_str(m, "user_id"));
        }
    }
    if (!uid || !in_members(members, uid)) {
        cJSON_Delete(members);
        rc = adm_fail(j, 400, "bad_request_error", given ? "user_id" : "user_email",
                      "User %s is not a member of team %s",
                      given ? given : adm_str(j->in, "user_email"), team_id);
        free(uid);
        return rc;
    }
    members_set(members, uid, NULL, NULL);
    char *s = cJSON_PrintUnformatted(members);
    cJSON_Delete(members);
    char now[32];
    adm_now(now);
    const char *p[] = {s, now, team_id};
    rc = adm_exec(c, j, "UPDATE sluice_teams SET members_with_roles = $1, updated_at = $2 "
                        "WHERE team_id = $3", 3, p, NULL) < 0 ? -1 : 0;
    free(s);
    if (!rc)
        rc = adm_user_teams_edit(c, j, uid, team_id, false);
    if (!rc) {
        adm_inval_owner(j, team_id, uid);
        rc = reply_team(c, j, team_id, false);
    }
    free(uid);
    return rc;
}

static int member_delete_run(db_conn *c, adm_job *j)
{
    return adm_tx(c, j, member_delete_body);
}

void adm_h_team_member_delete(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_team_fields, adm_team_nfields) || !need_team_id(req, in)) {
        cJSON_Delete(in);
        return;
    }
    if (!adm_str(in, "user_id") && !adm_str(in, "user_email")) {
        adm_reply_error(req, 400, "bad_request_error", "user_id",
                        "Pass the member to remove: 'user_id' or 'user_email'");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, member_delete_run, in, NULL);
}

/* ---- /team/block, /team/unblock ----------------------------------------------------------- */

static int block_set(db_conn *c, adm_job *j, const char *v)
{
    const char *team_id = adm_str(j->in, "team_id");
    char now[32];
    adm_now(now);
    const char *p[] = {v, now, team_id};
    int n = adm_exec(c, j, "UPDATE sluice_teams SET blocked = $1, updated_at = $2 "
                           "WHERE team_id = $3", 3, p, NULL);
    if (n < 0)
        return -1;
    if (n == 0)
        return adm_fail(j, 404, "not_found_error", "team_id", "Team not found, team_id=%s",
                        team_id);
    adm_inval_owner(j, team_id, NULL);
    return reply_team(c, j, team_id, false);
}

static int block_run(db_conn *c, adm_job *j)
{
    return block_set(c, j, "1");
}

static int unblock_run(db_conn *c, adm_job *j)
{
    return block_set(c, j, "0");
}

void adm_h_team_block(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!need_team_id(req, in)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, block_run, in, NULL);
}

void adm_h_team_unblock(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!need_team_id(req, in)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, unblock_run, in, NULL);
}
