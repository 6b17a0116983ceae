/* http/server — the listening side: N worker threads, each with its own event_base, evhttp,
 * SO_REUSEPORT listener and upstream loop; a route table; signals and graceful drain.
 * A request lives on one worker from accept to last byte. http/ knows nothing of the LLM path
 * or the management API: src/routes.c registers handlers here. */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/http.h>

#include "auth/auth.h"
#include "auth/keys.h"
#include "config/config.h"
#include "upstream/upstream.h"
#include "util/mbox.h"

typedef struct worker worker;

struct worker {
    int index;
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    ups_loop *ups;
    mbox *mbox;       /* calls posted to this worker by other threads (token refreshes) */
    const cfg *cfg;
    int inflight;     /* requests accepted and not finished */
    bool draining;
    uint64_t rng[2];  /* xorshift128+ for request ids */
    int notify_fd;    /* eventfd: the main thread's commands */
    struct event *notify_ev;
    _Atomic int cmd;  /* WORKER_DRAIN, WORKER_STOP */
};

enum { WORKER_RUN, WORKER_DRAIN, WORKER_STOP };

enum {
    ROUTE_PUBLIC = 1,  /* no key needed (health probes, /) */
    ROUTE_OWN_LOG = 2, /* the handler writes its own access-log line (http_reply_json_logged,
                          or the LLM path's richer line) */
    ROUTE_ADMIN = 4,   /* only admins (master key, proxy_admin keys) */
};

/* id is the caller, resolved before the handler runs; valid for the duration of the call. */
typedef void (*http_handler)(worker *w, struct evhttp_request *req, const auth_ident *id);

typedef struct {
    const char *path;
    int methods; /* EVHTTP_REQ_* mask */
    http_handler fn;
    int flags;
} http_route;

typedef struct {
    const char *host;
    int port;
    int workers;
    const cfg *cfg;
    const http_route *routes;
    int nroutes;
    keycache *keys;            /* virtual keys; NULL: only the master key is accepted */
    bool allow_on_db_unavailable; /* unknown keys pass while the DB is down (LiteLLM's flag) */
    void (*thread_start)(worker *w); /* run by each worker thread before its loop starts
                                        (timers above http/, e.g. background health checks) */
    void (*thread_exit)(void); /* run by each worker thread as it ends (caches above http/) */
    /* run once every worker loop has stopped, before their mailboxes and loops are freed:
     * whatever may still post to a worker (token refreshes) stops here */
    void (*before_teardown)(void);
} http_opts;

/* Binds (failing fast with a one-line message if the port is taken), serves until SIGTERM or
 * SIGINT, drains in-flight requests for up to cfg->graceful_shutdown_s, and returns the process
 * exit code. */
int http_serve(const http_opts *o);

/* Request bookkeeping for handlers that finish asynchronously. Synchronous handlers need
 * nothing: the dispatcher counts them. An async handler calls http_async_begin before returning
 * and http_async_end once the reply is complete. */
void http_async_begin(worker *w);
void http_async_end(worker *w);

/* A time-ordered UUID v7 string (37 bytes with NUL): milliseconds, then 74 random bits. */
void http_uuid(worker *w, char out[37]);

/* True while the process is shutting down (liveness answers 503 then). */
bool http_shutting_down(void);

#endif
