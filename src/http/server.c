/* http/server — see server.h.
 *
 * Threads: the main thread owns signals (every other thread blocks them) and does nothing but
 * wait; each worker runs its own event_base. Workers share only the immutable config and the
 * route table, so libevent's locking (evthread) is not enabled: it cost ~5% of CPU in mutexes
 * on every buffer operation. The main thread talks to a worker through an eventfd and an atomic
 * command: DRAIN (close the listener, exit once in-flight reaches 0) or STOP (when the grace
 * period ends). */
#include "http/server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "http/reply.h"
#include "util/hash.h"
#include "obs/log.h"
#include "util/thread.h"

static const http_route *g_routes;
static void (*g_thread_start)(worker *w);
static void (*g_thread_exit)(void);
static int g_nroutes;
static atomic_bool g_shutting_down;


bool http_shutting_down(void)
{
    return atomic_load(&g_shutting_down);
}

void http_async_begin(worker *w)
{
    w->inflight++;
}

void http_async_end(worker *w)
{
    if (--w->inflight == 0 && w->draining)
        event_base_loopexit(w->base, NULL);
}

static uint64_t xs128p(uint64_t s[2])
{
    uint64_t a = s[0], b = s[1];
    s[0] = b;
    a ^= a << 23;
    s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
    return s[1] + b;
}

void http_uuid(worker *w, char out[37])
{
    /* UUIDv7 (RFC 9562): 48-bit Unix milliseconds first, so call ids sort by time and the spend
     * log's primary key grows at its end instead of touching a random index page per row */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint64_t hi = (ms << 16) | 0x7000ull | (xs128p(w->rng) & 0x0FFFull); /* version 7 */
    uint64_t lo = xs128p(w->rng);
    lo = (lo & 0x3FFFFFFFFFFFFFFFull) | 0x8000000000000000ull;  /* variant 10 */
    static const char hx[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20)
            out[o++] = '-';
        uint64_t v = i < 16 ? hi : lo;
        out[o++] = hx[(v >> (60 - 4 * (i & 15))) & 15];
    }
    out[o] = 0;
}

static const char *method_name(enum evhttp_cmd_type t)
{
    switch (t) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_PATCH: return "PATCH";
    default: return "OTHER";
    }
}

/* A route path with "{name}" segments ("/key/{key}/regenerate") matches any one segment there;
 * handlers read the value from the URI. Exact paths are compared first, so this only runs for
 * the few templated routes. */
static bool path_matches(const char *tmpl, const char *path)
{
    if (!strchr(tmpl, '{'))
        return false;
    while (*tmpl && *path) {
        if (*tmpl == '{') {
            const char *close = strchr(tmpl, '}');
            if (!close)
                return false;
            size_t seg = strcspn(path, "/");
            if (seg == 0)
                return false;
            tmpl = close + 1;
            path += seg;
            continue;
        }
        if (*tmpl != *path)
            return false;
        tmpl++;
        path++;
    }
    return *tmpl == 0 && *path == 0;
}

static keycache *g_keys;
static bool g_allow_on_db_unavailable;

static void run_route(worker *w, struct evhttp_request *req, const http_route *route,
                      const auth_ident *id)
{
    if ((route->flags & ROUTE_ADMIN) && !id->admin) {
        char msg[256];
        const char *uri = evhttp_request_get_uri(req);
        snprintf(msg, sizeof msg, "user not allowed to access this route. Route=%.*s is an admin "
                                  "only route", (int)strcspn(uri, "?#"), uri);
        size_t len;
        char *body = http_error_body(msg, "auth_error", "None", 403, &len);
        if (route->flags & ROUTE_OWN_LOG)
            http_reply_json_logged(req, 403, body ? body : "{}", body ? len : 2);
        else
            http_reply_json(req, 403, body ? body : "{}", body ? len : 2);
        free(body);
        return;
    }
    route->fn(w, req, id);
}

/* A virtual key's record arrived from the store. */
typedef struct {
    worker *w;
    struct evhttp_request *req;
    const http_route *route;
    char token[65];
} pending_auth;

static void reply_401(struct evhttp_request *req, const http_route *route, const char *msg)
{
    size_t len;
    char *body = http_error_body(msg, "auth_error", "None", 401, &len);
    if (route->flags & ROUTE_OWN_LOG)
        http_reply_json_logged(req, 401, body ? body : "{}", body ? len : 2);
    else
        http_reply_json(req, 401, body ? body : "{}", body ? len : 2);
    free(body);
}

static bool admit_key(worker *w, struct evhttp_request *req, const http_route *route,
                      const char *token, key_rec *rec, const char *db_error)
{
    if (!rec) {
        if (db_error && g_allow_on_db_unavailable) {
            /* LiteLLM's allow_requests_on_db_unavailable: let unknown keys through as users */
            auth_ident id = {.kind = IDENT_KEY, .admin = false, .rec = NULL};
            snprintf(id.token, sizeof id.token, "%s", token);
            run_route(w, req, route, &id);
            return true;
        }
        char msg[700];
        if (db_error)
            snprintf(msg, sizeof msg, "Authentication Error, the database is unavailable, so "
                                      "this key cannot be checked: %s", db_error);
        else
            snprintf(msg, sizeof msg, "Authentication Error, Invalid proxy server token passed. "
                                      "The key is neither the master key nor a known virtual "
                                      "key.");
        reply_401(req, route, msg);
        return false;
    }
    auth_ident id = {.kind = IDENT_KEY, .rec = rec};
    id.admin = rec->user_role && strcmp(rec->user_role, "proxy_admin") == 0;
    snprintf(id.token, sizeof id.token, "%s", token);
    run_route(w, req, route, &id);
    key_rec_unref(rec);
    return true;
}

static void on_key_loaded(void *arg, key_rec *rec, const char *db_error)
{
    pending_auth *p = arg;
    worker *w = p->w;
    http_last_status_reset();
    admit_key(w, p->req, p->route, p->token, rec, db_error);
    if (http_last_status() && !(p->route->flags & ROUTE_OWN_LOG)) {
        const char *uri = evhttp_request_get_uri(p->req);
        char path[256];
        snprintf(path, sizeof path, "%.*s", (int)strcspn(uri, "?#"), uri);
        log_access(&(log_access_rec){.method = method_name(evhttp_request_get_command(p->req)),
                                     .path = path, .status = http_last_status(),
                                     .upstream_ms = -1});
    }
    free(p);
    http_async_end(w);
}

/* Resolves the caller and runs the route. Returns whether the handler logs its own line. */
static bool authenticate(worker *w, struct evhttp_request *req, const http_route *route)
{
    bool own = route->flags & ROUTE_OWN_LOG;
    const cfg *c = w->cfg;
    if (!c->master_key) {
        auth_ident id = {.kind = IDENT_OPEN, .admin = true};
        run_route(w, req, route, &id);
        return own;
    }
    size_t len = 0;
    bool malformed;
    const char *key = auth_extract(evhttp_request_get_input_headers(req), &len, &malformed);
    if (malformed || !key) {
        reply_401(req, route, auth_message(malformed ? AUTH_MALFORMED : AUTH_MISSING));
        return own;
    }
    if (secret_equal(key, len, c->master_key, strlen(c->master_key))) {
        auth_ident id = {.kind = IDENT_MASTER, .admin = true};
        sha256_hex(key, len, id.token);
        run_route(w, req, route, &id);
        return own;
    }
    if (len < 3 || memcmp(key, "sk-", 3) != 0) {
        char abbrev[16], msg[256];
        auth_abbrev(key, len, abbrev);
        snprintf(msg, sizeof msg, "Authentication Error, LiteLLM Virtual Key expected. Received=%s, "
                                  "expected to start with 'sk-'.", abbrev);
        reply_401(req, route, msg);
        return own;
    }
    if (!g_keys) {
        reply_401(req, route, auth_message(AUTH_INVALID));
        return own;
    }
    char token[65];
    sha256_hex(key, len, token);
    pending_auth *p = malloc(sizeof *p);
    if (!p) {
        reply_401(req, route, "Authentication Error, out of memory");
        return own;
    }
    *p = (pending_auth){.w = w, .req = req, .route = route};
    memcpy(p->token, token, sizeof token);
    key_rec *rec = NULL;
    int rc = keycache_get(g_keys, token, w->mbox, on_key_loaded, p, &rec);
    if (rc == 1) {
        free(p);
        admit_key(w, req, route, token, rec, NULL);
        return own;
    }
    if (rc < 0) {
        free(p);
        reply_401(req, route, "Authentication Error, could not look up the key");
        return own;
    }
    w->inflight++; /* the lookup is in flight; on_key_loaded ends it */
    return true;   /* nothing to log now: the reply comes later */
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    worker *w = arg;
    const char *uri = evhttp_request_get_uri(req);
    size_t plen = strcspn(uri, "?#");
    char path[512];
    if (plen >= sizeof path)
        plen = sizeof path - 1;
    memcpy(path, uri, plen);
    path[plen] = 0;
    enum evhttp_cmd_type method = evhttp_request_get_command(req);

    const http_route *route = NULL;
    bool path_known = false;
    for (int i = 0; i < g_nroutes; i++) {
        if (strcmp(g_routes[i].path, path) != 0 && !path_matches(g_routes[i].path, path))
            continue;
        path_known = true;
        if (g_routes[i].methods & (int)method) {
            route = &g_routes[i];
            break;
        }
    }
    w->inflight++;
    http_last_status_reset();
    bool own_log = false;
    /* CORS as LiteLLM configures it by default (any origin, credentials allowed): browser
     * front-ends call the gateway directly. Only requests that carry an Origin pay for it. */
    const char *origin = evhttp_find_header(evhttp_request_get_input_headers(req), "Origin");
    if (origin) {
        struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
        evhttp_add_header(oh, "Access-Control-Allow-Origin", origin);
        evhttp_add_header(oh, "Access-Control-Allow-Credentials", "true");
        evhttp_add_header(oh, "Vary", "Origin");
    }
    size_t body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (method == EVHTTP_REQ_OPTIONS && origin) {
        struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
        const char *rh = evhttp_find_header(evhttp_request_get_input_headers(req),
                                            "Access-Control-Request-Headers");
        evhttp_add_header(oh, "Access-Control-Allow-Methods",
                          "GET, POST, PUT, PATCH, DELETE, OPTIONS");
        evhttp_add_header(oh, "Access-Control-Allow-Headers", rh ? rh : "*");
        evhttp_add_header(oh, "Access-Control-Max-Age", "600");
        http_reply_json(req, 200, "\"OK\"", 4);
    } else if (body_len > w->cfg->max_request_bytes) {
        http_reply_error(req, 413, "invalid_request_error", NULL,
                         "Request body is %zu bytes; the limit is %zu bytes "
                         "(general_settings.max_request_size_mb)",
                         body_len, w->cfg->max_request_bytes);
    } else if (!route) {
        if (path_known)
            http_reply_error(req, 405, "invalid_request_error", NULL, "Method %s not allowed on %s",
                             method_name(method), path);
        else
            http_reply_error(req, 404, "not_found_error", NULL, "Not Found: %s", path);
    } else if (route->flags & ROUTE_PUBLIC) {
        auth_ident id = {.kind = IDENT_PUBLIC};
        own_log = route->flags & ROUTE_OWN_LOG;
        route->fn(w, req, &id);
    } else {
        own_log = authenticate(w, req, route);
    }
    /* handlers that log their own line (the LLM path, with model and timings) say so */
    if (http_last_status() && !own_log)
        log_access(&(log_access_rec){.method = method_name(method), .path = path,
                                     .status = http_last_status(), .upstream_ms = -1});
    http_async_end(w);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    worker *w = arg;
    uint64_t v;
    if (read(fd, &v, sizeof v) < 0) { /* nothing pending; the command is in w->cmd */
    }
    if (atomic_load(&w->cmd) == WORKER_STOP) {
        event_base_loopbreak(w->base);
        return;
    }
    if (w->bound) {
        evhttp_del_accept_socket(w->http, w->bound);
        w->bound = NULL;
    }
    w->draining = true;
    if (w->inflight == 0)
        event_base_loopexit(w->base, NULL);
}

static void worker_command(worker *w, int cmd)
{
    atomic_store(&w->cmd, cmd);
    uint64_t one = 1;
    if (write(w->notify_fd, &one, sizeof one) < 0)
        log_msg(LOG_ERROR, "cannot notify worker %d", w->index);
}

typedef struct {
    worker w;
    pthread_t thread;
    atomic_bool done;
} worker_slot;

static void on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    log_flush();
}

static void *worker_main(void *arg)
{
    worker_slot *s = arg;
    char name[16];
    snprintf(name, sizeof name, "sluice-w%d", s->w.index);
    thread_name(name);
    log_batch_begin();
    struct event *flush = event_new(s->w.base, -1, EV_PERSIST, on_log_flush, NULL);
    struct timeval tv = {0, 100 * 1000};
    if (flush)
        event_add(flush, &tv);
    if (g_thread_start)
        g_thread_start(&s->w);
    event_base_dispatch(s->w.base);
    if (flush)
        event_free(flush);
    if (g_thread_exit)
        g_thread_exit();
    log_batch_end();
    atomic_store(&s->done, true);
    return NULL;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "sluice: cannot resolve host '%s': %s\n", host, gai_strerror(rc));
        return -1;
    }
    /* prefer IPv4 for names like "localhost", as clients mostly try 127.0.0.1 first */
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* SO_REUSEPORT lets a stale sluice silently share the port and take half the traffic. A plain
 * bind without it fails if anyone listens there, so try that first and say so in one line. */
static int probe_port(const struct sockaddr_storage *ss, socklen_t len, const char *host, int port)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int rc = bind(fd, (const struct sockaddr *)ss, len);
    int err = errno;
    close(fd);
    if (rc == 0)
        return 0;
    if (err == EADDRINUSE)
        fprintf(stderr, "sluice: port %d is already in use on %s (another process is listening "
                        "there)\n", port, host);
    else
        fprintf(stderr, "sluice: cannot bind %s:%d: %s\n", host, port, strerror(err));
    return -1;
}

static int worker_init(worker *w, int index, const http_opts *o, const struct sockaddr_storage *ss,
                       socklen_t sslen)
{
    w->index = index;
    w->cfg = o->cfg;
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    w->base = event_base_new_with_config(ec);
    event_config_free(ec);
    if (!w->base)
        return -1;
    w->http = evhttp_new(w->base);
    if (!w->http)
        return -1;
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_HEAD);
    /* Bodies up to twice the limit are read and refused by dispatch() with a JSON 413; past
     * that libevent refuses them itself (an HTML 413) without reading them. */
    evhttp_set_max_body_size(w->http, (ev_ssize_t)(2 * o->cfg->max_request_bytes + (1 << 20)));
    evhttp_set_max_headers_size(w->http, 64 * 1024);
    evhttp_set_timeout(w->http, 120);
    evhttp_set_gencb(w->http, dispatch, w);
    struct evconnlistener *ln = evconnlistener_new_bind(
        w->base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        1024, (const struct sockaddr *)ss, (int)sslen);
    if (!ln) {
        fprintf(stderr, "sluice: cannot listen on %s:%d: %s\n", o->host, o->port, strerror(errno));
        return -1;
    }
    w->bound = evhttp_bind_listener(w->http, ln);
    if (!w->bound)
        return -1;
    w->ups = ups_loop_new(w->base);
    w->mbox = mbox_new(w->base);
    if (!w->mbox)
        return -1;
    w->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->notify_fd < 0)
        return -1;
    w->notify_ev = event_new(w->base, w->notify_fd, EV_READ | EV_PERSIST, on_notify, w);
    if (!w->ups || !w->notify_ev || event_add(w->notify_ev, NULL) < 0)
        return -1;
    if (getrandom(w->rng, sizeof w->rng, 0) != sizeof w->rng) {
        w->rng[0] = (uint64_t)time(NULL) ^ ((uint64_t)index << 32);
        w->rng[1] = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
    }
    w->rng[0] |= 1;
    return 0;
}

static void worker_destroy(worker *w)
{
    if (w->http)
        evhttp_free(w->http);
    ups_loop_free(w->ups);
    mbox_free(w->mbox);
    if (w->notify_ev)
        event_free(w->notify_ev);
    if (w->notify_fd > 0)
        close(w->notify_fd);
    if (w->base)
        event_base_free(w->base);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int http_serve(const http_opts *o)
{
    g_routes = o->routes;
    g_thread_start = o->thread_start;
    g_thread_exit = o->thread_exit;
    g_keys = o->keys;
    g_allow_on_db_unavailable = o->allow_on_db_unavailable;
    g_nroutes = o->nroutes;
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (resolve(o->host, o->port, &ss, &sslen) < 0 || probe_port(&ss, sslen, o->host, o->port) < 0)
        return 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* inherited by the workers */
    signal(SIGPIPE, SIG_IGN);

    int n = o->workers;
    worker_slot *slots = calloc((size_t)n, sizeof *slots);
    if (!slots)
        return 1;
    int started = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        if (worker_init(&slots[i].w, i, o, &ss, sslen) < 0) {
            rc = 1;
            break;
        }
    }
    if (rc == 0) {
        for (; started < n; started++)
            if (pthread_create(&slots[started].thread, NULL, worker_main, &slots[started]) != 0) {
                rc = 1;
                break;
            }
    }
    if (rc == 0)
        log_msg(LOG_INFO, "sluice %s listening on http://%s:%d (%d worker thread%s)",
                SLUICE_VERSION, strchr(o->host, ':') ? "[::]" : o->host, o->port, n,
                n == 1 ? "" : "s");

    bool forced = false;
    if (rc == 0) {
        int sig = 0;
        sigwait(&set, &sig);
        log_msg(LOG_INFO, "%s received: no new connections; finishing in-flight requests "
                          "(up to %.0f s)", sig == SIGINT ? "SIGINT" : "SIGTERM",
                o->cfg->graceful_shutdown_s);
    }
    atomic_store(&g_shutting_down, true);
    for (int i = 0; i < started; i++)
        worker_command(&slots[i].w, WORKER_DRAIN);
    double deadline = now_s() + o->cfg->graceful_shutdown_s;
    for (;;) {
        bool all = true;
        for (int i = 0; i < started; i++)
            all = all && atomic_load(&slots[i].done);
        if (all)
            break;
        struct timespec ts = {0, 50 * 1000 * 1000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig > 0 || now_s() >= deadline) {
            log_msg(LOG_WARN, "%s: closing with requests still in flight",
                    sig > 0 ? "second signal" : "grace period over");
            forced = true;
            for (int i = 0; i < started; i++)
                worker_command(&slots[i].w, WORKER_STOP);
        }
        if (forced)
            break;
    }
    for (int i = 0; i < started; i++)
        pthread_join(slots[i].thread, NULL);
    if (o->before_teardown)
        o->before_teardown();
    if (!forced) {
        /* clean teardown: every request has finished, so nothing refers to these any more */
        for (int i = 0; i < n; i++)
            worker_destroy(&slots[i].w);
        free(slots);
    }
    if (rc == 0)
        log_msg(LOG_INFO, "sluice stopped");
    return rc;
}
