/* store/dburl — database URLs (general_settings.database_url, DATABASE_URL) into an SQLite path
 * or a libpq keyword/value string.
 *
 * Written for the URLs people actually paste, not for RFC 3986: LiteLLM users keep passwords
 * such as "p@ss!word" unencoded, so the userinfo ends at the LAST '@' before the query, and
 * everything between "://" and that '@' is user[:password] (the first ':' splits them, so
 * passwords may contain ':', '/', '#', '@'). Only a '?' in a password must be percent-encoded,
 * because the query starts at the first '?'. Percent-encoding is decoded everywhere.
 *
 * Query parameters become libpq keywords, checked against the linked libpq's own list
 * (PQconndefaults), so a typo fails at start instead of as a connection error. Prisma-only
 * parameters that LiteLLM and its Helm chart put on DATABASE_URL (connection_limit,
 * pool_timeout, pgbouncer, ...) are dropped, and Prisma's schema=NAME becomes
 * options='-c search_path=NAME', which is what it means there. Values are always single-quoted
 * in the conninfo with ' and \ backslash-escaped, the one rule libpq applies to quoted values.
 * Defaults added unless the URL sets them: connect_timeout=5, fallback_application_name=sluice,
 * TCP keepalives after 30 s idle. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "store/store_internal.h"

#define DEFAULT_CONNECT_TIMEOUT "5"

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in s[0..n); a '%' not followed by two hex digits stays as it is (a raw password
 * such as "100%sure"). NULL when out of memory or when the text decodes to a NUL byte. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
            (lo = hexval(s[i + 2])) >= 0) {
            char c = (char)(hi * 16 + lo);
            if (!c) {
                free(out);
                return NULL;
            }
            *o++ = c;
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = 0;
    return out;
}

int db_conninfo_quote(char *buf, size_t cap, size_t len, const char *value)
{
    size_t need = 2;
    for (const char *p = value; *p; p++)
        need += (*p == '\'' || *p == '\\') ? 2 : 1;
    if (len + need + 1 > cap)
        return -1;
    char *o = buf + len;
    *o++ = '\'';
    for (const char *p = value; *p; p++) {
        if (*p == '\'' || *p == '\\')
            *o++ = '\\';
        *o++ = *p;
    }
    *o++ = '\'';
    *o = 0;
    return (int)(o - buf);
}

/* ---- keyword list ----------------------------------------------------------------------- */

typedef struct {
    char *k, *v;
} kv;

typedef struct {
    kv *a;
    int n, cap;
    bool oom;
} kvlist;

static kv *kv_find(kvlist *l, const char *k)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->a[i].k, k))
            return &l->a[i];
    return NULL;
}

/* Sets k to v (both taken over; freed on failure). Later settings replace earlier ones, as
 * query parameters override the URL's own parts in libpq's URI syntax. */
static void kv_set_own(kvlist *l, char *k, char *v)
{
    if (!k || !v || l->oom) {
        free(k);
        free(v);
        l->oom = true;
        return;
    }
    kv *e = kv_find(l, k);
    if (e) {
        free(k);
        free(e->v);
        e->v = v;
        return;
    }
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        kv *a = realloc(l->a, (size_t)cap * sizeof *a);
        if (!a) {
            free(k);
            free(v);
            l->oom = true;
            return;
        }
        l->a = a;
        l->cap = cap;
    }
    l->a[l->n].k = k;
    l->a[l->n].v = v;
    l->n++;
}

static void kv_set(kvlist *l, const char *k, const char *v)
{
    kv_set_own(l, strdup(k), strdup(v));
}

static void kv_free(kvlist *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->a[i].k);
        if (l->a[i].v) {
            /* may hold a password */
            memset(l->a[i].v, 0, strlen(l->a[i].v));
            free(l->a[i].v);
        }
    }
    free(l->a);
    memset(l, 0, sizeof *l);
}

/* Parameters Prisma (and LiteLLM's CLI, which appends connection_limit and pool_timeout)
 * understand and libpq does not. They describe Prisma's pool; sluice has one connection. */
static bool prisma_only(const char *k)
{
    static const char *const names[] = {"connection_limit", "pool_timeout", "pgbouncer",
                                        "socket_timeout", "statement_cache_size", "sslaccept",
                                        "sslidentity", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(k, names[i]))
            return true;
    return false;
}

static bool libpq_keyword(PQconninfoOption *defs, const char *k)
{
    if (!defs)
        return true; /* cannot tell: let libpq judge at connect time */
    for (PQconninfoOption *o = defs; o->keyword; o++)
        if (!strcmp(o->keyword, k))
            return true;
    return false;
}

static bool secret_key(const char *k)
{
    return !strcmp(k, "password") || !strcmp(k, "sslpassword");
}

/* ---- display ---------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} dbuf;

static void d_add(dbuf *d, const char *s, size_t n)
{
    if (d->oom)
        return;
    if (d->len + n + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 64;
        while (d->len + n + 1 > cap)
            cap *= 2;
        char *p = realloc(d->p, cap);
        if (!p) {
            d->oom = true;
            return;
        }
        d->p = p;
        d->cap = cap;
    }
    memcpy(d->p + d->len, s, n);
    d->len += n;
    d->p[d->len] = 0;
}

static void d_adds(dbuf *d, const char *s)
{
    d_add(d, s, strlen(s));
}

/* ---- postgres ----------------------------------------------------------------------------- */

/* Backslash-escapes spaces and backslashes for libpq's options value ("-c a=b -c c=d"). */
static char *options_escape(const char *s)
{
    char *out = malloc(strlen(s) * 2 + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\\')
            *o++ = '\\';
        *o++ = *s;
    }
    *o = 0;
    return out;
}

static int parse_hosts(const char *s, size_t n, kvlist *kvs, char *err, size_t errlen)
{
    dbuf hosts = {0}, ports = {0};
    bool any_host = false, any_port = false;
    int rc = -1;
    size_t i = 0;
    for (int idx = 0;; idx++) {
        size_t start = i;
        while (i < n && s[i] != ',')
            i++;
        const char *h = s + start, *end = s + i;
        const char *hend, *port = NULL;
        if (h < end && *h == '[') {
            const char *rb = memchr(h, ']', (size_t)(end - h));
            if (!rb) {
                set_err(err, errlen, "database URL: missing ']' after IPv6 address");
                goto out;
            }
            hend = rb;
            h++;
            if (rb + 1 < end) {
                if (rb[1] != ':') {
                    set_err(err, errlen, "database URL: unexpected text after ']'");
                    goto out;
                }
                port = rb + 2;
            }
        } else {
            const char *colon = memchr(h, ':', (size_t)(end - h));
            hend = colon ? colon : end;
            if (colon)
                port = colon + 1;
        }
        char *host = pct_decode(h, (size_t)(hend - h));
        if (!host) {
            set_err(err, errlen, "database URL: invalid host");
            goto out;
        }
        if (idx)
            d_add(&hosts, ",", 1);
        d_adds(&hosts, host);
        any_host |= *host != 0;
        free(host);
        if (idx)
            d_add(&ports, ",", 1);
        if (port && port < end) {
            size_t plen = (size_t)(end - port);
            long v = 0;
            bool ok = plen <= 5;
            for (size_t k = 0; ok && k < plen; k++) {
                ok = isdigit((unsigned char)port[k]);
                v = v * 10 + (port[k] - '0');
            }
            if (!ok || v < 1 || v > 65535) {
                /* not quoted: with a malformed URL this text may be part of the password */
                set_err(err, errlen, "database URL: invalid port (expected a number 1-65535)");
                goto out;
            }
            d_add(&ports, port, plen);
            any_port = true;
        }
        if (i >= n)
            break;
        i++; /* ',' */
    }
    if (hosts.oom || ports.oom) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    if (any_host)
        kv_set(kvs, "host", hosts.p);
    if (any_port)
        kv_set(kvs, "port", ports.p);
    rc = 0;
out:
    free(hosts.p);
    free(ports.p);
    return rc;
}

static int parse_pg(const char *scheme, const char *rest, db_url *out, char *err, size_t errlen)
{
    kvlist kvs = {0};
    dbuf disp = {0};
    PQconninfoOption *defs = NULL;
    char *schema = NULL;
    int rc = -1;

    size_t len = strlen(rest);
    const char *q = strchr(rest, '?');
    size_t main_len = q ? (size_t)(q - rest) : len;
    const char *at = NULL;
    for (size_t i = main_len; i > 0; i--)
        if (rest[i - 1] == '@') {
            at = rest + i - 1;
            break;
        }
    if (!at && q && strchr(q, '@')) {
        /* "user:pa?ss@host": the query would start inside the password */
        set_err(err, errlen,
                "database URL: '@' after '?': percent-encode a '?' in the password as %%3F "
                "(and an '@' in a parameter as %%40)");
        goto out;
    }
    const char *hp = at ? at + 1 : rest, *main_end = rest + main_len;
    const char *slash = memchr(hp, '/', (size_t)(main_end - hp));
    const char *hosts_end = slash ? slash : main_end;

    d_adds(&disp, scheme);
    d_adds(&disp, "://");

    if (at) {
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *uend = colon ? colon : at;
        char *user = pct_decode(rest, (size_t)(uend - rest));
        if (!user) {
            set_err(err, errlen, "database URL: invalid user name");
            goto out;
        }
        if (*user)
            kv_set(&kvs, "user", user);
        d_adds(&disp, user);
        free(user);
        if (colon) {
            char *pw = pct_decode(colon + 1, (size_t)(at - colon - 1));
            if (!pw) {
                set_err(err, errlen, "database URL: the password contains an encoded NUL byte");
                goto out;
            }
            if (*pw) {
                kv_set(&kvs, "password", pw);
                d_adds(&disp, ":***");
            }
            memset(pw, 0, strlen(pw));
            free(pw);
        }
        d_adds(&disp, "@");
    }
    if (parse_hosts(hp, (size_t)(hosts_end - hp), &kvs, err, errlen) < 0)
        goto out;
    d_add(&disp, hp, (size_t)(main_end - hp)); /* host(s), port(s), /db: nothing secret */
    if (slash && slash + 1 < main_end) {
        char *db = pct_decode(slash + 1, (size_t)(main_end - slash - 1));
        if (!db) {
            set_err(err, errlen, "database URL: invalid database name");
            goto out;
        }
        kv_set(&kvs, "dbname", db);
        free(db);
    }

    if (q && q[1]) {
        defs = PQconndefaults();
        const char *p = q + 1;
        char sepc = '?';
        while (*p) {
            const char *amp = strchr(p, '&');
            size_t seglen = amp ? (size_t)(amp - p) : strlen(p);
            if (seglen) {
                const char *eq = memchr(p, '=', seglen);
                if (!eq) {
                    set_err(err, errlen, "database URL: a parameter has no value (name=value)");
                    goto out;
                }
                char *k = pct_decode(p, (size_t)(eq - p));
                char *v = pct_decode(eq + 1, seglen - (size_t)(eq - p) - 1);
                if (!k || !v) {
                    free(k);
                    free(v);
                    set_err(err, errlen, "database URL: invalid parameter");
                    goto out;
                }
                d_add(&disp, &sepc, 1);
                sepc = '&';
                if (secret_key(k)) {
                    d_adds(&disp, k);
                    d_adds(&disp, "=***");
                } else {
                    d_add(&disp, p, seglen);
                }
                if (!strcmp(k, "schema")) {
                    free(schema);
                    schema = v;
                    free(k);
                } else if (prisma_only(k)) {
                    free(k);
                    free(v);
                } else if (!libpq_keyword(defs, k)) {
                    set_err(err, errlen,
                            "database URL: unknown parameter '%.40s' (not a libpq connection "
                            "option)",
                            k);
                    free(k);
                    free(v);
                    goto out;
                } else {
                    kv_set_own(&kvs, k, v);
                }
            }
            if (!amp)
                break;
            p = amp + 1;
        }
    }
    if (schema && *schema) {
        char *esc = options_escape(schema);
        kv *o = kv_find(&kvs, "options");
        dbuf opt = {0};
        if (o && *o->v) {
            d_adds(&opt, o->v);
            d_adds(&opt, " ");
        }
        d_adds(&opt, "-c search_path=");
        d_adds(&opt, esc ? esc : "");
        free(esc);
        if (!esc || opt.oom) {
            free(opt.p);
            set_err(err, errlen, "out of memory");
            goto out;
        }
        kv_set_own(&kvs, strdup("options"), opt.p);
    }
    if (!kv_find(&kvs, "connect_timeout"))
        kv_set(&kvs, "connect_timeout", DEFAULT_CONNECT_TIMEOUT);
    if (!kv_find(&kvs, "fallback_application_name"))
        kv_set(&kvs, "fallback_application_name", "sluice");
    /* a server that disappears without closing the connection (failover, a dropped NAT entry)
     * is noticed in about a minute instead of the kernel's two hours */
    if (!kv_find(&kvs, "keepalives_idle"))
        kv_set(&kvs, "keepalives_idle", "30");
    if (!kv_find(&kvs, "keepalives_interval"))
        kv_set(&kvs, "keepalives_interval", "10");
    if (!kv_find(&kvs, "keepalives_count"))
        kv_set(&kvs, "keepalives_count", "3");
    if (kvs.oom || disp.oom) {
        set_err(err, errlen, "out of memory");
        goto out;
    }

    size_t cap = 1;
    for (int i = 0; i < kvs.n; i++)
        cap += strlen(kvs.a[i].k) + 2 * strlen(kvs.a[i].v) + 5;
    char *ci = malloc(cap);
    if (!ci) {
        set_err(err, errlen, "out of memory");
        goto out;
    }
    size_t n = 0;
    ci[0] = 0;
    for (int i = 0; i < kvs.n; i++) {
        n += (size_t)snprintf(ci + n, cap - n, "%s%s=", n ? " " : "", kvs.a[i].k);
        n = (size_t)db_conninfo_quote(ci, cap, n, kvs.a[i].v);
    }
    out->dialect = DB_POSTGRES;
    out->conninfo = ci;
    out->display = disp.p;
    disp.p = NULL;
    rc = 0;
out:
    if (defs)
        PQconninfoFree(defs);
    free(schema);
    free(disp.p);
    kv_free(&kvs);
    return rc;
}

/* ---- sqlite ------------------------------------------------------------------------------- */

static int parse_sqlite(const char *rest, db_url *out, char *err, size_t errlen)
{
    if (strchr(rest, '?')) {
        set_err(err, errlen, "database URL: sqlite URLs take no parameters (remove '?...')");
        return -1;
    }
    char *path;
    if (!*rest || !strcmp(rest, ":memory:") || !strcmp(rest, "/:memory:"))
        path = strdup(":memory:");
    else
        path = pct_decode(rest, strlen(rest));
    if (!path) {
        set_err(err, errlen, "database URL: invalid sqlite path");
        return -1;
    }
    size_t dl = strlen(path) + 16;
    char *disp = malloc(dl);
    if (!disp) {
        free(path);
        set_err(err, errlen, "out of memory");
        return -1;
    }
    snprintf(disp, dl, "sqlite://%s", path);
    out->dialect = DB_SQLITE;
    out->path = path;
    out->display = disp;
    return 0;
}

/* ---- entry ---------------------------------------------------------------------------------- */

int db_url_parse(const char *url, db_url *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = 0;
    if (!url) {
        set_err(err, errlen, "empty database URL");
        return -1;
    }
    while (isspace((unsigned char)*url))
        url++;
    size_t len = strlen(url);
    while (len && isspace((unsigned char)url[len - 1]))
        len--;
    if (!len) {
        set_err(err, errlen, "empty database URL");
        return -1;
    }
    char *u = strndup(url, len);
    if (!u) {
        set_err(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    const char *sep = strstr(u, "://");
    size_t slen = sep ? (size_t)(sep - u) : 0;
    bool scheme_ok = sep && slen > 0 && slen < 32 && isalpha((unsigned char)u[0]);
    for (size_t i = 0; scheme_ok && i < slen; i++)
        scheme_ok = isalnum((unsigned char)u[i]) || u[i] == '+' || u[i] == '-' || u[i] == '.';
    if (!scheme_ok) {
        /* a bare file path: SQLite */
        char *path = strdup(u), *disp = strdup(u);
        if (!path || !disp) {
            free(path);
            free(disp);
            set_err(err, errlen, "out of memory");
            goto done;
        }
        out->dialect = DB_SQLITE;
        out->path = path;
        out->display = disp;
        rc = 0;
        goto done;
    }
    char scheme[32];
    for (size_t i = 0; i < slen; i++)
        scheme[i] = (char)tolower((unsigned char)u[i]);
    scheme[slen] = 0;
    char *plus = strchr(scheme, '+');
    if (plus) {
        *plus = 0;
        if (!strcmp(scheme, "postgres") || !strcmp(scheme, "postgresql"))
            set_err(err, errlen, "drop the '+%s' driver suffix: sluice speaks PostgreSQL itself",
                    plus + 1);
        else if (!strcmp(scheme, "sqlite"))
            set_err(err, errlen, "drop the '+%s' driver suffix: sluice speaks SQLite itself",
                    plus + 1);
        else
            set_err(err, errlen,
                    "unsupported database URL scheme '%s+%s': use postgresql://user:password@"
                    "host:5432/db or sqlite:///path/to/file.db",
                    scheme, plus + 1);
        goto done;
    }
    if (!strcmp(scheme, "postgres") || !strcmp(scheme, "postgresql"))
        rc = parse_pg(scheme, sep + 3, out, err, errlen);
    else if (!strcmp(scheme, "sqlite"))
        rc = parse_sqlite(sep + 3, out, err, errlen);
    else
        set_err(err, errlen,
                "unsupported database URL scheme '%s': use postgresql://user:password@host:5432/db "
                "or sqlite:///path/to/file.db",
                scheme);
done:
    memset(u, 0, len);
    free(u);
    if (rc < 0)
        db_url_free(out);
    return rc;
}

void db_url_free(db_url *u)
{
    if (!u)
        return;
    free(u->path);
    if (u->conninfo) {
        memset(u->conninfo, 0, strlen(u->conninfo));
        free(u->conninfo);
    }
    free(u->display);
    memset(u, 0, sizeof *u);
}
