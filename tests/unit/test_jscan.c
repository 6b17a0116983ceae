/* Unit tests for util/jscan: the validating JSON scanner, string decoding and escaping. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util/jscan.h"

#define S(lit) lit, sizeof(lit) - 1

/* Asserts that member i of s has the given key and value text. */
static void expect_member(const char *s, const jmember *m, const char *key, const char *val)
{
    assert_int_equal(m->key_len, strlen(key));
    assert_memory_equal(s + m->key_off, key, m->key_len);
    assert_int_equal(m->val_len, strlen(val));
    assert_memory_equal(s + m->val_off, val, m->val_len);
    /* the member starts at the key's opening quote */
    assert_int_equal(s[m->off], '"');
    assert_int_equal(m->off + 1, m->key_off);
}

/* Scans s expecting failure; returns the error for further checks. */
static jscan_err expect_fail(const char *s, size_t n)
{
    jscan_err err;
    memset(&err, 0, sizeof err);
    err.offset = (size_t)-1;
    jmember m[8];
    int rc = jscan_object(s, n, m, 8, &err);
    if (rc != -1)
        fail_msg("expected -1 for <%.*s>, got %d", (int)n, s, rc);
    assert_true(strlen(err.msg) > 0);
    assert_true(err.offset <= n);
    return err;
}

static void test_members_in_order(void **state)
{
    (void)state;
    const char *s = "{\"model\":\"gpt-4o\", \"stream\" : true,\n\t\"n\":-1.5e+3,\"x\":null,"
                    "\"f\":false,\"arr\":[1,{\"a\":[]},\"s\"],\"obj\":{\"k\":{}}}";
    jmember m[16];
    jscan_err err;
    int n = jscan_object(s, strlen(s), m, 16, &err);
    assert_int_equal(n, 7);
    expect_member(s, &m[0], "model", "\"gpt-4o\"");
    expect_member(s, &m[1], "stream", "true");
    expect_member(s, &m[2], "n", "-1.5e+3");
    expect_member(s, &m[3], "x", "null");
    expect_member(s, &m[4], "f", "false");
    expect_member(s, &m[5], "arr", "[1,{\"a\":[]},\"s\"]");
    expect_member(s, &m[6], "obj", "{\"k\":{}}");
    assert_int_equal(m[0].off, 1);

    assert_ptr_equal(jscan_find(s, m, n, "stream"), &m[1]);
    assert_ptr_equal(jscan_find(s, m, n, "obj"), &m[6]);
    assert_null(jscan_find(s, m, n, "mode"));   /* prefix of a key is not a match */
    assert_null(jscan_find(s, m, n, "models")); /* nor is a longer name */
    assert_true(jscan_is_true(s, &m[1]));
    assert_false(jscan_is_true(s, &m[4]));
    assert_true(jscan_is_null(s, &m[3]));
    assert_false(jscan_is_null(s, &m[1]));
    assert_false(jscan_is_true(s, NULL));
    assert_false(jscan_is_null(s, NULL));

    double d = 0;
    assert_true(jscan_number(s + m[2].val_off, m[2].val_len, &d));
    assert_true(d == -1500.0);
    assert_false(jscan_number(s + m[0].val_off, m[0].val_len, &d));
    assert_false(jscan_number(s + m[1].val_off, m[1].val_len, &d));
}

static void test_empty_and_whitespace(void **state)
{
    (void)state;
    jmember m[4];
    jscan_err err;
    assert_int_equal(jscan_object(S("{}"), m, 4, &err), 0);
    assert_int_equal(jscan_object(S(" \r\n\t{ \n }\n "), m, 4, &err), 0);
    assert_int_equal(jscan_object(S("  {\"a\" :\t1 }  "), m, 4, &err), 1);
    expect_member("  {\"a\" :\t1 }  ", &m[0], "a", "1");
}

static void test_escaped_keys_and_values(void **state)
{
    (void)state;
    const char *s = "{\"k\\\"q\":\"v\\\\\\u00e9\\n\",\"\\u0041\":1}";
    jmember m[4];
    jscan_err err;
    assert_int_equal(jscan_object(s, strlen(s), m, 4, &err), 2);
    /* spans are raw: escapes are not decoded */
    expect_member(s, &m[0], "k\\\"q", "\"v\\\\\\u00e9\\n\"");
    expect_member(s, &m[1], "\\u0041", "1");
}

static void test_more_members_than_max(void **state)
{
    (void)state;
    const char *s = "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}";
    jmember m[3];
    memset(m, 0xAB, sizeof m);
    jscan_err err;
    assert_int_equal(jscan_object(s, strlen(s), m, 2, &err), 4);
    expect_member(s, &m[0], "a", "1");
    expect_member(s, &m[1], "b", "2");
    /* nothing written past max */
    unsigned char guard[sizeof m[2]];
    memset(guard, 0xAB, sizeof guard);
    assert_memory_equal(&m[2], guard, sizeof guard);

    /* members past max are still validated */
    const char *bad = "{\"a\":1,\"b\":2,\"c\":[1,}";
    assert_int_equal(jscan_object(bad, strlen(bad), m, 2, &err), -1);
    /* max 0 with no output array */
    assert_int_equal(jscan_object(s, strlen(s), NULL, 0, &err), 4);
}

static void test_nested_values(void **state)
{
    (void)state;
    const char *s = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi "
                    "}]{\"}]}],\"tools\":[[[[]]]],\"e\":{\"a\":{\"b\":{\"c\":[true,false,null]}}}}";
    jmember m[4];
    jscan_err err;
    assert_int_equal(jscan_object(s, strlen(s), m, 4, &err), 3);
    expect_member(s, &m[0], "messages",
                  "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi }]{\"}]}]");
    expect_member(s, &m[1], "tools", "[[[[]]]]");
    expect_member(s, &m[2], "e", "{\"a\":{\"b\":{\"c\":[true,false,null]}}}");
}

static void test_big_numbers_preserved(void **state)
{
    (void)state;
    const char *s = "{\"seed\":12345678901234567890,\"t\":0.30000000000000004,\"neg\":-0,"
                    "\"e\":1E-7,\"big\":9007199254740993}";
    jmember m[8];
    jscan_err err;
    assert_int_equal(jscan_object(s, strlen(s), m, 8, &err), 5);
    expect_member(s, &m[0], "seed", "12345678901234567890");
    expect_member(s, &m[1], "t", "0.30000000000000004");
    expect_member(s, &m[2], "neg", "-0");
    expect_member(s, &m[3], "e", "1E-7");
    expect_member(s, &m[4], "big", "9007199254740993");
}

static void test_error_empty_and_not_object(void **state)
{
    (void)state;
    jscan_err e = expect_fail(S(""));
    assert_int_equal(e.offset, 0);
    e = expect_fail(S("   \n"));
    assert_int_equal(e.offset, 4);
    e = expect_fail(S("[1,2]"));
    assert_int_equal(e.offset, 0);
    e = expect_fail(S("  \"str\""));
    assert_int_equal(e.offset, 2);
    e = expect_fail(S("42"));
    assert_int_equal(e.offset, 0);
    e = expect_fail(S("null"));
    assert_int_equal(e.offset, 0);
    /* a NULL err is allowed */
    jmember m[1];
    assert_int_equal(jscan_object(S("nope"), m, 1, NULL), -1);
}

static void test_error_strings(void **state)
{
    (void)state;
    /* unterminated string value and key */
    jscan_err e = expect_fail(S("{\"a\":\"abc"));
    assert_int_equal(e.offset, 9);
    assert_non_null(strstr(e.msg, "unterminated"));
    e = expect_fail(S("{\"abc"));
    assert_non_null(strstr(e.msg, "unterminated"));
    /* a backslash right at the end */
    e = expect_fail(S("{\"a\":\"x\\"));
    assert_true(e.offset >= 6);
    /* bad escapes */
    e = expect_fail(S("{\"a\":\"x\\q\"}"));
    assert_int_equal(e.offset, 7);
    assert_non_null(strstr(e.msg, "escape"));
    e = expect_fail(S("{\"a\":\"\\u12G4\"}"));
    assert_int_equal(e.offset, 6);
    assert_non_null(strstr(e.msg, "escape"));
    e = expect_fail(S("{\"a\":\"\\u12\"}"));
    assert_int_equal(e.offset, 6);
    e = expect_fail(S("{\"a\":\"\\u12"));
    assert_true(e.offset >= 6);
    e = expect_fail(S("{\"a\":\"\\x41\"}"));
    assert_int_equal(e.offset, 6);
    /* control characters, raw */
    e = expect_fail(S("{\"a\":\"line\nbreak\"}"));
    assert_int_equal(e.offset, 10);
    assert_non_null(strstr(e.msg, "control"));
    e = expect_fail(S("{\"a\":\"tab\there\"}"));
    assert_int_equal(e.offset, 9);
    e = expect_fail(S("{\"k\x01\":1}"));
    assert_int_equal(e.offset, 3);
    /* an embedded NUL byte is a control character too */
    const char nul[] = {'{', '"', 'a', '"', ':', '"', 'x', '\0', 'y', '"', '}'};
    e = expect_fail(nul, sizeof nul);
    assert_int_equal(e.offset, 7);
}

static void test_error_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t min_off, max_off;
    } bad[] = {
        {"{\"a\":01}", 6, 6},   /* leading zero: "0" then an unexpected "1" */
        {"{\"a\":-01}", 7, 7},
        {"{\"a\":1.}", 7, 7},
        {"{\"a\":1.e5}", 7, 7},
        {"{\"a\":.5}", 5, 5},
        {"{\"a\":-}", 5, 6},
        {"{\"a\":-a}", 5, 6},
        {"{\"a\":1e}", 7, 7},
        {"{\"a\":1e+}", 8, 8},
        {"{\"a\":1E-}", 8, 8},
        {"{\"a\":+1}", 5, 5},
        {"{\"a\":0x10}", 6, 6},
        {"{\"a\":1", 6, 6},
        {"{\"a\":-", 5, 6},
        {"{\"a\":NaN}", 5, 5},
        {"{\"a\":Infinity}", 5, 5},
        {"{\"a\":[1,2,]}", 10, 10},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        jscan_err e = expect_fail(bad[i].s, strlen(bad[i].s));
        if (e.offset < bad[i].min_off || e.offset > bad[i].max_off)
            fail_msg("%s: offset %zu not in [%zu,%zu] (%s)", bad[i].s, e.offset, bad[i].min_off,
                     bad[i].max_off, e.msg);
    }
    /* the valid forms next to them */
    static const char *const good[] = {"{\"a\":0}",     "{\"a\":-0}",   "{\"a\":0.5}",
                                       "{\"a\":10}",    "{\"a\":1e5}",  "{\"a\":1E+05}",
                                       "{\"a\":-1.0e-2}", "{\"a\":[0,-0.0,1]}"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        jmember m[2];
        jscan_err e;
        if (jscan_object(good[i], strlen(good[i]), m, 2, &e) != 1)
            fail_msg("%s rejected: %s at %zu", good[i], e.msg, e.offset);
    }
}

static void test_error_structure(void **state)
{
    (void)state;
    jscan_err e = expect_fail(S("{\"a\":1} x"));
    assert_int_equal(e.offset, 8);
    assert_non_null(strstr(e.msg, "trailing"));
    e = expect_fail(S("{\"a\":1}{}"));
    assert_int_equal(e.offset, 7);
    e = expect_fail(S("{\"a\" 1}"));
    assert_int_equal(e.offset, 5);
    assert_non_null(strstr(e.msg, ":"));
    e = expect_fail(S("{\"a\":1 \"b\":2}"));
    assert_int_equal(e.offset, 7);
    e = expect_fail(S("{\"a\":1,}"));
    assert_int_equal(e.offset, 7);
    e = expect_fail(S("{,\"a\":1}"));
    assert_int_equal(e.offset, 1);
    e = expect_fail(S("{'a':1}"));
    assert_int_equal(e.offset, 1);
    e = expect_fail(S("{a:1}"));
    assert_int_equal(e.offset, 1);
    e = expect_fail(S("{\"a\":}"));
    assert_int_equal(e.offset, 5);
    e = expect_fail(S("{\"a\":tru}"));
    assert_int_equal(e.offset, 5);
    e = expect_fail(S("{\"a\":nul"));
    assert_int_equal(e.offset, 5);
    e = expect_fail(S("{\"a\":True}"));
    assert_int_equal(e.offset, 5);
    e = expect_fail(S("{\"a\":[1 2]}"));
    assert_int_equal(e.offset, 8);
    e = expect_fail(S("{\"a\":[1,2}"));
    assert_int_equal(e.offset, 9);
    e = expect_fail(S("{\"a\":{\"b\":1]}"));
    assert_int_equal(e.offset, 11);
    e = expect_fail(S("{\"a\":1"));
    assert_int_equal(e.offset, 6);
    assert_non_null(strstr(e.msg, "end"));
    e = expect_fail(S("{"));
    assert_int_equal(e.offset, 1);
    e = expect_fail(S("{\"a\":[1"));
    assert_int_equal(e.offset, 7);
}

/* {"a": + depth '[' ... ']' + } */
static char *nested(int arrays, size_t *len)
{
    size_t n = 6 + 2 * (size_t)arrays + 1;
    char *s = malloc(n + 1);
    assert_non_null(s);
    size_t o = 0;
    memcpy(s, "{\"a\":", 5);
    o = 5;
    for (int i = 0; i < arrays; i++)
        s[o++] = '[';
    for (int i = 0; i < arrays; i++)
        s[o++] = ']';
    s[o++] = '}';
    s[o] = 0;
    *len = o;
    return s;
}

static void test_nesting_limit(void **state)
{
    (void)state;
    jmember m[2];
    jscan_err e;
    size_t len;
    /* the top-level object is one level: JSCAN_MAX_DEPTH - 1 arrays inside still fit */
    char *ok = nested(JSCAN_MAX_DEPTH - 1, &len);
    assert_int_equal(jscan_object(ok, len, m, 2, &e), 1);
    assert_int_equal(m[0].val_len, 2 * (JSCAN_MAX_DEPTH - 1));
    free(ok);

    char *deep = nested(JSCAN_MAX_DEPTH, &len);
    e.offset = 0;
    e.msg[0] = 0;
    assert_int_equal(jscan_object(deep, len, m, 2, &e), -1);
    assert_non_null(strstr(e.msg, "deep"));
    assert_true(e.offset >= 5 && e.offset < len);
    free(deep);

    /* a hostile body: far deeper, and with objects, must fail cleanly rather than overflow */
    size_t big = 200000;
    char *h = malloc(big + 1);
    assert_non_null(h);
    h[0] = '{';
    for (size_t i = 1; i < big; i += 5)
        memcpy(h + i, "\"a\":{", i + 5 <= big ? 5 : big - i);
    h[big] = 0;
    assert_int_equal(jscan_object(h, big, NULL, 0, &e), -1);
    assert_non_null(strstr(e.msg, "deep"));
    memset(h, '[', big);
    h[0] = '{';
    memcpy(h + 1, "\"x\":", 4);
    assert_int_equal(jscan_object(h, big, NULL, 0, &e), -1);
    free(h);
}

static void test_jscan_value(void **state)
{
    (void)state;
    jscan_err e;
    assert_int_equal(jscan_value(S("123,"), &e), 3);
    assert_int_equal(jscan_value(S("\"a\\\"b\" rest"), &e), 6);
    assert_int_equal(jscan_value(S("[1,[2]] x"), &e), 7);
    assert_int_equal(jscan_value(S("true"), &e), 4);
    assert_int_equal(jscan_value(S("{\"a\":{}}]"), &e), 8);
    assert_int_equal(jscan_value(S("[1,"), &e), -1);
    assert_int_equal(jscan_value(S(""), &e), -1);
    assert_int_equal(jscan_value(S("x"), &e), -1);
}

/* Decodes a literal JSON string and compares it to expected (NUL-terminated). */
static void expect_decode(const char *json, const char *expected)
{
    char *got = jscan_strdup(json, strlen(json));
    if (!got)
        fail_msg("jscan_strdup(%s) returned NULL", json);
    assert_string_equal(got, expected);
    free(got);
}

static void test_strdup_escapes(void **state)
{
    (void)state;
    expect_decode("\"\"", "");
    expect_decode("\"plain\"", "plain");
    expect_decode("\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\"", "q\"b\\s/n\nt\tr\rb\bf\f");
    expect_decode("\"\\u0041\\u00e9\\u00E9\"", "A\xC3\xA9\xC3\xA9");
    expect_decode("\"\\u20ac\"", "\xE2\x82\xAC");
    expect_decode("\"\\u07ff\\u0800\\uffff\"", "\xDF\xBF\xE0\xA0\x80\xEF\xBF\xBF");
    expect_decode("\"\\u0001\\u001f\"", "\x01\x1f");
    /* surrogate pairs: U+1F600 and U+10FFFF, upper- and lower-case hex */
    expect_decode("\"a\\ud83d\\ude00b\"", "a\xF0\x9F\x98\x80" "b");
    expect_decode("\"\\uD83D\\uDE00\"", "\xF0\x9F\x98\x80");
    expect_decode("\"\\udbff\\udfff\"", "\xF4\x8F\xBF\xBF");
    expect_decode("\"\\ud800\\udc00\"", "\xF0\x90\x80\x80");
    /* raw UTF-8 passes through */
    expect_decode("\"\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80\"", "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80");
}

static void test_strdup_rejects(void **state)
{
    (void)state;
    assert_null(jscan_strdup(S("\"a\\u0000b\"")));
    assert_null(jscan_strdup(S("\"\\u0000\"")));
    assert_null(jscan_strdup(S("123")));
    assert_null(jscan_strdup(S("null")));
    assert_null(jscan_strdup(S("true")));
    assert_null(jscan_strdup(S("[\"a\"]")));
    assert_null(jscan_strdup(S("{}")));
    assert_null(jscan_strdup(S("\"")));
    assert_null(jscan_strdup(S("")));
    /* only the span given counts: the string is cut short */
    assert_null(jscan_strdup("\"abc\"", 4));
}

static void test_strdup_of_scanned_member(void **state)
{
    (void)state;
    const char *s = "{\"model\":\"my\\/model-\\u00e9\",\"n\":1}";
    jmember m[4];
    jscan_err e;
    int n = jscan_object(s, strlen(s), m, 4, &e);
    assert_int_equal(n, 2);
    const jmember *mm = jscan_find(s, m, n, "model");
    assert_non_null(mm);
    char *v = jscan_strdup(s + mm->val_off, mm->val_len);
    assert_non_null(v);
    assert_string_equal(v, "my/model-\xC3\xA9");
    free(v);
}

static void test_number_helper(void **state)
{
    (void)state;
    double d;
    assert_true(jscan_number(S("0"), &d));
    assert_true(d == 0.0);
    assert_true(jscan_number(S("-12.5"), &d));
    assert_true(d == -12.5);
    assert_true(jscan_number(S("1e3"), &d));
    assert_true(d == 1000.0);
    assert_true(jscan_number(S("12345678901234567890"), &d));
    assert_true(d > 1.2e19 && d < 1.3e19);
    assert_false(jscan_number(S(""), &d));
    assert_false(jscan_number(S("\"1\""), &d));
    assert_false(jscan_number(S("1x"), &d));
    assert_false(jscan_number(S("null"), &d));
    /* the span length is honoured, not the terminator */
    assert_true(jscan_number("42,7", 2, &d));
    assert_true(d == 42.0);
}

static void test_escape_round_trip(void **state)
{
    (void)state;
    char src[200];
    size_t n = 0;
    for (int c = 1; c < 0x20; c++)
        src[n++] = (char)c;
    const char tail[] = "\"quoted\" back\\slash /slash \xC3\xA9\xF0\x9F\x98\x80 \x7f end";
    memcpy(src + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    src[n] = 0;

    size_t cap = json_escaped_size(n);
    char *out = malloc(cap + 1);
    assert_non_null(out);
    size_t len = 0;
    assert_true(json_escape(out, cap, &len, src, n));
    assert_true(len <= cap);
    out[len] = 0;
    assert_int_equal(out[0], '"');
    assert_int_equal(out[len - 1], '"');
    /* no raw control characters survive */
    for (size_t i = 0; i < len; i++)
        assert_true((unsigned char)out[i] >= 0x20);
    assert_non_null(strstr(out, "\\n"));
    assert_non_null(strstr(out, "\\\"quoted\\\""));
    assert_non_null(strstr(out, "back\\\\slash"));

    /* our own decoder gives the bytes back */
    char *back = jscan_strdup(out, len);
    assert_non_null(back);
    assert_int_equal(strlen(back), n);
    assert_memory_equal(back, src, n);
    free(back);

    /* and so does an independent parser, as a value inside a document */
    char doc[2048];
    snprintf(doc, sizeof doc, "{\"s\":%s}", out);
    cJSON *j = cJSON_Parse(doc);
    assert_non_null(j);
    cJSON *sv = cJSON_GetObjectItemCaseSensitive(j, "s");
    assert_true(cJSON_IsString(sv));
    assert_string_equal(sv->valuestring, src);
    cJSON_Delete(j);

    /* the result also scans as valid JSON */
    jmember m[1];
    jscan_err e;
    assert_int_equal(jscan_object(doc, strlen(doc), m, 1, &e), 1);
    free(out);
}

static void test_escape_appends_and_bounds(void **state)
{
    (void)state;
    char buf[64];
    memcpy(buf, "x=", 2);
    size_t len = 2;
    assert_true(json_escape(buf, sizeof buf, &len, "a\"b", 3));
    assert_int_equal(len, 2 + 6);
    assert_memory_equal(buf, "x=\"a\\\"b\"", 8);
    len = 0;
    assert_true(json_escape(buf, sizeof buf, &len, "", 0));
    assert_int_equal(len, 2);
    assert_memory_equal(buf, "\"\"", 2);

    /* the size bound covers the worst case (all control characters) */
    char worst[16];
    memset(worst, 0x01, sizeof worst);
    size_t cap = json_escaped_size(sizeof worst);
    char *out = malloc(cap);
    assert_non_null(out);
    len = 0;
    assert_true(json_escape(out, cap, &len, worst, sizeof worst));
    assert_int_equal(len, sizeof worst * 6 + 2);
    assert_memory_equal(out, "\"\\u0001", 7);
    free(out);

    /* too small: refused, not overflowed */
    char tiny[4];
    len = 0;
    assert_false(json_escape(tiny, sizeof tiny, &len, "hello", 5));
    len = 0;
    assert_false(json_escape(tiny, 1, &len, "", 0));

    /* an escape that does not fit is never written past cap */
    char guarded[16];
    for (size_t cap2 = 0; cap2 < 8; cap2++) {
        memset(guarded, 'Z', sizeof guarded);
        len = 0;
        bool ok = json_escape(guarded, cap2, &len, "\x01", 1);
        assert_false(ok); /* "\u0001" with quotes needs 8 bytes */
        for (size_t i = cap2; i < sizeof guarded; i++)
            if (guarded[i] != 'Z')
                fail_msg("cap %zu: byte %zu written", cap2, i);
    }
    len = 0;
    assert_true(json_escape(guarded, 8, &len, "\x01", 1));
    assert_int_equal(len, 8);
    assert_memory_equal(guarded, "\"\\u0001\"", 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_members_in_order),
        cmocka_unit_test(test_empty_and_whitespace),
        cmocka_unit_test(test_escaped_keys_and_values),
        cmocka_unit_test(test_more_members_than_max),
        cmocka_unit_test(test_nested_values),
        cmocka_unit_test(test_big_numbers_preserved),
        cmocka_unit_test(test_error_empty_and_not_object),
        cmocka_unit_test(test_error_strings),
        cmocka_unit_test(test_error_numbers),
        cmocka_unit_test(test_error_structure),
        cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_jscan_value),
        cmocka_unit_test(test_strdup_escapes),
        cmocka_unit_test(test_strdup_rejects),
        cmocka_unit_test(test_strdup_of_scanned_member),
        cmocka_unit_test(test_number_helper),
        cmocka_unit_test(test_escape_round_trip),
        cmocka_unit_test(test_escape_appends_and_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
