/* Unit tests for the /v1/messages ingress half of providers/anthropic: Anthropic requests to
 * OpenAI requests, OpenAI answers and chunk streams back to Anthropic messages and events.
 *
 * Cases are data under tests/fixtures/anthropic_ingress/<case>/, walked by one runner:
 *   ctx.json              {"model", "msg_id"} for the answer (defaults below)
 *   request.json          Anthropic request → anth_to_openai_request, compared with
 *                         openai_request.json, or request_error.json {"status", "message_contains"}
 *   openai_response.json  → anth_from_openai_response, compared with response.json
 *   openai_stream.sse     data payloads → anth_out_stream_chunk / _end, compared event by event
 *                         with response.sse; every produced stream is also checked against
 *                         Anthropic's ordering rules (check_event_grammar). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "providers/anthropic.h"

#define FIXTURES "../fixtures/anthropic_ingress"

static int failures;

static void failf(const char *cs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(const char *cs, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[case %s] ", cs);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    failures++;
}

static char *read_file(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    buf[got] = 0;
    if (len)
        *len = got;
    return buf;
}

static cJSON *read_json(const char *dir, const char *name, const char *cs)
{
    char *s = read_file(dir, name, NULL);
    if (!s)
        return NULL;
    cJSON *j = cJSON_Parse(s);
    if (!j)
        failf(cs, "%s is not valid JSON", name);
    free(s);
    return j;
}

static void compare_json(const char *cs, const char *what, const cJSON *got, const cJSON *want)
{
    if (!cJSON_Compare(got, want, true)) {
        char *g = cJSON_Print(got), *w = cJSON_Print(want);
        failf(cs, "%s differs\n--- got:\n%s\n--- want:\n%s", what, g, w);
        free(g);
        free(w);
    }
}

static int split_events(char *s, char **events, int max)
{
    int n = 0;
    char *p = s;
    while (*p && n < max) {
        while (*p == '\n')
            p++;
        if (!*p)
            break;
        char *end = strstr(p, "\n\n");
        events[n++] = p;
        if (!end)
            break;
        *end = 0;
        p = end + 2;
    }
    return n;
}

/* An event's "event:" name and parsed data (caller deletes). */
static cJSON *parse_event(const char *ev, char *name, size_t namecap)
{
    name[0] = 0;
    cJSON *data = NULL;
    const char *p = ev;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > 7 && strncmp(p, "event: ", 7) == 0)
            snprintf(name, namecap, "%.*s", (int)(n - 7), p + 7);
        else if (n > 6 && strncmp(p, "data: ", 6) == 0)
            data = cJSON_ParseWithLength(p + 6, n - 6);
        p += n;
        if (*p == '\n')
            p++;
    }
    return data;
}

static void compare_sse(const char *cs, const char *got, size_t len, const char *want)
{
    char *g = strndup(got, len), *w = strdup(want);
    char *ge[512], *we[512];
    int ng = split_events(g, ge, 512), nw = split_events(w, we, 512);
    bool ok = ng == nw;
    for (int i = 0; ok && i < ng; i++) {
        char n1[64], n2[64];
        cJSON *d1 = parse_event(ge[i], n1, sizeof n1), *d2 = parse_event(we[i], n2, sizeof n2);
        if (strcmp(n1, n2) != 0 || !d1 || !d2 || !cJSON_Compare(d1, d2, true)) {
            fprintf(stderr, "[case %s] first differing event: #%d\n", cs, i);
            ok = false;
        }
        cJSON_Delete(d1);
        cJSON_Delete(d2);
    }
    if (!ok)
        failf(cs, "SSE output differs (%d events, want %d)\n--- got:\n%.*s\n--- want:\n%s", ng, nw,
              (int)len, got, want);
    free(g);
    free(w);
}

/* Anthropic's stream grammar: message_start; then blocks, each content_block_start(index i, i
 * counting up from 0), deltas on the open block only and of the block's kind,
 * content_block_stop(i); pings anywhere; then exactly one message_delta and a final
 * message_stop. The "event:" name always equals data.type. */
static void check_event_grammar(const char *cs, const char *text, size_t len)
{
    char *s = strndup(text, len);
    char *ev[512];
    int n = split_events(s, ev, 512);
    int state = 0; /* 0 before start, 1 in message, 2 after message_delta, 3 stopped */
    int open = -1, next = 0;
    char kind[32] = "";
    for (int i = 0; i < n; i++) {
        char name[64];
        cJSON *d = parse_event(ev[i], name, sizeof name);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "type");
        const char *type = cJSON_IsString(t) ? t->valuestring : "";
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(d, "index");
        int index = cJSON_IsNumber(ix) ? (int)ix->valuedouble : -1;
        if (!d || strcmp(name, type) != 0)
            failf(cs, "event #%d: name '%s' and data.type '%s' differ", i, name, type);
        else if (strcmp(type, "ping") == 0)
            ;
        else if (strcmp(type, "message_start") == 0) {
            if (state != 0)
                failf(cs, "event #%d: message_start not first", i);
            state = 1;
        } else if (strcmp(type, "content_block_start") == 0) {
            const cJSON *cb = cJSON_GetObjectItemCaseSensitive(d, "content_block");
            const cJSON *bt = cJSON_GetObjectItemCaseSensitive(cb, "type");
            if (state != 1 || open >= 0 || index != next)
                failf(cs, "event #%d: content_block_start index %d out of order", i, index);
            open = index;
            next++;
            snprintf(kind, sizeof kind, "%s", cJSON_IsString(bt) ? bt->valuestring : "?");
        } else if (strcmp(type, "content_block_delta") == 0) {
            const cJSON *dl = cJSON_GetObjectItemCaseSensitive(d, "delta");
            const cJSON *dt = cJSON_GetObjectItemCaseSensitive(dl, "type");
            const char *dts = cJSON_IsString(dt) ? dt->valuestring : "";
            bool fits = (strcmp(kind, "text") == 0 && strcmp(dts, "text_delta") == 0) ||
                        (strcmp(kind, "tool_use") == 0 && strcmp(dts, "input_json_delta") == 0) ||
                        (strcmp(kind, "thinking") == 0 && (strcmp(dts, "thinking_delta") == 0 ||
                                                          strcmp(dts, "signature_delta") == 0));
            if (index != open || !fits)
                failf(cs, "event #%d: %s on block %d (open %d, a %s block)", i, dts, index, open,
                      kind);
        } else if (strcmp(type, "content_block_stop") == 0) {
            if (index != open)
                failf(cs, "event #%d: content_block_stop %d but %d is open", i, index, open);
            open = -1;
        } else if (strcmp(type, "message_delta") == 0) {
            if (state != 1 || open >= 0)
                failf(cs, "event #%d: message_delta with a block open or twice", i);
            state = 2;
        } else if (strcmp(type, "message_stop") == 0) {
            if (state != 2)
                failf(cs, "event #%d: message_stop before message_delta", i);
            state = 3;
        } else {
            failf(cs, "event #%d: unexpected type %s", i, type);
        }
        cJSON_Delete(d);
    }
    if (state != 3)
        failf(cs, "stream does not end with message_stop");
    free(s);
}

static const char *jstr(const cJSON *o, const char *k, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static void run_case(const char *dir, const char *cs)
{
    cJSON *ctx = read_json(dir, "ctx.json", cs);
    const char *model = jstr(ctx, "model", "claude-3-5-sonnet");
    const char *msg_id = jstr(ctx, "msg_id", "msg_test");
    int steps = 0;

    cJSON *req = read_json(dir, "request.json", cs);
    if (req) {
        steps++;
        prov_err e = {0};
        cJSON *got = anth_to_openai_request(req, &e);
        cJSON *want_err = read_json(dir, "request_error.json", cs);
        if (want_err) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(want_err, "status");
            const char *sub = jstr(want_err, "message_contains", "");
            if (got)
                failf(cs, "request translated, expected an error");
            else if ((cJSON_IsNumber(st) && e.status != (int)st->valuedouble) || !e.message ||
                     !strstr(e.message, sub))
                failf(cs, "error %d %s, want %s", e.status, e.message ? e.message : "", sub);
        } else if (!got) {
            failf(cs, "anth_to_openai_request failed: %s", e.message ? e.message : "");
        } else {
            cJSON *want = read_json(dir, "openai_request.json", cs);
            if (!want)
                failf(cs, "openai_request.json missing");
            else
                compare_json(cs, "OpenAI request", got, want);
            cJSON_Delete(want);
        }
        cJSON_Delete(want_err);
        cJSON_Delete(got);
        prov_err_free(&e);
        cJSON_Delete(req);
    }

    size_t len;
    char *body = read_file(dir, "openai_response.json", &len);
    if (body) {
        steps++;
        sbuf out;
        sbuf_init(&out);
        prov_err e = {0};
        if (anth_from_openai_response(body, len, model, &out, &e) != 0) {
            failf(cs, "anth_from_openai_response failed: %s", e.message ? e.message : "");
        } else {
            cJSON *got = cJSON_ParseWithLength(out.p, out.len);
            cJSON *want = read_json(dir, "response.json", cs);
            if (!got || !want)
                failf(cs, "response not JSON or response.json missing");
            else
                compare_json(cs, "Anthropic message", got, want);
            cJSON_Delete(got);
            cJSON_Delete(want);
        }
        prov_err_free(&e);
        sbuf_free(&out);
        free(body);
    }

    char *sse = read_file(dir, "openai_stream.sse", &len);
    if (sse) {
        steps++;
        sbuf out;
        sbuf_init(&out);
        anth_out_stream *s = anth_out_stream_new(model, msg_id);
        assert_non_null(s);
        char *ev[512];
        int n = split_events(sse, ev, 512);
        for (int i = 0; i < n; i++) {
            if (strncmp(ev[i], "data: ", 6) != 0 || strcmp(ev[i] + 6, "[DONE]") == 0)
                continue;
            if (anth_out_stream_chunk(s, ev[i] + 6, strlen(ev[i] + 6), &out) != 0)
                failf(cs, "anth_out_stream_chunk failed on chunk #%d", i);
        }
        if (anth_out_stream_end(s, &out) != 0)
            failf(cs, "anth_out_stream_end failed");
        check_event_grammar(cs, out.p, out.len);
        char *want = read_file(dir, "response.sse", NULL);
        if (!want)
            failf(cs, "response.sse missing");
        else
            compare_sse(cs, out.p, out.len, want);
        free(want);
        anth_out_stream_free(s);
        sbuf_free(&out);
        free(sse);
    }
    if (!steps)
        failf(cs, "no inputs");
    cJSON_Delete(ctx);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_fixtures(void **state)
{
    (void)state;
    DIR *d = opendir(FIXTURES);
    assert_non_null(d);
    char *names[256];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 256)
        if (de->d_name[0] != '.')
            names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    failures = 0;
    for (int i = 0; i < n; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", FIXTURES, names[i]);
        run_case(dir, names[i]);
        free(names[i]);
    }
    fprintf(stderr, "anthropic ingress fixtures: %d cases, %d failures\n", n, failures);
    assert_true(n >= 12);
    assert_int_equal(failures, 0);
}

static void expect_error_body(int status, const char *msg, const char *want)
{
    size_t len = 0;
    char *b = anth_error_body(status, msg, &len);
    assert_non_null(b);
    assert_int_equal(strlen(b), len);
    if (strcmp(b, want) != 0)
        fail_msg("anth_error_body(%d)\n  got:  %s\n  want: %s", status, b, want);
    free(b);
}

static void test_error_body(void **state)
{
    (void)state;
    expect_error_body(400, "max_tokens: field required",
                      "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                      "\"message\":\"max_tokens: field required\"}}");
    expect_error_body(401, "bad \"key\"",
                      "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\","
                      "\"message\":\"bad \\\"key\\\"\"}}");
    expect_error_body(403, "no", "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\","
                                 "\"message\":\"no\"}}");
    expect_error_body(404, "no", "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\","
                                 "\"message\":\"no\"}}");
    expect_error_body(413, "big", "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\","
                                  "\"message\":\"big\"}}");
    expect_error_body(429, "slow", "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                                   "\"message\":\"slow\"}}");
    expect_error_body(500, "oops", "{\"type\":\"error\",\"error\":{\"type\":\"api_error\","
                                   "\"message\":\"oops\"}}");
    expect_error_body(529, "Overloaded", "{\"type\":\"error\",\"error\":{\"type\":"
                                         "\"overloaded_error\",\"message\":\"Overloaded\"}}");
    expect_error_body(422, NULL, "{\"type\":\"error\",\"error\":{\"type\":"
                                 "\"invalid_request_error\",\"message\":\"\"}}");
}

/* An upstream that dies before any chunk still yields a well-formed (empty) message. */
static void test_empty_stream(void **state)
{
    (void)state;
    anth_out_stream *s = anth_out_stream_new("m", "msg_x");
    sbuf out;
    sbuf_init(&out);
    assert_int_equal(anth_out_stream_chunk(s, "not json", 8, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(anth_out_stream_end(s, &out), 0);
    failures = 0;
    check_event_grammar("empty", out.p, out.len);
    assert_int_equal(failures, 0);
    assert_non_null(strstr(out.p, "\"stop_reason\":\"end_turn\""));
    anth_out_stream_free(s);
    sbuf_free(&out);
}

static void test_bad_response(void **state)
{
    (void)state;
    sbuf out;
    sbuf_init(&out);
    prov_err e = {0};
    assert_int_equal(anth_from_openai_response("{\"choices\":[]}", 14, "m", &out, &e), -1);
    assert_non_null(e.message);
    prov_err_free(&e);
    assert_int_equal(anth_from_openai_response("nope", 4, "m", &out, &e), -1);
    prov_err_free(&e);
    sbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_error_body),
        cmocka_unit_test(test_empty_stream),
        cmocka_unit_test(test_bad_response),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
