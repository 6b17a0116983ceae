/* admin/users_api — /user/new, /user/update, /user/delete, /user/info, /user/list.
 *
 * As in LiteLLM, /user/new also creates a key for the new user (unless auto_create_key is
 * false) and returns its plaintext once; joining teams at creation adds the user to each team's
 * members_with_roles with role "user". Deleting a user deletes the user's keys and removes the
 * user from its teams. Everything but /user/info (a user's own keys may read it) is for admins. */
#include "admin/admin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

static int load_user(db_conn *c, adm_job *j, const char *user_id, db_result *r)
{
    const char *p[] = {user_id};
    return adm_exec(c, j, "SELECT * FROM sluice_users WHERE user_id = $1", 1, p, r);
}

/* Another user with this e-mail? 1 yes (answered), 0 no, -1 db error. */
static int email_taken(db_conn *c, adm_job *j, const char *email, const char *self)
{
    db_result r;
    const char *p[] = {email};
    if (adm_exec(c, j, "SELECT user_id FROM sluice_users WHERE user_email = $1", 1, p, &r) < 0)
        return -1;
    bool taken = false;
    for (int i = 0; i < r.nrows; i++)
        if (!self || strcmp(adm_col(&r, i, "user_id"), self))
            taken = true;
    db_result_free(&r);
    if (taken)
        return adm_fail(j, 400, "bad_request_error", "user_email",
                        "A user with user_email '%s' already exists", email);
    return 0;
}

/* ---- /user/new ---------------------------------------------------------------------------- */

static int new_body(db_conn *c, adm_job *j)
{
    const cJSON *in = j->in;
    char gen[37];
    const char *user_id = adm_str(in, "user_id");
    if (!user_id) {
        if (adm_uuid(gen) < 0)
            return adm_fail(j, 500, "internal_server_error", NULL, "random generator failed");
        user_id = gen;
    }
    int e = adm_exists(c, j, "sluice_users", "user_id", user_id);
    if (e < 0)
        return -1;
    if (e)
        return adm_fail(j, 400, "bad_request_error", "user_id",
                        "User with user_id '%s' already exists", user_id);
    const char *email = adm_str(in, "user_email");
    int rc = email ? email_taken(c, j, email, NULL) : 0;
    if (rc)
        return rc;
    const cJSON *teams = cJSON_GetObjectItemCaseSensitive(in, "teams");
    const cJSON *t;
    cJSON_ArrayForEach(t, teams)
    {
        e = adm_exists(c, j, "sluice_teams", "team_id", t->valuestring);
        if (e < 0)
            return -1;
        if (!e)
            return adm_fail(j, 400, "bad_request_error", "teams",
                            "team_id '%s' does not exist; create it with /team/new first",
                            t->valuestring);
    }
    const char *org = adm_str(in, "organization_id");
    if (org) {
        e = adm_exists(c, j, "sluice_organizations", "organization_id", org);
        if (e < 0)
            return -1;
        if (!e)
            return adm_fail(j, 400, "bad_request_error", "organization_id",
                            "organization_id '%s' does not exist", org);
    }
    char now[32];
    time_t tnow = time(NULL);
    adm_iso_time(tnow, now);
    adm_qb q;
    qb_init(&q);
    qb_set(&q, false, "user_id", user_id);
    qb_fields(&q, false, in, adm_user_fields, adm_user_nfields, NULL);
    qb_set_own(&q, false, "teams",
               cJSON_IsArray(teams) ? cJSON_PrintUnformatted(teams) : strdup("[]"));
    qb_times(&q, false, in, tnow, false);
    qb_set(&q, false, "created_at", now);
    qb_set(&q, false, "updated_at", now);
    char *sql = qb_insert_sql(&q, "sluice_users");
    int n = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, NULL) : -1;
    free(sql);
    qb_free(&q);
    if (n < 0)
        return -1;
    cJSON_ArrayForEach(t, teams)
    {
        if (adm_team_members_edit(c, j, t->valuestring, user_id, "user") < 0)
            return -1;
    }
    db_result r;
    if (load_user(c, j, user_id, &r) < 0)
        return -1;
    cJSON *out = r.nrows ? adm_user_json(&r, 0) : cJSON_CreateObject();
    db_result_free(&r);

    const cJSON *auto_key = cJSON_GetObjectItemCaseSensitive(in, "auto_create_key");
    if (cJSON_IsFalse(auto_key)) {
        cJSON_AddNullToObject(out, "key");
    } else {
        /* the key carries the user's models and the key fields of the request */
        cJSON *kin = cJSON_CreateObject();
        static const char *const pass[] = {"models", "key_alias", "duration", "aliases"};
        for (size_t i = 0; i < sizeof pass / sizeof *pass; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, pass[i]);
            if (v)
                cJSON_AddItemToObject(kin, pass[i], cJSON_Duplicate(v, 1));
        }
        cJSON *krow;
        rc = adm_key_insert(c, j, kin, user_id, &krow);
        cJSON_Delete(kin);
        if (rc) {
            cJSON_Delete(out);
            return rc;
        }
        static const char *const take[] = {"key", "key_name", "token", "token_id", "expires",
                                           "key_alias", "duration"};
        for (size_t i = 0; i < sizeof take / sizeof *take; i++) {
            cJSON *v = cJSON_DetachItemFromObjectCaseSensitive(krow, take[i]);
            if (v)
                cJSON_AddItemToObject(out, take[i], v);
        }
        cJSON_Delete(krow);
    }
    adm_ok(j, out);
    return 0;
}

static int new_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    return adm_tx(c, j, new_body);
}

void adm_h_user_new(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_user_fields, adm_user_nfields)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, new_run, in, NULL);
}

/* ---- /user/update ------------------------------------------------------------------------- */

/* The user a request names by user_id or user_email: its id in *out (malloc'd), or answered. */
static int find_user(db_conn *c, adm_job *j, char **out)
{
    *out = NULL;
    const char *uid = adm_str(j->in, "user_id");
    db_result r;
    if (uid) {
        if (load_user(c, j, uid, &r) < 0)
            return -1;
    } else {
        const char *p[] = {adm_str(j->in, "user_email")};
        if (adm_exec(c, j, "SELECT * FROM sluice_users WHERE user_email = $1", 1, p, &r) < 0)
            return -1;
    }
    if (r.nrows)
        *out = strdup(adm_col(&r, 0, "user_id"));
    db_result_free(&r);
    if (!*out)
        return adm_fail(j, 404, "not_found_error", uid ? "user_id" : "user_email",
                        "User not found: %s", uid ? uid : adm_str(j->in, "user_email"));
    return 0;
}

static int update_run(db_conn *c, adm_job *j)
{
    char *uid;
    int rc = find_user(c, j, &uid);
    if (rc)
        return rc;
    const char *email = adm_str(j->in, "user_email");
    /* with user_id given, user_email is a field to change */
    if (email && adm_str(j->in, "user_id") && (rc = email_taken(c, j, email, uid))) {
        free(uid);
        return rc;
    }
    char now[32];
    time_t tnow = time(NULL);
    adm_iso_time(tnow, now);
    adm_qb q;
    qb_init(&q);
    static const char *const skip_email[] = {"user_email", NULL};
    qb_fields(&q, true, j->in, adm_user_fields, adm_user_nfields,
              adm_str(j->in, "user_id") ? NULL : skip_email);
    qb_times(&q, true, j->in, tnow, false);
    qb_set(&q, true, "updated_at", now);
    char *sql = qb_update_sql(&q, "sluice_users", "user_id", uid);
    int n = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, NULL) : -1;
    free(sql);
    qb_free(&q);
    db_result r;
    if (n < 0 || load_user(c, j, uid, &r) < 0) {
        free(uid);
        return -1;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "user_id", uid);
    cJSON_AddItemToObject(out, "data", r.nrows ? adm_user_json(&r, 0) : cJSON_CreateObject());
    db_result_free(&r);
    adm_inval_owner(j, NULL, uid);
    free(uid);
    adm_ok(j, out);
    return 0;
}

void adm_h_user_update(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_user_fields, adm_user_nfields)) {
        cJSON_Delete(in);
        return;
    }
    if (!adm_str(in, "user_id") && !adm_str(in, "user_email")) {
        adm_reply_error(req, 400, "bad_request_error", "user_id",
                        "Pass the user to update: 'user_id' or 'user_email'");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, update_run, in, NULL);
}

/* ---- /user/delete ------------------------------------------------------------------------- */

static int delete_body(db_conn *c, adm_job *j)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j->in, "user_ids");
    cJSON *deleted = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, ids)
    {
        db_result r;
        if (load_user(c, j, it->valuestring, &r) < 0)
            goto fail;
        if (r.nrows == 0) {
            db_result_free(&r);
            continue;
        }
        const char *tj = adm_col(&r, 0, "teams");
        cJSON *teams = tj ? cJSON_Parse(tj) : NULL;
        db_result_free(&r);
        const cJSON *t;
        int rc = 0;
        cJSON_ArrayForEach(t, teams)
        {
            if (cJSON_IsString(t) && adm_team_members_edit(c, j, t->valuestring, it->valuestring,
                                                           NULL) < 0)
                rc = -1;
        }
        cJSON_Delete(teams);
        const char *p[] = {it->valuestring};
        if (rc < 0 ||
            adm_exec(c, j, "SELECT token FROM sluice_keys WHERE user_id = $1", 1, p, &r) < 0)
            goto fail;
        for (int i = 0; i < r.nrows; i++)
            adm_inval_key(j, adm_col(&r, i, "token"));
        db_result_free(&r);
        if (adm_exec(c, j, "DELETE FROM sluice_keys WHERE user_id = $1", 1, p, NULL) < 0 ||
            adm_exec(c, j, "DELETE FROM sluice_users WHERE user_id = $1", 1, p, NULL) < 0)
            goto fail;
        cJSON_AddItemToArray(deleted, cJSON_CreateString(it->valuestring));
    }
    if (cJSON_GetArraySize(deleted) == 0) {
        cJSON_Delete(deleted);
        return adm_fail(j, 404, "not_found_error", "user_ids", "None of the users exist");
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "deleted_users", deleted);
    adm_ok(j, out);
    return 0;
fail:
    cJSON_Delete(deleted);
    return -1;
}

static int delete_run(db_conn *c, adm_job *j)
{
    return adm_tx(c, j, delete_body);
}

void adm_h_user_delete(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(in, "user_ids");
    if (!adm_string_array(ids) || cJSON_GetArraySize(ids) == 0) {
        adm_reply_error(req, 400, "bad_request_error", "user_ids",
                        "Invalid value for 'user_ids': expected a non-empty array of user ids");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, delete_run, in, NULL);
}

/* ---- /user/info --------------------------------------------------------------------------- */

static int info_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *uid = adm_str(j->in, "user_id");
    if (!uid)
        uid = j->user_id; /* LiteLLM: the calling key's user */
    if (!uid)
        return adm_fail(j, 400, "bad_request_error", "user_id",
                        "Pass the user to look up: /user/info?user_id=...");
    if (!j->admin && !(j->user_id && !strcmp(uid, j->user_id)))
        return adm_forbidden(j, "a non-admin key may only read its own user's info");
    db_result r;
    if (load_user(c, j, uid, &r) < 0)
        return -1;
    if (r.nrows == 0) {
        db_result_free(&r);
        return adm_fail(j, 404, "not_found_error", "user_id", "User not found: %s", uid);
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "user_id", uid);
    cJSON *info = adm_user_json(&r, 0);
    db_result_free(&r);
    cJSON_AddItemToObject(out, "user_info", info);
    const char *p[] = {uid};
    if (adm_exec(c, j, "SELECT * FROM sluice_keys WHERE user_id = $1 ORDER BY created_at", 1, p,
                 &r) < 0) {
        cJSON_Delete(out);
        return -1;
    }
    cJSON *keys = cJSON_AddArrayToObject(out, "keys");
    for (int i = 0; i < r.nrows; i++)
        cJSON_AddItemToArray(keys, adm_key_json(&r, i));
    db_result_free(&r);
    cJSON *teams = cJSON_AddArrayToObject(out, "teams");
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(info, "teams"))
    {
        if (!cJSON_IsString(t))
            continue;
        const char *tp[] = {t->valuestring};
        if (adm_exec(c, j, "SELECT * FROM sluice_teams WHERE team_id = $1", 1, tp, &r) < 0) {
            cJSON_Delete(out);
            return -1;
        }
        if (r.nrows)
            cJSON_AddItemToArray(teams, adm_team_json(&r, 0));
        db_result_free(&r);
    }
    adm_ok(j, out);
    return 0;
}

void adm_h_user_info(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    adm_submit(w, req, id, info_run, adm_query(req), NULL);
}

/* ---- /user/list --------------------------------------------------------------------------- */

/* A LIKE pattern matching the JSON string s anywhere in a JSON text. */
static char *like_json_string(const char *s)
{
    cJSON *str = cJSON_CreateString(s);
    char *js = cJSON_PrintUnformatted(str);
    cJSON_Delete(str);
    if (!js)
        return NULL;
    sbuf b;
    sbuf_init(&b);
    sbuf_adds(&b, "%");
    for (const char *p = js; *p; p++) {
        if (*p == '%' || *p == '_' || *p == '\\')
            sbuf_add(&b, "\\", 1);
        sbuf_add(&b, p, 1);
    }
    sbuf_adds(&b, "%");
    free(js);
    return sbuf_take(&b, NULL);
}

static int list_run(db_conn *c, adm_job *j)
{
    const cJSON *in = j->in;
    long page = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "_page"));
    long size = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "_size"));
    adm_qb q;
    qb_init(&q);
    sbuf w;
    sbuf_init(&w);
    sbuf_adds(&w, " WHERE 1 = 1");
    const char *v;
    if ((v = adm_str(in, "role")))
        sbuf_addf(&w, " AND user_role = $%d", qb_param(&q, v));
    if ((v = adm_str(in, "user_email")))
        sbuf_addf(&w, " AND user_email = $%d", qb_param(&q, v));
    if ((v = adm_str(in, "team"))) {
        char *pat = like_json_string(v);
        sbuf_addf(&w, " AND teams LIKE $%d ESCAPE '\\'", qb_param(&q, pat));
        free(pat);
    }
    if ((v = adm_str(in, "user_ids")) && *v) {
        sbuf_adds(&w, " AND user_id IN (");
        char *list = strdup(v);
        int k = 0;
        for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save))
            sbuf_addf(&w, "%s$%d", k++ ? ", " : "", qb_param(&q, tok));
        if (!k)
            sbuf_adds(&w, "NULL");
        sbuf_adds(&w, ")");
        free(list);
    }
    char *where = sbuf_take(&w, NULL);
    sbuf s;
    sbuf_init(&s);
    sbuf_addf(&s, "SELECT COUNT(*) AS n FROM sluice_users%s", where ? where : "");
    char *sql = sbuf_take(&s, NULL);
    db_result r;
    int rc = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, &r) : -1;
    free(sql);
    long total = 0;
    if (rc >= 0) {
        const char *t = adm_col(&r, 0, "n");
        total = t ? atol(t) : 0;
        db_result_free(&r);
        sbuf_init(&s); /* validated integers inline, as in /key/list */
        sbuf_addf(&s, "SELECT * FROM sluice_users%s ORDER BY created_at, user_id "
                      "LIMIT %ld OFFSET %ld", where ? where : "", size, (page - 1) * size);
        sql = sbuf_take(&s, NULL);
        rc = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, &r) : -1;
        free(sql);
    }
    free(where);
    qb_free(&q);
    if (rc < 0)
        return -1;
    cJSON *out = cJSON_CreateObject();
    cJSON *users = cJSON_AddArrayToObject(out, "users");
    for (int i = 0; i < r.nrows; i++)
        cJSON_AddItemToArray(users, adm_user_json(&r, i));
    db_result_free(&r);
    cJSON_AddNumberToObject(out, "total", (double)total);
    cJSON_AddNumberToObject(out, "page", (double)page);
    cJSON_AddNumberToObject(out, "page_size", (double)size);
    cJSON_AddNumberToObject(out, "total_pages", (double)((total + size - 1) / size));
    adm_ok(j, out);
    return 0;
}

void adm_h_user_list(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *q = adm_query(req);
    long page, size;
    if (adm_query_int(req, q, "page", 1, 1000000000L, &page) < 0 ||
        adm_query_int(req, q, "page_size", 25, 100, &size) < 0) {
        cJSON_Delete(q);
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(q, "_page"); /* ours, not the client's */
    cJSON_DeleteItemFromObjectCaseSensitive(q, "_size");
    cJSON_AddNumberToObject(q, "_page", (double)page);
    cJSON_AddNumberToObject(q, "_size", (double)size);
    adm_submit(w, req, id, list_run, q, NULL);
}
