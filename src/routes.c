/* routes — see routes.h. */
#include "routes.h"

#include <cjson/cJSON.h>
#include <sys/queue.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway.h"
#include "http/reply.h"

static char *g_models_body, *g_model_info_body;
static size_t g_models_len, g_model_info_len;
static char g_started_at[32];

static const char *owned_by(const cfg_deployment *d)
{
    return d->kind == PROV_OPENAI ? "openai" : d->provider;
}

int routes_init(const cfg *c)
{
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
    free(g_models_body);
    free(g_model_info_body);
    g_models_body = g_model_info_body = NULL;
}

static void h_models(worker *w, struct evhttp_request *req)
{
    http_reply_json(req, 200, g_models_body, g_models_len);
}

static void h_model_info(worker *w, struct evhttp_request *req)
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
        cJSON *id = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(e, "model_info"), "id");
        if (cJSON_IsString(id) && strcmp(id->valuestring, want) == 0)
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

static void h_liveness(worker *w, struct evhttp_request *req)
{
    if (http_shutting_down())
        http_reply_json(req, 503, "\"shutting down\"", 15);
    else
        http_reply_json(req, 200, "\"I'm alive!\"", 12);
}

static void h_readiness(worker *w, struct evhttp_request *req)
{
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"status\":\"%s\",\"db\":\"Not connected\",\"cache\":null,"
                     "\"litellm_version\":\"sluice-%s\",\"sluice_version\":\"%s\","
                     "\"success_callbacks\":[],\"models\":%zu,"
                     "\"last_updated\":\"%s\"}",
                     http_shutting_down() ? "shutting_down" : "healthy", SLUICE_VERSION,
                     SLUICE_VERSION, w->cfg->ndeps, g_started_at);
    http_reply_json(req, http_shutting_down() ? 503 : 200, body, (size_t)n);
}

static void h_root(worker *w, struct evhttp_request *req)
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
    {"/health/liveliness", GET, h_liveness, ROUTE_PUBLIC},
    {"/health/liveness", GET, h_liveness, ROUTE_PUBLIC},
    {"/health/readiness", GET, h_readiness, ROUTE_PUBLIC},
    {"/", GET, h_root, ROUTE_PUBLIC},
};

const http_route *routes_table(int *n)
{
    *n = (int)(sizeof table / sizeof *table);
    return table;
}
