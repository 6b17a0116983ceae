/* admin/spend_api — GET /spend/logs and GET /global/spend (admins only).
 *
 * /spend/logs answers LiteLLM's SpendLogs rows (camelCase times, `user`, metadata with the
 * caller's user_api_key_* entries, cache_hit as "True"/"False"), oldest first. With both
 * start_date and end_date and no summarize=false it answers LiteLLM's daily summary instead:
 * [{"startTime": "YYYY-MM-DD", "spend", "users": {user: spend}, "models": {model: spend},
 * "api_keys": {hash: spend}}]. end_date is inclusive (the whole day). Rows are capped at
 * ?limit= (default 10000, at most 100000) so an unfiltered call cannot build an answer the
 * size of the table.
 *
 * /global/spend is LiteLLM's: the spend logged in the last 30 days, with the proxy budget
 * (litellm_settings.max_budget, 0 when none). */
#include "admin/admin_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

static int logs_run(db_conn *c, adm_job *j)
{
    const cJSON *in = j->in;
    adm_qb q;
    qb_init(&q);
    sbuf w;
    sbuf_init(&w);
    sbuf_adds(&w, " WHERE 1 = 1");
    const char *v;
    if ((v = adm_str(in, "api_key"))) {
        char tok[65];
        adm_token_of(v, tok);
        sbuf_addf(&w, " AND api_key = $%d", qb_param(&q, tok));
    }
    if ((v = adm_str(in, "request_id")))
        sbuf_addf(&w, " AND request_id = $%d", qb_param(&q, v));
    if ((v = adm_str(in, "user_id")))
        sbuf_addf(&w, " AND user_id = $%d", qb_param(&q, v));
    if ((v = adm_str(in, "team_id")))
        sbuf_addf(&w, " AND team_id = $%d", qb_param(&q, v));
    /* ISO text compares in time order; the handler checked the dates */
    if ((v = adm_str(in, "_from")))
        sbuf_addf(&w, " AND start_time >= $%d", qb_param(&q, v));
    if ((v = adm_str(in, "_to")))
        sbuf_addf(&w, " AND start_time < $%d", qb_param(&q, v));
    long limit = (long)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(in, "_limit"));
    char *where = sbuf_take(&w, NULL);
    sbuf s;
    sbuf_init(&s);
    sbuf_addf(&s, "SELECT * FROM sluice_spend_logs%s ORDER BY start_time, request_id LIMIT %ld",
              where ? where : "", limit);
    char *sql = sbuf_take(&s, NULL);
    db_result r;
    int rc = sql && where ? adm_exec(c, j, sql, q.n, (const char *const *)q.params, &r) : -1;
    free(sql);
    free(where);
    qb_free(&q);
    if (rc < 0)
        return -1;
    cJSON *out = cJSON_CreateArray();
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(in, "_summarize"))) {
        for (int i = 0; i < r.nrows; i++) {
            const char *st = adm_col(&r, i, "start_time");
            char day[11];
            snprintf(day, sizeof day, "%.10s", st ? st : "");
            const char *sp = adm_col(&r, i, "spend");
            double spend = sp ? strtod(sp, NULL) : 0;
            cJSON *d = NULL, *it;
            cJSON_ArrayForEach(it, out)
            {
                if (!strcmp(adm_str(it, "startTime"), day))
                    d = it;
            }
            if (!d) {
                d = cJSON_CreateObject();
                cJSON_AddStringToObject(d, "startTime", day);
                cJSON_AddNumberToObject(d, "spend", 0);
                cJSON_AddObjectToObject(d, "users");
                cJSON_AddObjectToObject(d, "models");
                cJSON_AddObjectToObject(d, "api_keys");
                cJSON_AddItemToArray(out, d);
            }
            cJSON *tot = cJSON_GetObjectItemCaseSensitive(d, "spend");
            cJSON_SetNumberValue(tot, tot->valuedouble + spend);
            static const char *const groups[][2] = {
                {"users", "user_id"}, {"models", "model"}, {"api_keys", "api_key"}};
            for (size_t g = 0; g < 3; g++) {
                const char *k = adm_col(&r, i, groups[g][1]);
                cJSON *grp = cJSON_GetObjectItemCaseSensitive(d, groups[g][0]);
                if (!k)
                    k = "";
                cJSON *e = cJSON_GetObjectItemCaseSensitive(grp, k);
                if (e)
                    cJSON_SetNumberValue(e, e->valuedouble + spend);
                else
                    cJSON_AddNumberToObject(grp, k, spend);
            }
        }
    } else {
        for (int i = 0; i < r.nrows; i++)
            cJSON_AddItemToArray(out, adm_spend_json(&r, i));
    }
    db_result_free(&r);
    adm_ok(j, out);
    return 0;
}

void adm_h_spend_logs(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    cJSON *q = adm_query(req);
    static const char *const dates[][2] = {{"start_date", "_from"}, {"end_date", "_to"}};
    for (int i = 0; i < 2; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(q, dates[i][1]);
        const char *d = adm_str(q, dates[i][0]);
        if (!d)
            continue;
        time_t t;
        if (adm_parse_date(d, &t) < 0) {
            adm_reply_error(req, 400, "bad_request_error", dates[i][0],
                            "Invalid value for '%s': expected a date as YYYY-MM-DD, got '%.32s'",
                            dates[i][0], d);
            cJSON_Delete(q);
            return;
        }
        if (i == 1)
            t += 86400; /* end_date includes its whole day */
        char iso[32];
        adm_iso_time(t, iso);
        iso[10] = 0; /* the day alone compares right against any ISO time of that day */
        cJSON_AddStringToObject(q, dates[i][1], iso);
    }
    long limit;
    if (adm_query_int(req, q, "limit", 10000, 100000, &limit) < 0) {
        cJSON_Delete(q);
        return;
    }
    const char *sum = adm_str(q, "summarize");
    bool summarize = adm_str(q, "start_date") && adm_str(q, "end_date") &&
                     !(sum && (!strcmp(sum, "false") || !strcmp(sum, "False") ||
                               !strcmp(sum, "0")));
    cJSON_DeleteItemFromObjectCaseSensitive(q, "_limit");
    cJSON_DeleteItemFromObjectCaseSensitive(q, "_summarize");
    cJSON_AddNumberToObject(q, "_limit", (double)limit);
    cJSON_AddBoolToObject(q, "_summarize", summarize);
    adm_submit(w, req, id, logs_run, q, NULL);
}

static int global_run(db_conn *c, adm_job *j)
{
    char from[32];
    adm_iso_time(time(NULL) - 30 * 86400, from);
    const char *p[] = {from};
    db_result r;
    if (adm_exec(c, j, "SELECT SUM(spend) AS total FROM sluice_spend_logs WHERE start_time >= $1",
                 1, p, &r) < 0)
        return -1;
    const char *t = adm_col(&r, 0, "total");
    double total = t ? strtod(t, NULL) : 0;
    db_result_free(&r);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(out, "spend", total);
    double mb = g_adm.cfg && g_adm.cfg->max_budget >= 0 ? g_adm.cfg->max_budget : 0;
    cJSON_AddNumberToObject(out, "max_budget", mb);
    adm_ok(j, out);
    return 0;
}

void adm_h_global_spend(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    adm_submit(w, req, id, global_run, NULL, NULL);
}
