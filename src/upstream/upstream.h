/* upstream — libcurl multi driven by a worker's event_base: one ups_loop per worker thread, so
 * an upstream transfer lives on the same thread as the client request it serves and nothing is
 * shared or locked.
 *
 * Speed notes (measured by the prototype, see docs/performance.md): curl reports
 * CURL_POLL_REMOVE after every keep-alive transfer although the connection stays cached, so fd
 * watchers are persistent — stopped on REMOVE, freed only when curl really closes the socket
 * (CURLOPT_CLOSESOCKETFUNCTION) — and the base uses epoll's changelist so a stop+start within
 * one loop turn costs no syscall. Easy handles are pooled per loop. */
#ifndef SLUICE_UPSTREAM_H
#define SLUICE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

struct event_base;
typedef struct ups_loop ups_loop;
typedef struct ups_xfer ups_xfer;

/* Return values of on_data besides "consumed n bytes". */
#define UPS_PAUSE CURL_WRITEFUNC_PAUSE

struct ups_xfer {
    /* set by the caller before ups_start */
    void *ud;
    /* Bytes of the response body. Return n to consume, or UPS_PAUSE to have curl keep them and
     * stop reading until ups_resume (the same bytes are delivered again then). Must not fail:
     * to give up, schedule an ups_abort outside the callback. */
    size_t (*on_data)(ups_xfer *x, const char *p, size_t n);
    /* Transfer finished (any outcome). Called outside curl callbacks; the easy handle is already
     * back in the pool, so the callback may start another transfer or free x. */
    void (*on_done)(ups_xfer *x, CURLcode rc, long status, const char *errbuf);
    /* private */
    CURL *easy;
    ups_loop *loop;
    bool paused;
    bool tls_custom;      /* the handle carries non-default TLS options (reset when pooled) */
    double retry_after;   /* the response's Retry-After in seconds, -1 when absent */
    char errbuf[CURL_ERROR_SIZE];
};

typedef struct {
    const char *url;
    CURLU *curlu;       /* the same URL pre-parsed (optional; saves a parse per transfer) */
    const char *body; /* must stay valid until on_done or ups_abort */
    size_t body_len;
    const struct curl_slist *headers;
    const char *proxy;  /* "" = direct */
    long timeout_ms;    /* whole transfer; 0 = none */
    long connect_timeout_ms;
    /* TLS. Zero values verify the peer against libcurl's default CA bundle and directory. */
    bool insecure;      /* no certificate or host name verification (ssl_verify: false) */
    const char *ca_file;/* verify against this CA bundle only (libcurl copies it) */
} ups_request;

/* Sets r->insecure / r->ca_file from LiteLLM's ssl_verify: a deployment's own setting (-1 =
 * inherit) over the global one, and a CA bundle named by the deployment over the global one
 * (litellm_settings.ssl_verify, SSL_VERIFY or SSL_CERT_FILE). Plain values, not cfg types, so
 * upstream/ stays below config/. */
static inline void ups_tls_choose(ups_request *r, int dep_verify, const char *dep_ca,
                                  int global_verify, const char *global_ca)
{
    int verify = dep_verify >= 0 ? dep_verify : global_verify;
    r->insecure = !verify;
    r->ca_file = verify ? (dep_ca ? dep_ca : global_ca) : NULL;
}

/* The transfer failed in the TLS layer: ups_tls_cert_error for a peer certificate that did not
 * verify (or a CA bundle that could not be used), ups_tls_error for that or any other handshake
 * failure. Callers name it as such rather than as an unreachable host. */
bool ups_tls_cert_error(CURLcode rc);
bool ups_tls_error(CURLcode rc);

ups_loop *ups_loop_new(struct event_base *base);
void ups_loop_free(ups_loop *l);
/* Starts a POST; 0 on success. On failure nothing is started and on_done is not called. */
int ups_start(ups_loop *l, ups_xfer *x, const ups_request *r);
/* Continues a transfer paused by on_data returning UPS_PAUSE. May call on_data synchronously. */
void ups_resume(ups_xfer *x);
/* Cancels a running transfer; on_done is not called. Safe on an idle xfer. Never call from
 * inside on_data. */
void ups_abort(ups_xfer *x);
static inline bool ups_active(const ups_xfer *x) { return x->easy != NULL; }
/* HTTP status of the response being received (valid from the first on_data call). */
long ups_status(const ups_xfer *x);
/* Transfers in flight on this loop. */
int ups_running(const ups_loop *l);

#endif
