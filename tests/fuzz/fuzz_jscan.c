/* fuzz_jscan — util/jscan on arbitrary bytes: jscan_object, jscan_value, jscan_strdup,
 * jscan_number, json_escape.
 *
 * Beyond memory safety it checks that the scanner agrees with itself: recording members or not
 * (and with a short out[]) gives the same count and spans; every recorded span is in bounds and
 * re-validates to exactly its own length; a decoded string escaped again with json_escape decodes
 * back to the same bytes; a validated number always converts. */
#include "fuzz_common.h"

static void check_string_roundtrip(const char *v, size_t len)
{
    char *d = jscan_strdup(v, len);
    if (!d)
        return;
    size_t dl = strlen(d);
    FZ_CHECK(dl + 2 <= len, "jscan_strdup grew: %zu decoded bytes from a %zu-byte literal", dl,
             len);
    size_t cap = json_escaped_size(dl), el = 0;
    char *e = malloc(cap);
    FZ_CHECK(e != NULL, "malloc");
    FZ_CHECK(json_escape(e, cap, &el, d, dl), "json_escape refused %zu bytes into %zu", dl, cap);
    FZ_CHECK(el <= cap, "json_escape overran its capacity");
    if (jscan_value(e, el, NULL) != (long)el) {
        fz_dump("decoded", d, dl);
        fz_dump("escaped", e, el);
        fz_fail("json_escape produced an invalid JSON string");
    }
    char *d2 = jscan_strdup(e, el);
    if (!d2 || strcmp(d, d2) != 0) {
        fz_dump("decoded", d, dl);
        fz_dump("escaped", e, el);
        fz_fail("jscan_strdup(json_escape(x)) != x");
    }
    /* a capacity one byte short must be refused, never overrun */
    if (cap > 0) {
        char *t = malloc(el - 1 ? el - 1 : 1);
        FZ_CHECK(t != NULL, "malloc");
        size_t tl = 0;
        FZ_CHECK(!json_escape(t, el - 1, &tl, d, dl), "json_escape fit %zu bytes into %zu", el,
                 el - 1);
        free(t);
    }
    free(d2);
    free(e);
    free(d);
}

static void check_value_span(const char *s, size_t off, size_t len, size_t n)
{
    FZ_CHECK(off + len <= n && len > 0, "value span [%zu,+%zu) outside %zu", off, len, n);
    const char *v = s + off;
    long l = jscan_value(v, len, NULL);
    FZ_CHECK(l == (long)len, "value span of %zu bytes re-validates as %ld", len, l);
    jmember fake = {0, 0, off, len, 0};
    bool t = jscan_is_true(s, &fake), nl = jscan_is_null(s, &fake);
    FZ_CHECK(t == (len == 4 && memcmp(v, "true", 4) == 0), "jscan_is_true disagrees");
    FZ_CHECK(nl == (len == 4 && memcmp(v, "null", 4) == 0), "jscan_is_null disagrees");
    double d;
    bool isnum = v[0] == '-' || (v[0] >= '0' && v[0] <= '9');
    if (isnum && len <= 63)
        FZ_CHECK(jscan_number(v, len, &d), "jscan_number refused a validated number %.*s", (int)len,
                 v);
    else if (!isnum)
        FZ_CHECK(!jscan_number(v, len, &d), "jscan_number accepted a non-number");
    if (v[0] == '"')
        check_string_roundtrip(v, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    size_t n = size;
    jmember m[64];
    jscan_err err;
    memset(&err, 0, sizeof err);
    int cnt = jscan_object(s, n, m, 64, &err);
    if (cnt < 0) {
        FZ_CHECK(cnt == -1, "jscan_object returned %d", cnt);
        FZ_CHECK(memchr(err.msg, 0, sizeof err.msg) && err.msg[0], "error message not set");
        FZ_CHECK(err.offset <= n, "error offset %zu past %zu", err.offset, n);
        FZ_CHECK(jscan_object(s, n, NULL, 0, NULL) == -1, "validity depends on out[]");
    } else {
        FZ_CHECK(jscan_object(s, n, NULL, 0, NULL) == cnt, "count depends on out[]");
        jmember m3[3];
        FZ_CHECK(jscan_object(s, n, m3, 3, NULL) == cnt, "count depends on max");
        int rec = cnt < 64 ? cnt : 64;
        for (int i = 0; i < rec && i < 3; i++)
            FZ_CHECK(memcmp(&m3[i], &m[i], sizeof m[i]) == 0, "member %d depends on max", i);
        size_t ws = 0;
        while (ws < n && (s[ws] == ' ' || s[ws] == '\t' || s[ws] == '\n' || s[ws] == '\r'))
            ws++;
        long ol = jscan_value(s + ws, n - ws, NULL);
        FZ_CHECK(ol > 0 && fz_is_json_value(s, n), "object accepted but not a JSON value");
        for (int i = 0; i < rec; i++) {
            const jmember *x = &m[i];
            FZ_CHECK(x->off < n && s[x->off] == '"' && x->key_off == x->off + 1,
                     "member %d: bad key start", i);
            FZ_CHECK(x->key_off + x->key_len < n && s[x->key_off + x->key_len] == '"',
                     "member %d: bad key end", i);
            FZ_CHECK(x->val_off > x->key_off + x->key_len, "member %d: value before key", i);
            check_value_span(s, x->val_off, x->val_len, n);
            check_value_span(s, x->off, x->key_len + 2, n); /* the key is a string value */
            /* jscan_find by the raw key finds this member or an earlier duplicate */
            char *k = fz_strndup(s + x->key_off, x->key_len);
            if (strlen(k) == x->key_len) {
                const jmember *f = jscan_find(s, m, rec, k);
                FZ_CHECK(f && f <= x && f->key_len == x->key_len &&
                             memcmp(s + f->key_off, k, x->key_len) == 0,
                         "jscan_find missed member %d", i);
            }
            free(k);
        }
    }

    long l = jscan_value(s, n, &err);
    if (l >= 0) {
        FZ_CHECK(l > 0 && (size_t)l <= n, "jscan_value length %ld of %zu", l, n);
        check_value_span(s, 0, (size_t)l, n);
    }
    /* the whole input as a string literal (usually refused) */
    check_string_roundtrip(s, n);
    return 0;
}
