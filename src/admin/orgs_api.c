/* admin/orgs_api — /organization/new, PATCH /organization/update, DELETE /organization/delete,
 * /organization/info, /organization/list. Admins only.
 *
 * LiteLLM keeps an organization's budget in a separate budget table (budget_id); sluice keeps
 * it in the organization's row and answers budget_id = organization_id with the same
 * litellm_budget_table object, so clients reading either shape work. Deleting an organization
 * detaches its teams and keys (organization_id = NULL) rather than deleting them. An
 * organization's limits reach keys through their team too, so any change drops the whole key
 * cache of this instance: organizations change rarely. */
#include "admin/admin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

static int load_org(db_conn *c, adm_job *j, const char *id, db_result *r)
{
    const char *p[] = {id};
    return adm_exec(c, j, "SELECT * FROM sluice_organizations WHERE organization_id = $1", 1, p,
                    r);
}

/* The org row with its teams and (LiteLLM's) members list. */
static int org_full(db_conn *c, adm_job *j, const db_result *r, int row, cJSON **out)
{
    cJSON *o = adm_org_json(r, row);
    const char *p[] = {adm_col(r, row, "organization_id")};
    db_result t;
    if (adm_exec(c, j, "SELECT * FROM sluice_teams WHERE organization_id = $1 "
                       "ORDER BY created_at, team_id", 1, p, &t) < 0) {
        cJSON_Delete(o);
        return -1;
    }
    cJSON *teams = cJSON_AddArrayToObject(o, "teams");
    for (int i = 0; i < t.nrows; i++)
        cJSON_AddItemToArray(teams, adm_team_json(&t, i));
    db_result_free(&t);
    cJSON_AddItemToObject(o, "members", cJSON_CreateArray());
    *out = o;
    return 0;
}

static int reply_org(db_conn *c, adm_job *j, const char *id)
{
    db_result r;
    if (load_org(c, j, id, &r) < 0)
        return -1;
    cJSON *o = r.nrows ? adm_org_json(&r, 0) : cJSON_CreateObject();
    db_result_free(&r);
    adm_ok(j, o);
    return 0;
}

/* ---- /organization/new ------------------------------------------------------------------- */

static int new_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    char gen[37];
    const char *id = adm_str(j->in, "organization_id");
    if (!id) {
        if (adm_uuid(gen) < 0)
            return adm_fail(j, 500, "internal_server_error", NULL, "random generator failed");
        id = gen;
    }
    int e = adm_exists(c, j, "sluice_organizations", "organization_id", id);
    if (e < 0)
        return -1;
    if (e)
        return adm_fail(j, 400, "bad_request_error", "organization_id",
                        "Organization with organization_id '%s' already exists", id);
    char now[32];
    time_t tnow = time(NULL);
    adm_iso_time(tnow, now);
    adm_qb q;
    qb_init(&q);
    qb_set(&q, false, "organization_id", id);
    qb_fields(&q, false, j->in, adm_org_fields, adm_org_nfields, NULL);
    qb_times(&q, false, j->in, tnow, false);
    qb_set(&q, false, "created_at", now);
    qb_set(&q, false, "updated_at", now);
    qb_set(&q, false, "created_by", adm_actor(j));
    qb_set(&q, false, "updated_by", adm_actor(j));
    char *sql = qb_insert_sql(&q, "sluice_organizations");
    int n = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, NULL) : -1;
    free(sql);
    qb_free(&q);
    if (n < 0)
        return -1;
    return reply_org(c, j, id);
}

void adm_h_org_new(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_org_fields, adm_org_nfields)) {
        cJSON_Delete(in);
        return;
    }
    const char *alias = adm_str(in, "organization_alias");
    if (!alias || !*alias) {
        adm_reply_error(req, 400, "bad_request_error", "organization_alias",
                        "Missing required field 'organization_alias'");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, new_run, in, NULL);
}

/* ---- PATCH /organization/update ---------------------------------------------------------- */

static int update_run(db_conn *c, adm_job *j)
{
    if (adm_caller_load(c, j) < 0)
        return -1;
    const char *id = adm_str(j->in, "organization_id");
    int e = adm_exists(c, j, "sluice_organizations", "organization_id", id);
    if (e < 0)
        return -1;
    if (!e)
        return adm_fail(j, 404, "not_found_error", "organization_id",
                        "Organization not found: %s", id);
    char now[32];
    time_t tnow = time(NULL);
    adm_iso_time(tnow, now);
    adm_qb q;
    qb_init(&q);
    qb_fields(&q, true, j->in, adm_org_fields, adm_org_nfields, NULL);
    qb_times(&q, true, j->in, tnow, false);
    qb_set(&q, true, "updated_at", now);
    qb_set(&q, true, "updated_by", adm_actor(j));
    char *sql = qb_update_sql(&q, "sluice_organizations", "organization_id", id);
    int n = sql ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, NULL) : -1;
    free(sql);
    qb_free(&q);
    if (n < 0)
        return -1;
    j->inval_all = true;
    return reply_org(c, j, id);
}

static bool need_org_id(struct evhttp_request *req, const cJSON *in)
{
    const char *t = adm_str(in, "organization_id");
    if (t && *t)
        return true;
    adm_reply_error(req, 400, "bad_request_error", "organization_id",
                    "Missing required field 'organization_id'");
    return false;
}

void adm_h_org_update(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    if (!adm_check(req, in, adm_org_fields, adm_org_nfields) || !need_org_id(req, in)) {
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, update_run, in, NULL);
}

/* ---- DELETE /organization/delete --------------------------------------------------------- */

static int delete_body(db_conn *c, adm_job *j)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(j->in, "organization_ids");
    cJSON *out = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, ids)
    {
        db_result r;
        if (load_org(c, j, it->valuestring, &r) < 0)
            goto fail;
        if (r.nrows == 0) {
            db_result_free(&r);
            cJSON_Delete(out);
            return adm_fail(j, 404, "not_found_error", "organization_ids",
                            "Organization not found: %s", it->valuestring);
        }
        cJSON *o;
        int rc = org_full(c, j, &r, 0, &o);
        db_result_free(&r);
        if (rc < 0)
            goto fail;
        cJSON_AddItemToArray(out, o);
        const char *p[] = {it->valuestring};
        if (adm_exec(c, j, "UPDATE sluice_teams SET organization_id = NULL "
                           "WHERE organization_id = $1", 1, p, NULL) < 0 ||
            adm_exec(c, j, "UPDATE sluice_keys SET organization_id = NULL "
                           "WHERE organization_id = $1", 1, p, NULL) < 0 ||
            adm_exec(c, j, "UPDATE sluice_users SET organization_id = NULL "
                           "WHERE organization_id = $1", 1, p, NULL) < 0 ||
            adm_exec(c, j, "DELETE FROM sluice_organizations WHERE organization_id = $1", 1, p,
                     NULL) < 0)
            goto fail;
    }
    j->inval_all = true;
    adm_ok(j, out);
    return 0;
fail:
    cJSON_Delete(out);
    return -1;
}

static int delete_run(db_conn *c, adm_job *j)
{
    return adm_tx(c, j, delete_body);
}

void adm_h_org_delete(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *in = adm_body(req);
    if (!in)
        return;
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(in, "organization_ids");
    if (!ids) { /* a client whose DELETE has no body may pass them in the query */
        cJSON *q = adm_query(req);
        const char *s = adm_str(q, "organization_ids");
        if (s) {
            cJSON *a = cJSON_AddArrayToObject(in, "organization_ids");
            char *list = strdup(s);
            for (char *save = NULL, *tok = list ? strtok_r(list, ",", &save) : NULL; tok;
                 tok = strtok_r(NULL, ",", &save))
                cJSON_AddItemToArray(a, cJSON_CreateString(tok));
            free(list);
            ids = a;
        }
        cJSON_Delete(q);
    }
    if (!adm_string_array(ids) || cJSON_GetArraySize(ids) == 0) {
        adm_reply_error(req, 400, "bad_request_error", "organization_ids",
                        "Invalid value for 'organization_ids': expected a non-empty array of "
                        "organization ids");
        cJSON_Delete(in);
        return;
    }
    adm_submit(w, req, id, delete_run, in, NULL);
}

/* ---- /organization/info, /organization/list ---------------------------------------------- */

static int info_run(db_conn *c, adm_job *j)
{
    const char *id = adm_str(j->in, "organization_id");
    db_result r;
    if (load_org(c, j, id, &r) < 0)
        return -1;
    if (r.nrows == 0) {
        db_result_free(&r);
        return adm_fail(j, 404, "not_found_error", "organization_id",
                        "Organization not found: %s", id);
    }
    cJSON *o;
    int rc = org_full(c, j, &r, 0, &o);
    db_result_free(&r);
    if (rc < 0)
        return -1;
    adm_ok(j, o);
    return 0;
}

void adm_h_org_info(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *q = adm_query(req);
    if (!need_org_id(req, q)) {
        cJSON_Delete(q);
        return;
    }
    adm_submit(w, req, id, info_run, q, NULL);
}

static int list_run(db_conn *c, adm_job *j)
{
    db_result r;
    if (adm_exec(c, j, "SELECT * FROM sluice_organizations ORDER BY created_at, organization_id",
                 0, NULL, &r) < 0)
        return -1;
    cJSON *out = cJSON_CreateArray();
    for (int i = 0; i < r.nrows; i++) {
        cJSON *o;
        if (org_full(c, j, &r, i, &o) < 0) {
            db_result_free(&r);
            cJSON_Delete(out);
            return -1;
        }
        cJSON_AddItemToArray(out, o);
    }
    db_result_free(&r);
    adm_ok(j, out);
    return 0;
}

void adm_h_org_list(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    adm_submit(w, req, id, list_run, adm_query(req), NULL);
}
