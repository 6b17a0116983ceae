/* health — deployment health checks.
 *
 * A round is a real, small call to every deployment (or those of ?model= / ?model_id=), all at
 * once on one worker's upstream loop, with the deployment's proxy and TLS settings, each bounded
 * by model_info.health_check_timeout (default 10 s), collected in LiteLLM's shape: {"healthy_endpoints":[...], "unhealthy_endpoints":[...
 * "error"], "healthy_count", "unhealthy_count"}. Endpoints are shown with their litellm_params
 * minus secrets (as /model/info does); errors carry the provider's message with control
 * characters blanked and the deployment's own key masked if the upstream echoed it. A
 * mock_response deployment is healthy without a call; an unimplemented provider is unhealthy
 * without one; a Vertex AI deployment uses the cached Google token and is reported unhealthy if
 * there is none yet (the probe starts a refresh).
 *
 * Two callers run rounds:
 *  - GET /health (admin) runs one and answers with it — unless background checks are on and a
 *    background round has completed, in which case it answers from that round's result,
 *    filtered by ?model= / ?model_id=, without calling anyone (LiteLLM returns its cached
 *    background result the same way; before the first round ends it probes live, where LiteLLM
 *    would answer an empty {}).
 *  - With general_settings.background_health_checks, worker 0 runs one at start and then
 *    health_check_interval seconds after each round ends (LiteLLM's loop also sleeps after a
 *    round, so rounds never overlap). Each probe answer goes to the router at once
 *    (router_health_report: no answer, 401, 404 or 5xx mark the deployment down until a later
 *    check passes; the router keeps requests off it while its group has another deployment).
 *    Deployments that were not probed (mock, unimplemented provider, no Google token yet) do
 *    not touch routing. Each change of a deployment's verdict is logged once: unhealthy with
 *    the error, and healthy again. A round whose Vertex probes waited for a token is followed
 *    by another within 5 s instead of a whole interval.
 *
 * Threads: a round lives on one worker thread. The background state is that thread's; the
 * completed background result is shared with every worker under a mutex (read by /health, a
 * rare admin call). */
#include "health.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "gateway.h"
#include "http/reply.h"
#include "obs/log.h"
#include "providers/prov.h"
#include "router/router.h"
#include "upstream/gauth.h"
#include "util/clock.h"

#define DEFAULT_PROBE_TIMEOUT_S 10.0
#define TOKEN_RETRY_S 5.0

typedef struct probe probe;

/* What a round learnt about one deployment. */
typedef enum {
    V_HEALTHY,
    V_UNHEALTHY,
    V_UNKNOWN, /* listed as unhealthy with the reason, but nothing was learnt about the
                  deployment itself (no Google token yet, out of memory): no log, no routing */
} verdict;

typedef struct {
    worker *w;
    int pending;              /* probes in flight, plus one while they are being started */
    cJSON *healthy, *unhealthy;
    probe *probes;            /* in flight: health_thread_exit cancels them */
    bool background;
    bool retry_soon;          /* a probe waited for a Google token */
    struct evhttp_request *req; /* GET /health: whom to answer */
    bool targeted;            /* GET /health?model= / ?model_id=: 503 when none is healthy */
} health_round;

struct probe {
    ups_xfer x;
    health_round *rd;
    const cfg_deployment *d;
    probe *next, **pprev;
    char *url, *body;
    size_t len;
    struct curl_slist *hdrs;
    struct evbuffer *resp;
    char error[512];
};

/* background checks: worker 0's */
typedef struct {
    worker *w;
    struct event *timer;
    health_round *rd;    /* the round in flight, or NULL */
    unsigned char *last; /* per deployment: the verdict last logged (V_UNKNOWN before any) */
} bg_state;

static _Thread_local bg_state *t_bg;

/* The last completed background round: {"healthy_endpoints":[...],"unhealthy_endpoints":[...]}.
 * Replaced whole by worker 0; read (and filtered) under the lock by /health on any worker. */
static pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static cJSON *g_cache;


static double probe_timeout_s(const cfg_deployment *d)
{
    const cJSON *hct = cJSON_GetObjectItemCaseSensitive(d->model_info, "health_check_timeout");
    return cJSON_IsNumber(hct) && hct->valuedouble > 0 ? hct->valuedouble
                                                       : DEFAULT_PROBE_TIMEOUT_S;
}

static cJSON *endpoint_json(const cfg_deployment *d)
{
    cJSON *e = cJSON_Duplicate(d->litellm_params, 1);
    if (!e)
        e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "model_name", d->model_name);
    cJSON_AddStringToObject(e, "model_id", d->id);
    return e;
}

/* ---- error text -------------------------------------------------------------------------- */

/* Replaces every occurrence of secret in s (in place: the mask is never longer). Short keys
 * (test fixtures) are left alone: masking 3 letters would mangle ordinary words. */
static void mask_secret(char *s, const char *secret)
{
    size_t kl = secret ? strlen(secret) : 0;
    if (kl < 4)
        return;
    const char *mask = kl >= 10 ? "[redacted]" : "***";
    size_t ml = strlen(mask);
    char *from = s, *hit;
    while ((hit = strstr(from, secret))) {
        memcpy(hit, mask, ml);
        memmove(hit + ml, hit + kl, strlen(hit + kl) + 1);
        from = hit + ml; /* the mask itself may contain a short key: never rescan it */
    }
}

/* One line (control characters blanked) without the deployment's key. */
static void clean_text(char *s, const char *secret)
{
    for (char *c = s; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = ' ';
    mask_secret(s, secret);
}

/* Drops a UTF-8 sequence cut short at the end of s (by a length limit). */
static void utf8_trim(char *s)
{
    size_t i = strlen(s);
    int cont = 0;
    while (i > 0 && cont < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    if (lead < 0xC0)
        return;
    int need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    if (cont + 1 < need)
        s[i - 1] = 0;
}

/* ---- rounds ------------------------------------------------------------------------------ */

static void bg_feed(const cfg_deployment *d, verdict v, const char *error, int status);
static void bg_round_done(health_round *rd);

/* LiteLLM's body from the two arrays, keeping the entries that match model / model_id (NULL:
 * any). NULL when out of memory. */
static char *render(const cJSON *healthy, const cJSON *unhealthy, const char *model,
                    const char *model_id, int *nhealthy)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *out[2] = {cJSON_AddArrayToObject(o, "healthy_endpoints"),
                     cJSON_AddArrayToObject(o, "unhealthy_endpoints")};
    const cJSON *in[2] = {healthy, unhealthy};
    if (!out[0] || !out[1]) {
        cJSON_Delete(o);
        return NULL;
    }
    for (int k = 0; k < 2; k++) {
        const cJSON *e;
        cJSON_ArrayForEach(e, in[k])
        {
            const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "model_name");
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "model_id");
            if (model && !(cJSON_IsString(n) && strcmp(n->valuestring, model) == 0))
                continue;
            if (model_id && !(cJSON_IsString(id) && strcmp(id->valuestring, model_id) == 0))
                continue;
            cJSON_AddItemToArray(out[k], cJSON_Duplicate(e, 1));
        }
    }
    *nhealthy = cJSON_GetArraySize(out[0]);
    cJSON_AddNumberToObject(o, "healthy_count", cJSON_GetArraySize(out[0]));
    cJSON_AddNumberToObject(o, "unhealthy_count", cJSON_GetArraySize(out[1]));
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* As LiteLLM answers since mid-2026: a check of one model (?model= / ?model_id=) that finds no
 * healthy endpoint is a 503, so a monitor can act on the status alone; the body is the same. */
static void reply_body(struct evhttp_request *req, char *s, bool targeted, int nhealthy)
{
    if (s)
        http_reply_json_logged(req, targeted && nhealthy == 0 ? 503 : 200, s, strlen(s));
    else
        http_reply_error(req, 500, "internal_server_error", NULL, "out of memory");
    free(s);
}

static health_round *round_new(worker *w, bool background)
{
    health_round *rd = calloc(1, sizeof *rd);
    if (!rd)
        return NULL;
    rd->w = w;
    rd->background = background;
    rd->healthy = cJSON_CreateArray();
    rd->unhealthy = cJSON_CreateArray();
    if (!rd->healthy || !rd->unhealthy) {
        cJSON_Delete(rd->healthy);
        cJSON_Delete(rd->unhealthy);
        free(rd);
        return NULL;
    }
    return rd;
}

static void round_free(health_round *rd)
{
    cJSON_Delete(rd->healthy);
    cJSON_Delete(rd->unhealthy);
    free(rd);
}

/* Every probe has answered. */
static void round_done(health_round *rd)
{
    if (rd->background) {
        bg_round_done(rd);
        return;
    }
    int nh = 0;
    char *s = render(rd->healthy, rd->unhealthy, NULL, NULL, &nh);
    reply_body(rd->req, s, rd->targeted, nh);
    worker *w = rd->w;
    round_free(rd);
    http_async_end(w);
}

static void round_release(health_round *rd)
{
    if (--rd->pending == 0)
        round_done(rd);
}

/* error NULL: healthy. status: the probe's HTTP status, 0 = no answer, -1 = not probed. */
static void record(health_round *rd, const cfg_deployment *d, verdict v, const char *error,
                   int status)
{
    cJSON *e = endpoint_json(d);
    if (e && error)
        cJSON_AddStringToObject(e, "error", error);
    if (e)
        cJSON_AddItemToArray(error ? rd->unhealthy : rd->healthy, e);
    if (rd->background)
        bg_feed(d, v, error, status);
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

static void probe_unlink(probe *p)
{
    if (!p->pprev)
        return;
    *p->pprev = p->next;
    if (p->next)
        p->next->pprev = p->pprev;
    p->next = NULL;
    p->pprev = NULL;
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
    health_round *rd = p->rd;
    const cfg_deployment *d = p->d;
    probe_unlink(p);
    const char *host = d->host ? d->host : "?";
    int st = rc == CURLE_OK ? (int)status : 0;
    if (rc != CURLE_OK) {
        const char *why = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
        snprintf(p->error, sizeof p->error, "%s %s: %s",
                 ups_tls_cert_error(rc) ? "TLS certificate problem with"
                 : ups_tls_error(rc)    ? "TLS handshake failed with"
                                        : "cannot reach",
                 host, why);
    } else if (status < 200 || status >= 300) {
        /* the body's start, masked before it is cut (a key cut in half would still leak) */
        char body[1024];
        size_t len = evbuffer_get_length(p->resp);
        if (len > sizeof body - 1)
            len = sizeof body - 1;
        if (len)
            evbuffer_copyout(p->resp, body, len);
        body[len] = 0;
        for (size_t i = 0; i < len; i++)
            if (!body[i])
                body[i] = ' ';
        clean_text(body, d->api_key);
        size_t cut = strlen(body);
        if (cut > 300) {
            cut = 300;
            while (cut > 0 && ((unsigned char)body[cut] & 0xC0) == 0x80)
                cut--;
        }
        snprintf(p->error, sizeof p->error, "HTTP %ld from %s: %.*s", status, host, (int)cut,
                 body);
    }
    clean_text(p->error, d->api_key);
    utf8_trim(p->error);
    record(rd, d, p->error[0] ? V_UNHEALTHY : V_HEALTHY, p->error[0] ? p->error : NULL, st);
    probe_free(p);
    round_release(rd);
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

/* Starts the probe of d; false (with the outcome recorded) when no call was started. */
static bool start_probe(health_round *rd, const cfg_deployment *d)
{
    if (d->mock_response) {
        record(rd, d, V_HEALTHY, NULL, -1);
        return false;
    }
    if (d->kind == PROV_UNIMPLEMENTED) {
        char e[200];
        snprintf(e, sizeof e, "provider '%s' is not implemented in sluice yet", d->provider);
        record(rd, d, V_UNHEALTHY, e, -1);
        return false;
    }
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(d->model_info, "mode");
    bool embed = cJSON_IsString(mode) && !strcmp(mode->valuestring, "embedding");
    probe *p = calloc(1, sizeof *p);
    if (p)
        p->resp = evbuffer_new();
    if (!p || !p->resp) {
        if (p)
            probe_free(p);
        record(rd, d, V_UNKNOWN, "out of memory", -1);
        return false;
    }
    p->rd = rd;
    p->d = d;
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
        const char *url = d->url[embed ? EP_EMBEDDINGS : EP_CHAT];
        p->body = strdup(body);
        p->len = strlen(body);
        p->url = strdup(url ? url : "");
        p->hdrs = NULL; /* the deployment's shared list is used below */
    } else {
        char token[4096] = "";
        if ((d->kind == PROV_VERTEX_GEMINI || d->kind == PROV_VERTEX_CLAUDE) &&
            (!d->gauth || gauth_token(d->gauth, rd->w->mbox, token_ignored, NULL, token,
                                      sizeof token) != 1)) {
            if (d->gauth_error) {
                record(rd, d, V_UNHEALTHY, d->gauth_error, -1);
            } else {
                record(rd, d, V_UNKNOWN,
                       "no Google access token cached yet; call the model once or retry in a "
                       "few seconds", -1);
                rd->retry_soon = true;
            }
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
        int rc = ops && req ? ops->chat_request(&c, req, &h, &e) : -1;
        cJSON_Delete(req);
        if (rc < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s",
                     e.message ? e.message : "cannot build the probe request");
            clean_text(msg, d->api_key);
            record(rd, d, V_UNHEALTHY, msg, -1);
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
        for (int i = 0; l && i < h.nheaders; i++) {
            struct curl_slist *n = curl_slist_append(l, h.headers[i]);
            if (!n) {
                curl_slist_free_all(l);
                l = NULL;
            } else {
                l = n;
            }
        }
        p->hdrs = l;
        prov_http_req_free(&h);
        if (!p->hdrs) {
            record(rd, d, V_UNKNOWN, "out of memory", -1);
            probe_free(p);
            return false;
        }
    }
    double t = probe_timeout_s(d);
    p->x.ud = p;
    p->x.on_data = on_data;
    p->x.on_done = on_done;
    ups_request ur = {.url = p->url, .body = p->body, .body_len = p->len,
                      .headers = p->hdrs ? p->hdrs : d->headers, .proxy = d->proxy,
                      .timeout_ms = (long)(t * 1000),
                      .connect_timeout_ms = (long)(t * 1000 < 10000 ? t * 1000 : 10000)};
    /* the same TLS verification as the deployment's real calls, or a probe could fail (and
     * take it out of routing) where requests succeed */
    ups_tls_choose(&ur, d->ssl_verify, d->ssl_ca_file, rd->w->cfg->ssl_verify,
                   rd->w->cfg->ssl_ca_file);
    if (!p->url || !p->body || ups_start(rd->w->ups, &p->x, &ur) < 0) {
        record(rd, d, V_UNKNOWN, "could not start the probe", -1);
        probe_free(p);
        return false;
    }
    p->next = rd->probes;
    if (p->next)
        p->next->pprev = &p->next;
    p->pprev = &rd->probes;
    rd->probes = p;
    return true;
}

/* Probes every deployment (or those matching model / model_id); round_done runs once all have
 * answered — possibly before this returns (mocks only, say). */
static void round_start(health_round *rd, const char *model, const char *model_id)
{
    const cfg *c = rd->w->cfg;
    rd->pending = 1; /* held until every probe is started */
    for (size_t i = 0; i < c->ndeps; i++) {
        const cfg_deployment *d = &c->deps[i];
        if (model && strcmp(d->model_name, model) != 0)
            continue;
        if (model_id && strcmp(d->id, model_id) != 0)
            continue;
        rd->pending++;
        if (!start_probe(rd, d))
            rd->pending--;
    }
    round_release(rd);
}

/* ---- GET /health ------------------------------------------------------------------------- */

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
    if (w->cfg->background_health_checks) {
        bool cached = false;
        char *s = NULL;
        int nh = 0;
        pthread_mutex_lock(&g_cache_mu);
        if (g_cache) {
            cached = true;
            s = render(cJSON_GetObjectItemCaseSensitive(g_cache, "healthy_endpoints"),
                       cJSON_GetObjectItemCaseSensitive(g_cache, "unhealthy_endpoints"), only,
                       only_id, &nh);
        }
        pthread_mutex_unlock(&g_cache_mu);
        if (cached) {
            evhttp_clear_headers(&params);
            reply_body(req, s, only || only_id, nh);
            return;
        }
        /* no background round has completed yet: probe now */
    }
    health_round *rd = round_new(w, false);
    if (!rd) {
        evhttp_clear_headers(&params);
        http_reply_error(req, 500, "internal_server_error", NULL, "out of memory");
        return;
    }
    rd->req = req;
    rd->targeted = only || only_id;
    http_async_begin(w);
    round_start(rd, only, only_id);
    evhttp_clear_headers(&params);
}

/* ---- background checks ------------------------------------------------------------------- */

static void bg_schedule(bg_state *bg, double secs)
{
    struct timeval tv = {.tv_sec = (time_t)secs,
                         .tv_usec = (suseconds_t)((secs - (double)(time_t)secs) * 1e6)};
    if (evtimer_add(bg->timer, &tv) < 0)
        log_msg(LOG_ERROR, "background health checks: cannot arm the timer; checks stop");
}

/* A probe's outcome, as it arrives: to the router, and to the log when the verdict changed. */
static void bg_feed(const cfg_deployment *d, verdict v, const char *error, int status)
{
    bg_state *bg = t_bg;
    const router *rt = gw_router();
    if (!bg || d < bg->w->cfg->deps || d >= bg->w->cfg->deps + bg->w->cfg->ndeps)
        return;
    bool avoided = false;
    if (status >= 0 && rt && bg->w->cfg->health_check_routing) {
        /* marked until past the next check (interval + this probe's timeout, twice over for
         * a late round); normally that check's answer replaces the mark first */
        double hold = 2 * (bg->w->cfg->health_check_interval_s + probe_timeout_s(d));
        avoided = router_health_report(rt, d, status, hold, clock_wall());
    }
    if (v == V_UNKNOWN)
        return;
    size_t i = (size_t)(d - bg->w->cfg->deps);
    unsigned char prev = bg->last[i];
    bg->last[i] = (unsigned char)v;
    if (v == V_UNHEALTHY && prev != V_UNHEALTHY) {
        const router_group *g = rt ? router_find_group(rt, d->model_name) : NULL;
        const char *routing =
            avoided && g && router_group_size(g) <= 1
                ? "; it is its group's only deployment, so requests still go to it"
            : avoided ? "; requests avoid it while its group has a healthy deployment, until a "
                        "check passes"
            : status < 0 ? ""
            : !bg->w->cfg->health_check_routing
                ? "; still routed to (general_settings.enable_health_check_routing is false)"
            : rt && router_get_settings(rt)->disable_cooldowns
                ? "; still routed to (router_settings.disable_cooldowns is on)"
                : "; still routed to: only no answer, 401, 404 and 5xx take a deployment out "
                  "of routing";
        log_msg(LOG_WARN, "health check: model %s (id %s) is unhealthy: %s%s", d->model_name,
                d->id, error ? error : "?", routing);
    } else if (v == V_HEALTHY && prev == V_UNHEALTHY) {
        log_msg(LOG_INFO, "health check: model %s (id %s) is healthy again", d->model_name,
                d->id);
    }
}

static void bg_round_done(health_round *rd)
{
    bg_state *bg = t_bg;
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddItemToObject(o, "healthy_endpoints", rd->healthy);
        cJSON_AddItemToObject(o, "unhealthy_endpoints", rd->unhealthy);
        rd->healthy = rd->unhealthy = NULL;
        if (log_debug_enabled())
            log_msg(LOG_DEBUG, "background health checks: %d healthy, %d unhealthy",
                    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "healthy_endpoints")),
                    cJSON_GetArraySize(
                        cJSON_GetObjectItemCaseSensitive(o, "unhealthy_endpoints")));
        pthread_mutex_lock(&g_cache_mu);
        cJSON *old = g_cache;
        g_cache = o;
        pthread_mutex_unlock(&g_cache_mu);
        cJSON_Delete(old);
    }
    bool soon = rd->retry_soon;
    round_free(rd);
    if (!bg) /* cannot happen: background rounds run on the thread that owns bg */
        return;
    bg->rd = NULL;
    double next = bg->w->cfg->health_check_interval_s;
    if (soon && next > TOKEN_RETRY_S)
        next = TOKEN_RETRY_S;
    bg_schedule(bg, next);
}

static void bg_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    bg_state *bg = arg;
    if (bg->rd || bg->w->draining)
        return;
    health_round *rd = round_new(bg->w, true);
    if (!rd) {
        bg_schedule(bg, bg->w->cfg->health_check_interval_s);
        return;
    }
    bg->rd = rd;
    round_start(rd, NULL, NULL); /* rd may be gone when this returns */
}

void health_thread_start(worker *w)
{
    const cfg *c = w->cfg;
    if (w->index != 0 || !c->background_health_checks || t_bg)
        return;
    bg_state *bg = calloc(1, sizeof *bg);
    if (bg) {
        bg->w = w;
        bg->last = malloc(c->ndeps ? c->ndeps : 1);
        bg->timer = evtimer_new(w->base, bg_tick, bg);
    }
    if (!bg || !bg->last || !bg->timer) {
        log_msg(LOG_ERROR, "background health checks: out of memory; not running them");
        if (bg) {
            free(bg->last);
            if (bg->timer)
                event_free(bg->timer);
            free(bg);
        }
        return;
    }
    memset(bg->last, V_UNKNOWN, c->ndeps ? c->ndeps : 1);
    t_bg = bg;
    const router *rt = gw_router();
    log_msg(LOG_INFO, "background health checks: %zu deployment%s every %g s%s", c->ndeps,
            c->ndeps == 1 ? "" : "s", c->health_check_interval_s,
            rt && router_get_settings(rt)->disable_cooldowns
                ? " (router_settings.disable_cooldowns is on: results do not change routing)"
                : "; requests avoid unhealthy deployments while their group has a healthy one");
    bg_schedule(bg, 0); /* the first round as soon as the loop runs */
}

void health_thread_exit(void)
{
    bg_state *bg = t_bg;
    if (!bg)
        return;
    t_bg = NULL;
    health_round *rd = bg->rd;
    if (rd) {
        while (rd->probes) {
            probe *p = rd->probes;
            probe_unlink(p);
            ups_abort(&p->x);
            probe_free(p);
        }
        round_free(rd);
    }
    event_free(bg->timer);
    free(bg->last);
    free(bg);
    pthread_mutex_lock(&g_cache_mu);
    cJSON *c = g_cache;
    g_cache = NULL;
    pthread_mutex_unlock(&g_cache_mu);
    cJSON_Delete(c);
}
