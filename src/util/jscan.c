/* jscan — see jscan.h. Strict RFC 8259 grammar; recursion bounded by JSCAN_MAX_DEPTH so a hostile
 * body of a million '[' cannot blow the worker's stack. UTF-8 is passed through unvalidated, as
 * cJSON and most upstreams do. */
#include "util/jscan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t n, i;
    jscan_err *err;
    int depth;
} scanner;

static int fail(scanner *sc, const char *msg)
{
    if (sc->err) {
        snprintf(sc->err->msg, sizeof sc->err->msg, "%s", msg);
        sc->err->offset = sc->i;
    }
    return -1;
}

static void skip_ws(scanner *sc)
{
    while (sc->i < sc->n) {
        char c = sc->s[sc->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        sc->i++;
    }
}

/* Nonzero when some byte of v is 0 (the high bit of the first such byte is set; bits of later
 * bytes may be set spuriously, which the callers do not rely on). */
static inline uint64_t has_zero_byte(uint64_t v)
{
    return (v - 0x0101010101010101ull) & ~v & 0x8080808080808080ull;
}

/* Nonzero when some byte of v is below 0x20. */
static inline uint64_t has_byte_below_0x20(uint64_t v)
{
    return (v - 0x2020202020202020ull) & ~v & 0x8080808080808080ull;
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

static int scan_string(scanner *sc)
{
    /* at the opening quote */
    sc->i++;
    while (sc->i < sc->n) {
        /* fast path: plain bytes, eight at a time while no byte of the word is a quote, a
         * backslash or a control character (the word tests are exact for "any such byte"; the
         * byte loop below then finds which) */
        const char *p = sc->s + sc->i;
        const char *end = sc->s + sc->n;
        while (end - p >= 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            if (has_zero_byte(v ^ 0x2222222222222222ull) | has_zero_byte(v ^ 0x5c5c5c5c5c5c5c5cull) |
                has_byte_below_0x20(v))
                break;
            p += 8;
        }
        while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
            p++;
        sc->i = (size_t)(p - sc->s);
        if (p == end)
            break;
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            sc->i++;
            return 0;
        }
        if (c < 0x20)
            return fail(sc, "control character in string");
        /* backslash */
        if (sc->i + 1 >= sc->n)
            break;
        char e = sc->s[sc->i + 1];
        if (e == 'u') {
            if (sc->i + 6 > sc->n)
                break;
            for (int k = 2; k < 6; k++)
                if (hexval(sc->s[sc->i + k]) < 0)
                    return fail(sc, "bad \\u escape in string");
            sc->i += 6;
        } else if (strchr("\"\\/bfnrt", e) && e) {
            sc->i += 2;
        } else {
            return fail(sc, "bad escape in string");
        }
    }
    return fail(sc, "unterminated string");
}

static int scan_number(scanner *sc)
{
    size_t i = sc->i;
    const char *s = sc->s;
    if (i < sc->n && s[i] == '-')
        i++;
    if (i >= sc->n)
        return fail(sc, "bad number");
    if (s[i] == '0') {
        i++;
    } else if (s[i] >= '1' && s[i] <= '9') {
        while (i < sc->n && s[i] >= '0' && s[i] <= '9')
            i++;
    } else {
        return fail(sc, "bad number");
    }
    if (i < sc->n && s[i] == '.') {
        i++;
        if (i >= sc->n || s[i] < '0' || s[i] > '9') {
            sc->i = i;
            return fail(sc, "bad number");
        }
        while (i < sc->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    if (i < sc->n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < sc->n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= sc->n || s[i] < '0' || s[i] > '9') {
            sc->i = i;
            return fail(sc, "bad number");
        }
        while (i < sc->n && s[i] >= '0' && s[i] <= '9')
            i++;
    }
    sc->i = i;
    return 0;
}

static int scan_literal(scanner *sc, const char *lit)
{
    size_t l = strlen(lit);
    if (sc->n - sc->i < l || memcmp(sc->s + sc->i, lit, l) != 0)
        return fail(sc, "unexpected token");
    sc->i += l;
    return 0;
}

static int scan_value(scanner *sc);

/* Scans an object at '{'. When out is non-NULL, records members (top level only). */
static int scan_object(scanner *sc, jmember *out, int max, int *count)
{
    if (++sc->depth > JSCAN_MAX_DEPTH)
        return fail(sc, "nesting too deep");
    sc->i++;
    int nmem = 0;
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == '}') {
        sc->i++;
        sc->depth--;
        if (count)
            *count = 0;
        return 0;
    }
    for (;;) {
        skip_ws(sc);
        if (sc->i >= sc->n || sc->s[sc->i] != '"')
            return fail(sc, sc->i >= sc->n ? "unexpected end of input" : "expected a string key");
        size_t key_start = sc->i;
        if (scan_string(sc) < 0)
            return -1;
        size_t key_end = sc->i;
        skip_ws(sc);
        if (sc->i >= sc->n || sc->s[sc->i] != ':')
            return fail(sc, "expected ':' after key");
        sc->i++;
        skip_ws(sc);
        size_t val_start = sc->i;
        if (scan_value(sc) < 0)
            return -1;
        if (out && nmem < max) {
            jmember *m = &out[nmem];
            m->off = key_start;
            m->key_off = key_start + 1;
            m->key_len = key_end - key_start - 2;
            m->val_off = val_start;
            m->val_len = sc->i - val_start;
        }
        nmem++;
        skip_ws(sc);
        if (sc->i >= sc->n)
            return fail(sc, "unexpected end of input");
        if (sc->s[sc->i] == ',') {
            sc->i++;
            continue;
        }
        if (sc->s[sc->i] == '}') {
            sc->i++;
            break;
        }
        return fail(sc, "expected ',' or '}'");
    }
    sc->depth--;
    if (count)
        *count = nmem;
    return 0;
}

static int scan_array(scanner *sc)
{
    if (++sc->depth > JSCAN_MAX_DEPTH)
        return fail(sc, "nesting too deep");
    sc->i++;
    skip_ws(sc);
    if (sc->i < sc->n && sc->s[sc->i] == ']') {
        sc->i++;
        sc->depth--;
        return 0;
    }
    for (;;) {
        skip_ws(sc);
        if (scan_value(sc) < 0)
            return -1;
        skip_ws(sc);
        if (sc->i >= sc->n)
            return fail(sc, "unexpected end of input");
        if (sc->s[sc->i] == ',') {
            sc->i++;
            continue;
        }
        if (sc->s[sc->i] == ']') {
            sc->i++;
            break;
        }
        return fail(sc, "expected ',' or ']'");
    }
    sc->depth--;
    return 0;
}

static int scan_value(scanner *sc)
{
    if (sc->i >= sc->n)
        return fail(sc, "unexpected end of input");
    switch (sc->s[sc->i]) {
    case '{':
        return scan_object(sc, NULL, 0, NULL);
    case '[':
        return scan_array(sc);
    case '"':
        return scan_string(sc);
    case 't':
        return scan_literal(sc, "true");
    case 'f':
        return scan_literal(sc, "false");
    case 'n':
        return scan_literal(sc, "null");
    default:
        if (sc->s[sc->i] == '-' || (sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9'))
            return scan_number(sc);
        return fail(sc, "unexpected character");
    }
}

int jscan_object(const char *s, size_t n, jmember *out, int max, jscan_err *err)
{
    scanner sc = {.s = s, .n = n, .i = 0, .err = err, .depth = 0};
    skip_ws(&sc);
    if (sc.i >= n)
        return fail(&sc, "empty body");
    if (s[sc.i] != '{')
        return fail(&sc, "expected a JSON object");
    int count = 0;
    if (scan_object(&sc, out, max, &count) < 0)
        return -1;
    skip_ws(&sc);
    if (sc.i != n)
        return fail(&sc, "trailing characters after JSON value");
    return count;
}

long jscan_value(const char *s, size_t n, jscan_err *err)
{
    scanner sc = {.s = s, .n = n, .i = 0, .err = err, .depth = 0};
    if (scan_value(&sc) < 0)
        return -1;
    return (long)sc.i;
}

const jmember *jscan_find(const char *s, const jmember *m, int count, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < count; i++)
        if (m[i].key_len == kl && memcmp(s + m[i].key_off, key, kl) == 0)
            return &m[i];
    return NULL;
}

bool jscan_is_true(const char *s, const jmember *m)
{
    return m && m->val_len == 4 && memcmp(s + m->val_off, "true", 4) == 0;
}

bool jscan_is_null(const char *s, const jmember *m)
{
    return m && m->val_len == 4 && memcmp(s + m->val_off, "null", 4) == 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static unsigned hex4(const char *p)
{
    return (unsigned)(hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]));
}

char *jscan_strdup(const char *v, size_t len)
{
    if (len < 2 || v[0] != '"')
        return NULL;
    /* validate first: the span must be exactly one well-formed string */
    scanner sc = {.s = v, .n = len, .i = 0, .err = NULL, .depth = 0};
    if (scan_string(&sc) < 0 || sc.i != len)
        return NULL;
    /* an escaped string never grows when decoded */
    char *out = malloc(len);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        char c = v[i];
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        char e = v[++i];
        switch (e) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp = hex4(v + i + 1);
            i += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < len && v[i + 1] == '\\' && v[i + 2] == 'u') {
                unsigned lo = hex4(v + i + 3);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
            }
            if (cp == 0) {
                free(out);
                return NULL;
            }
            o += put_utf8(out + o, cp);
            break;
        }
        default: out[o++] = e; break; /* \" \\ \/ */
        }
    }
    out[o] = 0;
    return out;
}

bool jscan_number(const char *v, size_t len, double *out)
{
    if (len == 0 || len > 63 || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')))
        return false;
    char tmp[64];
    memcpy(tmp, v, len);
    tmp[len] = 0;
    char *end;
    *out = strtod(tmp, &end);
    return *end == 0;
}

size_t json_escaped_size(size_t n)
{
    return n * 6 + 2;
}

bool json_escape(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = *len;
    if (o + 2 > cap)
        return false;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 7 > cap)
            return false;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            out[o++] = '\\';
            switch (c) {
            case '\n': out[o++] = 'n'; break;
            case '\r': out[o++] = 'r'; break;
            case '\t': out[o++] = 't'; break;
            case '\b': out[o++] = 'b'; break;
            case '\f': out[o++] = 'f'; break;
            default:
                out[o++] = 'u';
                out[o++] = '0';
                out[o++] = '0';
                out[o++] = hex[c >> 4];
                out[o++] = hex[c & 15];
            }
        } else {
            out[o++] = (char)c;
        }
    }
    if (o + 1 > cap)
        return false;
    out[o++] = '"';
    *len = o;
    return true;
}
