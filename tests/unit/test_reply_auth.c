/* Unit tests for http/reply's error envelope and auth's key extraction and checking. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <cjson/cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "auth/auth.h"
#include "config/config.h"
#include "http/reply.h"

/* ---- http_error_body ---------------------------------------------------------------------- */

static cJSON *error_of(const char *body, size_t len)
{
    assert_int_equal(strlen(body), len);
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    assert_true(cJSON_IsObject(j));
    /* the envelope has exactly one member, "error", with exactly four members */
    assert_int_equal(cJSON_GetArraySize(j), 1);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_true(cJSON_IsObject(e));
    assert_int_equal(cJSON_GetArraySize(e), 4);
    return j;
}

static void test_error_body_shape(void **state)
{
    (void)state;
    size_t len = 0;
    char *body = http_error_body("Invalid model name passed in model=gpt-5", "invalid_request_error",
                                 "model", 400, &len);
    assert_non_null(body);
    cJSON *j = error_of(body, len);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring,
                        "Invalid model name passed in model=gpt-5");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "type")->valuestring,
                        "invalid_request_error");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "param")->valuestring, "model");
    cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
    assert_true(cJSON_IsString(code)); /* a string, as openai-python expects */
    assert_string_equal(code->valuestring, "400");
    /* the key order is message, type, param, code */
    assert_non_null(strstr(body, "{\"error\":{\"message\":"));
    assert_true(strstr(body, "\"message\"") < strstr(body, "\"type\""));
    assert_true(strstr(body, "\"type\"") < strstr(body, "\"param\""));
    assert_true(strstr(body, "\"param\"") < strstr(body, "\"code\""));
    cJSON_Delete(j);
    free(body);
}

static void test_error_body_null_param_and_escaping(void **state)
{
    (void)state;
    size_t len = 0;
    const char *msg = "bad \"quote\" \\ back\nnew\tline \x01 ctl \xC3\xA9 </script>";
    char *body = http_error_body(msg, "auth_error", NULL, 401, &len);
    assert_non_null(body);
    cJSON *j = error_of(body, len);
    cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring, msg);
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "param")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valuestring, "401");
    /* no raw control characters in the body */
    for (size_t i = 0; i < len; i++)
        assert_true((unsigned char)body[i] >= 0x20);
    cJSON_Delete(j);
    free(body);

    /* every status becomes a string code; an empty message is still a string */
    static const int codes[] = {400, 404, 429, 500, 502, 503};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        body = http_error_body("", "x", NULL, codes[i], &len);
        assert_non_null(body);
        j = error_of(body, len);
        e = cJSON_GetObjectItemCaseSensitive(j, "error");
        char want[16];
        snprintf(want, sizeof want, "%d", codes[i]);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "code")->valuestring, want);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(e, "message")->valuestring, "");
        cJSON_Delete(j);
        free(body);
    }
}

static void test_http_reason(void **state)
{
    (void)state;
    assert_string_equal(http_reason(200), "OK");
    assert_string_equal(http_reason(400), "Bad Request");
    assert_string_equal(http_reason(401), "Unauthorized");
    assert_string_equal(http_reason(404), "Not Found");
    assert_string_equal(http_reason(413), "Payload Too Large");
    assert_string_equal(http_reason(429), "Too Many Requests");
    assert_string_equal(http_reason(500), "Internal Server Error");
    assert_string_equal(http_reason(502), "Bad Gateway");
    assert_string_equal(http_reason(503), "Service Unavailable");
    assert_string_equal(http_reason(504), "Gateway Timeout");
    /* unknown codes still get a non-empty reason */
    assert_true(strlen(http_reason(418)) > 0);
    assert_true(strlen(http_reason(599)) > 0);
    assert_true(strlen(http_reason(299)) > 0);
}

/* ---- auth --------------------------------------------------------------------------------- */

typedef struct {
    struct evkeyvalq h;
} headers;

static void hdr_init(headers *x)
{
    TAILQ_INIT(&x->h);
}

static void hdr_add(headers *x, const char *name, const char *value)
{
    assert_int_equal(evhttp_add_header(&x->h, name, value), 0);
}

static void hdr_free(headers *x)
{
    evhttp_clear_headers(&x->h);
}

/* auth_check with one header (name NULL = none). */
static auth_result check1(const cfg *c, const char *name, const char *value)
{
    headers x;
    hdr_init(&x);
    if (name)
        hdr_add(&x, name, value);
    auth_result r = auth_check(c, &x.h);
    hdr_free(&x);
    return r;
}

static char MASTER[] = "sk-master-0123456789abcdef";

static void test_auth_ok_headers(void **state)
{
    (void)state;
    cfg c = {0};
    c.master_key = MASTER;
    assert_int_equal(check1(&c, "Authorization", "Bearer sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "Authorization", "bearer sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "Authorization", "BEARER sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "authorization", "Bearer sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "Authorization", "  Bearer   sk-master-0123456789abcdef  "),
                     AUTH_OK);
    assert_int_equal(check1(&c, "x-api-key", "sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "X-Api-Key", "sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "api-key", "sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "x-litellm-api-key", "sk-master-0123456789abcdef"), AUTH_OK);
    assert_int_equal(check1(&c, "x-goog-api-key", "sk-master-0123456789abcdef"), AUTH_OK);
}

static void test_auth_failures(void **state)
{
    (void)state;
    cfg c = {0};
    c.master_key = MASTER;
    /* missing */
    assert_int_equal(check1(&c, NULL, NULL), AUTH_MISSING);
    assert_int_equal(check1(&c, "Content-Type", "application/json"), AUTH_MISSING);
    assert_int_equal(check1(&c, "x-api-key", ""), AUTH_MISSING);
    assert_int_equal(check1(&c, "Authorization", "Bearer "), AUTH_MISSING);
    assert_int_equal(check1(&c, "Authorization", ""), AUTH_MISSING);
    /* malformed: another scheme, or no scheme */
    assert_int_equal(check1(&c, "Authorization", "Token x"), AUTH_MALFORMED);
    assert_int_equal(check1(&c, "Authorization", "Token sk-master-0123456789abcdef"),
                     AUTH_MALFORMED);
    assert_int_equal(check1(&c, "Authorization", "sk-master-0123456789abcdef"), AUTH_MALFORMED);
    assert_int_equal(check1(&c, "Authorization", "Bearersk-master-0123456789abcdef"),
                     AUTH_MALFORMED);
    /* wrong key */
    assert_int_equal(check1(&c, "Authorization", "Bearer sk-wrong"), AUTH_INVALID);
    assert_int_equal(check1(&c, "Authorization", "Bearer sk-master-0123456789abcde"), AUTH_INVALID);
    assert_int_equal(check1(&c, "Authorization", "Bearer sk-master-0123456789abcdefX"),
                     AUTH_INVALID);
    assert_int_equal(check1(&c, "Authorization", "Bearer SK-MASTER-0123456789ABCDEF"),
                     AUTH_INVALID);
    assert_int_equal(check1(&c, "x-api-key", "sk-wrong"), AUTH_INVALID);
    assert_int_equal(check1(&c, "api-key", "sk-master"), AUTH_INVALID);

    /* Authorization wins over the other headers */
    headers x;
    hdr_init(&x);
    hdr_add(&x, "x-api-key", "sk-master-0123456789abcdef");
    hdr_add(&x, "Authorization", "Bearer sk-wrong");
    assert_int_equal(auth_check(&c, &x.h), AUTH_INVALID);
    hdr_free(&x);
    hdr_init(&x);
    hdr_add(&x, "x-api-key", "sk-wrong");
    hdr_add(&x, "Authorization", "Bearer sk-master-0123456789abcdef");
    assert_int_equal(auth_check(&c, &x.h), AUTH_OK);
    hdr_free(&x);
    /* a malformed Authorization is not rescued by another header */
    hdr_init(&x);
    hdr_add(&x, "Authorization", "Token abc");
    hdr_add(&x, "x-api-key", "sk-master-0123456789abcdef");
    assert_int_equal(auth_check(&c, &x.h), AUTH_MALFORMED);
    hdr_free(&x);

    /* every failure has a client-facing message */
    assert_true(strlen(auth_message(AUTH_MISSING)) > 0);
    assert_true(strlen(auth_message(AUTH_MALFORMED)) > 0);
    assert_true(strlen(auth_message(AUTH_INVALID)) > 0);
    assert_string_not_equal(auth_message(AUTH_MISSING), auth_message(AUTH_INVALID));
    assert_null(strstr(auth_message(AUTH_INVALID), MASTER));
}

static void test_auth_open_without_master_key(void **state)
{
    (void)state;
    cfg c = {0};
    assert_int_equal(check1(&c, NULL, NULL), AUTH_OPEN);
    assert_int_equal(check1(&c, "Authorization", "Bearer anything"), AUTH_OPEN);
    assert_int_equal(check1(&c, "Authorization", "Token x"), AUTH_OPEN);
}

static void test_auth_extract(void **state)
{
    (void)state;
    headers x;
    size_t len = 0;
    bool malformed = true;
    hdr_init(&x);
    hdr_add(&x, "Authorization", "Bearer  sk-abc  ");
    const char *k = auth_extract(&x.h, &len, &malformed);
    assert_non_null(k);
    assert_false(malformed);
    assert_int_equal(len, 6);
    assert_memory_equal(k, "sk-abc", 6);
    hdr_free(&x);

    hdr_init(&x);
    hdr_add(&x, "api-key", "sk-xyz");
    k = auth_extract(&x.h, &len, &malformed);
    assert_non_null(k);
    assert_false(malformed);
    assert_int_equal(len, 6);
    assert_memory_equal(k, "sk-xyz", 6);
    hdr_free(&x);

    hdr_init(&x);
    hdr_add(&x, "Authorization", "Digest x");
    assert_null(auth_extract(&x.h, &len, &malformed));
    assert_true(malformed);
    hdr_free(&x);

    hdr_init(&x);
    malformed = true;
    assert_null(auth_extract(&x.h, &len, &malformed));
    assert_false(malformed);
    hdr_free(&x);
}

static void test_auth_abbrev_hides_middle(void **state)
{
    (void)state;
    char out[16];
    const char *key = "sk-ABCDEFGHIJKLMNOPQRwxyz";
    auth_abbrev(key, strlen(key), out);
    assert_string_equal(out, "sk-...wxyz");

    /* keys of every length, made of distinct characters: nothing from the middle appears */
    static const char pool[] = "sk-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijlmnopqrtuvwxyz";
    for (size_t n = 0; n < sizeof pool - 1; n++) {
        memset(out, 0x5A, sizeof out);
        auth_abbrev(pool, n, out);
        size_t ol = strnlen(out, sizeof out);
        assert_true(ol < sizeof out);
        assert_true(ol > 0);
        /* the middle is everything but the first three and the last four characters */
        for (size_t i = 3; i + 4 < n; i++)
            if (memchr(out, pool[i], ol))
                fail_msg("abbrev of a %zu-char key shows its middle character '%c': %s", n,
                         pool[i], out);
        /* short keys (under 16 characters) show nothing at all */
        if (n < 16)
            for (size_t i = 3; i < n; i++)
                if (memchr(out, pool[i], ol))
                    fail_msg("abbrev of a %zu-char key shows '%c': %s", n, pool[i], out);
        /* never the whole key */
        if (n >= 4)
            assert_null(strstr(out, "sk-0"));
    }
    /* the length given is honoured (the key need not be NUL-terminated) */
    char buf[16] = {'s', 'k', '-', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm'};
    auth_abbrev(buf, sizeof buf, out);
    assert_string_equal(out, "sk-...jklm");
    auth_abbrev(buf, 12, out);
    assert_string_equal(out, "***");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_body_shape),
        cmocka_unit_test(test_error_body_null_param_and_escaping),
        cmocka_unit_test(test_http_reason),
        cmocka_unit_test(test_auth_ok_headers),
        cmocka_unit_test(test_auth_failures),
        cmocka_unit_test(test_auth_open_without_master_key),
        cmocka_unit_test(test_auth_extract),
        cmocka_unit_test(test_auth_abbrev_hides_middle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
