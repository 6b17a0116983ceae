/* admin/core — request → store job → reply, the caller's identity, the route table.
 *
 * A handler parses and validates on the worker, then hands an adm_job to the store thread. The
 * job's function does the SQL and leaves either a JSON body or an error; `done` runs back on the
 * worker (posted to its mailbox) and replies. A request whose client has left in the meantime
 * is still replied to: libevent has detached it from the connection and frees it on the reply.
 *
 * The key cache is invalidated on the store thread right after a successful job: the cache's
 * own loads run on that thread too, so no load can slip in between the commit and the
 * invalidation and bring the old row back. */
#include "admin/admin_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http/reply.h"

admin_env g_adm;

void admin_init(const admin_env *env)
{
    g_adm = *env;
}

/* ---- replies ------------------------------------------------------------------------------ */

static void reply_err(struct evhttp_request *req, int status, const char *type, const char *param,
                      const char *msg)
{
    size_t len;
    char *body = http_error_body(msg, type, param, status, &len);
    if (!body)
        http_reply_json_logged(req, 500, "{}", 2);
    else
        http_reply_json_logged(req, status, body, len);
    free(body);
}

void adm_reply_error(struct evhttp_request *req, int status, const char *type, const char *param,
                     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_err(req, status, type, param, msg);
}

bool adm_check(struct evhttp_request *req, const cJSON *in, const adm_field *f, size_t n)
{
    char err[512];
    const char *bad;
    if (adm_validate(in, f, n, err, sizeof err, &bad) == 0)
        return true;
    reply_err(req, 400, "bad_request_error", bad, err);
    return false;
}

cJSON *adm_body(struct evhttp_request *req)
{
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(b);
    if (len == 0)
        return cJSON_CreateObject();
    const char *p = (const char *)evbuffer_pullup(b, -1);
    const char *end = NULL;
    cJSON *j = p ? cJSON_ParseWithLengthOpts(p, len, &end, 0) : NULL;
    if (!j) {
        size_t off = end && p ? (size_t)(end - p) : 0;
        adm_reply_error(req, 400, "bad_request_error", NULL,
                        "Invalid JSON in the request body (near byte %zu)", off);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        adm_reply_error(req, 400, "bad_request_error", NULL,
                        "The request body must be a JSON object");
        return NULL;
    }
    return j;
}

cJSON *adm_query(struct evhttp_request *req)
{
    cJSON *o = cJSON_CreateObject();
    const char *uri = evhttp_request_get_uri(req);
    const char *q = strchr(uri, '?');
    if (!q)
        return o;
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    if (evhttp_parse_query_str(q + 1, &params) == 0) {
        struct evkeyval *kv;
        TAILQ_FOREACH(kv, &params, next)
        {
            if (!cJSON_GetObjectItemCaseSensitive(o, kv->key)) /* the first one wins */
                cJSON_AddStringToObject(o, kv->key, kv->value);
        }
    }
    evhttp_clear_headers(&params);
    return o;
}

int adm_query_int(struct evhttp_request *req, const cJSON *q, const char *name, long dflt,
                  long max, long *out)
{
    const char *s = adm_str(q, name);
    *out = dflt;
    if (!s)
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > max) {
        adm_reply_error(req, 400, "bad_request_error", name,
                        "Invalid value for '%s': expected an integer from 1 to %ld", name, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- jobs --------------------------------------------------------------------------------- */

static void job_free(adm_job *j)
{
    cJSON_Delete(j->in);
    cJSON_Delete(j->out);
    free(j->arg);
    free(j->user_id);
    free(j->team_id);
    free(j->role);
    free(j->etype);
    free(j->eparam);
    free(j->emsg);
    free(j->inval);
    free(j->inval_team);
    free(j->inval_user);
    free(j);
}

static int job_run(db_conn *c, store_job *sj)
{
    adm_job *j = (adm_job *)sj;
    j->status = 200;
    int rc = j->fn(c, j);
    if (rc < 0)
        return -1;
    if (j->status < 300 && g_adm.kc) {
        if (j->inval_all)
            keycache_invalidate(g_adm.kc, NULL);
        for (int i = 0; i < j->ninval; i++)
            keycache_invalidate(g_adm.kc, j->inval[i]);
        if (j->inval_team || j->inval_user)
            keycache_invalidate_owner(g_adm.kc, j->inval_team, j->inval_user);
    }
    return 0;
}

static void job_done(store_job *sj)
{
    adm_job *j = (adm_job *)sj;
    worker *w = j->w;
    if (sj->status < 0) {
        const char *err = sj->err[0] ? sj->err : "database unavailable";
        if (!strncmp(err, "database unavailable", 20))
            reply_err(j->req, 503, "no_db_connection", NULL, err);
        else
            adm_reply_error(j->req, 500, "internal_server_error", NULL, "database error: %s",
                            err);
    } else if (j->status >= 300) {
        reply_err(j->req, j->status, j->etype ? j->etype : "internal_server_error", j->eparam,
                  j->emsg ? j->emsg : "error");
    } else {
        char *body = j->out ? cJSON_PrintUnformatted(j->out) : strdup("{}");
        if (body)
            http_reply_json_logged(j->req, j->status, body, strlen(body));
        else
            reply_err(j->req, 500, "internal_server_error", NULL, "out of memory");
        free(body);
    }
    job_free(j);
    http_async_end(w);
}

void adm_submit(worker *w, struct evhttp_request *req, const auth_ident *id, adm_fn fn,
                cJSON *in, const char *arg)
{
    adm_job *j = calloc(1, sizeof *j);
    if (!j) {
        cJSON_Delete(in);
        reply_err(req, 500, "internal_server_error", NULL, "out of memory");
        return;
    }
    j->w = w;
    j->req = req;
    j->fn = fn;
    j->in = in;
    j->arg = arg ? strdup(arg) : NULL;
    const char *uri = evhttp_request_get_uri(req);
    snprintf(j->path, sizeof j->path, "%.*s", (int)strcspn(uri, "?#"), uri);
    j->admin = id->admin;
    j->kind = id->kind;
    snprintf(j->token, sizeof j->token, "%s", id->token);
    j->sj.run = job_run;
    j->sj.done = job_done;
    j->sj.reply_to = w->mbox;
    j->sj.ud = j;
    if (!g_adm.st) {
        job_free(j);
        reply_err(req, 503, "no_db_connection", NULL,
                  "database unavailable: no database is configured for the management API");
        return;
    }
    http_async_begin(w);
    if (store_submit(g_adm.st, &j->sj) < 0) {
        job_free(j);
        reply_err(req, 503, "no_db_connection", NULL,
                  "database unavailable: the store is not accepting work (shutting down)");
        http_async_end(w);
    }
}

/* ---- answers ------------------------------------------------------------------------------ */

int adm_fail(adm_job *j, int status, const char *type, const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    j->status = status;
    free(j->etype);
    free(j->eparam);
    free(j->emsg);
    j->etype = strdup(type);
    j->eparam = param ? strdup(param) : NULL;
    j->emsg = strdup(msg);
    cJSON_Delete(j->out);
    j->out = NULL;
    return 1;
}

int adm_forbidden(adm_job *j, const char *why)
{
    return adm_fail(j, 403, "auth_error", "None",
                    "user not allowed to access this route. Route=%s: %s", j->path, why);
}

void adm_ok(adm_job *j, cJSON *out)
{
    cJSON_Delete(j->out);
    j->out = out;
    j->status = 200;
}

void adm_inval_key(adm_job *j, const char *token)
{
    if (!token || !*token)
        return;
    void *p = realloc(j->inval, (size_t)(j->ninval + 1) * sizeof *j->inval);
    if (!p) {
        j->inval_all = true; /* cannot remember it: drop everything instead */
        return;
    }
    j->inval = p;
    snprintf(j->inval[j->ninval++], 65, "%s", token);
}

void adm_inval_owner(adm_job *j, const char *team_id, const char *user_id)
{
    if (team_id && !j->inval_team)
        j->inval_team = strdup(team_id);
    else if (team_id && strcmp(j->inval_team, team_id))
        j->inval_all = true; /* one owner of each kind is tracked; several: drop everything */
    if (user_id && !j->inval_user)
        j->inval_user = strdup(user_id);
    else if (user_id && strcmp(j->inval_user, user_id))
        j->inval_all = true;
}

/* ---- database helpers --------------------------------------------------------------------- */

int adm_exec(db_conn *c, adm_job *j, const char *sql, int n, const char *const *p, db_result *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    return db_exec(c, sql, n, p, out, j->sj.err, sizeof j->sj.err);
}

int adm_caller_load(db_conn *c, adm_job *j)
{
    if (j->kind != IDENT_KEY || !j->token[0])
        return 0;
    db_result r;
    const char *p[] = {j->token};
    if (adm_exec(c, j, "SELECT k.user_id, k.team_id, u.user_role FROM sluice_keys k "
                       "LEFT JOIN sluice_users u ON u.user_id = k.user_id WHERE k.token = $1",
                 1, p, &r) < 0)
        return -1;
    if (r.nrows > 0) {
        const char *v;
        if ((v = adm_col(&r, 0, "user_id")))
            j->user_id = strdup(v);
        if ((v = adm_col(&r, 0, "team_id")))
            j->team_id = strdup(v);
        if ((v = adm_col(&r, 0, "user_role")))
            j->role = strdup(v);
        if (j->role && !strcmp(j->role, "proxy_admin"))
            j->admin = true;
    }
    db_result_free(&r);
    return 0;
}

int adm_exists(db_conn *c, adm_job *j, const char *table, const char *col, const char *v)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT 1 AS x FROM %s WHERE %s = $1", table, col);
    db_result r;
    const char *p[] = {v};
    if (adm_exec(c, j, sql, 1, p, &r) < 0)
        return -1;
    int n = r.nrows;
    db_result_free(&r);
    return n > 0;
}

static int tx_begin(db_conn *c, adm_job *j)
{
    return db_begin(c, j->sj.err, sizeof j->sj.err);
}

static int tx_commit(db_conn *c, adm_job *j)
{
    return db_commit(c, j->sj.err, sizeof j->sj.err);
}

int adm_tx(db_conn *c, adm_job *j, adm_fn fn)
{
    if (tx_begin(c, j) < 0)
        return -1;
    int rc = fn(c, j);
    if (rc < 0 || j->status >= 300) {
        db_rollback(c);
        return rc < 0 ? -1 : 0;
    }
    if (tx_commit(c, j) < 0) {
        db_rollback(c);
        return -1;
    }
    return 0;
}

void adm_now(char out[32])
{
    adm_iso_time(time(NULL), out);
}

static bool member_has(const char *members_json, const char *user_id, bool need_admin)
{
    if (!members_json || !user_id)
        return false;
    cJSON *a = cJSON_Parse(members_json);
    bool found = false;
    const cJSON *m;
    cJSON_ArrayForEach(m, a)
    {
        const cJSON *uid = cJSON_GetObjectItemCaseSensitive(m, "user_id");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (cJSON_IsString(uid) && !strcmp(uid->valuestring, user_id) &&
            (!need_admin || (cJSON_IsString(role) && !strcmp(role->valuestring, "admin")))) {
            found = true;
            break;
        }
    }
    cJSON_Delete(a);
    return found;
}

bool adm_is_team_admin(const char *members_json, const char *user_id)
{
    return member_has(members_json, user_id, true);
}

bool adm_is_team_member(const char *members_json, const char *user_id)
{
    return member_has(members_json, user_id, false);
}

const char *adm_actor(const adm_job *j)
{
    return j->user_id ? j->user_id : "default_user_id"; /* LiteLLM's name for the admin */
}

const char *adm_str(const cJSON *in, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool adm_has(const cJSON *in, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(in, name) != NULL;
}

/* ---- routes ------------------------------------------------------------------------------- */

#define POST EVHTTP_REQ_POST
#define GET (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)
#define OWN ROUTE_OWN_LOG
#define ADM (ROUTE_OWN_LOG | ROUTE_ADMIN)

/* Routes without ROUTE_ADMIN are open to any key and apply LiteLLM's finer rules themselves
 * (a key may read its own info, create keys for its own user, manage a team it administers). */
static const http_route table[] = {
    {"/key/generate", POST, adm_h_key_generate, OWN},
    {"/key/update", POST, adm_h_key_update, OWN},
    {"/key/delete", POST, adm_h_key_delete, OWN},
    {"/key/info", GET, adm_h_key_info, OWN},
    {"/key/list", GET, adm_h_key_list, OWN},
    {"/key/regenerate", POST, adm_h_key_regenerate, OWN},
    /* a path parameter: needs a dispatcher that matches {key} as one segment; the handler
     * reads the key from the path itself */
    {"/key/{key}/regenerate", POST, adm_h_key_regenerate, OWN},
    {"/key/block", POST, adm_h_key_block, ADM},
    {"/key/unblock", POST, adm_h_key_unblock, ADM},
    {"/team/new", POST, adm_h_team_new, ADM},
    {"/team/update", POST, adm_h_team_update, OWN},
    {"/team/delete", POST, adm_h_team_delete, ADM},
    {"/team/info", GET, adm_h_team_info, OWN},
    {"/team/list", GET, adm_h_team_list, OWN},
    {"/team/member_add", POST, adm_h_team_member_add, OWN},
    {"/team/member_delete", POST, adm_h_team_member_delete, OWN},
    {"/team/block", POST, adm_h_team_block, ADM},
    {"/team/unblock", POST, adm_h_team_unblock, ADM},
    {"/user/new", POST, adm_h_user_new, ADM},
    {"/user/update", POST, adm_h_user_update, ADM},
    {"/user/delete", POST, adm_h_user_delete, ADM},
    {"/user/info", GET, adm_h_user_info, OWN},
    {"/user/list", GET, adm_h_user_list, ADM},
    {"/organization/new", POST, adm_h_org_new, ADM},
    {"/organization/update", EVHTTP_REQ_PATCH, adm_h_org_update, ADM},
    {"/organization/delete", EVHTTP_REQ_DELETE, adm_h_org_delete, ADM},
    {"/organization/info", GET, adm_h_org_info, ADM},
    {"/organization/list", GET, adm_h_org_list, ADM},
    {"/spend/logs", GET, adm_h_spend_logs, ADM},
    {"/global/spend", GET, adm_h_global_spend, ADM},
};

const http_route *admin_routes(int *n)
{
    *n = (int)(sizeof table / sizeof *table);
    return table;
}
