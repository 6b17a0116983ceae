/* Unit tests for providers/mock: offline completions, streams and embeddings. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "providers/mock.h"
#include "providers/openai.h"

static const mock_ctx CTX = {
    .id = "chatcmpl-test123", .model = "demo", .created = 1700000000, .prompt_bytes = 100};

static const char UTF8_TEXT[] = "h\xC3\xA9llo \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E "
                                "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89 \"q\" \\ end\n";

/* Is s[0..n) valid UTF-8 (no sequence cut short at either end)? */
static bool utf8_complete(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
                              : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > n)
            return false;
        for (size_t j = 1; j < k; j++)
            if (((unsigned char)s[i + j] & 0xC0) != 0x80)
                return false;
        i += k;
    }
    return true;
}

/* ---- mock_completion ---------------------------------------------------------------------- */

static void test_completion_chat(void **state)
{
    (void)state;
    size_t len = 0;
    oai_usage u;
    oai_usage_init(&u);
    char *body = mock_completion(EP_CHAT, &CTX, UTF8_TEXT, &len, &u);
    assert_non_null(body);
    assert_int_equal(strlen(body), len);
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring, "chatcmpl-test123");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "object")->valuestring, "chat.completion");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring, "demo");
    assert_true(cJSON_GetObjectItemCaseSensitive(j, "created")->valuedouble == 1700000000.0);
    cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
    assert_int_equal(cJSON_GetArraySize(ch), 1);
    cJSON *c0 = cJSON_GetArrayItem(ch, 0);
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(msg, "role")->valuestring, "assistant");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(msg, "content")->valuestring, UTF8_TEXT);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c0, "finish_reason")->valuestring, "stop");

    /* usage in the body, in *usage, and consistent */
    cJSON *uj = cJSON_GetObjectItemCaseSensitive(j, "usage");
    double pt = cJSON_GetObjectItemCaseSensitive(uj, "prompt_tokens")->valuedouble;
    double ct = cJSON_GetObjectItemCaseSensitive(uj, "completion_tokens")->valuedouble;
    double tt = cJSON_GetObjectItemCaseSensitive(uj, "total_tokens")->valuedouble;
    assert_true(pt > 0 && ct > 0);
    assert_true(tt == pt + ct);
    assert_int_equal(u.prompt_tokens, (int64_t)pt);
    assert_int_equal(u.completion_tokens, (int64_t)ct);
    assert_int_equal(u.total_tokens, (int64_t)tt);
    /* the gateway's own usage reader agrees with what was reported */
    oai_usage r;
    oai_usage_init(&r);
    assert_true(oai_response_usage(body, len, &r));
    assert_int_equal(r.total_tokens, u.total_tokens);
    cJSON_Delete(j);
    free(body);

    /* more text, more completion tokens; more prompt, more prompt tokens */
    oai_usage u2;
    mock_ctx big = CTX;
    big.prompt_bytes = 10000;
    char longtext[2000];
    memset(longtext, 'a', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = 0;
    body = mock_completion(EP_CHAT, &big, longtext, &len, &u2);
    assert_non_null(body);
    assert_true(u2.prompt_tokens > u.prompt_tokens);
    assert_true(u2.completion_tokens > u.completion_tokens);
    assert_int_equal(u2.total_tokens, u2.prompt_tokens + u2.completion_tokens);
    free(body);
}

static void test_completion_text(void **state)
{
    (void)state;
    size_t len = 0;
    oai_usage u;
    char *body = mock_completion(EP_COMPLETIONS, &CTX, "plain text", &len, &u);
    assert_non_null(body);
    cJSON *j = cJSON_Parse(body);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "object")->valuestring, "text_completion");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(c0, "text")->valuestring, "plain text");
    assert_true(u.completion_tokens > 0);
    cJSON_Delete(j);
    free(body);
}

/* ---- mock_stream -------------------------------------------------------------------------- */

typedef struct {
    char content[4096];
    size_t clen;
    int chunks, usage_chunks, done, after_done, finish_stop, bad_split;
    oai_usage usage;
    prov_endpoint ep;
} stream_seen;

static int on_stream_event(void *ud, const sse_event *ev)
{
    stream_seen *s = ud;
    assert_non_null(ev->data);
    if (s->done)
        s->after_done++;
    oai_usage u;
    oai_usage_init(&u);
    oai_chunk_kind k = oai_classify_chunk(ev->data, ev->data_len, &u);
    if (k == OAI_CHUNK_DONE) {
        s->done++;
        return 0;
    }
    assert_int_equal(k == OAI_CHUNK_OTHER, 0);
    char *txt = strndup(ev->data, ev->data_len);
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    assert_non_null(j);
    s->chunks++;
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring, "chatcmpl-test123");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "object")->valuestring,
                        s->ep == EP_CHAT ? "chat.completion.chunk" : "text_completion");
    if (k == OAI_CHUNK_USAGE_ONLY) {
        s->usage_chunks++;
        s->usage = u;
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "choices")), 0);
    } else {
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
        assert_non_null(c0);
        cJSON *piece = s->ep == EP_CHAT
                           ? cJSON_GetObjectItemCaseSensitive(
                                 cJSON_GetObjectItemCaseSensitive(c0, "delta"), "content")
                           : cJSON_GetObjectItemCaseSensitive(c0, "text");
        if (cJSON_IsString(piece)) {
            size_t pl = strlen(piece->valuestring);
            if (!utf8_complete(piece->valuestring, pl))
                s->bad_split++;
            assert_true(s->clen + pl < sizeof s->content);
            memcpy(s->content + s->clen, piece->valuestring, pl);
            s->clen += pl;
        }
        cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
        if (cJSON_IsString(fr) && strcmp(fr->valuestring, "stop") == 0)
            s->finish_stop++;
    }
    cJSON_Delete(j);
    return 0;
}

static void run_stream(prov_endpoint ep, const char *text, bool include_usage, stream_seen *seen,
                       oai_usage *reported)
{
    size_t len = 0;
    char *sse = mock_stream(ep, &CTX, text, include_usage, &len, reported);
    assert_non_null(sse);
    assert_int_equal(strlen(sse), len);
    /* ends with the [DONE] sentinel */
    assert_true(len > 14);
    assert_string_equal(sse + len - 14, "data: [DONE]\n\n");
    memset(seen, 0, sizeof *seen);
    seen->ep = ep;
    sse_parser p;
    sse_init(&p, 1 << 16);
    assert_int_equal(sse_feed(&p, sse, len, on_stream_event, seen), 0);
    assert_int_equal(sse_pending(&p), 0);
    sse_free(&p);
    free(sse);
    seen->content[seen->clen] = 0;
}

static void test_stream_ascii(void **state)
{
    (void)state;
    const char *text = "Hello from the mock, streamed in pieces.";
    stream_seen s;
    oai_usage u;
    run_stream(EP_CHAT, text, false, &s, &u);
    assert_string_equal(s.content, text);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.after_done, 0);
    assert_int_equal(s.usage_chunks, 0);
    assert_int_equal(s.finish_stop, 1);
    /* it really is streamed in several pieces */
    assert_true(s.chunks >= 5);
    assert_true(u.prompt_tokens > 0 && u.completion_tokens > 0);
    assert_int_equal(u.total_tokens, u.prompt_tokens + u.completion_tokens);
}

static void test_stream_utf8_never_split(void **state)
{
    (void)state;
    stream_seen s;
    oai_usage u;
    run_stream(EP_CHAT, UTF8_TEXT, true, &s, &u);
    assert_int_equal(s.clen, strlen(UTF8_TEXT));
    assert_string_equal(s.content, UTF8_TEXT);
    assert_int_equal(s.bad_split, 0);
    assert_int_equal(s.done, 1);
    assert_int_equal(s.after_done, 0);

    /* text made only of 4-byte characters: still whole code points in every piece */
    const char *emoji = "\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82\xF0\x9F\x98\x83"
                        "\xF0\x9F\x98\x84\xF0\x9F\x98\x85\xF0\x9F\x98\x86";
    run_stream(EP_CHAT, emoji, false, &s, &u);
    assert_string_equal(s.content, emoji);
    assert_int_equal(s.bad_split, 0);
    run_stream(EP_COMPLETIONS, emoji, false, &s, &u);
    assert_string_equal(s.content, emoji);
    assert_int_equal(s.bad_split, 0);
}

static void test_stream_usage_only_when_asked(void **state)
{
    (void)state;
    stream_seen s;
    oai_usage u;
    run_stream(EP_CHAT, "some text", true, &s, &u);
    assert_int_equal(s.usage_chunks, 1);
    assert_int_equal(s.usage.prompt_tokens, u.prompt_tokens);
    assert_int_equal(s.usage.completion_tokens, u.completion_tokens);
    assert_int_equal(s.usage.total_tokens, u.total_tokens);
    assert_true(u.total_tokens > 0);

    run_stream(EP_CHAT, "some text", false, &s, &u);
    assert_int_equal(s.usage_chunks, 0);
    /* usage is still reported to the caller for accounting */
    assert_true(u.total_tokens > 0);

    run_stream(EP_COMPLETIONS, "some text", true, &s, &u);
    assert_int_equal(s.usage_chunks, 1);
    assert_string_equal(s.content, "some text");
    assert_int_equal(s.finish_stop, 1);
}

static void test_stream_empty_text(void **state)
{
    (void)state;
    stream_seen s;
    oai_usage u;
    run_stream(EP_CHAT, "", true, &s, &u);
    assert_string_equal(s.content, "");
    assert_int_equal(s.done, 1);
    assert_int_equal(s.finish_stop, 1);
    assert_int_equal(s.usage_chunks, 1);
}

/* ---- mock_embeddings ---------------------------------------------------------------------- */

static cJSON *embed(const char *body, oai_usage *u)
{
    size_t len = 0;
    char err[256] = "";
    char *out = mock_embeddings(body, strlen(body), &CTX, &len, u, err, sizeof err);
    if (!out)
        fail_msg("mock_embeddings(%s) failed: %s", body, err);
    assert_int_equal(strlen(out), len);
    cJSON *j = cJSON_Parse(out);
    free(out);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "object")->valuestring, "list");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "model")->valuestring, "demo");
    return j;
}

static cJSON *data_of(cJSON *j)
{
    cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "data");
    assert_true(cJSON_IsArray(d));
    return d;
}

static void test_embeddings_counts(void **state)
{
    (void)state;
    oai_usage u;
    cJSON *j = embed("{\"model\":\"e\",\"input\":\"hello world\"}", &u);
    cJSON *d = data_of(j);
    assert_int_equal(cJSON_GetArraySize(d), 1);
    cJSON *e0 = cJSON_GetArrayItem(d, 0);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(e0, "object")->valuestring, "embedding");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(e0, "index")->valueint, 0);
    cJSON *vec = cJSON_GetObjectItemCaseSensitive(e0, "embedding");
    assert_true(cJSON_IsArray(vec));
    assert_true(cJSON_GetArraySize(vec) > 0);
    assert_true(u.prompt_tokens > 0);
    assert_int_equal(u.total_tokens, u.prompt_tokens);
    cJSON *uj = cJSON_GetObjectItemCaseSensitive(j, "usage");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(uj, "prompt_tokens")->valueint, u.prompt_tokens);
    cJSON_Delete(j);

    j = embed("{\"model\":\"e\",\"input\":[\"a\", \"b\",\"c\"]}", &u);
    d = data_of(j);
    assert_int_equal(cJSON_GetArraySize(d), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, i), "index")->valueint, i);
    /* different inputs get different vectors; the same input the same vector */
    char *v0 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 0), "embedding"));
    char *v1 = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, 1), "embedding"));
    assert_string_not_equal(v0, v1);
    cJSON_Delete(j);
    j = embed("{\"input\":[\"a\"]}", &u);
    char *again = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(data_of(j), 0), "embedding"));
    assert_string_equal(v0, again);
    free(v0);
    free(v1);
    free(again);
    cJSON_Delete(j);

    /* a flat token list is one input; a list of token lists is one per list */
    j = embed("{\"input\":[1,2,3,4]}", &u);
    assert_int_equal(cJSON_GetArraySize(data_of(j)), 1);
    cJSON_Delete(j);
    j = embed("{\"input\":[[1,2],[3]]}", &u);
    assert_int_equal(cJSON_GetArraySize(data_of(j)), 2);
    cJSON_Delete(j);
}

static void test_embeddings_unit_length_and_dimensions(void **state)
{
    (void)state;
    oai_usage u;
    cJSON *j = embed("{\"input\":\"x\",\"dimensions\":37}", &u);
    cJSON *vec = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(data_of(j), 0), "embedding");
    assert_int_equal(cJSON_GetArraySize(vec), 37);
    double norm = 0;
    cJSON *x;
    cJSON_ArrayForEach(x, vec)
    {
        assert_true(cJSON_IsNumber(x));
        assert_true(x->valuedouble >= -1.0 && x->valuedouble <= 1.0);
        norm += x->valuedouble * x->valuedouble;
    }
    assert_true(fabs(norm - 1.0) < 1e-4);
    cJSON_Delete(j);

    j = embed("{\"input\":[\"x\",\"y\"],\"dimensions\":1536}", &u);
    cJSON *d = data_of(j);
    for (int i = 0; i < 2; i++)
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(d, i), "embedding")), 1536);
    cJSON_Delete(j);
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Standard base64 with padding; returns the decoded length or -1. */
static long b64decode(const char *s, unsigned char *out, size_t cap)
{
    size_t n = strlen(s), o = 0;
    if (n % 4)
        return -1;
    for (size_t i = 0; i < n; i += 4) {
        int a = b64val(s[i]), b = b64val(s[i + 1]);
        int c = s[i + 2] == '=' ? 0 : b64val(s[i + 2]);
        int d = s[i + 3] == '=' ? 0 : b64val(s[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0)
            return -1;
        uint32_t x = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        size_t k = s[i + 2] == '=' ? 1 : s[i + 3] == '=' ? 2 : 3;
        if (o + k > cap)
            return -1;
        out[o++] = (unsigned char)(x >> 16);
        if (k > 1)
            out[o++] = (unsigned char)(x >> 8);
        if (k > 2)
            out[o++] = (unsigned char)x;
    }
    return (long)o;
}

static void test_embeddings_base64_matches_float(void **state)
{
    (void)state;
    static const int dims_list[] = {1, 2, 3, 8, 37};
    for (size_t t = 0; t < sizeof dims_list / sizeof *dims_list; t++) {
        int dims = dims_list[t];
        char fbody[128], bbody[160];
        snprintf(fbody, sizeof fbody, "{\"input\":[\"alpha\",\"beta\"],\"dimensions\":%d}", dims);
        snprintf(bbody, sizeof bbody,
                 "{\"input\":[\"alpha\",\"beta\"],\"dimensions\":%d,\"encoding_format\":\"base64\"}",
                 dims);
        oai_usage u;
        cJSON *fj = embed(fbody, &u);
        cJSON *bj = embed(bbody, &u);
        for (int item = 0; item < 2; item++) {
            cJSON *fv = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(data_of(fj), item), "embedding");
            cJSON *bv = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(data_of(bj), item), "embedding");
            assert_true(cJSON_IsArray(fv));
            assert_true(cJSON_IsString(bv));
            unsigned char raw[4 * 64];
            long n = b64decode(bv->valuestring, raw, sizeof raw);
            if (n != 4L * dims)
                fail_msg("dims %d: base64 decodes to %ld bytes, want %d (%s)", dims, n, 4 * dims,
                         bv->valuestring);
            assert_int_equal(cJSON_GetArraySize(fv), dims);
            for (int i = 0; i < dims; i++) {
                uint32_t x = (uint32_t)raw[4 * i] | (uint32_t)raw[4 * i + 1] << 8 |
                             (uint32_t)raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
                float f;
                memcpy(&f, &x, sizeof f);
                double want = cJSON_GetArrayItem(fv, i)->valuedouble;
                /* the same float32: equal to well within float precision, and printing the
                 * same at the float list's precision */
                char a[32], b[32];
                snprintf(a, sizeof a, "%.8g", (double)f);
                snprintf(b, sizeof b, "%.8g", want);
                if (fabs((double)f - want) > 1e-6 || strcmp(a, b) != 0)
                    fail_msg("dims %d item %d [%d]: base64 %s vs float %s", dims, item, i, a, b);
            }
        }
        cJSON_Delete(fj);
        cJSON_Delete(bj);
    }
}

static void test_embeddings_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"model\":\"e\"}",     "{\"model\":\"e\",\"input\":42}", "{\"input\":[]}",
        "{\"input\":null}",      "not json",                       "",
        "{\"input\":{\"a\":1}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = 12345;
        oai_usage u;
        char err[256] = "";
        char *out = mock_embeddings(bad[i], strlen(bad[i]), &CTX, &len, &u, err, sizeof err);
        if (out) {
            free(out);
            fail_msg("accepted %s", bad[i]);
        }
        assert_non_null(strstr(err, "input"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_completion_chat),
        cmocka_unit_test(test_completion_text),
        cmocka_unit_test(test_stream_ascii),
        cmocka_unit_test(test_stream_utf8_never_split),
        cmocka_unit_test(test_stream_usage_only_when_asked),
        cmocka_unit_test(test_stream_empty_text),
        cmocka_unit_test(test_embeddings_counts),
        cmocka_unit_test(test_embeddings_unit_length_and_dimensions),
        cmocka_unit_test(test_embeddings_base64_matches_float),
        cmocka_unit_test(test_embeddings_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
