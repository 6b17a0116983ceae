/* upstream — see upstream.h. */
#include "upstream/upstream.h"

#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "obs/log.h"

typedef struct {
    struct event ev;
    short flags; /* current watch flags, 0 = stopped */
    bool assigned;
    bool parked; /* curl is done with the socket for now; we still watch it for reading */
} watch;

struct ups_loop {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    watch **watches; /* indexed by fd; entries live until curl closes the socket */
    size_t nwatches;
    CURL **pool;     /* idle easy handles */
    size_t npool, cappool;
    int running;
    int active;      /* transfers added and not finished */
    /* libcurl's built-in CA bundle and directory (static strings), restored on a handle that
     * ran a transfer with ssl_verify: false or its own CA bundle */
    const char *default_cainfo, *default_capath;
    bool defaults_known;
};

static void check_done(ups_loop *l);

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    ups_loop *l = arg;
    watch *w = (size_t)fd < l->nwatches ? l->watches[fd] : NULL;
    if (w && w->parked) {
        /* an idle cached connection got data or EOF (the server closed it). curl will notice
         * when it next checks the connection; stop watching so level-triggered epoll does not
         * spin on it. */
        event_del(&w->ev);
        w->flags = 0;
        w->parked = false;
        return;
    }
    int action = (what & EV_READ ? CURL_CSELECT_IN : 0) | (what & EV_WRITE ? CURL_CSELECT_OUT : 0);
    curl_multi_socket_action(l->multi, fd, action, &l->running);
    check_done(l);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    ups_loop *l = arg;
    curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &l->running);
    check_done(l);
}

static watch *watch_for(ups_loop *l, curl_socket_t s)
{
    if ((size_t)s >= l->nwatches) {
        size_t n = l->nwatches ? l->nwatches : 64;
        while (n <= (size_t)s)
            n *= 2;
        watch **nw = realloc(l->watches, n * sizeof *nw);
        if (!nw)
            return NULL;
        memset(nw + l->nwatches, 0, (n - l->nwatches) * sizeof *nw);
        l->watches = nw;
        l->nwatches = n;
    }
    if (!l->watches[s])
        l->watches[s] = calloc(1, sizeof(watch));
    return l->watches[s];
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    ups_loop *l = userp;
    watch *w = watch_for(l, s);
    if (!w)
        return -1;
    if (what == CURL_POLL_REMOVE) {
        /* curl says REMOVE after every keep-alive transfer, and IN again for the next one on
         * the same connection: a read watch stays registered (parked) so that costs no
         * epoll_ctl at all. */
        if (w->assigned && w->flags == EV_READ) {
            w->parked = true;
        } else {
            if (w->assigned && w->flags)
                event_del(&w->ev);
            w->flags = 0;
        }
        return 0;
    }
    short flags = (short)((what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0));
    w->parked = false;
    if (w->assigned && w->flags == flags)
        return 0;
    if (w->assigned && w->flags)
        event_del(&w->ev);
    event_assign(&w->ev, l->base, s, flags | EV_PERSIST, on_socket_event, l);
    w->assigned = true;
    w->flags = flags;
    event_add(&w->ev, NULL);
    return 0;
}

static int close_cb(void *clientp, curl_socket_t s)
{
    ups_loop *l = clientp;
    if ((size_t)s < l->nwatches && l->watches[s]) {
        watch *w = l->watches[s];
        if (w->assigned && w->flags)
            event_del(&w->ev);
        w->flags = 0;
        w->assigned = false;
        w->parked = false;
    }
    return close(s);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    ups_loop *l = userp;
    if (timeout_ms < 0) {
        evtimer_del(l->timer);
    } else if (timeout_ms == 0) {
        /* "act now": run in this loop turn rather than after another epoll_wait */
        evtimer_del(l->timer);
        event_active(l->timer, EV_TIMEOUT, 0);
    } else {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(l->timer, &tv);
    }
    return 0;
}

ups_loop *ups_loop_new(struct event_base *base)
{
    ups_loop *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->base = base;
    l->multi = curl_multi_init();
    l->timer = evtimer_new(base, on_timer, l);
    if (!l->multi || !l->timer) {
        ups_loop_free(l);
        return NULL;
    }
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, 256L);
    curl_multi_setopt(l->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return l;
}

void ups_loop_free(ups_loop *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->npool; i++)
        curl_easy_cleanup(l->pool[i]);
    free(l->pool);
    /* cleaning the multi closes cached connections through close_cb */
    if (l->multi)
        curl_multi_cleanup(l->multi);
    for (size_t i = 0; i < l->nwatches; i++) {
        if (l->watches[i] && l->watches[i]->assigned && l->watches[i]->flags)
            event_del(&l->watches[i]->ev);
        free(l->watches[i]);
    }
    free(l->watches);
    if (l->timer)
        event_free(l->timer);
    free(l);
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud);
static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud);

/* Options every transfer shares are set once per handle; ups_start sets the rest each time
 * (curl_easy_reset per transfer was measurable). */
static CURL *easy_get(ups_loop *l)
{
    if (l->npool)
        return l->pool[--l->npool];
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, ""); /* the caller's proxy decision is final */
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    /* HTTP/2 only where TLS negotiates it; plain http:// stays HTTP/1.1 without upgrade logic */
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L); /* api_base paths are the operator's, verbatim */
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_cb);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, l);
    if (!l->defaults_known) {
        char *ca = NULL, *capath = NULL;
        curl_easy_getinfo(e, CURLINFO_CAINFO, &ca);
        curl_easy_getinfo(e, CURLINFO_CAPATH, &capath);
        l->default_cainfo = ca;
        l->default_capath = capath;
        l->defaults_known = true;
    }
    return e;
}

/* TLS options go on a handle only for transfers that want other than the default (verify
 * against the system's CA store), and come off again before it is pooled: the common case costs
 * no setopt, and one deployment's setting never reaches another's transfer. libcurl keeps
 * connections (and TLS sessions) made under different TLS settings apart when it reuses them. */
static void tls_apply(CURL *e, const ups_request *r)
{
    if (r->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        /* that bundle alone, as Python's ssl does with a cafile: not the system's directory */
        curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
}

static void tls_restore(ups_loop *l, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_CAINFO, l->default_cainfo);
    curl_easy_setopt(e, CURLOPT_CAPATH, l->default_capath);
}

static void easy_put(ups_loop *l, CURL *e, bool tls_custom)
{
    if (tls_custom)
        tls_restore(l, e);
    if (l->npool == l->cappool) {
        size_t nc = l->cappool ? l->cappool * 2 : 16;
        CURL **np = realloc(l->pool, nc * sizeof *np);
        if (!np) {
            curl_easy_cleanup(e);
            return;
        }
        l->pool = np;
        l->cappool = nc;
    }
    l->pool[l->npool++] = e;
}

static size_t write_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    ups_xfer *x = ud;
    size_t r = x->on_data(x, p, size * nmemb);
    if (r == CURL_WRITEFUNC_PAUSE)
        x->paused = true;
    return r;
}

/* Response headers: only Retry-After matters to the caller (backoff and cooldowns). */
static size_t header_cb(char *p, size_t size, size_t nmemb, void *ud)
{
    ups_xfer *x = ud;
    size_t n = size * nmemb;
    if (n > 12 && (p[0] == 'r' || p[0] == 'R') && strncasecmp(p, "retry-after:", 12) == 0) {
        char tmp[32];
        size_t l = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
        memcpy(tmp, p + 12, l);
        tmp[l] = 0;
        char *end;
        double v = strtod(tmp, &end);
        if (end != tmp && v >= 0)
            x->retry_after = v; /* HTTP-date forms are left unparsed (-1) */
    }
    return n;
}

static void release(ups_xfer *x)
{
    ups_loop *l = x->loop;
    curl_multi_remove_handle(l->multi, x->easy);
    easy_put(l, x->easy, x->tls_custom);
    x->easy = NULL;
    x->paused = false;
    x->tls_custom = false;
    l->active--;
}

static void check_done(ups_loop *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        ups_xfer *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        long status = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        release(x);
        x->on_done(x, rc, status, x->errbuf);
    }
}

int ups_start(ups_loop *l, ups_xfer *x, const ups_request *r)
{
    CURL *e = easy_get(l);
    if (!e)
        return -1;
    x->easy = e;
    x->loop = l;
    x->paused = false;
    x->errbuf[0] = 0;
    /* a pooled handle remembers its last CURLU, which would win over CURLOPT_URL */
    curl_easy_setopt(e, CURLOPT_CURLU, r->curlu);
    if (!r->curlu)
        curl_easy_setopt(e, CURLOPT_URL, r->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_PROXY, r->proxy ? r->proxy : "");
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    x->retry_after = -1;
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms > 0 ? r->timeout_ms : 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     r->connect_timeout_ms > 0 ? r->connect_timeout_ms : 10000L);
    /* only a TLS transfer needs them (SSL_CERT_FILE in the environment would otherwise cost
     * every plain-HTTP transfer a setopt and a reset) */
    x->tls_custom = (r->insecure || r->ca_file) && r->url && strncasecmp(r->url, "https:", 6) == 0;
    if (x->tls_custom)
        tls_apply(e, r);
    if (curl_multi_add_handle(l->multi, e) != CURLM_OK) {
        easy_put(l, e, x->tls_custom);
        x->easy = NULL;
        x->tls_custom = false;
        return -1;
    }
    l->active++;
    return 0;
}

void ups_resume(ups_xfer *x)
{
    if (!x->easy || !x->paused)
        return;
    x->paused = false;
    curl_easy_pause(x->easy, CURLPAUSE_CONT);
}

void ups_abort(ups_xfer *x)
{
    if (!x->easy)
        return;
    release(x);
}

bool ups_tls_cert_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION: /* untrusted issuer, self-signed, name mismatch, expired */
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return true;
    default:
        return false;
    }
}

bool ups_tls_error(CURLcode rc)
{
    return ups_tls_cert_error(rc) || rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_SSL_CERTPROBLEM ||
           rc == CURLE_SSL_CIPHER || rc == CURLE_SSL_ENGINE_NOTFOUND ||
           rc == CURLE_SSL_ENGINE_SETFAILED || rc == CURLE_SSL_ENGINE_INITFAILED ||
           rc == CURLE_USE_SSL_FAILED;
}

long ups_status(const ups_xfer *x)
{
    long status = 0;
    if (x->easy)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

int ups_running(const ups_loop *l)
{
    return l->active;
}
