/* Unit tests for providers/openai: request parsing, upstream body rebuilding, usage, chunks. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "providers/openai.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static int parse(const char *body, oai_request *r, char *err, size_t errlen)
{
    return oai_parse_request(body, strlen(body), r, err, errlen);
}

/* Parses body, rebuilds it and returns the rebuilt text (NUL-terminated, caller frees). Also
 * checks that the result is one valid JSON object for both jscan and cJSON. */
static char *rebuild(const char *body, const char *model, bool inject)
{
    oai_request r;
    char err[256] = "";
    if (parse(body, &r, err, sizeof err) != 0)
        fail_msg("parse failed for %s: %s", body, err);
    size_t len = 0;
    char *out = oai_build_upstream_body(body, &r, model, inject, &len);
    assert_non_null(out);
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, out, len);
    s[len] = 0;
    free(out);
    oai_request_free(&r);
    assert_int_equal(strlen(s), len);

    jscan_err je;
    if (jscan_object(s, len, NULL, 0, &je) < 0)
        fail_msg("rebuilt body is not valid JSON (%s at %zu): %s", je.msg, je.offset, s);
    cJSON *j = cJSON_Parse(s);
    if (!j)
        fail_msg("cJSON cannot parse the rebuilt body: %s", s);
    assert_true(cJSON_IsObject(j));
    cJSON_Delete(j);
    return s;
}

static void expect_rebuild(const char *body, const char *model, bool inject, const char *want)
{
    char *got = rebuild(body, model, inject);
    if (strcmp(got, want) != 0)
        fail_msg("rebuild(%s, %s, %d)\n  got:  %s\n  want: %s", body, model, inject, got, want);
    free(got);
}

/* ---- oai_parse_request -------------------------------------------------------------------- */

static void test_parse_full_request(void **state)
{
    (void)state;
    const char *body = "{\"model\":\"gpt-4o\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                       "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                       "\"mock_response\":\"canned \\\"answer\\\" \\u00e9\"}";
    oai_request r;
    char err[256] = "";
    assert_int_equal(parse(body, &r, err, sizeof err), 0);
    assert_int_equal(r.count, 5);
    assert_string_equal(r.model, "gpt-4o");
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_non_null(r.stream_options);
    assert_memory_equal(body + r.stream_options->val_off, "{\"include_usage\":true}",
                        r.stream_options->val_len);
    assert_string_equal(r.mock_response, "canned \"answer\" \xC3\xA9");
    oai_request_free(&r);
    assert_null(r.model);
    assert_null(r.mock_response);
}

static void test_parse_defaults(void **state)
{
    (void)state;
    oai_request r;
    char err[256] = "";
    assert_int_equal(parse("{\"messages\":[]}", &r, err, sizeof err), 0);
    assert_null(r.model);
    assert_false(r.stream);
    assert_false(r.include_usage);
    assert_null(r.stream_options);
    assert_null(r.mock_response);
    oai_request_free(&r);

    /* stream must be the literal true */
    static const char *const not_streaming[] = {
        "{\"model\":\"m\",\"stream\":false}", "{\"model\":\"m\",\"stream\":\"true\"}",
        "{\"model\":\"m\",\"stream\":1}", "{\"model\":\"m\",\"stream\":null}"};
    for (size_t i = 0; i < sizeof not_streaming / sizeof *not_streaming; i++) {
        assert_int_equal(parse(not_streaming[i], &r, err, sizeof err), 0);
        assert_false(r.stream);
        oai_request_free(&r);
    }

    /* include_usage false, absent, or stream_options null */
    assert_int_equal(parse("{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":false}}",
                           &r, err, sizeof err), 0);
    assert_true(r.stream);
    assert_false(r.include_usage);
    assert_non_null(r.stream_options);
    oai_request_free(&r);
    assert_int_equal(parse("{\"model\":\"m\",\"stream_options\":{}}", &r, err, sizeof err), 0);
    assert_false(r.include_usage);
    oai_request_free(&r);
    assert_int_equal(parse("{\"model\":\"m\",\"stream_options\":null}", &r, err, sizeof err), 0);
    assert_null(r.stream_options);
    assert_false(r.include_usage);
    oai_request_free(&r);

    /* mock_response null is the same as absent */
    assert_int_equal(parse("{\"model\":\"m\",\"mock_response\":null}", &r, err, sizeof err), 0);
    assert_null(r.mock_response);
    oai_request_free(&r);

    /* model with escapes is decoded */
    assert_int_equal(parse("{\"model\":\"openai\\/gpt-4o\"}", &r, err, sizeof err), 0);
    assert_string_equal(r.model, "openai/gpt-4o");
    oai_request_free(&r);
}

static void test_parse_errors(void **state)
{
    (void)state;
    oai_request r;
    char err[256];

    static const char *const non_string_models[] = {
        "{\"model\":123}", "{\"model\":[\"a\"]}", "{\"model\":{\"a\":1}}", "{\"model\":true}",
        "{\"model\":\"a\\u0000b\"}"};
    for (size_t i = 0; i < sizeof non_string_models / sizeof *non_string_models; i++) {
        err[0] = 0;
        if (parse(non_string_models[i], &r, err, sizeof err) != -1)
            fail_msg("accepted %s", non_string_models[i]);
        assert_non_null(strstr(err, "model"));
        oai_request_free(&r);
    }

    err[0] = 0;
    assert_int_equal(parse("{\"model\":\"m\",\"mock_response\":42}", &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "mock_response"));
    oai_request_free(&r);

    err[0] = 0;
    assert_int_equal(parse("{\"model\":\"m\",\"stream_options\":true}", &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "stream_options"));
    oai_request_free(&r);

    /* malformed JSON: the message names the problem and the byte */
    err[0] = 0;
    assert_int_equal(parse("{\"model\":\"m\",}", &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "Invalid JSON"));
    assert_non_null(strstr(err, "byte 13"));
    oai_request_free(&r);

    err[0] = 0;
    assert_int_equal(parse("{\"model\":\"m\" \"x\":1}", &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "byte 13"));
    oai_request_free(&r);

    err[0] = 0;
    assert_int_equal(oai_parse_request("", 0, &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "byte 0"));
    oai_request_free(&r);

    err[0] = 0;
    assert_int_equal(parse("[{\"model\":\"m\"}]", &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "byte 0"));
    oai_request_free(&r);

    /* a short error buffer is never overrun */
    char small[8];
    memset(small, 'Z', sizeof small);
    assert_int_equal(parse("{oops", &r, small, sizeof small), -1);
    assert_int_equal(small[sizeof small - 1], 0);
    oai_request_free(&r);
}

static void test_parse_too_many_members(void **state)
{
    (void)state;
    char body[4096];
    size_t o = 0;
    body[o++] = '{';
    for (int i = 0; i < OAI_MAX_MEMBERS + 1; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s\"k%d\":%d", i ? "," : "", i, i);
    body[o++] = '}';
    body[o] = 0;
    oai_request r;
    char err[256] = "";
    assert_int_equal(parse(body, &r, err, sizeof err), -1);
    assert_true(strlen(err) > 0);
    oai_request_free(&r);

    /* exactly the maximum is fine */
    o = 0;
    body[o++] = '{';
    for (int i = 0; i < OAI_MAX_MEMBERS; i++)
        o += (size_t)snprintf(body + o, sizeof body - o, "%s\"k%d\":%d", i ? "," : "", i, i);
    body[o++] = '}';
    body[o] = 0;
    assert_int_equal(parse(body, &r, err, sizeof err), 0);
    assert_int_equal(r.count, OAI_MAX_MEMBERS);
    oai_request_free(&r);
}

/* ---- oai_build_upstream_body -------------------------------------------------------------- */

static void test_build_replaces_model_keeps_bytes(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"gw-alias\",\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo "
        "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 \\\"q\\\"\"}],\"seed\":12345678901234567890,"
        "\"temperature\":0.30000000000000004,\"api_key\":\"sk-client-secret\","
        "\"api_base\":\"http://evil.example\",\"metadata\":{\"tags\":[\"a\"]},"
        "\"mock_response\":\"x\",\"fallbacks\":[\"b\"],\"num_retries\":3,\"user\":\"u-1\","
        "\"max_tokens\":1e3}";
    const char *want =
        "{\"model\":\"gpt-4o-2024-08-06\",\"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo "
        "\xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 \\\"q\\\"\"}],\"seed\":12345678901234567890,"
        "\"temperature\":0.30000000000000004,\"user\":\"u-1\",\"max_tokens\":1e3}";
    expect_rebuild(body, "gpt-4o-2024-08-06", false, want);
    char *got = rebuild(body, "gpt-4o-2024-08-06", false);
    assert_null(strstr(got, "sk-client-secret"));
    assert_null(strstr(got, "evil.example"));
    assert_null(strstr(got, "gw-alias"));
    free(got);
}

static void test_build_whitespace_members_byte_identical(void **state)
{
    (void)state;
    /* whitespace inside members and values survives; only the separators are rewritten */
    const char *body = "{\n  \"model\" : \"alias\",\n  \"messages\": [ {\"role\" : \"user\", "
                       "\"content\":\"x\"} ],\n  \"n\" :\t2 ,\n  \"logit_bias\": {\"50256\": -100}\n}";
    char *got = rebuild(body, "up", false);
    assert_non_null(strstr(got, "\"messages\": [ {\"role\" : \"user\", \"content\":\"x\"} ]"));
    assert_non_null(strstr(got, "\"n\" :\t2"));
    assert_non_null(strstr(got, "\"logit_bias\": {\"50256\": -100}"));
    assert_non_null(strstr(got, "\"model\":\"up\""));
    /* member order is kept */
    assert_true(strstr(got, "\"model\"") < strstr(got, "\"messages\""));
    assert_true(strstr(got, "\"messages\"") < strstr(got, "\"n\""));
    assert_true(strstr(got, "\"n\"") < strstr(got, "\"logit_bias\""));
    free(got);
}

static void test_build_drops_every_gateway_param(void **state)
{
    (void)state;
    static const char *const params[] = {"api_key",  "api_base",     "metadata",
                                         "mock_response", "fallbacks", "num_retries"};
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        assert_true(oai_is_gateway_param(params[i], strlen(params[i])));
        char body[256];
        snprintf(body, sizeof body, "{\"%s\":\"v\",\"model\":\"a\",\"temperature\":1}", params[i]);
        expect_rebuild(body, "b", false, "{\"model\":\"b\",\"temperature\":1}");
        snprintf(body, sizeof body, "{\"model\":\"a\",\"%s\":\"v\"}", params[i]);
        expect_rebuild(body, "b", false, "{\"model\":\"b\"}");
    }
    /* ordinary OpenAI parameters are not gateway params */
    static const char *const openai[] = {"model", "messages", "temperature", "tools",
                                         "user",  "stream",   "seed", "response_format"};
    for (size_t i = 0; i < sizeof openai / sizeof *openai; i++)
        assert_false(oai_is_gateway_param(openai[i], strlen(openai[i])));
    /* exact match only */
    assert_false(oai_is_gateway_param("api_keys", 8));
    assert_false(oai_is_gateway_param("api_ke", 6));
    /* a body of nothing but gateway params still gets its model */
    expect_rebuild("{\"api_key\":\"k\",\"metadata\":{}}", "m", false, "{\"model\":\"m\"}");
}

static void test_build_model_added_when_absent(void **state)
{
    (void)state;
    expect_rebuild("{\"messages\":[]}", "gpt-4o", false, "{\"messages\":[],\"model\":\"gpt-4o\"}");
    expect_rebuild("{}", "gpt-4o", false, "{\"model\":\"gpt-4o\"}");
    expect_rebuild("  {  }  ", "m", true, "{\"model\":\"m\",\"stream_options\":{\"include_usage\":true}}");
    /* the upstream model name is escaped */
    expect_rebuild("{\"model\":\"x\"}", "we\"ird\\name", false, "{\"model\":\"we\\\"ird\\\\name\"}");
    /* duplicated keys are refused: routing and the upstream could read different values */
    oai_request dup;
    char derr[256];
    const char *two = "{\"model\":\"a\",\"n\":1,\"model\":\"b\"}";
    assert_int_equal(oai_parse_request(two, strlen(two), &dup, derr, sizeof derr), -1);
    assert_non_null(strstr(derr, "Duplicate field 'model'"));
    oai_request_free(&dup);
    /* so are escaped field names ("mo\u0064el" is "model" to the upstream) */
    const char *esc = "{\"mo\\u0064el\":\"b\",\"model\":\"a\"}";
    assert_int_equal(oai_parse_request(esc, strlen(esc), &dup, derr, sizeof derr), -1);
    assert_non_null(strstr(derr, "escapes"));
    oai_request_free(&dup);
}

static void test_build_stream_options(void **state)
{
    (void)state;
    /* injected when absent */
    expect_rebuild("{\"model\":\"a\",\"stream\":true}", "b", true,
                   "{\"model\":\"b\",\"stream\":true,\"stream_options\":{\"include_usage\":true}}");
    /* not injected when not asked */
    expect_rebuild("{\"model\":\"a\",\"stream\":true}", "b", false, "{\"model\":\"b\",\"stream\":true}");
    /* merged in place when present without include_usage; other options kept */
    expect_rebuild("{\"model\":\"a\",\"stream_options\":{\"chunk\":1,\"x\":[1,2]},\"stream\":true}",
                   "b", true,
                   "{\"model\":\"b\",\"stream_options\":{\"include_usage\":true,\"chunk\":1,"
                   "\"x\":[1,2]},\"stream\":true}");
    expect_rebuild("{\"model\":\"a\",\"stream_options\":{}}", "b", true,
                   "{\"model\":\"b\",\"stream_options\":{\"include_usage\":true}}");
    /* include_usage:false is overridden, not duplicated */
    char *got = rebuild("{\"model\":\"a\",\"stream_options\":{\"include_usage\":false,\"y\":2}}",
                        "b", true);
    assert_string_equal(got, "{\"model\":\"b\",\"stream_options\":{\"include_usage\":true,\"y\":2}}");
    cJSON *j = cJSON_Parse(got);
    cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage")));
    assert_int_equal(cJSON_GetArraySize(so), 2);
    cJSON_Delete(j);
    free(got);
    /* null stream_options is replaced */
    expect_rebuild("{\"model\":\"a\",\"stream_options\":null}", "b", true,
                   "{\"model\":\"b\",\"stream_options\":{\"include_usage\":true}}");
    /* left alone, byte for byte, when the client already asked */
    expect_rebuild("{\"model\":\"a\",\"stream_options\": { \"include_usage\" : true }}", "b", true,
                   "{\"model\":\"b\",\"stream_options\": { \"include_usage\" : true }}");
    /* and left alone when inject is off */
    expect_rebuild("{\"model\":\"a\",\"stream_options\":{\"include_usage\":false}}", "b", false,
                   "{\"model\":\"b\",\"stream_options\":{\"include_usage\":false}}");
    /* model absent and stream_options absent: both appended */
    expect_rebuild("{\"stream\":true}", "b", true,
                   "{\"stream\":true,\"model\":\"b\",\"stream_options\":{\"include_usage\":true}}");
}

static void test_build_many_members_fits(void **state)
{
    (void)state;
    /* a large body with many members, gateway params and merged options: no overflow (ASan
     * checks the writes) and a valid result */
    char *body = malloc(70000);
    assert_non_null(body);
    size_t o = 0;
    o += (size_t)sprintf(body + o, "{\"stream_options\":{\"a\":1,\"b\":\"%s\",\"c\":[1,2,3]}",
                         "xxxxxxxxxxxxxxxxxxxx");
    for (int i = 0; i < 40; i++)
        o += (size_t)sprintf(body + o, ",\"p%d\":\"%0*d\"", i, 1000, i);
    o += (size_t)sprintf(body + o, ",\"api_key\":\"k\",\"metadata\":{}}");
    char longmodel[600];
    memset(longmodel, '"', sizeof longmodel - 1);
    longmodel[sizeof longmodel - 1] = 0;
    char *got = rebuild(body, longmodel, true);
    cJSON *j = cJSON_Parse(got);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring, longmodel);
    cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage")));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(so, "b")->valuestring, "xxxxxxxxxxxxxxxxxxxx");
    assert_int_equal(cJSON_GetArraySize(j), 42);
    cJSON_Delete(j);
    free(got);
    free(body);
}

/* ---- usage -------------------------------------------------------------------------------- */

static void test_usage_parse(void **state)
{
    (void)state;
    oai_usage u;
    oai_usage_init(&u);
    assert_int_equal(u.prompt_tokens, -1);
    assert_int_equal(u.completion_tokens, -1);
    assert_int_equal(u.total_tokens, -1);
    assert_int_equal(u.cached_tokens, -1);

    const char *v = "{\"prompt_tokens\":120,\"completion_tokens\":30,\"total_tokens\":150,"
                    "\"prompt_tokens_details\":{\"cached_tokens\":64,\"audio_tokens\":0},"
                    "\"completion_tokens_details\":{\"reasoning_tokens\":5}}";
    assert_true(oai_usage_parse(v, strlen(v), &u));
    assert_int_equal(u.prompt_tokens, 120);
    assert_int_equal(u.completion_tokens, 30);
    assert_int_equal(u.total_tokens, 150);
    assert_int_equal(u.cached_tokens, 64);

    /* total derived when missing; cached stays unknown */
    oai_usage_init(&u);
    v = "{\"prompt_tokens\":7,\"completion_tokens\":8}";
    assert_true(oai_usage_parse(v, strlen(v), &u));
    assert_int_equal(u.total_tokens, 15);
    assert_int_equal(u.cached_tokens, -1);

    /* details null */
    oai_usage_init(&u);
    v = "{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3,\"prompt_tokens_details\":null}";
    assert_true(oai_usage_parse(v, strlen(v), &u));
    assert_int_equal(u.cached_tokens, -1);
    assert_int_equal(u.total_tokens, 3);

    /* partially reported */
    oai_usage_init(&u);
    v = "{\"prompt_tokens\":9}";
    assert_true(oai_usage_parse(v, strlen(v), &u));
    assert_int_equal(u.prompt_tokens, 9);
    assert_int_equal(u.completion_tokens, -1);
    assert_int_equal(u.total_tokens, -1);

    /* not an object */
    oai_usage_init(&u);
    assert_false(oai_usage_parse("null", 4, &u));
    assert_false(oai_usage_parse("[1]", 3, &u));
    assert_false(oai_usage_parse("", 0, &u));
    assert_false(oai_usage_parse("{\"prompt_tokens\":", 17, &u));
}

static void test_response_usage(void **state)
{
    (void)state;
    const char *body = "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                       "\"message\":{\"role\":\"assistant\",\"content\":\"{\\\"usage\\\":1}\"}}],"
                       "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":22,\"total_tokens\":33,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
    oai_usage u;
    oai_usage_init(&u);
    assert_true(oai_response_usage(body, strlen(body), &u));
    assert_int_equal(u.prompt_tokens, 11);
    assert_int_equal(u.completion_tokens, 22);
    assert_int_equal(u.total_tokens, 33);
    assert_int_equal(u.cached_tokens, 4);

    oai_usage_init(&u);
    const char *none = "{\"id\":\"x\",\"choices\":[]}";
    assert_false(oai_response_usage(none, strlen(none), &u));
    assert_int_equal(u.prompt_tokens, -1);
    assert_false(oai_response_usage("not json", 8, &u));
    const char *nullu = "{\"usage\":null}";
    assert_false(oai_response_usage(nullu, strlen(nullu), &u));
}

/* ---- oai_classify_chunk ------------------------------------------------------------------- */

static void test_classify_chunk(void **state)
{
    (void)state;
    oai_usage u;
    oai_usage_init(&u);
    assert_int_equal(oai_classify_chunk("[DONE]", 6, &u), OAI_CHUNK_DONE);
    assert_int_equal(oai_classify_chunk(" [DONE]\r", 8, &u), OAI_CHUNK_DONE);

    const char *uo = "{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],"
                     "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6,\"total_tokens\":11,"
                     "\"prompt_tokens_details\":{\"cached_tokens\":2}}}";
    oai_usage_init(&u);
    assert_int_equal(oai_classify_chunk(uo, strlen(uo), &u), OAI_CHUNK_USAGE_ONLY);
    assert_int_equal(u.prompt_tokens, 5);
    assert_int_equal(u.completion_tokens, 6);
    assert_int_equal(u.total_tokens, 11);
    assert_int_equal(u.cached_tokens, 2);

    const char *uo_ws = "{\"choices\": [ \n ], \"usage\": {\"prompt_tokens\":1,\"completion_tokens\":1}}";
    oai_usage_init(&u);
    assert_int_equal(oai_classify_chunk(uo_ws, strlen(uo_ws), &u), OAI_CHUNK_USAGE_ONLY);
    assert_int_equal(u.total_tokens, 2);

    const char *normal = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
                         "\"finish_reason\":null}],\"usage\":null}";
    oai_usage_init(&u);
    assert_int_equal(oai_classify_chunk(normal, strlen(normal), &u), OAI_CHUNK_CONTENT);
    assert_int_equal(u.prompt_tokens, -1);
    assert_int_equal(u.total_tokens, -1);

    const char *plain = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"}}]}";
    assert_int_equal(oai_classify_chunk(plain, strlen(plain), &u), OAI_CHUNK_CONTENT);

    /* a content chunk that also carries usage (some providers send it on the last chunk): it
     * is still content, and its usage is read */
    const char *both = "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],"
                       "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}";
    oai_usage_init(&u);
    assert_int_equal(oai_classify_chunk(both, strlen(both), &u), OAI_CHUNK_CONTENT);
    assert_int_equal(u.total_tokens, 7);

    /* not JSON */
    assert_int_equal(oai_classify_chunk("hello", 5, &u), OAI_CHUNK_OTHER);
    /* chunks without a usage object are forwarded unvalidated: broken JSON stays "content" */
    assert_int_equal(oai_classify_chunk("{\"choices\":[", 12, &u), OAI_CHUNK_CONTENT);
    /* ...but a usage-looking chunk must parse to count */
    oai_usage_init(&u);
    assert_int_equal(oai_classify_chunk("{\"choices\":[],\"usage\":{\"prompt_tokens\":1", 38, &u),
                     OAI_CHUNK_OTHER);
    assert_int_equal(u.prompt_tokens, -1);
    assert_int_equal(oai_classify_chunk("", 0, &u), OAI_CHUNK_OTHER);
    assert_int_equal(oai_classify_chunk("[DONE", 5, &u), OAI_CHUNK_OTHER);
    assert_int_equal(oai_classify_chunk("[DONE]x", 7, &u), OAI_CHUNK_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full_request),
        cmocka_unit_test(test_parse_defaults),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_too_many_members),
        cmocka_unit_test(test_build_replaces_model_keeps_bytes),
        cmocka_unit_test(test_build_whitespace_members_byte_identical),
        cmocka_unit_test(test_build_drops_every_gateway_param),
        cmocka_unit_test(test_build_model_added_when_absent),
        cmocka_unit_test(test_build_stream_options),
        cmocka_unit_test(test_build_many_members_fits),
        cmocka_unit_test(test_usage_parse),
        cmocka_unit_test(test_response_usage),
        cmocka_unit_test(test_classify_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
