/* sbuf — see sbuf.h. */
#include "util/sbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/jscan.h"

void sbuf_init(sbuf *b)
{
    memset(b, 0, sizeof *b);
}

void sbuf_free(sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

bool sbuf_reserve(sbuf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + extra + 1)
        nc *= 2;
    char *np = realloc(b->p, nc);
    if (!np) {
        b->failed = true;
        return false;
    }
    b->p = np;
    b->cap = nc;
    return true;
}

void sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (!sbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sbuf_adds(sbuf *b, const char *s)
{
    sbuf_add(b, s, strlen(s));
}

void sbuf_addf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof tmp) {
        sbuf_add(b, tmp, (size_t)n);
        return;
    }
    if (!sbuf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sbuf_add_jstrn(sbuf *b, const char *s, size_t n)
{
    size_t need = json_escaped_size(n);
    if (!sbuf_reserve(b, need))
        return;
    json_escape(b->p, b->cap, &b->len, s, n);
    b->p[b->len] = 0;
}

void sbuf_add_jstr(sbuf *b, const char *s)
{
    if (!s)
        sbuf_add(b, "null", 4);
    else
        sbuf_add_jstrn(b, s, strlen(s));
}

void sbuf_add_u64(sbuf *b, unsigned long long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (!sbuf_reserve(b, (size_t)n))
        return;
    while (n)
        b->p[b->len++] = tmp[--n];
    b->p[b->len] = 0;
}

size_t fmt_ms3(char out[32], double ms)
{
    unsigned long long us = ms <= 0 ? 0 : (unsigned long long)(ms * 1000 + 0.5);
    unsigned long long whole = us / 1000;
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + whole % 10);
        whole /= 10;
    } while (whole);
    size_t o = 0;
    while (n)
        out[o++] = tmp[--n];
    out[o++] = '.';
    out[o++] = (char)('0' + us % 1000 / 100);
    out[o++] = (char)('0' + us % 100 / 10);
    out[o++] = (char)('0' + us % 10);
    out[o] = 0;
    return o;
}

void sbuf_add_ms3(sbuf *b, double ms)
{
    char tmp[32];
    sbuf_add(b, tmp, fmt_ms3(tmp, ms));
}

char *sbuf_take(sbuf *b, size_t *len)
{
    if (b->failed || !sbuf_reserve(b, 0)) {
        sbuf_free(b);
        return NULL;
    }
    char *p = b->p;
    if (len)
        *len = b->len;
    memset(b, 0, sizeof *b);
    return p;
}
