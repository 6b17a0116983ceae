/* admin/keys_api — /key/generate, /key/update, /key/delete, /key/info, /key/list,
 * /key/regenerate, /key/block, /key/unblock.
 *
 * Keys are stored only as the SHA-256 hex of the whole key (token) with an abbreviation
 * (key_name "sk-...abcd"); the plaintext leaves the process once, in the response that created
 * it. Wherever a client names a key it may give the plaintext or the hash. Messages never echo a
 * plaintext key, only its abbreviation.
 *
 * Who may do what (LiteLLM's rules): admins everything; any other key may create keys for its
 * own user (and for a team it administers), read, update, regenerate and delete the keys of its
 * own user, and read its own info. Blocking is for admins. */
#include "admin/admin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "auth/auth.h"
#include "util/hash.h"

/* How a key a client named may appear in a message. */
static void key_shown(const char *given, char out[80])
{
    if (strncmp(given, "sk-", 3) == 0) {
        auth_abbrev(given, strlen(given), out);
        return;
    }
    snprintf(out, 80, "%.64s", given);
}

static int load_key(db_conn *c, adm_job *j, const char *token, db_result *r)
{
    const char *p[] = {token};
    return adm_exec(c, j, "SELECT * FROM sluice_keys WHERE token = $1", 1, p, r);
}

static bool same(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static bool viewer(const adm_job *j)
{
    return j->role && strstr(j->role, "viewer") != NULL;
}

/* key_alias unique (except the key itself), team and organization exist. 0 ok, 1 answered,
 * -1 db error. */
static int check_refs(db_conn *c, adm_job *j, const cJSON *in, const char *self_token)
{
    const char *alias = adm_str(in, "key_alias");
    if (alias) {
        db_result r;
        const char *p[] = {alias};
        if (adm_exec(c, j, "SELECT token FROM sluice_keys WHERE key_alias = $1", 1, p, &r) < 0)
            return -1;
        bool taken = r.nrows > 0 && !(self_token && same(adm_col(&r, 0, "token"), self_token));
        db_result_free(&r);
        if (taken)
            return adm_fail(j, 400, "bad_request_error", "key_alias",
                            "Key with key_alias '%s' already exists; key aliases must be unique",
                            alias);
    }
    const char *team = adm_str(in, "team_id");
    if (team) {
        int e = adm_exists(c, j, "sluice_teams", "team_id", team);
        if (e < 0)
            return -1;
        if (!e)
            return adm_fail(j, 400, "bad_request_error", "team_id",
                            "team_id '%s' does not exist; create it with /team/new first", team);
    }
    const char *org = adm_str(in, "organization_id");
    if (org) {
        int e = adm_exists(c, j, "sluice_organizations", "organization_id", org);
        if (e < 0)
            return -1;
        if (!e)
            return adm_fail(j, 400, "bad_request_error", "organization_id",
                            "organization_id '%s' does not exist", org);
    }
    return 0;
}

static const char *const managed[] = {"user_id", "metadata", NULL};

int adm_key_insert(db_conn *c, adm_job *j, const cJSON *in, const char *user_id, cJSON **row_out)
{
    *row_out = NULL;
    int rc = check_refs(c, j, in, NULL);
    if (rc)
        return rc;
    char plain[300], token[65];
    const char *custom = adm_str(in, "key");
    if (custom) {
        snprintf(plain, sizeof plain, "%s", custom);
    } else if (adm_key_new(plain) < 0) {
        return adm_fail(j, 500, "internal_server_error", NULL,
                        "could not generate a key: the random generator failed");
    }
    sha256_hex(plain, strlen(plain), token);
    if (custom) {
        int e = adm_exists(c, j, "sluice_keys", "token", token);
        if (e < 0)
            return -1;
        if (e)
            return adm_fail(j, 400, "bad_request_error", "key", "This key already exists");
    }
    char key_name[16], now[32];
    auth_abbrev(plain, strlen(plain), key_name);
    time_t tnow = time(NULL);
    adm_iso_time(tnow, now);

    adm_qb q;
    qb_init(&q);
    qb_set(&q, false, "token", token);
    qb_set(&q, false, "key_name", key_name);
    qb_fields(&q, false, in, adm_key_fields, adm_key_nfields, managed);
    qb_set(&q, false, "user_id", user_id);
    char *md = adm_metadata_text(in, NULL);
    if (md)
        qb_set_own(&q, false, "metadata", md);
    qb_times(&q, false, in, tnow, true);
    qb_set(&q, false, "created_at", now);
    qb_set(&q, false, "updated_at", now);
    qb_set(&q, false, "created_by", adm_actor(j));
    qb_set(&q, false, "updated_by", adm_actor(j));
    char *sql = qb_insert_sql(&q, "sluice_keys");
    int n = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, NULL) : -1;
    if (!sql)
        snprintf(j->sj.err, sizeof j->sj.err, "out of memory building the statement");
    free(sql);
    qb_free(&q);
    if (n < 0)
        return -1;

    db_result r;
    if (load_key(c, j, token, &r) < 0)
        return -1;
    cJSON *row = r.nrows > 0 ? adm_key_json(&r, 0) : cJSON_CreateObject();
    db_result_free(&r);
    cJSON_AddStringToObject(row, "key", plain);
    cJSON_AddStringToObject(row, "token_id", token);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(in, "duration");
    cJSON_AddItemToObject(row, "duration", d ? cJSON_Duplicate(d, 1) : cJSON_CreateNull());
    cJSON_AddNullToObject(row, "litellm_budget_table");
    adm_inval_key(j, token); /* a custom key may be remembered as unknown */
    *row_out = row;
    return 0;
}

/* ---- /key/generate ------------------------------------------------------------------------- */

static int generate_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *user_id = adm_str(j->in, "user_id");
    if (!j->admin) {
        if (viewer(j))
            return adm_forbidden(j, "a viewer role may not create keys");
        if (!j->user_id)
            return adm_forbidden(j, "only admins, or keys that belong to a user, may create keys");
        if (user_id && strcmp(user_id, j->user_id))
            return adm_forbidden(j, "a non-admin key may only create keys for its own user_id");
        user_id = j->user_id;
        const char *team = adm_str(j->in, "team_id");
        if (team) {
            db_result r;
            const char *p[] = {team};
            if (adm_exec(c, j, "SELECT members_with_roles FROM sluice_teams WHERE team_id = $1",
                         1, p, &r) < 0)
                return -1;
            bool ok = r.nrows > 0 &&
                      adm_is_team_admin(adm_col(&r, 0, "members_with_roles"), j->user_id);
            bool exists = r.nrows > 0;
            db_result_free(&r);
            if (exists && !ok)
                return adm_forbidden(j, "only admins and the team's admins may create keys "
                                        "for a team");
        }
    }
    cJSON *row;
    int rc = adm_key_insert(c, j, j->in, user_id, &row);
    if (rc)
        return rc;
    adm_ok(j, row);
    return 0;
}

void adm_h_key_generate(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_key_fields, adm_key_nfields)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, generate_run, in, NULL);
}

/* ---- shared by update and regenerate ---------------------------------------------------- */

/* Validates a body whose `key` names an existing key (plaintext or hash). */
static bool check_key_ref(struct evhttp_request *req, cJSON *in, bool required)
{
    cJSON *k = cJSON_DetachItemFromObjectCaseSensitive(in, "key");
    bool ok = adm_check(req, in, adm_key_fields, adm_key_nfields);
    if (k)
        cJSON_AddItemToObject(in, "key", k);
    if (!ok)
        return false;
    if (k ? !cJSON_IsString(k) || !*k->valuestring : required) {
        adm_reply_error(req, 400, "bad_request_error", "key",
                        "Missing or invalid 'key': pass the key (sk-...) or its hash");
        return false;
    }
    return true;
}

/* Non-admins may change their own keys, but not move them or lift their limits' owners. */
static int nonadmin_may_change(adm_job *j, const db_result *row)
{
    if (j->admin)
        return 0;
    if (viewer(j))
        return adm_forbidden(j, "a viewer role may not change keys");
    if (!same(adm_col(row, 0, "user_id"), j->user_id))
        return adm_forbidden(j, "a non-admin key may only change keys of its own user_id");
    static const char *const admin_only[] = {"user_id", "team_id", "organization_id", "spend",
                                             "blocked"};
    for (size_t i = 0; i < sizeof admin_only / sizeof *admin_only; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j->in, admin_only[i]);
        if (!v)
            continue;
        const char *cur = adm_col(row, 0, admin_only[i]);
        if (cJSON_IsString(v) && same(cur, v->valuestring))
            continue;
        char why[128];
        snprintf(why, sizeof why, "only admins may change '%s'", admin_only[i]);
        return adm_forbidden(j, why);
    }
    return 0;
}

/* The SET list of an update from the request fields. */
static void update_fields(adm_qb *q, const adm_job *j, const db_result *row, time_t tnow)
{
    static const char *const skip[] = {"metadata", NULL};
    qb_fields(q, true, j->in, adm_key_fields, adm_key_nfields, skip);
    cJSON *old_md = cJSON_Parse(adm_col(row, 0, "metadata") ? adm_col(row, 0, "metadata") : "{}");
    char *md = adm_metadata_text(j->in, old_md);
    cJSON_Delete(old_md);
    if (md)
        qb_set_own(q, true, "metadata", md);
    qb_times(q, true, j->in, tnow, true);
    char now[32];
    adm_iso_time(tnow, now);
    qb_set(q, true, "updated_at", now);
    qb_set(q, true, "updated_by", adm_actor(j));
}

static int run_update(db_conn *c, adm_job *j, adm_qb *q, const char *token)
{
    char *sql = qb_update_sql(q, "sluice_keys", "token", token);
    if (!sql) {
        snprintf(j->sj.err, sizeof j->sj.err, "out of memory building the statement");
        return -1;
    }
    int n = adm_exec(c, j, sql, q->n, (const char *const *)q->params, NULL);
    free(sql);
    return n;
}

/* ---- /key/update ------------------------------------------------------------------------ */

static int update_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *given = adm_str(j->in, "key");
    char token[65], shown[80];
    adm_token_of(given, token);
    key_shown(given, shown);
    db_result r;
    if (load_key(c, j, token, &r) < 0)
        return -1;
    int rc = 0;
    if (r.nrows == 0)
        rc = adm_fail(j, 404, "not_found_error", "key", "Key not found: %s", shown);
    if (!rc)
        rc = nonadmin_may_change(j, &r);
    if (!rc)
        rc = check_refs(c, j, j->in, token);
    if (rc) {
        db_result_free(&r);
        return rc;
    }
    adm_qb q;
    qb_init(&q);
    update_fields(&q, j, &r, time(NULL));
    db_result_free(&r);
    int n = run_update(c, j, &q, token);
    qb_free(&q);
    if (n < 0 || load_key(c, j, token, &r) < 0)
        return -1;
    cJSON *out = r.nrows ? adm_key_json(&r, 0) : cJSON_CreateObject();
    db_result_free(&r);
    cJSON_DeleteItemFromObjectCaseSensitive(out, "key");
    cJSON_AddStringToObject(out, "key", given);
    adm_inval_key(j, token);
    adm_ok(j, out);
    return 0;
}

void adm_h_key_update(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!check_key_ref(req, in, true)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, update_run, in, NULL);
}

/* ---- /key/delete ------------------------------------------------------------------------ */

static int delete_body(db_conn *c, adm_job *j)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(j->in, "keys");
    const cJSON *aliases = cJSON_GetObjectItemCaseSensitive(j->in, "key_aliases");
    bool by_alias = !cJSON_IsArray(keys) || cJSON_GetArraySize(keys) == 0;
    const cJSON *list = by_alias ? aliases : keys;
    int n = cJSON_GetArraySize(list);
    char (*tokens)[65] = calloc((size_t)n + 1, sizeof *tokens);
    cJSON *deleted = cJSON_CreateArray();
    int found = 0, rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        db_result r;
        const char *p[1];
        char tok[65];
        if (by_alias) {
            p[0] = it->valuestring;
            rc = adm_exec(c, j, "SELECT token, user_id FROM sluice_keys WHERE key_alias = $1", 1,
                          p, &r);
        } else {
            adm_token_of(it->valuestring, tok);
            p[0] = tok;
            rc = adm_exec(c, j, "SELECT token, user_id FROM sluice_keys WHERE token = $1", 1, p,
                          &r);
        }
        if (rc < 0)
            break;
        rc = 0;
        if (r.nrows > 0) {
            if (!j->admin && !same(adm_col(&r, 0, "user_id"), j->user_id)) {
                db_result_free(&r);
                rc = adm_forbidden(j, "a non-admin key may only delete keys of its own user_id");
                break;
            }
            snprintf(tokens[found++], 65, "%s", adm_col(&r, 0, "token"));
            cJSON_AddItemToArray(deleted, cJSON_CreateString(it->valuestring));
        }
        db_result_free(&r);
    }
    if (!rc && found == 0)
        rc = adm_fail(j, 404, "not_found_error", by_alias ? "key_aliases" : "keys",
                      "None of the keys to delete exist");
    for (int k = 0; !rc && k < found; k++) {
        const char *p[] = {tokens[k]};
        if (adm_exec(c, j, "DELETE FROM sluice_keys WHERE token = $1", 1, p, NULL) < 0)
            rc = -1;
        else
            adm_inval_key(j, tokens[k]);
    }
    free(tokens);
    if (rc) {
        cJSON_Delete(deleted);
        return rc;
    }
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "deleted_keys", deleted);
    adm_ok(j, out);
    return 0;
}

static int delete_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    if (!j->admin && viewer(j))
        return adm_forbidden(j, "a viewer role may not delete keys");
    return adm_tx(c, j, delete_body);
}

void adm_h_key_delete(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(in, "keys");
    const cJSON *aliases = cJSON_GetObjectItemCaseSensitive(in, "key_aliases");
    const char *bad = NULL;
    if (keys && !cJSON_IsNull(keys) && !adm_string_array(keys))
        bad = "keys";
    else if (aliases && !cJSON_IsNull(aliases) && !adm_string_array(aliases))
        bad = "key_aliases";
    if (bad) {
        adm_reply_error(req, 400, "bad_request_error", bad,
                        "Invalid value for '%s': expected an array of non-empty strings", bad);
        cJSON_Delete(in);
        return;
    }
    if (cJSON_GetArraySize(keys) == 0 && cJSON_GetArraySize(aliases) == 0) {
        adm_reply_error(req, 400, "bad_request_error", "keys",
                        "Pass the keys to delete: {\"keys\": [...]} or {\"key_aliases\": [...]}");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, delete_run, in, NULL);
}

/* ---- /key/info --------------------------------------------------------------------------- */

static int info_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *given = adm_str(j->in, "key");
    char token[65], shown[80];
    if (given) {
        adm_token_of(given, token);
        key_shown(given, shown);
    } else {
        if (!j->token[0])
            return adm_fail(j, 400, "bad_request_error", "key",
                            "Pass the key to look up: /key/info?key=sk-...");
        snprintf(token, sizeof token, "%s", j->token);
        snprintf(shown, sizeof shown, "%s", token);
    }
    db_result r;
    if (load_key(c, j, token, &r) < 0)
        return -1;
    bool own = !strcmp(token, j->token) ||
               (r.nrows > 0 && j->user_id && same(adm_col(&r, 0, "user_id"), j->user_id));
    int rc = 0;
    if (!j->admin && !own)
        rc = adm_forbidden(j, "a non-admin key may only read its own info (or that of keys of "
                              "its own user)");
    else if (r.nrows == 0)
        rc = adm_fail(j, 404, "not_found_error", "key", "Key not found: %s", shown);
    if (rc) {
        db_result_free(&r);
        return rc;
    }
    cJSON *info = adm_key_json(&r, 0);
    db_result_free(&r);
    cJSON_DeleteItemFromObjectCaseSensitive(info, "token"); /* as LiteLLM: not in the info */
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "key", given ? given : token);
    cJSON_AddItemToObject(out, "info", info);
    adm_ok(j, out);
    return 0;
}

void adm_h_key_info(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    adm_submit(w, req, id, info_run, adm_query(req), NULL);
}

/* ---- /key/list --------------------------------------------------------------------------- */

static int list_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const cJSON *in = j->in;
    const char *user_id = adm_str(in, "user_id");
    if (!j->admin) {
        if (!j->user_id)
            return adm_forbidden(j, "only admins, or keys that belong to a user, may list keys");
        if (user_id && strcmp(user_id, j->user_id))
            return adm_forbidden(j, "a non-admin key may only list keys of its own user_id");
        user_id = j->user_id;
    }
    long page = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "_page"));
    long size = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "_size"));
    const char *full = adm_str(in, "return_full_object");
    bool want_full = full && (!strcmp(full, "true") || !strcmp(full, "True") || !strcmp(full, "1"));

    adm_qb q;
    qb_init(&q);
    sbuf where;
    sbuf_init(&where);
    sbuf_adds(&where, " WHERE 1 = 1");
    static const char *const filters[][2] = {{"team_id", "team_id"},
                                             {"key_alias", "key_alias"},
                                             {"organization_id", "organization_id"},
                                             {"key_hash", "token"}};
    if (user_id)
        sbuf_addf(&where, " AND user_id = $%d", qb_param(&q, user_id));
    for (size_t i = 0; i < sizeof filters / sizeof *filters; i++) {
        const char *v = adm_str(in, filters[i][0]);
        if (!v)
            continue;
        char tok[65];
        if (!strcmp(filters[i][0], "key_hash")) {
            adm_token_of(v, tok);
            v = tok;
        }
        sbuf_addf(&where, " AND %s = $%d", filters[i][1], qb_param(&q, v));
    }
    char *w = sbuf_take(&where, NULL);
    sbuf sql;
    sbuf_init(&sql);
    sbuf_addf(&sql, "SELECT COUNT(*) AS n FROM sluice_keys%s", w ? w : "");
    char *count_sql = sbuf_take(&sql, NULL);
    db_result r;
    int rc = count_sql ? adm_exec(c, j, count_sql, q.n, (const char *const *)q.params, &r) : -1;
    free(count_sql);
    long total = 0;
    if (rc >= 0) {
        const char *t = adm_col(&r, 0, "n");
        total = t ? atol(t) : 0;
        db_result_free(&r);
        /* validated integers, written inline: a text parameter is not a valid LIMIT for
         * every PostgreSQL binding */
        sbuf_init(&sql);
        sbuf_addf(&sql, "SELECT * FROM sluice_keys%s ORDER BY created_at DESC, token "
                        "LIMIT %ld OFFSET %ld", w ? w : "", size, (page - 1) * size);
        char *rows_sql = sbuf_take(&sql, NULL);
        rc = rows_sql ? adm_exec(c, j, rows_sql, q.n, (const char *const *)q.params, &r) : -1;
        free(rows_sql);
    }
    free(w);
    qb_free(&q);
    if (rc < 0)
        return -1;
    cJSON *out = cJSON_CreateObject();
    cJSON *keys = cJSON_AddArrayToObject(out, "keys");
    for (int i = 0; i < r.nrows; i++) {
        if (want_full)
            cJSON_AddItemToArray(keys, adm_key_json(&r, i));
        else
            cJSON_AddItemToArray(keys, cJSON_CreateString(adm_col(&r, i, "token")));
    }
    db_result_free(&r);
    cJSON_AddNumberToObject(out, "total_count", (double)total);
    cJSON_AddNumberToObject(out, "current_page", (double)page);
    cJSON_AddNumberToObject(out, "total_pages", (double)((total + size - 1) / size));
    adm_ok(j, out);
    return 0;
}

void adm_h_key_list(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *q = adm_query(req);
    long page, size;
    if (adm_query_int(req, q, "page", 1, 1000000000L, &page) < 0 ||
        adm_query_int(req, q, "size", 10, 100, &size) < 0) {
        cJSON_Delete(q);
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(q, "_page"); /* ours, not the client's */
    cJSON_DeleteItemFromObjectCaseSensitive(q, "_size");
    cJSON_AddNumberToObject(q, "_page", (double)page);
    cJSON_AddNumberToObject(q, "_size", (double)size);
    adm_submit(w, req, id, list_run, q, NULL);
}

/* ---- /key/regenerate and /key/{key}/regenerate ------------------------------------------- */

static int regenerate_body(db_conn *c, adm_job *j)
{
    const char *given = j->arg;
    char old[65], shown[80];
    adm_token_of(given, old);
    key_shown(given, shown);
    db_result r;
    if (load_key(c, j, old, &r) < 0)
        return -1;
    int rc = 0;
    if (r.nrows == 0)
        rc = adm_fail(j, 404, "not_found_error", "key", "Key not found: %s", shown);
    if (!rc)
        rc = nonadmin_may_change(j, &r);
    if (!rc)
        rc = check_refs(c, j, j->in, old);
    if (rc) {
        db_result_free(&r);
        return rc;
    }
    char plain[300], token[65], key_name[16];
    const char *custom = adm_str(j->in, "new_key");
    if (custom)
        snprintf(plain, sizeof plain, "%s", custom);
    else if (adm_key_new(plain) < 0) {
        db_result_free(&r);
        return adm_fail(j, 500, "internal_server_error", NULL,
                        "could not generate a key: the random generator failed");
    }
    sha256_hex(plain, strlen(plain), token);
    if (custom) {
        int e = adm_exists(c, j, "sluice_keys", "token", token);
        if (e) {
            db_result_free(&r);
            return e < 0 ? -1 : adm_fail(j, 400, "bad_request_error", "new_key",
                                         "This key already exists");
        }
    }
    auth_abbrev(plain, strlen(plain), key_name);
    adm_qb q;
    qb_init(&q);
    qb_set(&q, true, "token", token);
    qb_set(&q, true, "key_name", key_name);
    update_fields(&q, j, &r, time(NULL));
    db_result_free(&r);
    int n = run_update(c, j, &q, old);
    qb_free(&q);
    if (n < 0 || load_key(c, j, token, &r) < 0)
        return -1;
    cJSON *out = r.nrows ? adm_key_json(&r, 0) : cJSON_CreateObject();
    db_result_free(&r);
    cJSON_AddStringToObject(out, "key", plain);
    cJSON_AddStringToObject(out, "token_id", token);
    adm_inval_key(j, old);
    adm_inval_key(j, token);
    adm_ok(j, out);
    return 0;
}

static int regenerate_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    return adm_tx(c, j, regenerate_body);
}

void adm_h_key_regenerate(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    char *key = NULL;
    /* /key/{key}/regenerate: the key from the path (URL-decoded) */
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?#");
    static const char pre[] = "/key/", suf[] = "/regenerate";
    if (plen > sizeof pre - 1 + sizeof suf - 1 && !strncmp(uri, pre, sizeof pre - 1) &&
        !strncmp(uri + plen - (sizeof suf - 1), suf, sizeof suf - 1)) {
        size_t klen = plen - (sizeof pre - 1) - (sizeof suf - 1);
        char *raw = strndup(uri + sizeof pre - 1, klen);
        key = raw ? evhttp_uridecode(raw, 0, NULL) : NULL;
        free(raw);
    }
    if (!key) {
        cJSON *q = adm_query(req);
        const char *k = adm_str(q, "key");
        if (!k)
            k = adm_str(in, "key");
        if (k)
            key = strdup(k);
        cJSON_Delete(q);
    }
    if (!key || !*key || !check_key_ref(req, in, false)) {
        if (!key || !*key)
            adm_reply_error(req, 400, "bad_request_error", "key",
                            "Pass the key to regenerate: /key/{key}/regenerate, ?key= or "
                            "{\"key\": ...}");
        free(key);
        cJSON_Delete(in);
        return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(in, "key");
    adm_submit(w, req, id, regenerate_run, in, key);
    free(key);
}

/* ---- /key/block and /key/unblock -------------------------------------------------------- */

static int block_set(db_conn *c, adm_job *j, const char *v)
{
    const char *given = adm_str(j->in, "key");
    char token[65], shown[80], now[32];
    adm_token_of(given, token);
    key_shown(given, shown);
    adm_now(now);
    const char *p[] = {v, now, token};
    int n = adm_exec(c, j, "UPDATE sluice_keys SET blocked = $1, updated_at = $2 WHERE token = $3",
                     3, p, NULL);
    if (n < 0)
        return -1;
    if (n == 0)
        return adm_fail(j, 404, "not_found_error", "key", "Key not found: %s", shown);
    db_result r;
    if (load_key(c, j, token, &r) < 0)
        return -1;
    cJSON *out = r.nrows ? adm_key_json(&r, 0) : cJSON_CreateObject();
    db_result_free(&r);
    adm_inval_key(j, token);
    adm_ok(j, out);
    return 0;
}

static int block_run(db_conn *c, adm_job *j)
{
    return block_set(c, j, "1");
}

static int unblock_run(db_conn *c, adm_job *j)
{
    return block_set(c, j, "0");
}

static void block_handler(worker *w, struct evhttp_request *req, const auth_ident *id, adm_fn fn)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_str(in, "key") || !*adm_str(in, "key")) {
        adm_reply_error(req, 400, "bad_request_error", "key",
                        "Missing or invalid 'key': pass the key (sk-...) or its hash");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, fn, in, NULL);
}

void adm_h_key_block(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    block_handler(w, req, id, block_run);
}

void adm_h_key_unblock(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    block_handler(w, req, id, unblock_run);
}
