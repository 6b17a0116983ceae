/* gateway — see gateway.h.
 *
 * Lifetime of one LLM request (llm_req): created in the handler, owned by the worker thread,
 * freed by finish() — the single exit, reached from exactly one of: a synchronous reply (bad
 * request, mock), upstream completion (on_done), the deferred abort (client gone, stream
 * failure, idle timeout), or a Google token arriving for a request whose client left.
 * Events embedded in llm_req are deleted in finish().
 *
 * Formats: the client speaks OpenAI (chat/completions/embeddings) or Anthropic (/v1/messages);
 * the upstream speaks OpenAI (bytes pass through untouched: the fast path), a provider format
 * behind a prov_ops translator, or Anthropic to an Anthropic client (bytes pass through). An
 * Anthropic client in front of a non-Anthropic upstream gets the OpenAI answer translated once
 * more by providers/anthropic (anth_from_openai_response, anth_out_stream).
 *
 * Streaming backpressure: upstream bytes are forwarded only while the client connection's
 * output buffer holds less than BACKPRESSURE_BYTES; above that on_data returns UPS_PAUSE (curl
 * keeps the bytes) and the drain callback resumes the transfer once the client has read
 * everything. So a slow client costs one socket buffer and 64 KiB, never a whole response.
 *
 * Client disconnect: evhttp reports it through the connection's close callback, detaching the
 * request. The callback only schedules abort_ev (it runs inside evhttp and may be inside our own
 * call stack); the abort removes the curl handle and finishes the detached request, which frees
 * it. evhttp stops reading a connection while its request is being handled, so a client that
 * leaves before any byte was written back would go unnoticed until the upstream answered (and
 * was paid for): once a request has waited PEER_WATCH_MS, peer_ev watches the socket for EOF
 * (MSG_PEEK, so evhttp's own reads are untouched). The watch is removed before evhttp may close
 * the fd (detach_conn and the close callback), so it never outlives the descriptor it watches. */
#include "gateway.h"

#include <errno.h>
#include <stddef.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http/reply.h"
#include "obs/log.h"
#include "policy.h"
#include "providers/anthropic.h"
#include "providers/mock.h"
#include "providers/openai.h"
#include "providers/prov.h"
#include "router/router.h"
#include "upstream/gauth.h"
#include "upstream/proxy.h"
#include "util/jscan.h"
#include "util/sbuf.h"
#include "util/clock.h"

#define BACKPRESSURE_BYTES (64 * 1024)
#define MAX_RESPONSE_BYTES (64u * 1024 * 1024)
#define MAX_SSE_EVENT (16u * 1024 * 1024)
/* Most answers arrive sooner; watching the socket costs two epoll_ctl calls, so only requests
 * that have waited this long pay for it. */
#define PEER_WATCH_MS 300

/* What the client speaks, and what the upstream speaks. */
typedef enum { FMT_OPENAI, FMT_ANTHROPIC } client_fmt;
typedef enum {
    UP_OPENAI,     /* OpenAI-shaped upstream: bytes pass through */
    UP_TRANSLATED, /* a prov_ops translator in between (Anthropic, Gemini, Claude on Vertex) */
    UP_ANTHROPIC,  /* /v1/messages to Anthropic or Claude on Vertex: Anthropic bytes both ways */
} up_fmt;

typedef struct {
    worker *w;
    struct evhttp_request *req;
    struct evhttp_connection *conn; /* NULL once the client has gone */
    const cfg_deployment *dep;
    prov_endpoint ep;
    const char *path;
    client_fmt cfmt;
    up_fmt ufmt;
    char call_id[37];
    char *model;        /* the client's model name (for logs and responses) */
    char *up_body;      /* OpenAI fast path body; kept with its capacity when recycled */
    size_t up_len, up_cap;
    /* the upstream request: the deployment's shared data on the OpenAI fast path, the t_*
     * fields below otherwise */
    const char *u_url;
    CURLU *u_curlu;
    const char *u_body;
    size_t u_len;
    const struct curl_slist *u_headers;
    char *t_url, *t_body;
    size_t t_len;
    struct curl_slist *t_hdrs;
    const prov_ops *ops;
    prov_ctx pctx;
    prov_stream *pstream;
    anth_out_stream *astream;   /* OpenAI chunks → Anthropic events (/v1/messages) */
    cJSON *oreq;                /* translated path: the OpenAI request */
    sse_parser resplit;         /* splits translator output for the Anthropic encoder */
    prov_err serr;              /* an error raised inside a stream, reported by on_abort */
    ups_xfer x;
    bool stream, client_usage, headers_sent, client_gone, aborting, oversize, stream_failed;
    bool waiting_token;
    int attempts;
    long status;        /* upstream HTTP status */
    struct evbuffer *resp; /* non-streamed body or error body: the reply's own output buffer,
                              so a success is sent without a copy (owned by the request) */
    struct evbuffer *out;  /* SSE bytes on their way to the client */
    sse_parser sse;
    oai_usage usage;
    double t_start, t_up_start, t_up_first, t_up_end, t_headers;
    double upstream_ms_total; /* across attempts */
    struct event abort_ev, idle_ev, retry_ev;
    struct event peer_ev;    /* the client socket, watched for EOF while we wait */
    struct event peer_timer; /* starts that watch once a request has waited PEER_WATCH_MS */
    bool events_ready, peer_watched;
    const char *log_error;
    char errmsg[160];
    char resp_id[48];
    /* routing: the group asked for, what was tried, what is left */
    router_route route;
    char req_model[256];     /* the model name as the client sent it (after key aliases) */
    const char *tried[16];   /* deployment ids tried in this group */
    int ntried;
    int retries_left;        /* -1 until the first failure */
    int attempted_retries, attempted_fallbacks;
    const char *fallbacks[8];
    int nfallbacks, fb_next;
    bool fallbacks_known, begun;
    cJSON *req_fallbacks;    /* the request's own "fallbacks" */
    int req_num_retries;     /* body num_retries / x-litellm-num-retries, -1 none */
    double hdr_timeout;      /* x-litellm-timeout (seconds), 0 none */
    double t_attempt;        /* when the current attempt started (latency for the router) */
    char upmodel[256];       /* the upstream model of the current deployment */
    oai_request oq;          /* the OpenAI request's spans (fast path), parsed once */
    bool have_oq;
    char *xbody;             /* /v1/messages: the request translated to OpenAI format */
    size_t xlen;
    policy_grant grant;      /* the caller's admission: limits, budget reservation, key record */
    policy_request preq;
    bool policy_ended;
    char *end_user;          /* the request's "user" */
    char token[4096];        /* Google access token (Vertex AI) */
} llm_req;

/* Per-thread cache of finished llm_req structs. The struct is several KiB, past glibc's
 * per-thread cache, so a fresh calloc each request took its slow path (~2,400 instructions,
 * measured with callgrind); recycled ones cost a memset. Bounded, and freed at thread exit. */
#define REQ_CACHE 64
static _Thread_local llm_req *t_req_cache[REQ_CACHE];
static _Thread_local int t_req_cached;

static llm_req *req_acquire(void)
{
    if (t_req_cached == 0)
        return calloc(1, sizeof(llm_req));
    llm_req *r = t_req_cache[--t_req_cached];
    char *buf = r->up_body;
    size_t cap = r->up_cap;
    /* everything up to the token buffer: the token is always written before it is read */
    memset(r, 0, offsetof(llm_req, token));
    r->token[0] = 0;
    r->up_body = buf;
    r->up_cap = cap;
    return r;
}

static void req_release(llm_req *r)
{
    if (t_req_cached < REQ_CACHE && r->up_cap <= 256 * 1024) {
        t_req_cache[t_req_cached++] = r;
        return;
    }
    free(r->up_body);
    free(r);
}

void gw_thread_exit(void)
{
    while (t_req_cached) {
        llm_req *r = t_req_cache[--t_req_cached];
        free(r->up_body);
        free(r);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* "OpenAIException", "AnthropicException", "Hosted_vllmException": LiteLLM's prefixes. */
static const char *provider_exception(const cfg_deployment *d, char *buf, size_t n)
{
    if (d->kind == PROV_OPENAI)
        return "OpenAIException";
    snprintf(buf, n, "%c%sException", d->provider[0] >= 'a' && d->provider[0] <= 'z'
                                           ? d->provider[0] - 32 : d->provider[0],
             d->provider + 1);
    return buf;
}

static router *g_router;


static double timeout_s(const llm_req *r)
{
    if (r->hdr_timeout > 0) /* the request's x-litellm-timeout wins, as in LiteLLM */
        return r->hdr_timeout;
    double t = g_router ? router_timeout_for(g_router, r->dep, r->stream) : 0;
    return t > 0 ? t : r->w->cfg->request_timeout;
}

static const prov_ops *ops_for(prov_kind k)
{
    switch (k) {
    case PROV_ANTHROPIC: return &prov_anthropic;
    case PROV_VERTEX_CLAUDE: return &prov_vertex_claude;
    case PROV_VERTEX_GEMINI: return &prov_vertex_gemini;
    case PROV_GEMINI: return &prov_gemini;
    default: return NULL;
    }
}

static bool is_vertex(const cfg_deployment *d)
{
    return d->kind == PROV_VERTEX_GEMINI || d->kind == PROV_VERTEX_CLAUDE;
}

/* ---- replying ------------------------------------------------------------------------- */

/* evhttp formats a Date header for every reply with gmtime+strftime; one per second per thread
 * is enough. */
static const char *http_date(void)
{
    static _Thread_local time_t t_sec;
    static _Thread_local char t_date[40];
    time_t now = time(NULL);
    if (now != t_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(t_date, sizeof t_date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        t_sec = now;
    }
    return t_date;
}

static void add_common_headers(llm_req *r, struct evkeyvalq *h, double overhead_ms)
{
    char buf[32];
    evhttp_add_header(h, "Date", http_date());
    evhttp_add_header(h, "x-litellm-call-id", r->call_id);
    if (r->dep) {
        evhttp_add_header(h, "x-litellm-model-id", r->dep->id);
        evhttp_add_header(h, "x-litellm-model-group", r->dep->model_name);
    }
    if (r->attempted_retries || r->attempted_fallbacks) {
        snprintf(buf, sizeof buf, "%d", r->attempted_retries);
        evhttp_add_header(h, "x-litellm-attempted-retries", buf);
        snprintf(buf, sizeof buf, "%d", r->attempted_fallbacks);
        evhttp_add_header(h, "x-litellm-attempted-fallbacks", buf);
    }
    fmt_ms3(buf, overhead_ms);
    evhttp_add_header(h, "x-litellm-overhead-duration-ms", buf);
    fmt_ms3(buf, now_ms() - r->t_start);
    evhttp_add_header(h, "x-litellm-response-duration-ms", buf);
}

/* Time spent in sluice so far: everything except waiting for the upstream. */
static double overhead_ms(const llm_req *r)
{
    double up = r->upstream_ms_total;
    if (r->t_up_start > 0) {
        double end = r->t_up_end > 0 ? r->t_up_end : r->t_up_first > 0 ? r->t_up_first : now_ms();
        up += end - r->t_up_start;
    }
    return now_ms() - r->t_start - up;
}

static const char *call_type(const llm_req *r)
{
    if (r->cfmt == FMT_ANTHROPIC)
        return "anthropic_messages";
    return r->ep == EP_EMBEDDINGS ? "aembedding"
           : r->ep == EP_COMPLETIONS ? "atext_completion" : "acompletion";
}

/* Settles limits, budget and the spend row; res says what to report. Idempotent. */
static void end_policy(llm_req *r, int status, policy_result *res)
{
    policy_result ignored;
    if (!res)
        res = &ignored;
    res->cost = res->key_spend = -1;
    res->requests.limit = res->tokens.limit = -1;
    if (r->policy_ended || !r->grant.active)
        return;
    r->policy_ended = true;
    policy_outcome o = {.request_id = r->call_id, .call_type = call_type(r), .req = &r->preq,
                        .usage = &r->usage, .status = status, .end_user = r->end_user};
    policy_end(&r->grant, &o, res);
}

static void add_spend_headers(struct evkeyvalq *h, const policy_result *res);

/* Tells the router how the current attempt went (exactly once per router_begin). */
static void router_done(llm_req *r, router_outcome oc, int status, double retry_after)
{
    if (!r->begun || !g_router)
        return;
    r->begun = false;
    int64_t tokens = r->usage.total_tokens > 0 ? r->usage.total_tokens : 0;
    int64_t out = r->usage.completion_tokens > 0 ? r->usage.completion_tokens : 0;
    double t = now_ms();
    router_end(g_router, r->dep,
               &(router_report){.outcome = oc, .status = status, .latency_ms = t - r->t_attempt,
                                .tokens = (long)tokens, .retry_after_s = retry_after,
                                .completion_tokens = (long)out,
                                .ttft_ms = r->stream && r->t_up_first > 0
                                               ? r->t_up_first - r->t_attempt
                                               : -1},
               clock_wall());
}

static void finish(llm_req *r, int status)
{
    end_policy(r, status, NULL);
    /* an error sluice raised before calling the upstream (credentials, translation) is not
     * the deployment's failure: it must not count toward a cooldown */
    bool contacted = r->t_up_start > 0 || r->upstream_ms_total > 0;
    router_done(r, status == 499 || !contacted ? ROUTER_CANCELLED
                   : status >= 200 && status < 300 ? ROUTER_OK
                   : router_outcome_from_status(status), status, -1);
    double upstream_ms = r->t_up_start > 0 ? r->upstream_ms_total +
                                                 ((r->t_up_end > 0 ? r->t_up_end : now_ms()) -
                                                  r->t_up_start)
                                           : (r->upstream_ms_total > 0 ? r->upstream_ms_total : -1);
    double oh = r->t_headers > 0 ? r->t_headers - r->t_start -
                                       (r->t_up_first > 0 ? r->t_up_first - r->t_up_start : 0) -
                                       r->upstream_ms_total
                                 : overhead_ms(r);
    /* the access line says what the client got: once a stream's 200 headers went out, a later
     * failure is an error event inside that 200 (named in error=), not a 502 it never saw */
    int sent = r->headers_sent && status != 499 ? 200 : status;
    log_access(&(log_access_rec){
        .method = "POST", .path = r->path, .status = sent, .model = r->model,
        .call_id = r->call_id, .deployment_id = r->dep ? r->dep->id : NULL,
        .upstream_ms = upstream_ms, .overhead_us = (long)(oh * 1000), .stream = r->stream,
        .error = r->log_error});
    ups_abort(&r->x);
    if (r->events_ready) {
        if (r->peer_watched)
            event_del(&r->peer_ev);
        event_del(&r->peer_timer);
        event_del(&r->abort_ev);
        event_del(&r->idle_ev);
        event_del(&r->retry_ev);
    }
    if (r->out)
        evbuffer_free(r->out);
    sse_free(&r->sse);
    sse_free(&r->resplit);
    if (r->pstream)
        r->ops->stream_free(r->pstream);
    anth_out_stream_free(r->astream);
    cJSON_Delete(r->oreq);
    curl_slist_free_all(r->t_hdrs);
    free(r->t_url);
    free(r->t_body);
    prov_err_free(&r->serr);
    free(r->model);
    free(r->end_user);
    free(r->xbody);
    cJSON_Delete(r->req_fallbacks);
    if (r->have_oq)
        oai_request_free(&r->oq);
    worker *w = r->w;
    req_release(r);
    http_async_end(w);
}

/* Clears the close callback: after this the connection may be reused or freed by evhttp. */
static void detach_conn(llm_req *r)
{
    if (r->events_ready)
        event_del(&r->peer_timer);
    if (r->peer_watched) {
        event_del(&r->peer_ev);
        r->peer_watched = false;
    }
    if (r->conn) {
        evhttp_connection_set_closecb(r->conn, NULL, NULL);
        r->conn = NULL;
    }
}

/* Sends an error in the client's format: before the headers a JSON reply with the status, after
 * them an SSE error event (OpenAI: data: {"error":...}; Anthropic: event: error) and the end. */
static void reply_error_and_finish(llm_req *r, int status, const char *type, const char *param,
                                   const char *msg)
{
    r->log_error = r->errmsg;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
    if (r->resp && !r->headers_sent) /* an upstream error body collected so far */
        evbuffer_drain(r->resp, evbuffer_get_length(r->resp));
    size_t len;
    char *body = r->cfmt == FMT_ANTHROPIC ? anth_error_body(status, msg, &len)
                                          : http_error_body(msg, type, param, status, &len);
    detach_conn(r);
    if (r->headers_sent) {
        if (!r->client_gone && body) {
            struct evbuffer *b = evbuffer_new();
            if (r->cfmt == FMT_ANTHROPIC)
                evbuffer_add(b, "event: error\ndata: ", 19);
            else
                evbuffer_add(b, "data: ", 6);
            evbuffer_add(b, body, len);
            evbuffer_add(b, "\n\n", 2);
            evhttp_send_reply_chunk(r->req, b);
            evbuffer_free(b);
        }
        evhttp_send_reply_end(r->req);
    } else {
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        add_common_headers(r, h, overhead_ms(r));
        if ((status == 429 || status == 503) && !evhttp_find_header(h, "retry-after"))
            evhttp_add_header(h, "retry-after", "1");
        http_reply_json(r->req, status, body ? body : "{}", body ? len : 2);
    }
    free(body);
    finish(r, status);
}

static void reply_prov_error(llm_req *r, prov_err *e)
{
    reply_error_and_finish(r, e->status ? e->status : 500, e->type ? e->type : "upstream_error",
                           e->param, e->message ? e->message : "provider error");
}

/* ---- upstream errors ------------------------------------------------------------------- */

/* An OpenAI-shaped upstream answered with an error status: re-wrap its message in LiteLLM's
 * envelope. */
static void reply_upstream_error(llm_req *r)
{
    int status = prov_map_status((int)r->status);
    size_t len = r->resp ? evbuffer_get_length(r->resp) : 0;
    const char *body = len ? (const char *)evbuffer_pullup(r->resp, -1) : "";
    if (r->ufmt == UP_TRANSLATED) {
        prov_err e = {0};
        r->ops->error(&r->pctx, (int)r->status, body, len, &e);
        reply_prov_error(r, &e);
        prov_err_free(&e);
        return;
    }
    if (r->ufmt == UP_ANTHROPIC) {
        /* Anthropic to an Anthropic client: its own error, status and body, as they came */
        detach_conn(r);
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        evhttp_add_header(h, "Content-Type", "application/json");
        add_common_headers(r, h, overhead_ms(r));
        r->log_error = "upstream error";
        evhttp_send_reply(r->req, (int)r->status, http_reason((int)r->status), NULL);
        finish(r, (int)r->status);
        return;
    }
    char *umsg = NULL, *utype = NULL, *uparam = NULL;
    jmember m[16];
    int n = len ? jscan_object(body, len, m, 16, NULL) : -1;
    if (n > 16)
        n = 16;
    const jmember *em = n > 0 ? jscan_find(body, m, n, "error") : NULL;
    if (em && body[em->val_off] == '{') {
        const char *v = body + em->val_off;
        jmember e[16];
        int k = jscan_object(v, em->val_len, e, 16, NULL);
        if (k > 16)
            k = 16;
        const jmember *f;
        if ((f = jscan_find(v, e, k, "message")))
            umsg = jscan_strdup(v + f->val_off, f->val_len);
        if ((f = jscan_find(v, e, k, "type")))
            utype = jscan_strdup(v + f->val_off, f->val_len);
        if ((f = jscan_find(v, e, k, "param")))
            uparam = jscan_strdup(v + f->val_off, f->val_len);
    } else if (em && body[em->val_off] == '"') {
        umsg = jscan_strdup(body + em->val_off, em->val_len);
    }
    char exb[64];
    char msg[2048];
    if (umsg)
        snprintf(msg, sizeof msg, "litellm.%s: %s - %s", prov_exception_class(status),
                 provider_exception(r->dep, exb, sizeof exb), umsg);
    else
        snprintf(msg, sizeof msg, "litellm.%s: %s - upstream %s answered HTTP %ld: %.*s",
                 prov_exception_class(status), provider_exception(r->dep, exb, sizeof exb),
                 r->dep->host ? r->dep->host : "?", r->status, (int)(len > 500 ? 500 : len), body);
    reply_error_and_finish(r, status, utype ? utype : "upstream_error", uparam, msg);
    free(umsg);
    free(utype);
    free(uparam);
}

/* ---- streaming ------------------------------------------------------------------------- */

static void on_drain(struct evhttp_connection *conn, void *arg)
{
    llm_req *r = arg;
    if (r->x.paused && !r->client_gone)
        ups_resume(&r->x);
}

static void arm_idle(llm_req *r)
{
    double t = timeout_s(r);
    struct timeval tv = {(time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6)};
    event_add(&r->idle_ev, &tv);
}

static void start_stream_reply(llm_req *r)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    r->t_headers = now_ms();
    evhttp_add_header(h, "Content-Type", "text/event-stream");
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    policy_rate_headers(&r->grant, h);
    add_common_headers(r, h, r->t_headers - r->t_start - (r->t_up_first - r->t_up_start) -
                                 r->upstream_ms_total);
    evhttp_send_reply_start(r->req, 200, "OK");
    r->headers_sent = true;
}

/* One OpenAI chunk payload on its way to an Anthropic client. */
static void to_anthropic(llm_req *r, const char *data, size_t len)
{
    sbuf b;
    sbuf_init(&b);
    anth_out_stream_chunk(r->astream, data, len, &b);
    if (b.len)
        evbuffer_add(r->out, b.p, b.len);
    sbuf_free(&b);
}

/* OpenAI-shaped upstream events. */
static int on_sse_event(void *ud, const sse_event *ev)
{
    llm_req *r = ud;
    if (r->cfmt == FMT_ANTHROPIC) {
        if (ev->data) {
            oai_chunk_kind k = oai_classify_chunk(ev->data, ev->data_len, &r->usage);
            if (k != OAI_CHUNK_DONE)
                to_anthropic(r, ev->data, ev->data_len);
        }
        return 0;
    }
    if (ev->data) {
        oai_chunk_kind k = oai_classify_chunk(ev->data, ev->data_len, &r->usage);
        if (k == OAI_CHUNK_USAGE_ONLY && !r->client_usage)
            return 0; /* injected by us for accounting; the client did not ask for it */
    }
    evbuffer_add(r->out, ev->raw, ev->raw_len);
    evbuffer_add(r->out, "\n\n", 2);
    return 0;
}

/* Anthropic usage ({"input_tokens","output_tokens","cache_creation_input_tokens",
 * "cache_read_input_tokens"}) into r->usage, counted the way LiteLLM does: prompt tokens
 * include cache writes and reads. Fields absent from u are left as they are (a stream reports
 * input in message_start and output in message_delta). */
static void add_anthropic_usage(llm_req *r, const cJSON *u)
{
    if (!cJSON_IsObject(u))
        return;
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(u, "input_tokens");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(u, "output_tokens");
    const cJSON *cw = cJSON_GetObjectItemCaseSensitive(u, "cache_creation_input_tokens");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(u, "cache_read_input_tokens");
    if (cJSON_IsNumber(in) || cJSON_IsNumber(cw) || cJSON_IsNumber(cr)) {
        int64_t w = cJSON_IsNumber(cw) ? (int64_t)cw->valuedouble : 0;
        int64_t rd = cJSON_IsNumber(cr) ? (int64_t)cr->valuedouble : 0;
        int64_t i = cJSON_IsNumber(in) ? (int64_t)in->valuedouble : 0;
        if (i + w + rd > 0 || r->usage.prompt_tokens < 0) {
            r->usage.prompt_tokens = i + w + rd;
            r->usage.cached_tokens = rd;
            r->usage.cache_creation_tokens = w;
        }
    }
    if (cJSON_IsNumber(out))
        r->usage.completion_tokens = (int64_t)out->valuedouble;
    if (r->usage.prompt_tokens >= 0 || r->usage.completion_tokens >= 0)
        r->usage.total_tokens = (r->usage.prompt_tokens > 0 ? r->usage.prompt_tokens : 0) +
                                (r->usage.completion_tokens > 0 ? r->usage.completion_tokens : 0);
}

/* Pass-through Anthropic events: only message_start and message_delta carry usage. */
static int on_sse_anthropic(void *ud, const sse_event *ev)
{
    llm_req *r = ud;
    if (!ev->data || !memmem(ev->data, ev->data_len, "\"usage\"", 7))
        return 0;
    cJSON *j = cJSON_ParseWithLength(ev->data, ev->data_len);
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(j, "message");
    add_anthropic_usage(r, cJSON_GetObjectItemCaseSensitive(msg ? msg : j, "usage"));
    cJSON_Delete(j);
    return 0;
}

/* Translator output (complete "data: {...}\n\n" events) re-split for the Anthropic encoder. */
static int on_resplit(void *ud, const sse_event *ev)
{
    llm_req *r = ud;
    if (ev->data && !(ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0))
        to_anthropic(r, ev->data, ev->data_len);
    return 0;
}

/* Hands translator output (OpenAI SSE events) to the client in its format. */
static void deliver_openai_sse(llm_req *r, const sbuf *b)
{
    if (!b->len)
        return;
    if (r->cfmt == FMT_OPENAI)
        evbuffer_add(r->out, b->p, b->len);
    else
        sse_feed(&r->resplit, b->p, b->len, on_resplit, r);
}

static void schedule_abort(llm_req *r)
{
    if (!r->aborting) {
        r->aborting = true;
        event_active(&r->abort_ev, 0, 0);
    }
}

/* Events from a translated upstream. */
static int on_sse_translated(void *ud, const sse_event *ev)
{
    llm_req *r = ud;
    sbuf b;
    sbuf_init(&b);
    int rc = r->ops->stream_event(r->pstream, ev, &b, &r->usage, &r->serr);
    deliver_openai_sse(r, &b);
    sbuf_free(&b);
    if (rc < 0) {
        r->stream_failed = true;
        schedule_abort(r); /* not from inside curl's callback */
        return 1;
    }
    return 0;
}

static size_t client_backlog(llm_req *r)
{
    if (!r->conn)
        return 0;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->conn);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static size_t on_data(ups_xfer *x, const char *p, size_t n)
{
    llm_req *r = x->ud;
    if (r->client_gone || r->aborting)
        return n; /* being torn down: drop */
    if (r->t_up_first == 0) {
        r->t_up_first = now_ms();
        r->status = ups_status(x);
    }
    if (r->stream && r->status >= 200 && r->status < 300) {
        if (client_backlog(r) >= BACKPRESSURE_BYTES) {
            event_del(&r->idle_ev); /* a slow client is not a slow upstream */
            return UPS_PAUSE;
        }
        if (!r->headers_sent)
            start_stream_reply(r);
        arm_idle(r);
        int rc = 0;
        switch (r->ufmt) {
        case UP_OPENAI: rc = sse_feed(&r->sse, p, n, on_sse_event, r); break;
        case UP_TRANSLATED: rc = sse_feed(&r->sse, p, n, on_sse_translated, r); break;
        case UP_ANTHROPIC: /* bytes pass through; the parser only reads usage */
            evbuffer_add(r->out, p, n);
            rc = sse_feed(&r->sse, p, n, on_sse_anthropic, r);
            break;
        }
        if (rc < 0) {
            snprintf(r->errmsg, sizeof r->errmsg, "upstream sent an SSE event over %u bytes",
                     MAX_SSE_EVENT);
            r->oversize = true;
            schedule_abort(r);
            return n;
        }
        if (evbuffer_get_length(r->out))
            evhttp_send_reply_chunk_with_cb(r->req, r->out, on_drain, r);
        return n;
    }
    if (evbuffer_get_length(r->resp) + n > MAX_RESPONSE_BYTES) {
        snprintf(r->errmsg, sizeof r->errmsg, "upstream response larger than %u bytes",
                 MAX_RESPONSE_BYTES);
        r->oversize = true;
        schedule_abort(r);
        return n;
    }
    evbuffer_add(r->resp, p, n);
    return n;
}

/* ---- completion ------------------------------------------------------------------------ */

/* The outcome class of an upstream error answer: context-window and content-policy errors are
 * told apart from other 400s by their text, as LiteLLM's exception mapping does. */
static router_outcome classify_error(llm_req *r)
{
    int status = (int)r->status;
    if (status == 400 || status == 413 || status == 422) {
        size_t len = evbuffer_get_length(r->resp);
        const char *b = len ? (const char *)evbuffer_pullup(r->resp, -1) : "";
        static const char *const ctx[] = {"context_length_exceeded", "maximum context length",
                                          "prompt is too long", "context window",
                                          "exceeds the maximum number of tokens"};
        static const char *const pol[] = {"content_policy", "content_filter",
                                          "ContentPolicyViolation", "responsible AI"};
        for (size_t i = 0; i < sizeof ctx / sizeof *ctx; i++)
            if (memmem(b, len, ctx[i], strlen(ctx[i])))
                return ROUTER_CONTEXT_WINDOW;
        for (size_t i = 0; i < sizeof pol / sizeof *pol; i++)
            if (memmem(b, len, pol[i], strlen(pol[i])))
                return ROUTER_CONTENT_POLICY;
    }
    return router_outcome_from_status(status);
}

static void start_attempt(llm_req *r);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    llm_req *r = arg;
    start_attempt(r);
}

/* Clears what a failed attempt left behind, before the next one. */
static void reset_attempt(llm_req *r)
{
    if (r->t_up_start > 0)
        r->upstream_ms_total += (r->t_up_end > 0 ? r->t_up_end : now_ms()) - r->t_up_start;
    r->t_up_start = r->t_up_first = r->t_up_end = 0;
    if (r->resp)
        evbuffer_drain(r->resp, evbuffer_get_length(r->resp));
    sse_free(&r->sse);
    sse_free(&r->resplit);
    if (r->pstream) {
        r->ops->stream_free(r->pstream);
        r->pstream = NULL;
    }
    curl_slist_free_all(r->t_hdrs);
    r->t_hdrs = NULL;
    free(r->t_url);
    free(r->t_body);
    r->t_url = r->t_body = NULL;
    prov_err_free(&r->serr);
    r->status = 0;
    r->stream_failed = r->oversize = r->aborting = false;
    event_del(&r->idle_ev);
}

/* A failed attempt, nothing sent to the client yet: another deployment of the group (LiteLLM's
 * num_retries, retry_policy and backoff), else the next fallback group. Returns true when
 * another attempt is scheduled; false when the caller should answer with the error. */
static bool retry_or_fallback(llm_req *r, router_outcome oc, int status, double retry_after)
{
    router_done(r, oc, status, retry_after);
    if (r->headers_sent || r->client_gone || !g_router)
        return false;
    double now = clock_wall();
    if (r->retries_left < 0)
        r->retries_left = router_retries_for(g_router, r->dep, oc, r->req_num_retries);
    if (r->retries_left > 0 && r->route.group &&
        router_should_retry(g_router, r->route.group, oc, r->req_fallbacks, now)) {
        r->retries_left--;
        int ms = router_backoff_ms(g_router, r->route.group, r->attempted_retries, retry_after,
                                   now);
        r->attempted_retries++;
        reset_attempt(r);
        log_msg(LOG_WARN, "call %s: %s failed (HTTP %d): retry %d in %d ms", r->call_id,
                r->dep->model_name, status, r->attempted_retries, ms);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        event_add(&r->retry_ev, &tv);
        return true;
    }
    if (!r->fallbacks_known) {
        r->nfallbacks = router_fallbacks(g_router, r->req_model, oc, r->req_fallbacks,
                                         r->fallbacks, 8);
        r->fallbacks_known = true;
    } else if (r->fb_next >= r->nfallbacks && r->nfallbacks > 0 &&
               r->attempted_fallbacks < router_get_settings(g_router)->max_fallbacks) {
        /* LiteLLM chains: a fallback group that fails falls back by its own entry; groups
         * already tried are skipped, so a cycle ends */
        const char *last = r->fallbacks[r->nfallbacks - 1];
        const char *more[8];
        int n = router_fallbacks(g_router, last, oc, NULL, more, 8);
        int k = 0;
        for (int i = 0; i < n; i++) {
            bool seen = !strcmp(more[i], r->req_model);
            for (int j = 0; j < r->nfallbacks && !seen; j++)
                seen = !strcmp(more[i], r->fallbacks[j]);
            if (!seen && r->nfallbacks + k < 8)
                r->fallbacks[r->nfallbacks + k++] = more[i];
        }
        r->nfallbacks += k;
    }
    while (r->fb_next < r->nfallbacks &&
           r->attempted_fallbacks < router_get_settings(g_router)->max_fallbacks) {
        const char *g = r->fallbacks[r->fb_next++];
        router_route next;
        if (!router_resolve(g_router, g, &next))
            continue;
        r->route = next;
        r->ntried = 0;
        r->retries_left = -1;
        r->attempted_fallbacks++;
        reset_attempt(r);
        log_msg(LOG_WARN, "call %s: %s failed (HTTP %d): falling back to %s", r->call_id,
                r->dep->model_name, status, g);
        struct timeval tv = {0, 0};
        event_add(&r->retry_ev, &tv);
        return true;
    }
    return false;
}

/* Streams end with the translators' final chunks and, for Anthropic clients, message_stop. */
static void end_stream(llm_req *r)
{
    if (r->ufmt == UP_OPENAI) {
        if (sse_pending(&r->sse)) /* a last event without its blank line: terminate it */
            sse_feed(&r->sse, "\n\n", 2, on_sse_event, r);
    } else if (r->ufmt == UP_TRANSLATED) {
        if (sse_pending(&r->sse))
            sse_feed(&r->sse, "\n\n", 2, on_sse_translated, r);
        sbuf b;
        sbuf_init(&b);
        r->ops->stream_end(r->pstream, &b, &r->usage);
        deliver_openai_sse(r, &b);
        sbuf_free(&b);
    }
    if (r->astream && r->ufmt != UP_ANTHROPIC) { /* pass-through streams end themselves */
        sbuf b;
        sbuf_init(&b);
        anth_out_stream_end(r->astream, &b);
        if (b.len)
            evbuffer_add(r->out, b.p, b.len);
        sbuf_free(&b);
    }
}

/* A complete non-streamed answer that needs translating: into the client's format, in place of
 * the upstream bytes in the reply buffer. Returns false after replying with an error. */
static bool translate_body(llm_req *r)
{
    size_t len = evbuffer_get_length(r->resp);
    const char *body = (const char *)evbuffer_pullup(r->resp, -1);
    sbuf oai, out;
    sbuf_init(&oai);
    sbuf_init(&out);
    prov_err e = {0};
    const char *ob = body;
    size_t ol = len;
    if (r->ufmt == UP_TRANSLATED) {
        int rc = r->ep == EP_EMBEDDINGS
                     ? r->ops->embed_response(&r->pctx, r->oreq, body, len, &oai, &r->usage, &e)
                     : r->ops->chat_response(&r->pctx, body, len, &oai, &r->usage, &e);
        if (rc < 0 || oai.failed) {
            sbuf_free(&oai);
            if (!e.message)
                prov_err_set(&e, 502, "upstream_error", NULL,
                             "could not read the answer of provider '%s'", r->dep->provider);
            reply_prov_error(r, &e);
            prov_err_free(&e);
            return false;
        }
        ob = oai.p;
        ol = oai.len;
    } else {
        oai_response_usage(body, len, &r->usage);
    }
    if (r->cfmt == FMT_ANTHROPIC) {
        if (anth_from_openai_response(ob, ol, r->model, &out, &e) < 0 || out.failed) {
            sbuf_free(&oai);
            sbuf_free(&out);
            if (!e.message)
                prov_err_set(&e, 502, "upstream_error", NULL, "could not translate the answer");
            reply_prov_error(r, &e);
            prov_err_free(&e);
            return false;
        }
        ob = out.p;
        ol = out.len;
    }
    struct evbuffer *tmp = evbuffer_new();
    evbuffer_add(tmp, ob, ol);
    evbuffer_drain(r->resp, len);
    evbuffer_add_buffer(r->resp, tmp);
    evbuffer_free(tmp);
    sbuf_free(&oai);
    sbuf_free(&out);
    return true;
}

static void on_done(ups_xfer *x, CURLcode rc, long status, const char *errbuf)
{
    llm_req *r = x->ud;
    r->t_up_end = now_ms();
    event_del(&r->idle_ev);
    if (log_debug_enabled())
        log_msg(LOG_DEBUG, "call %s: upstream done: curl=%d http=%ld in %.3f ms", r->call_id,
                (int)rc, status, r->t_up_end - r->t_up_start);
    if (r->status == 0)
        r->status = status;
    char exb[64];
    const char *prov = provider_exception(r->dep, exb, sizeof exb);
    if (rc != CURLE_OK) {
        char msg[1024];
        if (rc == CURLE_OPERATION_TIMEDOUT) {
            if (retry_or_fallback(r, ROUTER_TIMEOUT, 408, -1))
                return;
            snprintf(msg, sizeof msg, "litellm.Timeout: %s - Request timed out after %g s "
                                      "waiting for %s (model=%s)",
                     prov, timeout_s(r), r->dep->host ? r->dep->host : "upstream", r->model);
            reply_error_and_finish(r, 408, "timeout", NULL, msg);
            return;
        }
        if (retry_or_fallback(r, ROUTER_CONNECTION_ERROR, 0, -1))
            return;
        /* curl's text names the problem (for TLS: issuer, name, expiry), never the URL's
         * credentials or the key */
        bool cert = ups_tls_cert_error(rc), tls = cert || ups_tls_error(rc);
        snprintf(msg, sizeof msg, "litellm.APIConnectionError: %s - %s provider '%s' at %s: %s%s",
                 prov,
                 cert ? "TLS certificate problem with"
                 : tls ? "TLS handshake failed with"
                       : "cannot reach",
                 r->dep->provider, r->dep->host ? r->dep->host : "?",
                 errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc),
                 cert ? " (a private CA's bundle goes in ssl_verify: /path/ca.pem; ssl_verify: "
                        "false skips verification)"
                      : "");
        reply_error_and_finish(r, 502, "api_connection_error", NULL, msg);
        return;
    }
    if (r->status < 200 || r->status >= 300) {
        if (retry_or_fallback(r, classify_error(r), (int)r->status, r->x.retry_after))
            return;
        reply_upstream_error(r);
        return;
    }
    if (r->stream) {
        if (!r->headers_sent)
            start_stream_reply(r); /* 200 with an empty body */
        end_stream(r);
        detach_conn(r);
        if (evbuffer_get_length(r->out))
            evhttp_send_reply_chunk(r->req, r->out);
        evhttp_send_reply_end(r->req);
        finish(r, 200);
        return;
    }
    if (r->ufmt == UP_OPENAI && r->cfmt == FMT_OPENAI) {
        /* the fast path: the upstream's bytes are already in the reply buffer */
        oai_response_usage((const char *)evbuffer_pullup(r->resp, -1),
                           evbuffer_get_length(r->resp), &r->usage);
    } else if (r->ufmt == UP_ANTHROPIC) {
        cJSON *j = cJSON_ParseWithLength((const char *)evbuffer_pullup(r->resp, -1),
                                         evbuffer_get_length(r->resp));
        add_anthropic_usage(r, cJSON_GetObjectItemCaseSensitive(j, "usage"));
        cJSON_Delete(j);
    } else if (!translate_body(r)) {
        return;
    }
    detach_conn(r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", "application/json");
    policy_result pres;
    end_policy(r, (int)r->status, &pres);
    add_spend_headers(h, &pres);
    add_common_headers(r, h, overhead_ms(r));
    evhttp_send_reply(r->req, (int)r->status, http_reason((int)r->status), NULL);
    finish(r, (int)r->status);
}

static void finish_gone(llm_req *r);

/* x-litellm-response-cost, x-litellm-key-spend and x-ratelimit-* on a complete answer. */
static void add_spend_headers(struct evkeyvalq *h, const policy_result *res)
{
    char v[40];
    if (res->cost >= 0) {
        snprintf(v, sizeof v, "%.10g", res->cost);
        evhttp_add_header(h, "x-litellm-response-cost", v);
    }
    if (res->key_spend >= 0) {
        snprintf(v, sizeof v, "%.10g", res->key_spend);
        evhttp_add_header(h, "x-litellm-key-spend", v);
    }
    policy_counts_headers(&res->requests, &res->tokens, h);
}

static void finish_gone(llm_req *r)
{
    /* the request is detached from its (freed) connection: ending it frees it */
    r->log_error = "client closed the connection";
    if (r->headers_sent)
        evhttp_send_reply_end(r->req);
    else
        evhttp_send_reply(r->req, 499, "Client Closed Request", NULL);
    finish(r, 499);
}

static void on_abort(evutil_socket_t fd, short what, void *arg)
{
    llm_req *r = arg;
    if (r->waiting_token)
        return; /* the token callback finishes the request */
    ups_abort(&r->x);
    r->t_up_end = now_ms();
    if (r->client_gone) {
        finish_gone(r);
        return;
    }
    if (r->stream_failed) {
        reply_prov_error(r, &r->serr);
        return;
    }
    if (r->oversize) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s from provider '%s'", r->errmsg, r->dep->provider);
        reply_error_and_finish(r, 502, "upstream_error", NULL, msg);
        return;
    }
    /* stream idle timeout: before the first byte another attempt may still answer */
    if (!r->headers_sent && retry_or_fallback(r, ROUTER_TIMEOUT, 408, -1))
        return;
    char msg[512];
    snprintf(msg, sizeof msg, "litellm.Timeout: no data from %s for %g s (stream_timeout, "
                              "model=%s)",
             r->dep->host ? r->dep->host : "upstream", timeout_s(r), r->model);
    reply_error_and_finish(r, 408, "timeout", NULL, msg);
}

static void on_idle(evutil_socket_t fd, short what, void *arg)
{
    llm_req *r = arg;
    schedule_abort(r);
}

static void on_client_close(struct evhttp_connection *conn, void *arg)
{
    llm_req *r = arg;
    if (r->peer_watched) { /* evhttp closes the fd right after this callback */
        event_del(&r->peer_ev);
        r->peer_watched = false;
    }
    r->client_gone = true;
    r->conn = NULL;
    r->aborting = false; /* a pending oversize/timeout abort becomes a client-gone abort */
    schedule_abort(r);
}

/* The client socket became readable while we wait: EOF means the client left. */
static void on_peer(evutil_socket_t fd, short what, void *arg)
{
    llm_req *r = arg;
    if (r->client_gone || r->aborting)
        return;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        r->peer_watched = false; /* a pipelined request: evhttp will read it; stop watching */
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        event_add(&r->peer_ev, NULL);
        return;
    }
    /* EOF or reset: finish now; replying to a closed socket makes evhttp free the connection */
    r->peer_watched = false;
    ups_abort(&r->x);
    r->t_up_end = now_ms();
    detach_conn(r);
    if (r->waiting_token) {
        r->client_gone = true; /* the token callback finishes it */
        return;
    }
    finish_gone(r);
}

static void watch_peer(evutil_socket_t unused, short what, void *arg)
{
    llm_req *r = arg;
    if (r->client_gone || r->aborting || r->peer_watched)
        return;
    struct bufferevent *bev = r->conn ? evhttp_connection_get_bufferevent(r->conn) : NULL;
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return;
    event_assign(&r->peer_ev, r->w->base, fd, EV_READ, on_peer, r);
    if (event_add(&r->peer_ev, NULL) == 0)
        r->peer_watched = true;
}

static int start_upstream(llm_req *r)
{
    r->attempts++;
    r->status = 0;
    r->t_up_start = now_ms();
    ups_request ur = {
        .url = r->u_url,
        .curlu = r->u_curlu,
        .body = r->u_body,
        .body_len = r->u_len,
        .headers = r->u_headers,
        .proxy = r->dep->proxy,
        /* streams are bounded by the idle timer instead: a long answer is not a timeout */
        .timeout_ms = r->stream ? 0 : (long)(timeout_s(r) * 1000),
        .connect_timeout_ms = (long)(timeout_s(r) * 1000 < 10000 ? timeout_s(r) * 1000 : 10000),
    };
    ups_tls_choose(&ur, r->dep->ssl_verify, r->dep->ssl_ca_file, r->w->cfg->ssl_verify,
                   r->w->cfg->ssl_ca_file);
    if (log_debug_enabled())
        log_msg(LOG_DEBUG, "call %s: %s → %s %s (deployment %s, attempt %d, %zu bytes)",
                r->call_id, r->model, r->dep->provider, r->dep->host ? r->dep->host : "?",
                r->dep->id, r->attempts, r->u_len);
    if (r->stream)
        arm_idle(r);
    if (ups_start(r->w->ups, &r->x, &ur) < 0) {
        event_del(&r->idle_ev);
        return -1;
    }
    return 0;
}

/* Common start for every upstream call once u_* are set. */
static void go_upstream(llm_req *r)
{
    if (!r->resp)
        r->resp = evhttp_request_get_output_buffer(r->req);
    if (r->stream && !r->out)
        r->out = evbuffer_new();
    sse_init(&r->sse, MAX_SSE_EVENT);
    if (r->cfmt == FMT_ANTHROPIC)
        sse_init(&r->resplit, MAX_SSE_EVENT);
    if (r->stream && !r->out) {
        reply_error_and_finish(r, 500, "internal_server_error", NULL, "out of memory");
        return;
    }
    r->x.ud = r;
    r->x.on_data = on_data;
    r->x.on_done = on_done;
    if (start_upstream(r) < 0)
        reply_error_and_finish(r, 500, "internal_server_error", NULL,
                               "sluice could not start the upstream request");
}

/* ---- translated providers -------------------------------------------------------------- */

static struct curl_slist *slist_from(const prov_http_req *h)
{
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    for (int i = 0; l && i < h->nheaders; i++)
        l = curl_slist_append(l, h->headers[i]);
    return l;
}

static void fill_ctx(llm_req *r)
{
    const cfg_deployment *d = r->dep;
    r->pctx = (prov_ctx){
        .upstream_model = d->upstream_model,
        .api_base = d->api_base,
        .api_key = d->api_key,
        .project = d->vertex_project,
        .location = d->vertex_location,
        .access_token = r->token[0] ? r->token : NULL,
        .stream = r->stream,
        .include_usage = r->client_usage || r->cfmt == FMT_ANTHROPIC,
        .drop_params = d->drop_params >= 0 ? d->drop_params : r->w->cfg->drop_params,
        .anthropic_version = evhttp_find_header(evhttp_request_get_input_headers(r->req),
                                                "anthropic-version"),
        .anthropic_beta = evhttp_find_header(evhttp_request_get_input_headers(r->req),
                                             "anthropic-beta"),
        .response_id = r->resp_id,
        .created = (long)time(NULL),
        .client_model = r->model,
    };
}

/* Builds the request through the translator (after any token) and starts it. */
static void start_translated(llm_req *r)
{
    fill_ctx(r);
    prov_http_req h = {0};
    prov_err e = {0};
    int rc;
    if (r->ep == EP_EMBEDDINGS) {
        if (!r->ops->embed_request) {
            reply_error_and_finish(r, 400, "invalid_request_error", "model",
                                   "provider does not support embeddings in sluice");
            return;
        }
        rc = r->ops->embed_request(&r->pctx, r->oreq, &h, &e);
    } else {
        rc = r->ops->chat_request(&r->pctx, r->oreq, &h, &e);
    }
    if (rc < 0) {
        prov_http_req_free(&h);
        reply_prov_error(r, &e);
        prov_err_free(&e);
        return;
    }
    r->t_url = h.url;
    r->t_body = h.body;
    r->t_len = h.body_len;
    h.url = h.body = NULL;
    r->t_hdrs = slist_from(&h);
    prov_http_req_free(&h);
    if (r->stream) {
        r->pstream = r->ops->stream_new(&r->pctx);
        if (!r->pstream) {
            reply_error_and_finish(r, 500, "internal_server_error", NULL, "out of memory");
            return;
        }
    }
    r->u_url = r->t_url;
    r->u_curlu = NULL;
    r->u_body = r->t_body;
    r->u_len = r->t_len;
    r->u_headers = r->t_hdrs;
    go_upstream(r);
}

static void start_anthropic_passthrough(llm_req *r);

/* What to do once the request has its Google token (or needs none). */
static void proceed(llm_req *r)
{
    if (r->ufmt == UP_ANTHROPIC)
        start_anthropic_passthrough(r);
    else
        start_translated(r);
}

static void on_token(void *arg, const char *token, const char *error)
{
    llm_req *r = arg;
    r->waiting_token = false;
    if (r->client_gone) {
        finish_gone(r);
        return;
    }
    if (!token) {
        char msg[1024];
        snprintf(msg, sizeof msg, "litellm.AuthenticationError: Vertex_aiException - no Google "
                                  "access token for model=%s: %s", r->model,
                 error ? error : "unknown error");
        reply_error_and_finish(r, 401, "auth_error", NULL, msg);
        return;
    }
    snprintf(r->token, sizeof r->token, "%s", token);
    proceed(r);
}

/* Vertex AI needs a token first: cached (no wait) or after the shared refresh. */
static void with_token(llm_req *r)
{
    if (!is_vertex(r->dep)) {
        proceed(r);
        return;
    }
    if (!r->dep->gauth) {
        char msg[1024];
        snprintf(msg, sizeof msg, "litellm.AuthenticationError: Vertex_aiException - no Google "
                                  "credentials for model=%s: %s", r->model,
                 r->dep->gauth_error ? r->dep->gauth_error : "none configured");
        reply_error_and_finish(r, 401, "auth_error", NULL, msg);
        return;
    }
    int rc = gauth_token(r->dep->gauth, r->w->mbox, on_token, r, r->token, sizeof r->token);
    if (rc == 1) {
        proceed(r);
    } else if (rc == 0) {
        r->waiting_token = true; /* on_token continues; a leaving client is noted meanwhile */
    } else {
        reply_error_and_finish(r, 500, "internal_server_error", NULL,
                               "could not queue the Google token request");
    }
}

/* ---- /v1/messages to Anthropic or Claude on Vertex: Anthropic bytes both ways --------- */

/* The client's body with "model" set to the deployment's model and nothing else touched. */
static char *with_model(const char *body, size_t len, const char *model, size_t *out_len)
{
    jmember m[OAI_MAX_MEMBERS];
    int n = jscan_object(body, len, m, OAI_MAX_MEMBERS, NULL);
    if (n < 0 || n > OAI_MAX_MEMBERS)
        return NULL;
    sbuf b;
    sbuf_init(&b);
    sbuf_add(&b, "{\"model\":", 9);
    sbuf_add_jstr(&b, model);
    for (int i = 0; i < n; i++) {
        if (m[i].key_len == 5 && memcmp(body + m[i].key_off, "model", 5) == 0)
            continue;
        sbuf_add(&b, ",", 1);
        sbuf_add(&b, body + m[i].off, m[i].val_off + m[i].val_len - m[i].off);
    }
    sbuf_add(&b, "}", 1);
    return sbuf_take(&b, out_len);
}

static void start_anthropic_passthrough(llm_req *r)
{
    const cfg_deployment *d = r->dep;
    struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
    struct evbuffer *ib = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(ib);
    const char *body = (const char *)evbuffer_pullup(ib, -1);
    const char *beta = evhttp_find_header(in, "anthropic-beta");
    sbuf url, hdr;
    sbuf_init(&url);
    sbuf_init(&hdr);
    struct curl_slist *l = curl_slist_append(NULL, "Expect:");
    l = curl_slist_append(l, "Content-Type: application/json");
    if (d->kind == PROV_ANTHROPIC) {
        r->t_body = with_model(body, len, d->upstream_model, &r->t_len);
        sbuf_adds(&url, d->api_base ? d->api_base : "https://api.anthropic.com");
        sbuf_adds(&url, r->ep == EP_COMPLETIONS ? "/v1/messages/count_tokens" : "/v1/messages");
        const char *ver = evhttp_find_header(in, "anthropic-version");
        sbuf_addf(&hdr, "anthropic-version: %s", ver ? ver : "2023-06-01");
        l = curl_slist_append(l, hdr.p);
        if (d->api_key) {
            hdr.len = 0;
            sbuf_addf(&hdr, "x-api-key: %s", d->api_key);
            l = curl_slist_append(l, hdr.p);
        }
    } else { /* Claude on Vertex AI: rawPredict / streamRawPredict */
        r->t_body = anth_vertex_body(body, len, &r->t_len);
        fill_ctx(r);
        prov_err e = {0};
        char *u = anth_vertex_url(&r->pctx, r->stream, &e);
        if (!u) {
            curl_slist_free_all(l);
            sbuf_free(&hdr);
            sbuf_free(&url);
            reply_prov_error(r, &e);
            prov_err_free(&e);
            return;
        }
        sbuf_adds(&url, u);
        free(u);
        hdr.len = 0;
        sbuf_addf(&hdr, "Authorization: Bearer %s", r->token);
        l = curl_slist_append(l, hdr.p);
    }
    if (beta) {
        hdr.len = 0;
        sbuf_addf(&hdr, "anthropic-beta: %s", beta);
        l = curl_slist_append(l, hdr.p);
    }
    sbuf_free(&hdr);
    r->t_hdrs = l;
    r->t_url = sbuf_take(&url, NULL);
    if (!r->t_body || !r->t_url || !l) {
        reply_error_and_finish(r, 400, "invalid_request_error", NULL,
                               "could not prepare the request body for the provider");
        return;
    }
    r->u_url = r->t_url;
    r->u_curlu = NULL;
    r->u_body = r->t_body;
    r->u_len = r->t_len;
    r->u_headers = r->t_hdrs;
    go_upstream(r);
}

/* ---- entry ----------------------------------------------------------------------------- */

static llm_req *new_req(worker *w, struct evhttp_request *req, prov_endpoint ep,
                        const char *path, client_fmt cfmt)
{
    llm_req *r = req_acquire();
    if (!r) {
        http_reply_error(req, 500, "internal_server_error", NULL, "out of memory");
        return NULL;
    }
    http_async_begin(w);
    r->w = w;
    r->req = req;
    r->ep = ep;
    r->path = path;
    r->cfmt = cfmt;
    r->t_start = now_ms();
    oai_usage_init(&r->usage);
    http_uuid(w, r->call_id);
    /* "chatcmpl-" + 16 hex digits of the call id (no printf: this runs on every request) */
    const char *pre = cfmt == FMT_ANTHROPIC ? "msg_" : ep == EP_COMPLETIONS ? "cmpl-" : "chatcmpl-";
    size_t pl = strlen(pre);
    memcpy(r->resp_id, pre, pl);
    memcpy(r->resp_id + pl, r->call_id, 8);
    memcpy(r->resp_id + pl + 8, r->call_id + 9, 4);
    memcpy(r->resp_id + pl + 12, r->call_id + 14, 4);
    r->resp_id[pl + 16] = 0;
    event_assign(&r->abort_ev, w->base, -1, 0, on_abort, r);
    event_assign(&r->idle_ev, w->base, -1, 0, on_idle, r);
    event_assign(&r->retry_ev, w->base, -1, 0, on_retry, r);
    event_assign(&r->peer_timer, w->base, -1, 0, watch_peer, r);
    r->events_ready = true;
    return r;
}

/* Starts watching for the client leaving; from here on the request may wait. */
static void track_client(llm_req *r)
{
    r->conn = evhttp_request_get_connection(r->req);
    evhttp_connection_set_closecb(r->conn, on_client_close, r);
    struct timeval pw = {0, PEER_WATCH_MS * 1000};
    event_add(&r->peer_timer, &pw);
}

/* Delivers an OpenAI-format answer built here (mock_response) in the client's format. */
static void reply_local(llm_req *r, char *oai, size_t len)
{
    detach_conn(r); /* no close callback may outlive the reply */
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    bool sse = r->stream && r->ep != EP_EMBEDDINGS;
    if (r->cfmt == FMT_ANTHROPIC) {
        sbuf b;
        sbuf_init(&b);
        prov_err e = {0};
        if (sse) {
            r->out = evbuffer_new();
            if (!r->astream)
                r->astream = anth_out_stream_new(r->model, r->resp_id);
            sse_init(&r->resplit, MAX_SSE_EVENT);
            sse_feed(&r->resplit, oai, len, on_resplit, r);
            anth_out_stream_end(r->astream, &b);
            evbuffer_add(r->out, b.p ? b.p : "", b.len);
            evbuffer_add_buffer(evhttp_request_get_output_buffer(r->req), r->out);
        } else if (anth_from_openai_response(oai, len, r->model, &b, &e) == 0) {
            evbuffer_add(evhttp_request_get_output_buffer(r->req), b.p ? b.p : "", b.len);
        } else {
            sbuf_free(&b);
            free(oai);
            reply_prov_error(r, &e);
            prov_err_free(&e);
            return;
        }
        sbuf_free(&b);
    } else {
        evbuffer_add(evhttp_request_get_output_buffer(r->req), oai, len);
    }
    free(oai);
    evhttp_add_header(h, "Content-Type", sse ? "text/event-stream" : "application/json");
    policy_result pres;
    end_policy(r, 200, &pres);
    add_spend_headers(h, &pres);
    add_common_headers(r, h, overhead_ms(r));
    evhttp_send_reply(r->req, 200, "OK", NULL);
    finish(r, 200);
}

static void reply_mock(llm_req *r, const char *body, size_t body_len, bool include_usage,
                       const char *text)
{
    mock_ctx mc = {.id = r->resp_id, .model = r->model, .created = (long)time(NULL),
                   .prompt_bytes = body_len};
    size_t len = 0;
    char *out;
    char err[256] = "";
    if (r->ep == EP_EMBEDDINGS)
        out = mock_embeddings(body, body_len, &mc, &len, &r->usage, err, sizeof err);
    else if (r->stream)
        out = mock_stream(r->ep, &mc, text, include_usage, &len, &r->usage);
    else
        out = mock_completion(r->ep, &mc, text, &len, &r->usage);
    if (!out) {
        reply_error_and_finish(r, 400, "invalid_request_error", "input",
                               err[0] ? err : "could not build the mock response");
        return;
    }
    reply_local(r, out, len);
}

/* Admission for the deployment just chosen: false after replying with the refusal. */
static bool admit(llm_req *r, const auth_ident *id, size_t prompt_bytes, int64_t max_tokens)
{
    r->preq = (policy_request){.model = r->dep->model_name, .dep = r->dep,
                               .prompt_bytes = prompt_bytes, .max_tokens = max_tokens};
    policy_denial d;
    if (policy_admit(id, &r->preq, &r->grant, &d))
        return true;
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    if (d.retry_after > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", d.retry_after);
        evhttp_add_header(h, "retry-after", v);
    }
    if (d.limit_type[0])
        evhttp_add_header(h, "rate_limit_type", d.limit_type);
    policy_counts_headers(&d.requests, &d.tokens, h);
    reply_error_and_finish(r, d.status, d.type, d.status == 401 ? "None" : NULL, d.message);
    return false;
}

/* Picks a deployment of the request's group (or takes the pinned one), counts it with the
 * router, and starts the call in the shape that deployment needs. Every attempt — the first,
 * each retry, each fallback group — comes through here. */
static void start_attempt(llm_req *r)
{
    double now = clock_wall();
    const cfg_deployment *d = NULL;
    router_pick_result res = {0};
    for (int guard = 0; guard < 8 && !d; guard++) {
        if (r->route.pinned) {
            d = r->route.pinned;
        } else if (router_pick_for(g_router, r->route.group, r->tried, r->ntried,
                                   (long)(r->preq.prompt_bytes / 4), r->stream, now, &res)) {
            d = res.d;
        } else if (res.status == ROUTER_NONE_EXCLUDED && r->ntried) {
            r->ntried = 0; /* everything was tried once: any healthy deployment again */
            continue;
        } else {
            break;
        }
        if (!router_begin(g_router, d, now)) { /* its rpm slot went to another thread */
            if (r->ntried < 16)
                r->tried[r->ntried++] = d->id;
            d = NULL;
        }
    }
    if (!d) {
        char msg[700];
        router_format_no_deployments(g_router, r->route.group, r->req_model, &res, now, msg,
                                     sizeof msg);
        struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
        char v[16];
        snprintf(v, sizeof v, "%d", res.retry_after_s > 0 ? res.retry_after_s : 1);
        if (!evhttp_find_header(h, "retry-after"))
            evhttp_add_header(h, "retry-after", v);
        reply_error_and_finish(r, 429, "rate_limit_error", NULL, msg);
        return;
    }
    r->begun = true;
    r->t_attempt = now_ms();
    r->dep = d;
    if (r->ntried < 16)
        r->tried[r->ntried++] = d->id;
    /* the upstream "model" (wildcard routes fill in what the client asked for) */
    const char *um = router_model_for(&r->route, d, r->upmodel, sizeof r->upmodel);
    if (um)
        memmove(r->upmodel, um, strlen(um) + 1);
    else
        snprintf(r->upmodel, sizeof r->upmodel, "%s", d->upstream_model);
    struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    char msg[1024];
    if (d->mock_response) {
        reply_mock(r, body, len, r->client_usage, d->mock_response);
        return;
    }
    if (d->kind == PROV_UNIMPLEMENTED) {
        snprintf(msg, sizeof msg, "model=%s uses provider '%s', which sluice does not implement "
                                  "yet. Supported providers: openai, azure, anthropic, "
                                  "vertex_ai, gemini, hosted_vllm, openai_compatible, "
                                  "ollama_chat.",
                 r->model, d->provider);
        reply_error_and_finish(r, 400, "invalid_request_error", "model", msg);
        return;
    }
    bool native = d->kind == PROV_ANTHROPIC || d->kind == PROV_VERTEX_CLAUDE;
    if (r->cfmt == FMT_ANTHROPIC && native) {
        r->ufmt = UP_ANTHROPIC;
        with_token(r);
        return;
    }
    if (!prov_is_openai_shaped(d->kind)) {
        if (r->ep == EP_COMPLETIONS && r->cfmt == FMT_OPENAI) {
            snprintf(msg, sizeof msg, "model=%s: provider '%s' has no text completion API; use "
                                      "/v1/chat/completions", r->model, d->provider);
            reply_error_and_finish(r, 400, "invalid_request_error", "model", msg);
            return;
        }
        if (!r->oreq) {
            r->oreq = cJSON_ParseWithLength(body, len);
            if (!r->oreq) {
                reply_error_and_finish(r, 400, "invalid_request_error", NULL, "Invalid JSON body");
                return;
            }
        }
        r->ufmt = UP_TRANSLATED;
        r->ops = ops_for(d->kind);
        with_token(r);
        return;
    }
    /* OpenAI-shaped: the client's spans (or, for /v1/messages, the translated request's) with
     * the model rewritten */
    const char *src = r->cfmt == FMT_ANTHROPIC ? r->xbody : body;
    if (!r->have_oq || !src) {
        reply_error_and_finish(r, 500, "internal_server_error", NULL,
                               "could not prepare the request");
        return;
    }
    if (!oai_build_upstream_body_buf(src, &r->oq, r->upmodel, r->stream, &r->up_body,
                                     &r->up_cap, &r->up_len)) {
        reply_error_and_finish(r, 500, "internal_server_error", NULL, "out of memory");
        return;
    }
    r->ufmt = UP_OPENAI;
    prov_endpoint ep = r->cfmt == FMT_ANTHROPIC ? EP_CHAT : r->ep;
    r->u_url = d->url[ep];
    r->u_curlu = d->curlu[ep];
    r->u_body = r->up_body;
    r->u_len = r->up_len;
    r->u_headers = d->headers;
    go_upstream(r);
}

/* Resolves the requested model to a route; false after answering 400. */
static bool resolve(llm_req *r, const auth_ident *id, const char *model)
{
    const char *alias = policy_alias(id, model);
    snprintf(r->req_model, sizeof r->req_model, "%s", alias ? alias : model);
    if (g_router && router_resolve(g_router, r->req_model, &r->route)) {
        r->dep = r->route.pinned ? r->route.pinned
                                 : router_group_at(g_router, r->route.group, 0);
        if (r->dep)
            return true;
    }
    char msg[700];
    snprintf(msg, sizeof msg, "Invalid model name passed in model=%s. Call `/v1/models` to view "
                              "available models for your key.", model);
    reply_error_and_finish(r, 400, "invalid_request_error", "model", msg);
    return false;
}

/* The request's own routing knobs: "fallbacks", "num_retries", x-litellm-num-retries. */
static void read_routing_knobs(llm_req *r, const char *body, const oai_request *oq)
{
    r->retries_left = -1;
    r->req_num_retries = -1;
    const jmember *fb = jscan_find(body, oq->m, oq->count, "fallbacks");
    if (fb && body[fb->val_off] == '[')
        r->req_fallbacks = cJSON_ParseWithLength(body + fb->val_off, fb->val_len);
    const jmember *nr = jscan_find(body, oq->m, oq->count, "num_retries");
    double d;
    if (nr && jscan_number(body + nr->val_off, nr->val_len, &d) && d >= 0 && d <= 20)
        r->req_num_retries = (int)d;
    const struct evkeyvalq *in = evhttp_request_get_input_headers(r->req);
    const char *h = evhttp_find_header(in, "x-litellm-num-retries");
    if (h && atoi(h) >= 0 && atoi(h) <= 20)
        r->req_num_retries = atoi(h);
    const char *t = evhttp_find_header(in, "x-litellm-timeout");
    if (t && atof(t) > 0 && atof(t) <= 86400)
        r->hdr_timeout = atof(t);
}

/* The OpenAI-shaped routes: body parsed without a tree, forwarded as spans. */
static void handle(worker *w, struct evhttp_request *req, prov_endpoint ep, const char *path,
                   const auth_ident *id)
{
    llm_req *r = new_req(w, req, ep, path, FMT_OPENAI);
    if (!r)
        return;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    char err[256];
    r->retries_left = -1;
    r->req_num_retries = -1;
    r->have_oq = true;
    if (oai_parse_request(body, len, &r->oq, err, sizeof err) < 0) {
        reply_error_and_finish(r, 400, "invalid_request_error", NULL, err);
        return;
    }
    const oai_request *oq = &r->oq;
    r->model = oq->model ? strdup(oq->model) : NULL;
    r->stream = oq->stream && ep != EP_EMBEDDINGS;
    r->client_usage = oq->include_usage;
    if (!oq->model || !oq->model[0]) {
        reply_error_and_finish(r, 400, "invalid_request_error", "model",
                               "Invalid model name passed in model=None. Pass \"model\" in the "
                               "request body; call `/v1/models` to view available models.");
        return;
    }
    if (!resolve(r, id, oq->model))
        return;
    if (oq->user)
        r->end_user = strdup(oq->user);
    read_routing_knobs(r, body, oq);
    if (!admit(r, id, len, oq->max_tokens))
        return;
    if (oq->mock_response) { /* LiteLLM's request-level mock: no deployment is called */
        reply_mock(r, body, len, oq->include_usage, oq->mock_response);
        return;
    }
    track_client(r);
    start_attempt(r);
}

void gw_chat(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    const char *uri = evhttp_request_get_uri(req);
    handle(w, req, EP_CHAT, strncmp(uri, "/v1/", 4) == 0 ? "/v1/chat/completions"
                                                          : "/chat/completions", id);
}

void gw_completions(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    const char *uri = evhttp_request_get_uri(req);
    handle(w, req, EP_COMPLETIONS, strncmp(uri, "/v1/", 4) == 0 ? "/v1/completions"
                                                                 : "/completions", id);
}

void gw_embeddings(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    const char *uri = evhttp_request_get_uri(req);
    handle(w, req, EP_EMBEDDINGS, strncmp(uri, "/v1/", 4) == 0 ? "/v1/embeddings"
                                                                : "/embeddings", id);
}

/* A rough local count for providers without a count_tokens API: ~4 bytes a token over the
 * message text, as the mock provider estimates. */
static long estimate_tokens(const cJSON *areq)
{
    char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(areq, "messages"));
    char *t = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(areq, "system"));
    long n = (long)((s ? strlen(s) : 0) + (t ? strlen(t) : 0) + 3) / 4;
    free(s);
    free(t);
    return n;
}

/* POST /v1/messages (and /v1/messages/count_tokens, as EP_COMPLETIONS): the Anthropic API. */
static void handle_messages(worker *w, struct evhttp_request *req, bool count_tokens,
                            const auth_ident *id)
{
    llm_req *r = new_req(w, req, count_tokens ? EP_COMPLETIONS : EP_CHAT,
                         count_tokens ? "/v1/messages/count_tokens" : "/v1/messages",
                         FMT_ANTHROPIC);
    if (!r)
        return;
    r->retries_left = -1;
    r->req_num_retries = -1;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    cJSON *areq = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(areq)) {
        cJSON_Delete(areq);
        reply_error_and_finish(r, 400, "invalid_request_error", NULL,
                               "Invalid JSON in request body: expected a Messages API object");
        return;
    }
    const cJSON *mj = cJSON_GetObjectItemCaseSensitive(areq, "model");
    if (!cJSON_IsString(mj) || !mj->valuestring[0]) {
        cJSON_Delete(areq);
        reply_error_and_finish(r, 400, "invalid_request_error", "model",
                               "model: Field required");
        return;
    }
    r->model = strdup(mj->valuestring);
    r->stream = !count_tokens && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(areq, "stream"));
    if (!resolve(r, id, r->model)) {
        cJSON_Delete(areq);
        return;
    }
    if (count_tokens) {
        if (r->dep->kind == PROV_ANTHROPIC && !r->dep->mock_response) {
            /* Anthropic counts exactly: pass the request through */
            cJSON_Delete(areq);
            r->ufmt = UP_ANTHROPIC;
            track_client(r);
            with_token(r);
            return;
        }
        char out[64];
        int n = snprintf(out, sizeof out, "{\"input_tokens\":%ld}", estimate_tokens(areq));
        cJSON_Delete(areq);
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        add_common_headers(r, h, overhead_ms(r));
        http_reply_json(req, 200, out, (size_t)n);
        finish(r, 200);
        return;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(areq, "max_tokens");
    if (!admit(r, id, len, cJSON_IsNumber(mt) ? (int64_t)mt->valuedouble : -1)) {
        cJSON_Delete(areq);
        return;
    }
    /* Translated once, for whichever non-Anthropic deployment the router picks. */
    prov_err e = {0};
    cJSON *oreq = anth_to_openai_request(areq, &e);
    cJSON_Delete(areq);
    if (!oreq) {
        reply_prov_error(r, &e);
        prov_err_free(&e);
        return;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(oreq, "model", cJSON_CreateString(r->model));
    r->client_usage = true; /* the Anthropic answer always carries usage */
    if (r->stream)
        r->astream = anth_out_stream_new(r->model, r->resp_id);
    r->xbody = cJSON_PrintUnformatted(oreq);
    r->xlen = r->xbody ? strlen(r->xbody) : 0;
    r->oreq = oreq;
    char err[256];
    r->have_oq = true;
    if (!r->xbody || oai_parse_request(r->xbody, r->xlen, &r->oq, err, sizeof err) < 0) {
        reply_error_and_finish(r, 500, "internal_server_error", NULL,
                               "could not translate the request");
        return;
    }
    track_client(r);
    start_attempt(r);
}

void gw_messages(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    handle_messages(w, req, false, id);
}

void gw_count_tokens(worker *w, struct evhttp_request *req, const auth_ident *id)
{
    handle_messages(w, req, true, id);
}

/* Reads project_id from a credentials file or inline JSON (for Vertex deployments without
 * vertex_project). NULL if there is none. */
static char *project_from_credentials(const char *creds)
{
    const char *path = creds ? creds : getenv("GOOGLE_APPLICATION_CREDENTIALS");
    if (!path)
        return NULL;
    cJSON *j = NULL;
    const char *p = path;
    while (*p == ' ' || *p == '\n' || *p == '\t')
        p++;
    if (*p == '{') {
        j = cJSON_Parse(p);
    } else {
        FILE *f = fopen(path, "r");
        if (!f)
            return NULL;
        char buf[16384];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        j = cJSON_Parse(buf);
    }
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(j, "project_id");
    if (!cJSON_IsString(pid))
        pid = cJSON_GetObjectItemCaseSensitive(j, "quota_project_id");
    char *out = cJSON_IsString(pid) ? strdup(pid->valuestring) : NULL;
    cJSON_Delete(j);
    return out;
}

int gw_prepare(cfg *c)
{
    ups_proxy_env env;
    ups_proxy_env_read(&env);
    gauth_set_tls(c->ssl_verify, c->ssl_ca_file); /* token endpoints follow the global setting */
    for (size_t i = 0; i < c->ndeps; i++) {
        cfg_deployment *d = &c->deps[i];
        struct curl_slist *h = NULL;
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:"); /* curl adds 100-continue above 1 MiB: a round trip */
        if (d->api_key && d->api_key[0] && prov_is_openai_shaped(d->kind)) {
            size_t n = strlen(d->api_key) + 32;
            char *line = malloc(n);
            if (!line)
                return -1;
            /* Azure takes its key in api-key; everyone else in a bearer token */
            snprintf(line, n, d->kind == PROV_AZURE ? "api-key: %s" : "Authorization: Bearer %s",
                     d->api_key);
            h = curl_slist_append(h, line);
            free(line);
        }
        if (!h)
            return -1;
        d->headers = h;
        for (int ep = 0; ep < 3 && d->url[ep]; ep++) {
            d->curlu[ep] = curl_url();
            if (!d->curlu[ep] || curl_url_set(d->curlu[ep], CURLUPART_URL, d->url[ep], 0)) {
                curl_url_cleanup(d->curlu[ep]);
                d->curlu[ep] = NULL; /* fall back to the string */
            }
        }
        char hosturl[300];
        snprintf(hosturl, sizeof hosturl, "https://%s/", d->host ? d->host : "");
        d->proxy = ups_proxy_for_url(&env, d->api_base ? d->api_base : hosturl);
        if (!d->proxy)
            return -1;
        if (d->proxy[0])
            log_msg(LOG_INFO, "model %s: upstream %s via proxy", d->model_name,
                    d->host ? d->host : "?");
        if (is_vertex(d) && !d->mock_response) {
            char err[512];
            d->gauth = gauth_get(d->vertex_credentials, err, sizeof err);
            if (!d->gauth) {
                d->gauth_error = strdup(err);
                log_msg(LOG_WARN, "model %s: no Google credentials: %s", d->model_name, err);
            }
            if (!d->vertex_project) {
                d->vertex_project = project_from_credentials(d->vertex_credentials);
                if (!d->vertex_project)
                    log_msg(LOG_WARN, "model %s: no vertex_project, VERTEXAI_PROJECT or project "
                                      "in the credentials: requests will fail", d->model_name);
            }
        }
    }
    char err[512];
    g_router = router_new(c, err, sizeof err);
    if (!g_router) {
        fprintf(stderr, "sluice: %s\n", err);
        return -1;
    }
    for (const char *const *n = router_notes(g_router); n && *n; n++)
        log_msg(LOG_WARN, "router: %s", *n);
    return 0;
}

const struct router *gw_router(void)
{
    return g_router;
}

void gw_release(void)
{
    router_free(g_router);
    g_router = NULL;
}
