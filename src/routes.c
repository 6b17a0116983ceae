/* routes — see routes.h. */
#include "routes.h"

#include <cjson/cJSON.h>
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin.h"
#include "gateway.h"
#include "health.h"
#include "router/router.h"
#include "http/reply.h"

static char *g_models_body, *g_model_info_body;
static size_t g_models_len, g_model_info_len;
static char g_started_at[32];
static store *g_store;
static http_route *g_table;
static int g_ntable;

static const char *owned_by(const cfg_deployment *d)
{
    return d->kind == PROV_OPENAI ? "openai" : d->provider;
}

static int build_table(void);

int routes_init(const cfg *c, store *st)
{
    g_store = st;
    if (build_table() < 0)
        return -1;
    cJSON *models = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(models, "data");
    cJSON *info = cJSON_CreateObject();
    cJSON *idata = cJSON_AddArrayToObject(info, "data");
    for (size_t i = 0; i < c->ndeps; i++) {
        const cfg_deployment *d = &c->deps[i];
        bool seen = false; /* a model group is listed once however many deployments it has */
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(c->deps[j].model_name, d->model_name) == 0;
        if (!seen) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "id", d->model_name);
            cJSON_AddStringToObject(m, "object", "model");
            cJSON_AddNumberToObject(m, "created", 1677610602); /* LiteLLM's constant */
            cJSON_AddStringToObject(m, "owned_by", owned_by(d));
            cJSON_AddItemToArray(data, m);
        }
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "model_name", d->model_name);
        cJSON_AddItemToObject(e, "litellm_params", cJSON_Duplicate(d->litellm_params, 1));
        cJSON *mi = cJSON_Duplicate(d->model_info, 1);
        if (!cJSON_GetObjectItemCaseSensitive(mi, "litellm_provider"))
            cJSON_AddStringToObject(mi, "litellm_provider", d->provider);
        if (!cJSON_GetObjectItemCaseSensitive(mi, "mode"))
            cJSON_AddStringToObject(mi, "mode", "chat");
        cJSON_AddBoolToObject(mi, "db_model", 0);
        cJSON_AddItemToObject(e, "model_info", mi);
        cJSON_AddItemToArray(idata, e);
    }
    /* model_group_alias names are models too (hidden ones are not listed) */
    const router *rt = gw_router();
    for (size_t i = 0; rt && i < router_alias_count(rt); i++) {
        const char *alias, *group;
        bool hidden;
        router_alias_at(rt, i, &alias, &group, &hidden);
        if (hidden || !alias)
            continue;
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "id", alias);
        cJSON_AddStringToObject(m, "object", "model");
        cJSON_AddNumberToObject(m, "created", 1677610602);
        cJSON_AddStringToObject(m, "owned_by", "openai");
        cJSON_AddItemToArray(data, m);
    }
    cJSON_AddStringToObject(models, "object", "list");
    g_models_body = cJSON_PrintUnformatted(models);
    g_model_info_body = cJSON_PrintUnformatted(info);
    cJSON_Delete(models);
    cJSON_Delete(info);
    if (!g_models_body || !g_model_info_body)
        return -1;
    g_models_len = strlen(g_models_body);
    g_model_info_len = strlen(g_model_info_body);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(g_started_at, sizeof g_started_at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return 0;
}

void routes_free(void)
{
    free(g_table);
    g_table = NULL;
    free(g_models_body);
    free(g_model_info_body);
    g_models_body = g_model_info_body = NULL;
}

static void h_models(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    http_reply_json(req, 200, g_models_body, g_models_len);
}

static void h_model_info(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    const char *uri = evhttp_request_get_uri(req);
    const char *q = strchr(uri, '?');
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    const char *want = NULL;
    if (q && evhttp_parse_query_str(q + 1, &params) == 0)
        want = evhttp_find_header(&params, "litellm_model_id");
    if (!want) {
        evhttp_clear_headers(&params);
        http_reply_json(req, 200, g_model_info_body, g_model_info_len);
        return;
    }
    /* one deployment: the same entry as in the full list */
    cJSON *all = cJSON_Parse(g_model_info_body);
    cJSON *out = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(out, "data");
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(all, "data"))
    {
        cJSON *mid = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(e, "model_info"), "id");
        if (cJSON_IsString(mid) && strcmp(mid->valuestring, want) == 0)
            cJSON_AddItemToArray(arr, cJSON_Duplicate(e, 1));
    }
    evhttp_clear_headers(&params);
    if (cJSON_GetArraySize(arr) == 0) {
        http_reply_error(req, 404, "not_found_error", "litellm_model_id",
                         "No deployment with litellm_model_id=%s", want);
    } else {
        char *s = cJSON_PrintUnformatted(out);
        http_reply_json(req, 200, s, strlen(s));
        free(s);
    }
    cJSON_Delete(all);
    cJSON_Delete(out);
}

static void h_liveness(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    if (http_shutting_down())
        http_reply_json(req, 503, "\"shutting down\"", 15);
    else
        http_reply_json(req, 200, "\"I'm alive!\"", 12);
}

/* LiteLLM's readiness shape plus what an operator needs when the database is the problem:
 * whether it is connected (or why not), the schema version and pending migrations. 503 while the
 * database is down, unless allow_requests_on_db_unavailable says the API serves anyway. */
static void h_readiness(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    store_health h = {0};
    h.schema_version = -1;
    if (g_store)
        store_get_health(g_store, &h);
    bool shutting = http_shutting_down();
    cJSON *o = cJSON_CreateObject();
    const char *status = shutting ? "shutting_down" : h.connected ? "connected" : "db_unavailable";
    cJSON_AddStringToObject(o, "status", status);
    if (h.connected) {
        cJSON_AddStringToObject(o, "db", "connected");
    } else {
        char why[320];
        snprintf(why, sizeof why, "unavailable: %s", h.reason[0] ? h.reason : "not connected yet");
        cJSON_AddStringToObject(o, "db", why);
    }
    cJSON_AddStringToObject(o, "db_type", h.dialect[0] ? h.dialect : "unknown");
    cJSON_AddStringToObject(o, "database", h.display_url);
    cJSON_AddNumberToObject(o, "schema_version", h.schema_version);
    cJSON_AddNumberToObject(o, "pending_migrations",
                            h.schema_version >= 0 && h.migrations_total >= h.schema_version
                                ? h.migrations_total - h.schema_version
                                : h.migrations_total);
    cJSON_AddBoolToObject(o, "migrating", h.migrating);
    cJSON_AddNullToObject(o, "cache");
    char ver[64];
    snprintf(ver, sizeof ver, "sluice-%s", SLUICE_VERSION);
    cJSON_AddStringToObject(o, "litellm_version", ver);
    cJSON_AddStringToObject(o, "sluice_version", SLUICE_VERSION);
    cJSON_AddItemToObject(o, "success_callbacks", cJSON_CreateArray());
    cJSON_AddNumberToObject(o, "models", (double)w->cfg->ndeps);
    cJSON_AddStringToObject(o, "last_updated", g_started_at);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    int code = shutting || (!h.connected && !w->cfg->allow_on_db_unavailable) ? 503 : 200;
    http_reply_json(req, code, body ? body : "{}", body ? strlen(body) : 2);
    free(body);
}

static void h_root(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"name\":\"sluice\",\"version\":\"%s\",\"message\":\"sluice LLM gateway: "
                     "OpenAI-compatible API under /v1 (chat/completions, completions, embeddings, "
                     "models).\",\"health\":\"/health/readiness\"}",
                     SLUICE_VERSION);
    http_reply_json(req, 200, body, (size_t)n);
}

#define POST EVHTTP_REQ_POST
#define GET (EVHTTP_REQ_GET | EVHTTP_REQ_HEAD)

static const http_route table[] = {
    {"/v1/chat/completions", POST, gw_chat, ROUTE_OWN_LOG},
    {"/chat/completions", POST, gw_chat, ROUTE_OWN_LOG},
    {"/v1/completions", POST, gw_completions, ROUTE_OWN_LOG},
    {"/completions", POST, gw_completions, ROUTE_OWN_LOG},
    {"/v1/embeddings", POST, gw_embeddings, ROUTE_OWN_LOG},
    {"/v1/messages", POST, gw_messages, ROUTE_OWN_LOG},
    {"/v1/messages/count_tokens", POST, gw_count_tokens, ROUTE_OWN_LOG},
    {"/embeddings", POST, gw_embeddings, ROUTE_OWN_LOG},
    {"/v1/models", GET, h_models, 0},
    {"/models", GET, h_models, 0},
    {"/model/info", GET, h_model_info, 0},
    {"/v1/model/info", GET, h_model_info, 0},
    {"/health", GET, health_handler, ROUTE_ADMIN | ROUTE_OWN_LOG},
    {"/health/liveliness", GET, h_liveness, ROUTE_PUBLIC},
    {"/health/liveness", GET, h_liveness, ROUTE_PUBLIC},
    {"/health/readiness", GET, h_readiness, ROUTE_PUBLIC},
    {"/", GET, h_root, ROUTE_PUBLIC},
};

static int build_table(void)
{
    int na = 0;
    const http_route *admin = admin_routes(&na);
    int nb = (int)(sizeof table / sizeof *table);
    g_table = calloc((size_t)(na + nb), sizeof *g_table);
    if (!g_table)
        return -1;
    memcpy(g_table, table, sizeof table);
    if (na)
        memcpy(g_table + nb, admin, (size_t)na * sizeof *admin);
    g_ntable = na + nb;
    return 0;
}

const http_route *routes_table(int *n)
{
    *n = g_ntable;
    return g_table;
}
