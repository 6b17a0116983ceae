/* upstream/gauth — see gauth.h.
 *
 * Threading. One process-wide mutex (G.mu) guards the handle list and every handle's mutable
 * state: cached token, waiters, refresh bookkeeping. Credentials, URL, proxy and description are
 * fixed when the handle is made and are read without it. A worker holds G.mu only to copy a
 * cached token or append a waiter (well under a microsecond), so one lock for every source costs
 * nothing measurable; per-handle locks would only matter with many sources, and a gateway has one
 * or two. One gauth thread, started by the first gauth_token call that misses the cache, does all
 * network exchanges with blocking libcurl and without the lock. Refreshes of different sources
 * are therefore serial: a token endpoint that hangs delays the others by up to 15 s, the price of
 * the simple blocking model, acceptable for a few sources refreshing hourly.
 *
 * Memory. gauth_token allocates the waiter, so -1 reports allocation failure where the caller
 * can still react. When the refresh ends, the gauth thread stores a heap copy of the token (or of
 * the error) in the waiter and posts deliver(waiter) to the waiter's mailbox; deliver runs on the
 * worker, calls the callback, then wipes and frees the copy and the waiter. The token passed to
 * the callback is valid for the duration of the call only. gauth_shutdown drops waiters still
 * queued without calling them; it belongs after the workers' loops stop and before their
 * mailboxes are freed, since until it returns a finishing refresh may still post to them.
 *
 * Secrets. Key text, refresh tokens, client secrets and access tokens are wiped before their
 * memory is freed, and no message ever quotes them: parse errors give a byte offset, not text. */
#include "upstream/gauth.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "obs/log.h"
#include "upstream/gauth_internal.h"
#include "upstream/proxy.h"
#include "util/hash.h"
#include "util/sbuf.h"
#include "util/thread.h"
#include "util/clock.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

#define METADATA_HOST "metadata.google.internal"
#define METADATA_PATH "/computeMetadata/v1/instance/service-accounts/default/token"
#define JWT_GRANT "urn:ietf:params:oauth:grant-type:jwt-bearer"

enum {
    SERVE_MIN_LEFT = 60,   /* a cached token is handed out while it has more than this left */
    REFRESH_AHEAD = 300,   /* ... and refreshed in the background once it has less than this */
    BACKOFF_MAX = 30,      /* failed refreshes are retried after 1, 2, 4 ... 30 s */
    CONNECT_TIMEOUT_MS = 5000,
    TOTAL_TIMEOUT_MS = 15000,
    MAX_CREDS_FILE = 1 << 20,
    MAX_RESPONSE = 1 << 20,
    MAX_TOKEN = 16 * 1024, /* Google documents up to 2 KiB; leave room, refuse absurd ones */
};

typedef struct waiter {
    struct waiter *next;
    mbox *mb;
    gauth_cb cb;
    void *arg;
    char *text; /* the token or the error: filled when the refresh ends */
    int ok;
} waiter;

struct gauth {
    struct gauth *next;
    char *key;   /* dedupe key: file path + content hash, inline hash, or metadata host */
    char *label; /* where the credentials came from, for messages */
    char *desc;  /* gauth_describe */
    char *url;   /* token_uri, or the metadata server's token URL */
    char *proxy; /* "" = direct; decided once, at gauth_get */
    gauth_creds c;
    /* the rest is guarded by G.mu */
    char *token;
    double got, expires; /* gauth's monotonic clock, seconds */
    double retry_at;     /* backoff: no refresh before this */
    int fails;
    int asked;           /* a worker wanted the token since it was stored */
    int refreshing;
    waiter *wq, **wq_tail;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int cv_ready, running;
    pthread_t th;
    gauth *list;
    bool tls_insecure; /* gauth_set_tls */
    char *tls_ca;
} G = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_bool g_stop;           /* read by curl's progress callback without the lock */
static _Atomic long long g_offset_ms; /* gauth_test_advance */

/* ---- small helpers ---------------------------------------------------------------------- */

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


static double mono(void)
{
    return clock_mono() + (double)atomic_load(&g_offset_ms) / 1000.0;
}

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* Copies text from outside (an endpoint's error description, a "type" value) for a message:
 * control bytes become '?', and it is cut at cap - 1 bytes. */
static void clean_copy(char *out, size_t cap, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    out[i] = 0;
}

static const char *skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    return s;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    return n < 0 ? NULL : s;
}

/* ---- credentials ------------------------------------------------------------------------ */

/* A non-empty string member, or NULL. */
static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) && v->valuestring && v->valuestring[0] ? v->valuestring : NULL;
}

static void jwipe(cJSON *o, const char *name)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (cJSON_IsString(v) && v->valuestring)
        OPENSSL_cleanse(v->valuestring, strlen(v->valuestring));
}

/* Encrypted keys must fail, not prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

static int valid_http_url(const char *u)
{
    return strncasecmp(u, "https://", 8) == 0 || strncasecmp(u, "http://", 7) == 0;
}

static int parse_creds(const char *json, size_t len, const char *source, gauth_creds *c,
                       char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        /* the offset only: the text around it may be key material */
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        seterr(err, errlen, "%s: not valid JSON (error at byte %zu)", source, at);
        return -1;
    }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        seterr(err, errlen, "%s: not a JSON object", source);
        goto out;
    }
    const char *type = jstr(root, "type");
    if (!type) {
        seterr(err, errlen,
               "%s: no \"type\" field (expected \"service_account\" or \"authorized_user\")",
               source);
        goto out;
    }
    const char *missing = NULL;
    if (strcmp(type, "service_account") == 0) {
        c->kind = GAUTH_SERVICE_ACCOUNT;
        const char *email = jstr(root, "client_email"), *pem = jstr(root, "private_key");
        missing = !email ? "client_email" : !pem ? "private_key" : NULL;
        if (missing)
            goto missing_field;
        const char *kid = jstr(root, "private_key_id");
        c->client_email = strdup(email);
        c->private_key_id = kid ? strdup(kid) : NULL;
        if (!c->client_email || (kid && !c->private_key_id))
            goto oom;
        BIO *bio = BIO_new_mem_buf(pem, -1);
        if (!bio)
            goto oom;
        c->pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
        BIO_free(bio);
        ERR_clear_error(); /* the queue would otherwise outlive us on this thread */
        if (!c->pkey) {
            seterr(err, errlen,
                   "%s: \"private_key\" is not an unencrypted PEM private key", source);
            goto out;
        }
        if (!EVP_PKEY_is_a(c->pkey, "RSA")) {
            seterr(err, errlen, "%s: \"private_key\" is not an RSA key (RS256 needs one)",
                   source);
            goto out;
        }
    } else if (strcmp(type, "authorized_user") == 0) {
        c->kind = GAUTH_AUTHORIZED_USER;
        const char *id = jstr(root, "client_id"), *secret = jstr(root, "client_secret"),
                   *refresh = jstr(root, "refresh_token");
        missing = !id ? "client_id" : !secret ? "client_secret" : !refresh ? "refresh_token" : NULL;
        if (missing)
            goto missing_field;
        c->client_id = strdup(id);
        c->client_secret = strdup(secret);
        c->refresh_token = strdup(refresh);
        if (!c->client_id || !c->client_secret || !c->refresh_token)
            goto oom;
    } else {
        char t[48];
        clean_copy(t, sizeof t, type);
        seterr(err, errlen,
               "%s: credential type \"%s\" is not supported (sluice reads \"service_account\" "
               "and \"authorized_user\")",
               source, t);
        goto out;
    }
    const cJSON *tu = cJSON_GetObjectItemCaseSensitive(root, "token_uri");
    if (tu && !cJSON_IsNull(tu)) {
        if (!cJSON_IsString(tu) || !tu->valuestring || !valid_http_url(tu->valuestring)) {
            seterr(err, errlen, "%s: \"token_uri\" is not an http(s) URL", source);
            goto out;
        }
        c->token_uri = strdup(tu->valuestring);
    } else {
        c->token_uri = strdup(GAUTH_TOKEN_URI);
    }
    if (!c->token_uri)
        goto oom;
    rc = 0;
    goto out;
missing_field:
    seterr(err, errlen, "%s: \"%s\" is missing, empty or not a string (needed for type \"%s\")",
           source, missing, type);
    goto out;
oom:
    seterr(err, errlen, "%s: out of memory", source);
out:
    jwipe(root, "private_key");
    jwipe(root, "client_secret");
    jwipe(root, "refresh_token");
    cJSON_Delete(root);
    if (rc != 0)
        gauth_test_creds_free(c);
    return rc;
}

void gauth_test_creds_free(gauth_creds *c)
{
    free(c->client_email);
    free(c->private_key_id);
    free(c->token_uri);
    free(c->client_id);
    wipe_free(c->client_secret);
    wipe_free(c->refresh_token);
    EVP_PKEY_free(c->pkey);
    gauth_kind k = c->kind;
    memset(c, 0, sizeof *c);
    c->kind = k;
}

int gauth_test_parse_creds(const char *json, size_t len, const char *source, gauth_creds *c,
                           char *err, size_t errlen)
{
    return parse_creds(json, len, source, c, err, errlen);
}

/* ---- JWT -------------------------------------------------------------------------------- */

/* base64url without padding (RFC 7515 §2). */
static char *b64url(const unsigned char *d, size_t n)
{
    if (n > INT_MAX / 2)
        return NULL;
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (!out)
        return NULL;
    int len = EVP_EncodeBlock((unsigned char *)out, d, (int)n);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = 0;
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return out;
}

static char *make_jwt(EVP_PKEY *pkey, const char *kid, const char *iss, const char *scope,
                      const char *aud, long long iat, char *err, size_t errlen)
{
    sbuf hdr, cl;
    sbuf_init(&hdr);
    sbuf_init(&cl);
    sbuf_adds(&hdr, "{\"alg\":\"RS256\",\"typ\":\"JWT\"");
    if (kid) {
        sbuf_adds(&hdr, ",\"kid\":");
        sbuf_add_jstr(&hdr, kid);
    }
    sbuf_adds(&hdr, "}");
    sbuf_adds(&cl, "{\"iss\":");
    sbuf_add_jstr(&cl, iss);
    sbuf_adds(&cl, ",\"scope\":");
    sbuf_add_jstr(&cl, scope);
    sbuf_adds(&cl, ",\"aud\":");
    sbuf_add_jstr(&cl, aud);
    sbuf_addf(&cl, ",\"iat\":%lld,\"exp\":%lld}", iat, iat + 3600);

    char *h64 = NULL, *c64 = NULL, *s64 = NULL, *out = NULL;
    unsigned char *sig = NULL;
    EVP_MD_CTX *ctx = NULL;
    if (hdr.failed || cl.failed)
        goto oom;
    h64 = b64url((const unsigned char *)hdr.p, hdr.len);
    c64 = b64url((const unsigned char *)cl.p, cl.len);
    if (!h64 || !c64)
        goto oom;
    size_t hl = strlen(h64), clen = strlen(c64);
    char *input = malloc(hl + 1 + clen + 1);
    if (!input)
        goto oom;
    memcpy(input, h64, hl);
    input[hl] = '.';
    memcpy(input + hl + 1, c64, clen + 1);
    size_t inlen = hl + 1 + clen, siglen = 0;
    ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, &siglen, (const unsigned char *)input, inlen) != 1 ||
        !(sig = malloc(siglen)) ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, inlen) != 1) {
        ERR_clear_error();
        free(input);
        seterr(err, errlen, "signing the JWT assertion failed");
        goto done;
    }
    s64 = b64url(sig, siglen);
    if (!s64) {
        free(input);
        goto oom;
    }
    out = xasprintf("%s.%s", input, s64);
    free(input);
    if (!out)
        goto oom;
    goto done;
oom:
    seterr(err, errlen, "out of memory building the JWT assertion");
done:
    EVP_MD_CTX_free(ctx);
    free(sig);
    free(h64);
    free(c64);
    free(s64);
    sbuf_free(&hdr);
    sbuf_free(&cl);
    return out;
}

char *gauth_test_jwt(EVP_PKEY *pkey, const char *kid, const char *iss, const char *scope,
                     const char *aud, long long iat, char *err, size_t errlen)
{
    return make_jwt(pkey, kid, iss, scope, aud, iat, err, errlen);
}

/* ---- token responses -------------------------------------------------------------------- */

/* Usable as an Authorization header value: printable ASCII, no spaces. */
static int token_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > MAX_TOKEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    return 1;
}

static int parse_token(const char *body, size_t len, long status, char **token,
                       long long *expires_in, char *err, size_t errlen)
{
    *token = NULL;
    *expires_in = 0;
    cJSON *j = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    int rc = -1;
    if (status < 200 || status > 299) {
        /* OAuth errors are {"error": code, "error_description": text}; Google APIs also use
         * {"error": {"code", "message", "status"}}. Codes and descriptions are not secret. */
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        char code[64] = "", desc[256] = "";
        if (cJSON_IsString(e)) {
            clean_copy(code, sizeof code, e->valuestring);
            clean_copy(desc, sizeof desc, jstr(j, "error_description"));
        } else if (cJSON_IsObject(e)) {
            clean_copy(code, sizeof code, jstr(e, "status"));
            clean_copy(desc, sizeof desc, jstr(e, "message"));
        }
        if (code[0] && desc[0])
            seterr(err, errlen, "HTTP %ld: %s: %s", status, code, desc);
        else if (code[0] || desc[0])
            seterr(err, errlen, "HTTP %ld: %s", status, code[0] ? code : desc);
        else
            seterr(err, errlen, "HTTP %ld", status);
        goto out;
    }
    if (!cJSON_IsObject(j)) {
        seterr(err, errlen, "HTTP %ld but the body is not a JSON object", status);
        goto out;
    }
    const char *tok = jstr(j, "access_token");
    if (!tok || !token_ok(tok)) {
        seterr(err, errlen, "HTTP %ld but no usable \"access_token\" in the response", status);
        goto out;
    }
    const char *tt = jstr(j, "token_type");
    if (tt && strcasecmp(tt, "Bearer") != 0) {
        char t[32];
        clean_copy(t, sizeof t, tt);
        seterr(err, errlen, "token_type \"%s\" is not Bearer", t);
        goto out;
    }
    const cJSON *ei = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
    double secs = 3600; /* absent: Google's usual lifetime */
    if (cJSON_IsNumber(ei))
        secs = ei->valuedouble;
    else if (cJSON_IsString(ei) && ei->valuestring) {
        char *endp;
        secs = strtod(ei->valuestring, &endp);
        if (endp == ei->valuestring || *endp)
            secs = -1;
    } else if (ei && !cJSON_IsNull(ei))
        secs = -1;
    if (!(secs >= 0) || secs > 7 * 86400.0) {
        seterr(err, errlen, "\"expires_in\" is not a sensible number of seconds");
        goto out;
    }
    *token = strdup(tok);
    if (!*token) {
        seterr(err, errlen, "out of memory");
        goto out;
    }
    *expires_in = (long long)secs;
    rc = 0;
out:
    jwipe(j, "access_token");
    jwipe(j, "id_token");
    jwipe(j, "refresh_token");
    cJSON_Delete(j);
    return rc;
}

int gauth_test_parse_token(const char *body, size_t len, long http_status, char **token,
                           long long *expires_in, char *err, size_t errlen)
{
    return parse_token(body, len, http_status, token, expires_in, err, errlen);
}

/* ---- handles ---------------------------------------------------------------------------- */

static void gauth_free(gauth *g)
{
    while (g->wq) {
        waiter *w = g->wq;
        g->wq = w->next;
        wipe_free(w->text);
        free(w);
    }
    free(g->key);
    free(g->label);
    free(g->desc);
    free(g->url);
    free(g->proxy);
    wipe_free(g->token);
    gauth_test_creds_free(&g->c);
    free(g);
}

static gauth *find_locked(const char *key)
{
    for (gauth *g = G.list; g; g = g->next)
        if (strcmp(g->key, key) == 0)
            return g;
    return NULL;
}

/* Takes ownership of key, label and c (even on failure). Returns the registered handle, which
 * is an earlier one with the same key if another thread got there first. */
static gauth *make_handle(char *key, char *label, gauth_creds *c, char *err, size_t errlen)
{
    gauth *g = calloc(1, sizeof *g);
    if (!g || !key || !label) {
        free(g);
        free(key);
        free(label);
        gauth_test_creds_free(c);
        seterr(err, errlen, "google credentials: out of memory");
        return NULL;
    }
    g->key = key;
    g->label = label;
    g->c = *c;
    memset(c, 0, sizeof *c);
    g->wq_tail = &g->wq;
    if (g->c.kind == GAUTH_SERVICE_ACCOUNT) {
        g->desc = xasprintf("service account %s (from %s)", g->c.client_email, label);
        g->url = strdup(g->c.token_uri);
    } else if (g->c.kind == GAUTH_AUTHORIZED_USER) {
        g->desc = xasprintf("authorized user (from %s)", label);
        g->url = strdup(g->c.token_uri);
    } else {
        const char *host = getenv("GCE_METADATA_HOST");
        g->desc = strdup(label);
        g->url = xasprintf("http://%s%s", host && *host ? host : METADATA_HOST, METADATA_PATH);
    }
    ups_proxy_env pe;
    ups_proxy_env_read(&pe);
    g->proxy = g->url ? ups_proxy_for_url(&pe, g->url) : NULL;
    if (!g->desc || !g->url || !g->proxy) {
        gauth_free(g);
        seterr(err, errlen, "google credentials: out of memory");
        return NULL;
    }
    pthread_mutex_lock(&G.mu);
    gauth *old = find_locked(g->key);
    if (!old) {
        g->next = G.list;
        G.list = g;
    }
    pthread_mutex_unlock(&G.mu);
    if (old) {
        gauth_free(g);
        return old;
    }
    return g;
}

static gauth *lookup(const char *key)
{
    pthread_mutex_lock(&G.mu);
    gauth *g = find_locked(key);
    pthread_mutex_unlock(&G.mu);
    return g;
}

/* Reads a whole regular file; NULL with errno-style reason in why. */
static char *slurp(const char *path, size_t *len, char *why, size_t whylen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        seterr(why, whylen, "%s", strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) < 0) {
        seterr(why, whylen, "%s", strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        seterr(why, whylen, "not a regular file");
        goto fail;
    }
    if (st.st_size > MAX_CREDS_FILE) {
        seterr(why, whylen, "larger than %d bytes", MAX_CREDS_FILE);
        goto fail;
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = malloc(cap);
    if (!buf) {
        seterr(why, whylen, "out of memory");
        goto fail;
    }
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            seterr(why, whylen, "%s", strerror(errno));
            OPENSSL_cleanse(buf, n);
            free(buf);
            buf = NULL;
            goto fail;
        }
        if (r == 0 || n + (size_t)r == cap - 1) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = 0;
    *len = n;
fail:
    close(fd);
    return buf;
}

static gauth *load_file(const char *path, char *label, char *err, size_t errlen)
{
    char why[128];
    size_t len = 0;
    char *text = slurp(path, &len, why, sizeof why);
    if (!text) {
        seterr(err, errlen, "%s: cannot read: %s", label, why);
        free(label);
        return NULL;
    }
    /* Same path and same content: same handle. A rotated key file read on config reload gets a
     * new handle (the old one lives until shutdown: a few hundred bytes per rotation). */
    char hex[65], *real = realpath(path, NULL);
    sha256_hex(text, len, hex);
    char *key = xasprintf("file:%s:%s", real ? real : path, hex);
    free(real);
    gauth *g = key ? lookup(key) : NULL;
    if (g) {
        free(key);
        free(label);
    } else {
        gauth_creds c;
        if (parse_creds(text, len, label, &c, err, errlen) == 0)
            g = make_handle(key, label, &c, err, errlen);
        else {
            free(key);
            free(label);
        }
    }
    OPENSSL_cleanse(text, len);
    free(text);
    return g;
}

gauth *gauth_get(const char *vertex_credentials, char *err, size_t errlen)
{
    seterr(err, errlen, "%s", "");
    const char *vc = vertex_credentials ? skip_ws(vertex_credentials) : "";
    if (*vc == '{') {
        const char *label = "inline vertex_credentials";
        size_t len = strlen(vc);
        char hex[65];
        sha256_hex(vc, len, hex);
        char *key = xasprintf("inline:%s", hex);
        gauth *g = key ? lookup(key) : NULL;
        if (g) {
            free(key);
            return g;
        }
        gauth_creds c;
        if (parse_creds(vc, len, label, &c, err, errlen) < 0) {
            free(key);
            return NULL;
        }
        return make_handle(key, strdup(label), &c, err, errlen);
    }
    if (*vc) /* a path: used as given, surrounding spaces and all, as a file name would be */
        return load_file(vertex_credentials, strdup(vertex_credentials), err, errlen);
    const char *gac = getenv("GOOGLE_APPLICATION_CREDENTIALS");
    if (gac && *gac)
        return load_file(gac, xasprintf("GOOGLE_APPLICATION_CREDENTIALS file %s", gac), err,
                         errlen);
    /* gcloud's ADC file: $CLOUDSDK_CONFIG replaces ~/.config/gcloud when set */
    const char *dir = getenv("CLOUDSDK_CONFIG"), *home = getenv("HOME");
    char *adc = NULL;
    if (dir && *dir)
        adc = xasprintf("%s/application_default_credentials.json", dir);
    else if (home && *home)
        adc = xasprintf("%s/.config/gcloud/application_default_credentials.json", home);
    if (adc) {
        struct stat st;
        if (stat(adc, &st) == 0 || (errno != ENOENT && errno != ENOTDIR)) {
            gauth *g = load_file(adc, xasprintf("ADC file %s", adc), err, errlen);
            free(adc);
            return g;
        }
        free(adc);
    }
    const char *mh = getenv("GCE_METADATA_HOST");
    char *key = xasprintf("metadata:%s", mh && *mh ? mh : METADATA_HOST);
    gauth *g = key ? lookup(key) : NULL;
    if (g) {
        free(key);
        return g;
    }
    gauth_creds c = {.kind = GAUTH_METADATA};
    char *label = mh && *mh ? xasprintf("GCE metadata server at %s", mh)
                            : strdup("GCE metadata server");
    return make_handle(key, label, &c, err, errlen);
}

const char *gauth_describe(const gauth *g)
{
    return g ? g->desc : "no google credentials";
}

/* ---- the refresh thread ----------------------------------------------------------------- */

typedef struct {
    sbuf b;
    bool too_big;
} rbuf;

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    rbuf *r = ud;
    size_t n = size * nmemb;
    if (r->b.len + n > MAX_RESPONSE) {
        r->too_big = true;
        return 0; /* CURLE_WRITE_ERROR */
    }
    sbuf_add(&r->b, p, n);
    return r->b.failed ? 0 : n;
}

/* gauth_shutdown must not wait out a hung token endpoint. curl's progress callback notices the
 * stop flag within a second; to be immediate, the sockets of the exchange in flight are tracked
 * and shut down, which wakes curl's poll at once. Both callbacks and the shutdown run under
 * g_sock_mu, so a descriptor is never shut down after curl closed it (and the number reused). */
static pthread_mutex_t g_sock_mu = PTHREAD_MUTEX_INITIALIZER;
static curl_socket_t g_socks[4] = {CURL_SOCKET_BAD, CURL_SOCKET_BAD, CURL_SOCKET_BAD,
                                   CURL_SOCKET_BAD};

static curl_socket_t open_sock(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    curl_socket_t s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
    if (s == CURL_SOCKET_BAD)
        return s;
    pthread_mutex_lock(&g_sock_mu);
    for (size_t i = 0; i < sizeof g_socks / sizeof *g_socks; i++)
        if (g_socks[i] == CURL_SOCKET_BAD) {
            g_socks[i] = s;
            break;
        }
    if (atomic_load(&g_stop))
        shutdown(s, SHUT_RDWR);
    pthread_mutex_unlock(&g_sock_mu);
    return s;
}

static int close_sock(void *ud, curl_socket_t s)
{
    pthread_mutex_lock(&g_sock_mu);
    for (size_t i = 0; i < sizeof g_socks / sizeof *g_socks; i++)
        if (g_socks[i] == s)
            g_socks[i] = CURL_SOCKET_BAD;
    int rc = close(s);
    pthread_mutex_unlock(&g_sock_mu);
    return rc;
}

static void abort_sockets(void)
{
    pthread_mutex_lock(&g_sock_mu);
    for (size_t i = 0; i < sizeof g_socks / sizeof *g_socks; i++)
        if (g_socks[i] != CURL_SOCKET_BAD)
            shutdown(g_socks[i], SHUT_RDWR);
    pthread_mutex_unlock(&g_sock_mu);
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    return atomic_load(&g_stop) ? 1 : 0; /* gauth_shutdown: abort the exchange */
}

static void wipe_sbuf(sbuf *b)
{
    if (b->p)
        OPENSSL_cleanse(b->p, b->cap);
    sbuf_free(b);
}

/* One exchange with the token endpoint, without G.mu. The token (heap), or NULL with the reason
 * in err (which the caller prefixes with the source). */
static char *fetch_token(gauth *g, long long *expires_in, char *err, size_t errlen)
{
    CURL *e = curl_easy_init();
    if (!e) {
        seterr(err, errlen, "curl_easy_init failed");
        return NULL;
    }
    sbuf form;
    rbuf resp = {.too_big = false};
    sbuf_init(&form);
    sbuf_init(&resp.b);
    struct curl_slist *h = NULL;
    char *tok = NULL, errbuf[CURL_ERROR_SIZE] = "";
    if (g->c.kind == GAUTH_METADATA) {
        h = curl_slist_append(h, "Metadata-Flavor: Google");
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (g->c.kind == GAUTH_SERVICE_ACCOUNT) {
            char *jwt = make_jwt(g->c.pkey, g->c.private_key_id, g->c.client_email, GAUTH_SCOPE,
                                 g->c.token_uri, (long long)time(NULL), err, errlen);
            char *a = jwt ? curl_easy_escape(e, jwt, 0) : NULL;
            char *gt = curl_easy_escape(e, JWT_GRANT, 0);
            if (a && gt)
                sbuf_addf(&form, "grant_type=%s&assertion=%s", gt, a);
            else if (jwt)
                form.failed = true;
            wipe_free(jwt);
            if (a)
                OPENSSL_cleanse(a, strlen(a));
            curl_free(a);
            curl_free(gt);
            if (!jwt)
                goto out;
        } else {
            char *id = curl_easy_escape(e, g->c.client_id, 0);
            char *sec = curl_easy_escape(e, g->c.client_secret, 0);
            char *rt = curl_easy_escape(e, g->c.refresh_token, 0);
            if (id && sec && rt)
                sbuf_addf(&form, "grant_type=refresh_token&client_id=%s&client_secret=%s"
                                 "&refresh_token=%s",
                          id, sec, rt);
            else
                form.failed = true;
            if (sec)
                OPENSSL_cleanse(sec, strlen(sec));
            if (rt)
                OPENSSL_cleanse(rt, strlen(rt));
            curl_free(id);
            curl_free(sec);
            curl_free(rt);
        }
        if (form.failed || !form.p) {
            seterr(err, errlen, "out of memory building the token request");
            goto out;
        }
        h = curl_slist_append(h, "Content-Type: application/x-www-form-urlencoded");
        h = curl_slist_append(h, "Expect:");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, form.p);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)form.len);
    }
    h = curl_slist_append(h, "Accept: application/json");
    /* under the lock, as gauth_set_tls may run meanwhile; libcurl copies the path */
    CURLcode tls = CURLE_OK;
    pthread_mutex_lock(&G.mu);
    if (G.tls_insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (G.tls_ca) {
        tls = curl_easy_setopt(e, CURLOPT_CAINFO, G.tls_ca); /* that bundle only, as upstream */
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    pthread_mutex_unlock(&G.mu);
    if (tls != CURLE_OK) {
        seterr(err, errlen, "out of memory building the token request");
        goto out;
    }
    curl_easy_setopt(e, CURLOPT_URL, g->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sluice/" SLUICE_VERSION);
    curl_easy_setopt(e, CURLOPT_PROXY, g->proxy);
    curl_easy_setopt(e, CURLOPT_NOPROXY, ""); /* proxy.h decided; curl must not re-decide */
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)TOTAL_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_sock);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_sock);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        if (resp.too_big)
            seterr(err, errlen, "token request to %s: response larger than %d bytes", g->url,
                   MAX_RESPONSE);
        else
            seterr(err, errlen, "token request to %s failed: %s%s", g->url,
                   errbuf[0] ? errbuf : curl_easy_strerror(rc),
                   g->c.kind == GAUTH_METADATA
                       ? " (the metadata server is the last resort: no vertex_credentials, "
                         "GOOGLE_APPLICATION_CREDENTIALS or gcloud ADC file was found)"
                       : "");
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (resp.b.failed) {
        seterr(err, errlen, "out of memory reading the token response");
        goto out;
    }
    char why[384];
    if (parse_token(resp.b.p, resp.b.len, status, &tok, expires_in, why, sizeof why) < 0)
        seterr(err, errlen, "token request to %s: %s", g->url, why);
out:
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    wipe_sbuf(&form);
    wipe_sbuf(&resp.b);
    return tok;
}

static void deliver(void *arg)
{
    waiter *w = arg;
    if (w->ok && w->text)
        w->cb(w->arg, w->text, NULL);
    else
        w->cb(w->arg, NULL, w->text ? w->text : "google token refresh: out of memory");
    wipe_free(w->text);
    free(w);
}

/* Hands every waiter of a finished refresh to its mailbox. Runs without G.mu. */
static void post_all(waiter *list, int ok, const char *text)
{
    while (list) {
        waiter *w = list;
        list = w->next;
        w->next = NULL;
        w->ok = ok;
        w->text = strdup(text);
        int tries = 0;
        while (mbox_post(w->mb, deliver, w) < 0) {
            if (++tries == 100) { /* a second without memory: the callback is lost */
                log_msg(LOG_ERROR, "google auth: could not post a token callback (out of memory)");
                wipe_free(w->text);
                free(w);
                break;
            }
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

/* When g's next refresh is due (gauth clock), or INFINITY: at once when workers wait (after any
 * backoff); otherwise, for a token that workers still use, once it has less than REFRESH_AHEAD
 * left, but never before half its lifetime, so a server handing out short-lived tokens is not
 * asked in a loop. An idle source is left alone and its token lapses. */
static double due_at(const gauth *g)
{
    if (g->refreshing)
        return INFINITY;
    if (g->wq)
        return g->retry_at;
    if (g->token && g->asked) {
        double t = fmax(g->expires - REFRESH_AHEAD, g->got + (g->expires - g->got) / 2);
        return t < g->expires ? fmax(t, g->retry_at) : INFINITY;
    }
    return INFINITY;
}

/* Records the outcome of a refresh and delivers it; called and returns with G.mu held. */
static void finish(gauth *g, double started, char *tok, long long expires_in, const char *why)
{
    waiter *list = g->wq;
    g->wq = NULL;
    g->wq_tail = &g->wq;
    g->refreshing = 0;
    char msg[640];
    if (tok) {
        wipe_free(g->token);
        g->token = tok;
        g->got = started;
        g->expires = started + (double)expires_in;
        g->asked = 0;
        g->fails = 0;
        g->retry_at = 0;
    } else {
        g->fails++;
        int b = g->fails >= 6 ? BACKOFF_MAX : 1 << (g->fails - 1);
        g->retry_at = mono() + (b > BACKOFF_MAX ? BACKOFF_MAX : b);
        snprintf(msg, sizeof msg, "%s: %s", g->desc, why);
    }
    /* g->token is replaced only on this thread, so reading it unlocked below is safe */
    pthread_mutex_unlock(&G.mu);
    if (tok)
        log_msg(LOG_DEBUG, "google auth: new token for %s, valid %lld s", g->desc, expires_in);
    else
        log_msg(LOG_WARN, "google auth: %s", msg);
    post_all(list, tok != NULL, tok ? tok : msg);
    pthread_mutex_lock(&G.mu);
}

static void *run(void *unused)
{
    thread_name("sluice-gauth");
    pthread_mutex_lock(&G.mu);
    while (!atomic_load(&g_stop)) {
        double now = mono(), wake = INFINITY;
        gauth *pick = NULL;
        for (gauth *g = G.list; g; g = g->next) {
            double t = due_at(g);
            if (t <= now) {
                pick = g;
                break;
            }
            if (t < wake)
                wake = t;
        }
        if (pick) {
            pick->refreshing = 1;
            pthread_mutex_unlock(&G.mu);
            char why[512] = "";
            long long exp_in = 0;
            char *tok = fetch_token(pick, &exp_in, why, sizeof why);
            pthread_mutex_lock(&G.mu);
            if (atomic_load(&g_stop)) {
                wipe_free(tok);
                break;
            }
            finish(pick, now, tok, exp_in, why);
            /* the list head may have changed; rescan from the top (refreshed handles are no
             * longer due, so others get their turn) */
            continue;
        }
        if (isinf(wake)) {
            pthread_cond_wait(&G.cv, &G.mu);
        } else {
            double at = wake - (double)atomic_load(&g_offset_ms) / 1000.0; /* real clock */
            struct timespec ts;
            ts.tv_sec = (time_t)at;
            ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
            if (ts.tv_nsec >= 1000000000L)
                ts.tv_nsec = 999999999L;
            pthread_cond_timedwait(&G.cv, &G.mu, &ts);
        }
    }
    pthread_mutex_unlock(&G.mu);
    return NULL;
}

/* Starts the refresh thread if it is not running; G.mu held. */
static int ensure_thread(void)
{
    if (G.running)
        return 0;
    if (atomic_load(&g_stop))
        return -1;
    if (!G.cv_ready) {
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        int rc = pthread_cond_init(&G.cv, &ca);
        pthread_condattr_destroy(&ca);
        if (rc != 0)
            return -1;
        G.cv_ready = 1;
    }
    if (pthread_create(&G.th, NULL, run, NULL) != 0)
        return -1;
    G.running = 1;
    return 0;
}

int gauth_token(gauth *g, mbox *mb, gauth_cb cb, void *arg, char *buf, size_t buflen)
{
    if (!g || !mb || !cb)
        return -1;
    waiter *w = malloc(sizeof *w);
    pthread_mutex_lock(&G.mu);
    if (!g->asked) {
        /* the first use of this token since it was stored makes it worth refreshing ahead of
         * expiry: the thread may be asleep with nothing due, so tell it (once per token) */
        g->asked = 1;
        if (G.running)
            pthread_cond_signal(&G.cv);
    }
    if (g->token && g->expires - mono() > SERVE_MIN_LEFT) {
        size_t n = strlen(g->token);
        int rc = -1;
        if (buf && n < buflen) {
            memcpy(buf, g->token, n + 1);
            rc = 1;
        }
        pthread_mutex_unlock(&G.mu);
        free(w);
        return rc;
    }
    if (!w || ensure_thread() < 0) {
        pthread_mutex_unlock(&G.mu);
        free(w);
        return -1;
    }
    *w = (waiter){.mb = mb, .cb = cb, .arg = arg};
    *g->wq_tail = w;
    g->wq_tail = &w->next;
    if (!g->refreshing)
        pthread_cond_signal(&G.cv);
    pthread_mutex_unlock(&G.mu);
    return 0;
}

void gauth_test_advance(double seconds)
{
    atomic_fetch_add(&g_offset_ms, (long long)(seconds * 1000.0));
    pthread_mutex_lock(&G.mu);
    if (G.running)
        pthread_cond_signal(&G.cv);
    pthread_mutex_unlock(&G.mu);
}

void gauth_set_tls(bool verify, const char *ca_file)
{
    char *ca = ca_file ? strdup(ca_file) : NULL;
    if (ca_file && !ca)
        log_msg(LOG_WARN, "google token requests: out of memory: the default CA store is used");
    pthread_mutex_lock(&G.mu);
    G.tls_insecure = !verify;
    free(G.tls_ca);
    G.tls_ca = ca;
    pthread_mutex_unlock(&G.mu);
}

void gauth_shutdown(void)
{
    pthread_mutex_lock(&G.mu);
    int running = G.running;
    if (running) {
        atomic_store(&g_stop, true);
        pthread_cond_signal(&G.cv);
    }
    pthread_mutex_unlock(&G.mu);
    if (running) {
        abort_sockets();
        pthread_join(G.th, NULL);
    }
    pthread_mutex_lock(&G.mu);
    gauth *list = G.list;
    G.list = NULL;
    G.running = 0;
    if (G.cv_ready) {
        pthread_cond_destroy(&G.cv);
        G.cv_ready = 0;
    }
    atomic_store(&g_stop, false); /* gauth may be used again (tests do) */
    free(G.tls_ca);
    G.tls_ca = NULL;
    G.tls_insecure = false;
    pthread_mutex_unlock(&G.mu);
    while (list) {
        gauth *n = list->next;
        gauth_free(list);
        list = n;
    }
}
