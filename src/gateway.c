/* gateway — see gateway.h.
 *
 * Lifetime of one LLM request (llm_req): created in the handler, owned by the worker thread,
 * freed by finish() — the single exit, reached from exactly one of: a synchronous reply (bad
 * request, mock), upstream completion (on_done), or the deferred abort after the client left.
 * Events embedded in llm_req (abort, idle timer, retry) are deleted in finish().
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
 * was paid for): once a request has waited PEER_WATCH_MS, peer_ev watches the socket for EOF (MSG_PEEK, so evhttp's own reads
 * are untouched). The watch is removed before evhttp may close the fd (detach_conn and the close
 * callback), so it never outlives the descriptor it watches. */
#include "gateway.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/keyvalq_struct.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http/reply.h"
#include "obs/log.h"
#include "providers/mock.h"
#include "providers/openai.h"
#include "upstream/proxy.h"
#include "util/jscan.h"
#include "util/sbuf.h"

#define BACKPRESSURE_BYTES (64 * 1024)
#define MAX_RESPONSE_BYTES (64u * 1024 * 1024)
#define MAX_SSE_EVENT (16u * 1024 * 1024)
/* Most answers arrive sooner; watching the socket costs two epoll_ctl calls, so only requests
 * that have waited this long pay for it. */
#define PEER_WATCH_MS 300

typedef struct {
    worker *w;
    struct evhttp_request *req;
    struct evhttp_connection *conn; /* NULL once the client has gone */
    const cfg_deployment *dep;
    prov_endpoint ep;
    const char *path;
    char call_id[37];
    char *model;        /* the client's model name (for logs) */
    char *up_body;      /* kept with its capacity when the struct is recycled */
    size_t up_len, up_cap;
    ups_xfer x;
    bool stream, client_usage, headers_sent, client_gone, aborting, oversize;
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
    struct event peer_ev; /* the client socket, watched for EOF while we wait */
    struct event peer_timer; /* starts that watch once a request has waited PEER_WATCH_MS */
    bool events_ready, peer_watched;
    const char *log_error;
    char errmsg[160];
} llm_req;

/* Per-thread cache of finished llm_req structs. The struct is over 1 KiB, past glibc's
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
    memset(r, 0, sizeof *r);
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

static const char *provider_exception(const cfg_deployment *d, char *buf, size_t n)
{
    if (d->kind == PROV_OPENAI)
        return "OpenAIException";
    snprintf(buf, n, "%c%sException", d->provider[0] >= 'a' && d->provider[0] <= 'z'
                                           ? d->provider[0] - 32 : d->provider[0],
             d->provider + 1);
    return buf;
}

static double timeout_s(const llm_req *r)
{
    if (r->stream && r->dep->stream_timeout > 0)
        return r->dep->stream_timeout;
    if (r->dep->timeout > 0)
        return r->dep->timeout;
    return r->w->cfg->request_timeout;
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

static void finish(llm_req *r, int status)
{
    double upstream_ms = r->t_up_start > 0 ? r->upstream_ms_total +
                                                 ((r->t_up_end > 0 ? r->t_up_end : now_ms()) -
                                                  r->t_up_start)
                                           : (r->upstream_ms_total > 0 ? r->upstream_ms_total : -1);
    double oh = r->t_headers > 0 ? r->t_headers - r->t_start -
                                       (r->t_up_first > 0 ? r->t_up_first - r->t_up_start : 0) -
                                       r->upstream_ms_total
                                 : overhead_ms(r);
    log_access(&(log_access_rec){
        .method = "POST", .path = r->path, .status = status, .model = r->model,
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
    free(r->model);
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

static void reply_error_and_finish(llm_req *r, int status, const char *type, const char *param,
                                   const char *msg)
{
    r->log_error = r->errmsg;
    snprintf(r->errmsg, sizeof r->errmsg, "%s", msg);
    if (r->resp && !r->headers_sent) /* an upstream error body collected so far */
        evbuffer_drain(r->resp, evbuffer_get_length(r->resp));
    size_t len;
    char *body = http_error_body(msg, type, param, status, &len);
    detach_conn(r);
    if (r->headers_sent) {
        /* mid-stream: an SSE error event, then the end of the stream */
        if (!r->client_gone && body) {
            struct evbuffer *b = evbuffer_new();
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
        if (status == 429 || status == 503)
            evhttp_add_header(h, "retry-after", "1");
        http_reply_json(r->req, status, body ? body : "{}", body ? len : 2);
    }
    free(body);
    finish(r, status);
}

/* ---- upstream errors ------------------------------------------------------------------- */

static const char *exception_class(int status)
{
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 408: return "Timeout";
    case 422: return "UnprocessableEntityError";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return status >= 500 ? "InternalServerError" : "APIError";
    }
}

/* The upstream answered with an error status: re-wrap its message in LiteLLM's envelope. */
static void reply_upstream_error(llm_req *r)
{
    int status = (int)r->status;
    if (status < 400 || status > 599)
        status = 500;
    size_t len = r->resp ? evbuffer_get_length(r->resp) : 0;
    const char *body = len ? (const char *)evbuffer_pullup(r->resp, -1) : "";
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
        snprintf(msg, sizeof msg, "litellm.%s: %s - %s", exception_class(status),
                 provider_exception(r->dep, exb, sizeof exb), umsg);
    else
        snprintf(msg, sizeof msg, "litellm.%s: %s - upstream %s answered HTTP %ld: %.*s",
                 exception_class(status), provider_exception(r->dep, exb, sizeof exb),
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
    add_common_headers(r, h, r->t_headers - r->t_start - (r->t_up_first - r->t_up_start) -
                                 r->upstream_ms_total);
    evhttp_send_reply_start(r->req, 200, "OK");
    r->headers_sent = true;
}

static int on_sse_event(void *ud, const sse_event *ev)
{
    llm_req *r = ud;
    if (ev->data) {
        oai_chunk_kind k = oai_classify_chunk(ev->data, ev->data_len, &r->usage);
        if (k == OAI_CHUNK_USAGE_ONLY && !r->client_usage)
            return 0; /* injected by us for accounting; the client did not ask for it */
    }
    evbuffer_add(r->out, ev->raw, ev->raw_len);
    evbuffer_add(r->out, "\n\n", 2);
    return 0;
}

static size_t client_backlog(llm_req *r)
{
    if (!r->conn)
        return 0;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->conn);
    return bev ? evbuffer_get_length(bufferevent_get_output(bev)) : 0;
}

static void schedule_abort(llm_req *r)
{
    if (!r->aborting) {
        r->aborting = true;
        event_active(&r->abort_ev, 0, 0);
    }
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
        if (sse_feed(&r->sse, p, n, on_sse_event, r) < 0) {
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

static bool retryable_curl(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return true;
    default:
        return false;
    }
}

static int start_upstream(llm_req *r);

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    llm_req *r = arg;
    if (start_upstream(r) < 0)
        reply_error_and_finish(r, 500, "internal_server_error", NULL,
                               "sluice could not start the upstream request");
}

static bool maybe_retry(llm_req *r)
{
    if (r->headers_sent || r->attempts > r->dep->max_retries || r->client_gone)
        return false;
    /* backoff: 0.25 s, 0.5 s, 1 s ... capped at 4 s */
    double d = 0.25 * (double)(1 << (r->attempts - 1 < 4 ? r->attempts - 1 : 4));
    struct timeval tv = {(time_t)d, (suseconds_t)((d - (double)(time_t)d) * 1e6)};
    r->upstream_ms_total += (r->t_up_end > 0 ? r->t_up_end : now_ms()) - r->t_up_start;
    r->t_up_start = r->t_up_first = r->t_up_end = 0;
    evbuffer_drain(r->resp, evbuffer_get_length(r->resp));
    log_msg(LOG_WARN, "call %s: retrying %s (attempt %d of %d)", r->call_id, r->dep->model_name,
            r->attempts + 1, r->dep->max_retries + 1);
    event_add(&r->retry_ev, &tv);
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
            if (!r->headers_sent && maybe_retry(r))
                return;
            snprintf(msg, sizeof msg, "litellm.Timeout: %s - Request timed out after %g s "
                                      "waiting for %s (model=%s)",
                     prov, timeout_s(r), r->dep->host ? r->dep->host : "upstream", r->model);
            reply_error_and_finish(r, 408, "timeout", NULL, msg);
            return;
        }
        if (retryable_curl(rc) && maybe_retry(r))
            return;
        snprintf(msg, sizeof msg, "litellm.APIConnectionError: %s - cannot reach provider '%s' "
                                  "at %s: %s",
                 prov, r->dep->provider, r->dep->host ? r->dep->host : "?",
                 errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc));
        reply_error_and_finish(r, 502, "api_connection_error", NULL, msg);
        return;
    }
    if (r->status < 200 || r->status >= 300) {
        if ((r->status == 429 || r->status >= 500) && maybe_retry(r))
            return;
        reply_upstream_error(r);
        return;
    }
    if (r->stream) {
        if (!r->headers_sent)
            start_stream_reply(r); /* 200 with an empty body */
        if (sse_pending(&r->sse)) {
            /* a last event without its blank line: terminate it */
            sse_feed(&r->sse, "\n\n", 2, on_sse_event, r);
        }
        detach_conn(r);
        if (evbuffer_get_length(r->out))
            evhttp_send_reply_chunk(r->req, r->out);
        evhttp_send_reply_end(r->req);
        finish(r, 200);
        return;
    }
    oai_response_usage((const char *)evbuffer_pullup(r->resp, -1), evbuffer_get_length(r->resp),
                       &r->usage);
    detach_conn(r);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", "application/json");
    add_common_headers(r, h, overhead_ms(r));
    evhttp_send_reply(r->req, (int)r->status, http_reason((int)r->status), NULL);
    finish(r, (int)r->status);
}

static void on_abort(evutil_socket_t fd, short what, void *arg)
{
    llm_req *r = arg;
    ups_abort(&r->x);
    r->t_up_end = now_ms();
    if (r->client_gone) {
        /* the request is detached from its (freed) connection: ending it frees it */
        r->log_error = "client closed the connection";
        if (r->headers_sent)
            evhttp_send_reply_end(r->req);
        else
            evhttp_send_reply(r->req, 499, "Client Closed Request", NULL);
        finish(r, 499);
        return;
    }
    if (r->oversize) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s from provider '%s'", r->errmsg, r->dep->provider);
        reply_error_and_finish(r, 502, "upstream_error", NULL, msg);
        return;
    }
    /* stream idle timeout */
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
    r->log_error = "client closed the connection";
    detach_conn(r);
    if (r->headers_sent)
        evhttp_send_reply_end(r->req);
    else
        evhttp_send_reply(r->req, 499, "Client Closed Request", NULL);
    finish(r, 499);
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
        .url = r->dep->url[r->ep],
        .curlu = r->dep->curlu[r->ep],
        .body = r->up_body,
        .body_len = r->up_len,
        .headers = r->dep->headers,
        .proxy = r->dep->proxy,
        /* streams are bounded by the idle timer instead: a long answer is not a timeout */
        .timeout_ms = r->stream ? 0 : (long)(timeout_s(r) * 1000),
        .connect_timeout_ms = (long)(timeout_s(r) * 1000 < 10000 ? timeout_s(r) * 1000 : 10000),
    };
    if (log_debug_enabled())
        log_msg(LOG_DEBUG, "call %s: %s → %s %s (deployment %s, attempt %d, %zu bytes)",
                r->call_id, r->model, r->dep->provider, r->dep->host ? r->dep->host : "?",
                r->dep->id, r->attempts, r->up_len);
    if (r->stream)
        arm_idle(r);
    if (ups_start(r->w->ups, &r->x, &ur) < 0) {
        event_del(&r->idle_ev);
        return -1;
    }
    return 0;
}

/* ---- entry ----------------------------------------------------------------------------- */

static void reply_mock(llm_req *r, const char *body, size_t body_len, const oai_request *oreq,
                       const char *text)
{
    mock_ctx mc = {.id = NULL, .model = r->model, .created = (long)time(NULL),
                   .prompt_bytes = body_len};
    char id[48];
    snprintf(id, sizeof id, "%s-%.8s%.4s", r->ep == EP_COMPLETIONS ? "cmpl" : "chatcmpl",
             r->call_id, r->call_id + 9);
    mc.id = id;
    size_t len = 0;
    char *out;
    char err[256] = "";
    if (r->ep == EP_EMBEDDINGS)
        out = mock_embeddings(body, body_len, &mc, &len, &r->usage, err, sizeof err);
    else if (r->stream)
        out = mock_stream(r->ep, &mc, text, oreq->include_usage, &len, &r->usage);
    else
        out = mock_completion(r->ep, &mc, text, &len, &r->usage);
    if (!out) {
        reply_error_and_finish(r, 400, "invalid_request_error", "input",
                               err[0] ? err : "could not build the mock response");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
    evhttp_add_header(h, "Content-Type", r->stream && r->ep != EP_EMBEDDINGS ? "text/event-stream"
                                                                             : "application/json");
    add_common_headers(r, h, overhead_ms(r));
    evbuffer_add(evhttp_request_get_output_buffer(r->req), out, len);
    free(out);
    evhttp_send_reply(r->req, 200, "OK", NULL);
    finish(r, 200);
}

static void handle(worker *w, struct evhttp_request *req, prov_endpoint ep, const char *path)
{
    llm_req *r = req_acquire();
    if (!r) {
        http_reply_error(req, 500, "internal_server_error", NULL, "out of memory");
        return;
    }
    http_async_begin(w);
    r->w = w;
    r->req = req;
    r->ep = ep;
    r->path = path;
    r->t_start = now_ms();
    oai_usage_init(&r->usage);
    http_uuid(w, r->call_id);
    event_assign(&r->abort_ev, w->base, -1, 0, on_abort, r);
    event_assign(&r->idle_ev, w->base, -1, 0, on_idle, r);
    event_assign(&r->retry_ev, w->base, -1, 0, on_retry, r);
    event_assign(&r->peer_timer, w->base, -1, 0, watch_peer, r);
    r->events_ready = true;

    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    oai_request oreq;
    char err[256];
    if (oai_parse_request(body, len, &oreq, err, sizeof err) < 0) {
        oai_request_free(&oreq);
        reply_error_and_finish(r, 400, "invalid_request_error", NULL, err);
        return;
    }
    r->model = oreq.model ? strdup(oreq.model) : NULL;
    r->stream = oreq.stream && ep != EP_EMBEDDINGS;
    r->client_usage = oreq.include_usage;
    char msg[1024];
    if (!oreq.model || !oreq.model[0]) {
        oai_request_free(&oreq);
        reply_error_and_finish(r, 400, "invalid_request_error", "model",
                               "Invalid model name passed in model=None. Pass \"model\" in the "
                               "request body; call `/v1/models` to view available models.");
        return;
    }
    r->dep = cfg_find_model(w->cfg, oreq.model);
    if (!r->dep) {
        snprintf(msg, sizeof msg, "Invalid model name passed in model=%s. Call `/v1/models` to "
                                  "view available models for your key.", oreq.model);
        oai_request_free(&oreq);
        reply_error_and_finish(r, 400, "invalid_request_error", "model", msg);
        return;
    }
    const char *mock = oreq.mock_response ? oreq.mock_response : r->dep->mock_response;
    if (mock) {
        reply_mock(r, body, len, &oreq, mock);
        oai_request_free(&oreq);
        return;
    }
    if (r->dep->kind == PROV_UNIMPLEMENTED) {
        snprintf(msg, sizeof msg, "model=%s uses provider '%s', which sluice does not implement "
                                  "yet. Supported providers: openai, hosted_vllm, "
                                  "openai_compatible, ollama_chat.",
                 oreq.model, r->dep->provider);
        oai_request_free(&oreq);
        reply_error_and_finish(r, 400, "invalid_request_error", "model", msg);
        return;
    }
    bool built = oai_build_upstream_body_buf(body, &oreq, r->dep->upstream_model, r->stream,
                                             &r->up_body, &r->up_cap, &r->up_len);
    oai_request_free(&oreq);
    r->resp = evhttp_request_get_output_buffer(req);
    r->out = r->stream ? evbuffer_new() : NULL;
    if (!built || (r->stream && !r->out)) {
        reply_error_and_finish(r, 500, "internal_server_error", NULL, "out of memory");
        return;
    }
    sse_init(&r->sse, MAX_SSE_EVENT);
    r->x.ud = r;
    r->x.on_data = on_data;
    r->x.on_done = on_done;
    r->conn = evhttp_request_get_connection(req);
    evhttp_connection_set_closecb(r->conn, on_client_close, r);
    struct timeval pw = {0, PEER_WATCH_MS * 1000};
    event_add(&r->peer_timer, &pw);
    if (start_upstream(r) < 0)
        reply_error_and_finish(r, 500, "internal_server_error", NULL,
                               "sluice could not start the upstream request");
}

void gw_chat(worker *w, struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    handle(w, req, EP_CHAT, strncmp(uri, "/v1/", 4) == 0 ? "/v1/chat/completions"
                                                          : "/chat/completions");
}

void gw_completions(worker *w, struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    handle(w, req, EP_COMPLETIONS, strncmp(uri, "/v1/", 4) == 0 ? "/v1/completions"
                                                                 : "/completions");
}

void gw_embeddings(worker *w, struct evhttp_request *req)
{
    const char *uri = evhttp_request_get_uri(req);
    handle(w, req, EP_EMBEDDINGS, strncmp(uri, "/v1/", 4) == 0 ? "/v1/embeddings"
                                                                : "/embeddings");
}

int gw_prepare(cfg *c)
{
    ups_proxy_env env;
    ups_proxy_env_read(&env);
    for (size_t i = 0; i < c->ndeps; i++) {
        cfg_deployment *d = &c->deps[i];
        struct curl_slist *h = NULL;
        h = curl_slist_append(h, "Content-Type: application/json");
        h = curl_slist_append(h, "Expect:"); /* curl adds 100-continue above 1 MiB: a round trip */
        if (d->api_key && d->api_key[0]) {
            size_t n = strlen(d->api_key) + 32;
            char *line = malloc(n);
            if (!line)
                return -1;
            snprintf(line, n, "Authorization: Bearer %s", d->api_key);
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
        d->proxy = d->api_base ? ups_proxy_for_url(&env, d->api_base) : strdup("");
        if (!d->proxy)
            return -1;
        if (d->proxy[0])
            log_msg(LOG_INFO, "model %s: upstream %s via proxy", d->model_name,
                    d->host ? d->host : "?");
    }
    return 0;
}
