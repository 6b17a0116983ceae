/* health — GET /health (admin): a real, small call to every deployment (or those of ?model=),
 * all at once on the worker's upstream loop, each bounded by model_info.health_check_timeout
 * (default 10 s), answered as LiteLLM does: {"healthy_endpoints":[...],
 * "unhealthy_endpoints":[... "error"], "healthy_count", "unhealthy_count"}. Endpoints are shown
 * with their litellm_params minus secrets (as /model/info does); errors carry the provider's
 * message, never a key. A mock_response deployment is healthy without a call; a Vertex AI
 * deployment uses the cached Google token and is reported unhealthy if there is none yet. */
#include "health.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "http/reply.h"
#include "providers/prov.h"
#include "upstream/gauth.h"

typedef struct probe probe;

typedef struct {
    struct evhttp_request *req;
    worker *w;
    int pending;
    cJSON *healthy, *unhealthy;
} health_run;

struct probe {
    ups_xfer x;
    health_run *run;
    const cfg_deployment *d;
    char *url, *body;
    size_t len;
    struct curl_slist *hdrs;
    struct evbuffer *resp;
    char error[512];
};

static cJSON *endpoint_json(const cfg_deployment *d)
{
    cJSON *e = cJSON_Duplicate(d->litellm_params, 1);
    if (!e)
        e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "model_name", d->model_name);
    cJSON_AddStringToObject(e, "model_id", d->id);
    return e;
}

static void run_done(health_run *run)
{
    cJSON *o = cJSON_CreateObject();
    int nh = cJSON_GetArraySize(run->healthy), nu = cJSON_GetArraySize(run->unhealthy);
    cJSON_AddItemToObject(o, "healthy_endpoints", run->healthy);
    cJSON_AddItemToObject(o, "unhealthy_endpoints", run->unhealthy);
    cJSON_AddNumberToObject(o, "healthy_count", nh);
    cJSON_AddNumberToObject(o, "unhealthy_count", nu);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    http_reply_json_logged(run->req, 200, s ? s : "{}", s ? strlen(s) : 2);
    free(s);
    worker *w = run->w;
    free(run);
    http_async_end(w);
}

static void record(health_run *run, const cfg_deployment *d, const char *error)
{
    cJSON *e = endpoint_json(d);
    if (error) {
        cJSON_AddStringToObject(e, "error", error);
        cJSON_AddItemToArray(run->unhealthy, e);
    } else {
        cJSON_AddItemToArray(run->healthy, e);
    }
}

static void probe_free(probe *p)
{
    free(p->url);
    free(p->body);
    curl_slist_free_all(p->hdrs);
    if (p->resp)
        evbuffer_free(p->resp);
    free(p);
}

static size_t on_data(ups_xfer *x, const char *data, size_t n)
{
    probe *p = x->ud;
    if (evbuffer_get_length(p->resp) < 64 * 1024)
        evbuffer_add(p->resp, data, n);
    return n;
}

static void on_done(ups_xfer *x, CURLcode rc, long status, const char *errbuf)
{
    probe *p = x->ud;
    health_run *run = p->run;
    if (rc != CURLE_OK) {
        snprintf(p->error, sizeof p->error, "cannot reach %s: %s", p->d->host ? p->d->host : "?",
                 errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (status < 200 || status >= 300) {
        size_t len = evbuffer_get_length(p->resp);
        const char *b = len ? (const char *)evbuffer_pullup(p->resp, -1) : "";
        snprintf(p->error, sizeof p->error, "HTTP %ld from %s: %.*s", status,
                 p->d->host ? p->d->host : "?", (int)(len > 300 ? 300 : len), b);
    }
    record(run, p->d, p->error[0] ? p->error : NULL);
    probe_free(p);
    if (--run->pending == 0)
        run_done(run);
}

/* A token refresh started by a probe is only warming the cache: nobody waits for it. */
static void token_ignored(void *arg, const char *token, const char *error)
{
    (void)arg;
    (void)token;
    (void)error;
}

static const prov_ops *ops_of(prov_kind k)
{
    switch (k) {
    case PROV_ANTHROPIC: return &prov_anthropic;
    case PROV_VERTEX_CLAUDE: return &prov_vertex_claude;
    case PROV_VERTEX_GEMINI: return &prov_vertex_gemini;
    case PROV_GEMINI: return &prov_gemini;
    default: return NULL;
    }
}

/* Starts the probe of d; false (with the reason recorded) when it cannot be started. */
static bool start_probe(health_run *run, const cfg_deployment *d)
{
    if (d->mock_response) {
        record(run, d, NULL);
        return false;
    }
    if (d->kind == PROV_UNIMPLEMENTED) {
        char e[200];
        snprintf(e, sizeof e, "provider '%s' is not implemented in sluice yet", d->provider);
        record(run, d, e);
        return false;
    }
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(d->model_info, "mode");
    bool embed = cJSON_IsString(mode) && !strcmp(mode->valuestring, "embedding");
    probe *p = calloc(1, sizeof *p);
    if (!p)
        return false;
    p->run = run;
    p->d = d;
    p->resp = evbuffer_new();
    if (prov_is_openai_shaped(d->kind)) {
        char body[512];
        char esc[300];
        snprintf(esc, sizeof esc, "%s", d->upstream_model);
        for (char *c = esc; *c; c++) /* model names are plain; keep the JSON valid anyway */
            if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
                *c = '_';
        if (embed)
            snprintf(body, sizeof body, "{\"model\":\"%s\",\"input\":\"ping\"}", esc);
        else
            snprintf(body, sizeof body, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
                                        "\"content\":\"ping\"}],\"max_tokens\":1}", esc);
        p->body = strdup(body);
        p->len = strlen(body);
        p->url = strdup(d->url[embed ? EP_EMBEDDINGS : EP_CHAT] ? d->url[embed ? EP_EMBEDDINGS
                                                                               : EP_CHAT]
                                                                : "");
        p->hdrs = NULL; /* the deployment's shared list is used below */
    } else {
        char token[4096] = "";
        if ((d->kind == PROV_VERTEX_GEMINI || d->kind == PROV_VERTEX_CLAUDE) &&
            (!d->gauth || gauth_token(d->gauth, run->w->mbox, token_ignored, NULL, token, sizeof token) != 1)) {
            record(run, d, d->gauth_error ? d->gauth_error
                                          : "no Google access token cached yet; call the model "
                                            "once or retry in a few seconds");
            probe_free(p);
            return false;
        }
        prov_ctx c = {.upstream_model = d->upstream_model, .api_base = d->api_base,
                      .api_key = d->api_key, .project = d->vertex_project,
                      .location = d->vertex_location, .access_token = token[0] ? token : NULL,
                      .response_id = "health", .client_model = d->model_name};
        cJSON *req = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"ping\"}],"
                                 "\"max_tokens\":1}");
        prov_http_req h = {0};
        prov_err e = {0};
        const prov_ops *ops = ops_of(d->kind);
        int rc = ops ? ops->chat_request(&c, req, &h, &e) : -1;
        cJSON_Delete(req);
        if (rc < 0) {
            record(run, d, e.message ? e.message : "cannot build the probe request");
            prov_err_free(&e);
            prov_http_req_free(&h);
            probe_free(p);
            return false;
        }
        p->url = h.url;
        p->body = h.body;
        p->len = h.body_len;
        h.url = h.body = NULL;
        struct curl_slist *l = curl_slist_append(NULL, "Expect:");
        for (int i = 0; l && i < h.nheaders; i++)
            l = curl_slist_append(l, h.headers[i]);
        p->hdrs = l;
        prov_http_req_free(&h);
    }
    double t = 10;
    const cJSON *hct = cJSON_GetObjectItemCaseSensitive(d->model_info, "health_check_timeout");
    if (cJSON_IsNumber(hct) && hct->valuedouble > 0)
        t = hct->valuedouble;
    p->x.ud = p;
    p->x.on_data = on_data;
    p->x.on_done = on_done;
    ups_request ur = {.url = p->url, .body = p->body, .body_len = p->len,
                      .headers = p->hdrs ? p->hdrs : d->headers, .proxy = d->proxy,
                      .timeout_ms = (long)(t * 1000),
                      .connect_timeout_ms = (long)(t * 1000 < 10000 ? t * 1000 : 10000)};
    if (!p->url || ups_start(run->w->ups, &p->x, &ur) < 0) {
        record(run, d, "could not start the probe");
        probe_free(p);
        return false;
    }
    return true;
}

void health_handler(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    (void)id;
    const char *uri = evhttp_request_get_uri(req);
    const char *q = strchr(uri, '?');
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    const char *only = NULL, *only_id = NULL;
    if (q && evhttp_parse_query_str(q + 1, &params) == 0) {
        only = evhttp_find_header(&params, "model");
        only_id = evhttp_find_header(&params, "model_id");
    }
    health_run *run = calloc(1, sizeof *run);
    if (!run) {
        evhttp_clear_headers(&params);
        http_reply_error(req, 500, "internal_server_error", NULL, "out of memory");
        return;
    }
    run->req = req;
    run->w = w;
    run->healthy = cJSON_CreateArray();
    run->unhealthy = cJSON_CreateArray();
    http_async_begin(w);
    run->pending = 1; /* held until every probe is started */
    for (size_t i = 0; i < w->cfg->ndeps; i++) {
        const cfg_deployment *d = &w->cfg->deps[i];
        if (only && strcmp(d->model_name, only) != 0)
            continue;
        if (only_id && strcmp(d->id, only_id) != 0)
            continue;
        run->pending++;
        if (!start_probe(run, d))
            run->pending--;
    }
    evhttp_clear_headers(&params);
    if (--run->pending == 0)
        run_done(run);
}
