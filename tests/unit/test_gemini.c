/* Unit tests for providers/gemini (prov_vertex_gemini, prov_gemini).
 *
 * Data-driven: every folder under tests/fixtures/vertex_gemini/ and tests/fixtures/gemini/ is
 * one test case, run through the provider named by its parent folder. A case holds some of:
 *
 *   ctx.json                 the prov_ctx (strings, stream, include_usage, drop_params, created;
 *                            "endpoint": "embeddings" selects embed_request/embed_response)
 *   request.json             the client's OpenAI request
 *   upstream_url.txt         expected URL (trailing newline ignored)
 *   upstream_headers.txt     expected headers, one per line, in order
 *   upstream_request.json    expected upstream body (compared as JSON, key order ignored)
 *   upstream_status.txt      upstream HTTP status (default 200); non-2xx goes through error()
 *   upstream_response.json   upstream body (upstream_response.txt for a non-JSON body)
 *   response.json            expected chat.completion / embeddings answer
 *   upstream_stream.sse      upstream SSE bytes, fed through the SSE framer in small slices
 *   response.sse             expected client SSE: events compared one by one, JSON payloads as
 *                            JSON
 *   usage.json               expected oai_usage (-1 = not reported)
 *   error.json               expected prov_err: status, type, param, message or
 *                            message_contains; without upstream_url.txt it is the request's
 *                            error, otherwise the response's / stream's
 *
 * Adding a case is adding a folder. The hand-written tests at the end cover what fixtures cannot
 * express well: hostile inputs, determinism, recursion limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "providers/prov.h"

static const struct {
    const char *dir;
    const prov_ops *ops;
} ROOTS[] = {
    {"../fixtures/vertex_gemini", &prov_vertex_gemini},
    {"../fixtures/gemini", &prov_gemini},
};

/* ---- file helpers ------------------------------------------------------------------------- */

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

static bool exists(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0;
}

static cJSON *load_json(const char *dir, const char *name)
{
    char *t = slurp(dir, name, NULL);
    if (!t)
        return NULL;
    cJSON *j = cJSON_Parse(t);
    if (!j)
        fail_msg("%s/%s is not valid JSON", dir, name);
    free(t);
    return j;
}

static void chomp(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
}

/* ---- context ------------------------------------------------------------------------------ */

typedef struct {
    cJSON *json; /* owns the strings prov_ctx borrows */
    prov_ctx c;
    bool embeddings;
} tctx;

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jtrue(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static void load_ctx(const char *dir, tctx *t)
{
    memset(t, 0, sizeof *t);
    t->json = load_json(dir, "ctx.json");
    if (!t->json)
        fail_msg("%s: missing ctx.json", dir);
    const cJSON *j = t->json;
    t->c.upstream_model = jstr(j, "upstream_model");
    t->c.api_base = jstr(j, "api_base");
    t->c.api_key = jstr(j, "api_key");
    t->c.project = jstr(j, "project");
    t->c.location = jstr(j, "location");
    t->c.access_token = jstr(j, "access_token");
    t->c.stream = jtrue(j, "stream");
    t->c.include_usage = jtrue(j, "include_usage");
    t->c.drop_params = jtrue(j, "drop_params");
    t->c.response_id = jstr(j, "response_id");
    t->c.client_model = jstr(j, "client_model");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(j, "created");
    t->c.created = cJSON_IsNumber(cr) ? (long)cr->valuedouble : 0;
    t->embeddings = jstr(j, "endpoint") && strcmp(jstr(j, "endpoint"), "embeddings") == 0;
}

/* ---- comparisons -------------------------------------------------------------------------- */

static void expect_json(const char *what, const char *name, const char *got, size_t len,
                        const cJSON *want)
{
    cJSON *g = cJSON_ParseWithLength(got, len);
    if (!g)
        fail_msg("%s: %s is not JSON: %.*s", name, what, (int)len, got);
    if (!cJSON_Compare(g, want, true)) {
        char *w = cJSON_Print(want), *gg = cJSON_Print(g);
        print_error("%s: %s differs\n--- want\n%s\n--- got\n%s\n", name, what, w, gg);
        free(w);
        free(gg);
        cJSON_Delete(g);
        fail();
    }
    cJSON_Delete(g);
}

static void expect_err(const char *name, const cJSON *want, const prov_err *e)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(want, "status");
    if (cJSON_IsNumber(st) && e->status != (int)st->valuedouble)
        fail_msg("%s: error status %d, want %d (message: %s)", name, e->status,
                 (int)st->valuedouble, e->message ? e->message : "(null)");
    const char *type = jstr(want, "type");
    if (type && (!e->type || strcmp(type, e->type) != 0))
        fail_msg("%s: error type %s, want %s", name, e->type ? e->type : "(null)", type);
    const cJSON *param = cJSON_GetObjectItemCaseSensitive(want, "param");
    if (cJSON_IsNull(param) && e->param)
        fail_msg("%s: error param %s, want null", name, e->param);
    if (cJSON_IsString(param) && (!e->param || strcmp(e->param, param->valuestring) != 0))
        fail_msg("%s: error param %s, want %s", name, e->param ? e->param : "(null)",
                 param->valuestring);
    if (!e->message)
        fail_msg("%s: error without a message", name);
    const char *msg = jstr(want, "message");
    if (msg && strcmp(msg, e->message) != 0)
        fail_msg("%s: error message\n  got:  %s\n  want: %s", name, e->message, msg);
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(want, "message_contains");
    const cJSON *p;
    cJSON_ArrayForEach(p, parts)
    {
        if (cJSON_IsString(p) && !strstr(e->message, p->valuestring))
            fail_msg("%s: error message lacks \"%s\": %s", name, p->valuestring, e->message);
    }
}

static void expect_usage(const char *name, const cJSON *want, const oai_usage *u)
{
    if (!want)
        return;
    static const char *const keys[] = {"prompt_tokens", "completion_tokens", "total_tokens",
                                       "cached_tokens"};
    const int64_t got[] = {u->prompt_tokens, u->completion_tokens, u->total_tokens,
                           u->cached_tokens};
    for (int i = 0; i < 4; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(want, keys[i]);
        if (cJSON_IsNumber(v) && (int64_t)v->valuedouble != got[i])
            fail_msg("%s: usage.%s = %lld, want %lld", name, keys[i], (long long)got[i],
                     (long long)v->valuedouble);
    }
}

/* Splits SSE text into events ("data: ...") on blank lines; returns the count. */
static int split_events(char *s, char **ev, int max)
{
    int n = 0;
    char *p = s;
    while (*p && n < max) {
        char *end = strstr(p, "\n\n");
        if (end)
            *end = 0;
        if (*p)
            ev[n++] = p;
        if (!end)
            break;
        p = end + 2;
    }
    return n;
}

static void expect_sse(const char *name, const char *got, size_t len, const char *want)
{
    char *g = strndup(got, len), *w = strdup(want);
    assert_non_null(g);
    assert_non_null(w);
    char *ge[256], *we[256];
    int gn = split_events(g, ge, 256), wn = split_events(w, we, 256);
    if (gn != wn)
        fail_msg("%s: %d SSE events, want %d\n--- got\n%.*s", name, gn, wn, (int)len, got);
    for (int i = 0; i < gn; i++) {
        if (strncmp(ge[i], "data: ", 6) != 0)
            fail_msg("%s: event %d is not a data line: %s", name, i, ge[i]);
        const char *gp = ge[i] + 6, *wp = we[i] + 6;
        cJSON *gj = cJSON_Parse(gp), *wj = cJSON_Parse(wp);
        bool same = (gj && wj) ? cJSON_Compare(gj, wj, true) : strcmp(gp, wp) == 0;
        cJSON_Delete(gj);
        cJSON_Delete(wj);
        if (!same)
            fail_msg("%s: SSE event %d\n  got:  %s\n  want: %s", name, i, gp, wp);
    }
    free(g);
    free(w);
}

/* ---- the case runner ---------------------------------------------------------------------- */

typedef struct {
    char dir[1024];
    char name[300];
    const prov_ops *ops;
} tcase;

typedef struct {
    const prov_ops *ops;
    prov_stream *s;
    sbuf *out;
    oai_usage *u;
    prov_err *err;
    int rc;
} feed_state;

static int on_event(void *ud, const sse_event *ev)
{
    feed_state *fs = ud;
    fs->rc = fs->ops->stream_event(fs->s, ev, fs->out, fs->u, fs->err);
    return fs->rc < 0 ? 1 : 0;
}

static void run_request(const tcase *tc, tctx *t, const cJSON *want_err, bool *err_checked)
{
    char *body = slurp(tc->dir, "request.json", NULL);
    if (!body)
        return;
    cJSON *req = cJSON_Parse(body);
    free(body);
    if (!req)
        fail_msg("%s: request.json is not JSON", tc->name);
    prov_http_req hr = {0};
    prov_err e = {0};
    int rc = t->embeddings ? tc->ops->embed_request(&t->c, req, &hr, &e)
                           : tc->ops->chat_request(&t->c, req, &hr, &e);
    if (want_err && !exists(tc->dir, "upstream_url.txt")) {
        if (rc == 0)
            fail_msg("%s: request was accepted, want an error", tc->name);
        expect_err(tc->name, want_err, &e);
        *err_checked = true;
    } else {
        if (rc != 0)
            fail_msg("%s: request refused: %d %s", tc->name, e.status,
                     e.message ? e.message : "(null)");
        char *url = slurp(tc->dir, "upstream_url.txt", NULL);
        if (url) {
            chomp(url);
            if (strcmp(url, hr.url) != 0)
                fail_msg("%s: url\n  got:  %s\n  want: %s", tc->name, hr.url, url);
            free(url);
        }
        char *hdrs = slurp(tc->dir, "upstream_headers.txt", NULL);
        if (hdrs) {
            int i = 0;
            for (char *line = strtok(hdrs, "\n"); line; line = strtok(NULL, "\n"), i++) {
                chomp(line);
                if (i >= hr.nheaders || strcmp(line, hr.headers[i]) != 0)
                    fail_msg("%s: header %d is %s, want %s", tc->name, i,
                             i < hr.nheaders ? hr.headers[i] : "(none)", line);
            }
            if (i != hr.nheaders)
                fail_msg("%s: %d headers, want %d", tc->name, hr.nheaders, i);
            free(hdrs);
        }
        cJSON *want = load_json(tc->dir, "upstream_request.json");
        if (want) {
            assert_int_equal(strlen(hr.body), hr.body_len);
            expect_json("upstream request", tc->name, hr.body, hr.body_len, want);
            cJSON_Delete(want);
        }
    }
    prov_http_req_free(&hr);
    prov_err_free(&e);
    cJSON_Delete(req);
}

static void run_response(const tcase *tc, tctx *t, const cJSON *want_err, bool *err_checked)
{
    size_t len = 0;
    char *body = slurp(tc->dir, "upstream_response.json", &len);
    if (!body)
        body = slurp(tc->dir, "upstream_response.txt", &len);
    if (!body)
        return;
    int status = 200;
    char *st = slurp(tc->dir, "upstream_status.txt", NULL);
    if (st) {
        status = atoi(st);
        free(st);
    }
    prov_err e = {0};
    oai_usage u;
    oai_usage_init(&u);
    if (status >= 200 && status < 300) {
        sbuf out;
        sbuf_init(&out);
        cJSON *req = load_json(tc->dir, "request.json");
        int rc = t->embeddings
                     ? tc->ops->embed_response(&t->c, req, body, len, &out, &u, &e)
                     : tc->ops->chat_response(&t->c, body, len, &out, &u, &e);
        cJSON_Delete(req);
        if (want_err && !*err_checked) {
            if (rc == 0)
                fail_msg("%s: response accepted, want an error", tc->name);
            expect_err(tc->name, want_err, &e);
            *err_checked = true;
        } else {
            if (rc != 0)
                fail_msg("%s: response refused: %s", tc->name, e.message ? e.message : "?");
            cJSON *want = load_json(tc->dir, "response.json");
            if (want) {
                expect_json("response", tc->name, out.p, out.len, want);
                cJSON_Delete(want);
            }
        }
        sbuf_free(&out);
    } else {
        tc->ops->error(&t->c, status, body, len, &e);
        if (!want_err)
            fail_msg("%s: upstream status %d but no error.json", tc->name, status);
        expect_err(tc->name, want_err, &e);
        *err_checked = true;
    }
    cJSON *wu = load_json(tc->dir, "usage.json");
    expect_usage(tc->name, wu, &u);
    cJSON_Delete(wu);
    prov_err_free(&e);
    free(body);
}

static void run_stream(const tcase *tc, tctx *t, const cJSON *want_err, bool *err_checked)
{
    size_t len = 0;
    char *in = slurp(tc->dir, "upstream_stream.sse", &len);
    if (!in)
        return;
    prov_stream *s = tc->ops->stream_new(&t->c);
    assert_non_null(s);
    sbuf out;
    sbuf_init(&out);
    prov_err e = {0};
    oai_usage u;
    oai_usage_init(&u);
    sse_parser p;
    sse_init(&p, 1 << 20);
    feed_state fs = {tc->ops, s, &out, &u, &e, 0};
    /* small slices: events arrive split across reads, as they do from curl */
    for (size_t off = 0; off < len && fs.rc >= 0; off += 7) {
        size_t n = len - off < 7 ? len - off : 7;
        int r = sse_feed(&p, in + off, n, on_event, &fs);
        if (r < 0)
            fail_msg("%s: SSE framing failed", tc->name);
        if (r > 0)
            break;
    }
    if (fs.rc >= 0 && tc->ops->stream_end(s, &out, &u) != 0)
        fail_msg("%s: stream_end failed", tc->name);
    if (want_err && !*err_checked) {
        if (fs.rc >= 0)
            fail_msg("%s: stream completed, want an error", tc->name);
        expect_err(tc->name, want_err, &e);
        *err_checked = true;
    } else if (fs.rc < 0) {
        fail_msg("%s: stream error: %s", tc->name, e.message ? e.message : "?");
    }
    char *want = slurp(tc->dir, "response.sse", NULL);
    if (want) {
        expect_sse(tc->name, out.p ? out.p : "", out.len, want);
        free(want);
    }
    cJSON *wu = load_json(tc->dir, "usage.json");
    expect_usage(tc->name, wu, &u);
    cJSON_Delete(wu);
    sse_free(&p);
    sbuf_free(&out);
    prov_err_free(&e);
    tc->ops->stream_free(s);
    free(in);
}

static void run_case(void **state)
{
    const tcase *tc = *state;
    tctx t;
    load_ctx(tc->dir, &t);
    cJSON *want_err = load_json(tc->dir, "error.json");
    bool err_checked = false;
    run_request(tc, &t, want_err, &err_checked);
    run_response(tc, &t, want_err, &err_checked);
    run_stream(tc, &t, want_err, &err_checked);
    if (want_err && !err_checked)
        fail_msg("%s: error.json was never checked", tc->name);
    cJSON_Delete(want_err);
    cJSON_Delete(t.json);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const tcase *)a)->name, ((const tcase *)b)->name);
}

/* ---- hand-written tests ------------------------------------------------------------------- */

static prov_ctx base_ctx(void)
{
    prov_ctx c = {0};
    c.upstream_model = "gemini-2.0-flash";
    c.project = "p";
    c.location = "us-central1";
    c.access_token = "tok";
    c.api_key = "key";
    c.response_id = "chatcmpl-x";
    c.client_model = "m";
    c.created = 1;
    return c;
}

/* Hostile upstream bodies never crash and always either translate or fail with a message. */
static void test_hostile_responses(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "",
        "null",
        "[]",
        "5",
        "{",
        "{\"candidates\":5}",
        "{\"candidates\":[5,null,{\"content\":7},{\"content\":{\"parts\":{}}}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":5},{\"functionCall\":7},"
        "{\"functionCall\":{\"name\":3,\"args\":[1]}},{\"inlineData\":{}}]},"
        "\"finishReason\":7,\"index\":-3}]}",
        "{\"usageMetadata\":{\"promptTokenCount\":\"x\",\"totalTokenCount\":1e300}}",
        "{\"candidates\":[{\"index\":1e300,\"content\":{\"parts\":[{\"text\":\"x\"}]}}],"
        "\"usageMetadata\":{\"promptTokenCount\":-1e300,\"thoughtsTokenCount\":1e19}}",
        "{\"error\":{\"code\":1e300,\"message\":\"m\"}}",
        "{\"promptFeedback\":{\"blockReason\":5}}",
        "{\"error\":\"flat string\"}",
        "{\"error\":{\"code\":\"x\"}}",
    };
    prov_ctx c = base_ctx();
    const prov_ops *ops[] = {&prov_vertex_gemini, &prov_gemini};
    for (size_t o = 0; o < 2; o++)
        for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
            sbuf out;
            sbuf_init(&out);
            prov_err e = {0};
            oai_usage u;
            oai_usage_init(&u);
            int rc = ops[o]->chat_response(&c, bodies[i], strlen(bodies[i]), &out, &u, &e);
            if (rc == 0) {
                cJSON *j = cJSON_ParseWithLength(out.p, out.len);
                if (!j)
                    fail_msg("response to %s is not JSON", bodies[i]);
                cJSON_Delete(j);
            } else {
                assert_int_equal(rc, -1);
                assert_non_null(e.message);
                assert_true(e.status >= 400);
            }
            ops[o]->error(&c, 500, bodies[i], strlen(bodies[i]), &e);
            assert_non_null(e.message);
            sbuf_free(&out);
            prov_err_free(&e);
        }
}

static void test_hostile_stream(void **state)
{
    (void)state;
    static const char *const events[] = {
        "[]",
        "[5, {\"candidates\":[]}]",
        "{\"candidates\":{}}",
        "{\"candidates\":[{\"index\":99,\"content\":{\"parts\":[{\"text\":\"far\"}]}}]}",
        "{\"candidates\":[{\"index\":-1,\"content\":{\"parts\":[{\"text\":\"neg\"}]}}]}",
        "{\"candidates\":[{\"index\":1e30,\"content\":{\"parts\":[{\"text\":\"huge\"}]}}]}",
        "{\"candidates\":[{\"index\":4444444444444444444444,\"finishReason\":\"STOP\"}]}",
        "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{}}]}}]}",
        "{\"usageMetadata\":[]}",
        "[DONE]",
        "   ",
    };
    prov_ctx c = base_ctx();
    c.include_usage = true;
    prov_stream *s = prov_vertex_gemini.stream_new(&c);
    assert_non_null(s);
    sbuf out;
    sbuf_init(&out);
    for (size_t i = 0; i < sizeof events / sizeof *events; i++) {
        sse_event ev = {.raw = events[i], .raw_len = strlen(events[i]), .data = events[i],
                        .data_len = strlen(events[i])};
        prov_err e = {0};
        int rc = prov_vertex_gemini.stream_event(s, &ev, &out, NULL, &e);
        assert_int_equal(rc, 0);
        prov_err_free(&e);
    }
    sse_event none = {0};
    prov_err e = {0};
    assert_int_equal(prov_vertex_gemini.stream_event(s, &none, &out, NULL, &e), 0);
    assert_int_equal(prov_vertex_gemini.stream_end(s, &out, NULL), 0);
    assert_non_null(strstr(out.p, "\"far\""));
    assert_non_null(strstr(out.p, "data: [DONE]\n\n"));
    sbuf_free(&out);
    prov_vertex_gemini.stream_free(s);
    prov_vertex_gemini.stream_free(NULL);
}

/* A $ref cycle (or absurd nesting) is refused, not recursed into forever. */
static void test_schema_cycle(void **state)
{
    (void)state;
    const char *body =
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"tree\",\"parameters\":{\"$ref\":\"#/$defs/Node\",\"$defs\":"
        "{\"Node\":{\"type\":\"object\",\"properties\":{\"child\":{\"$ref\":\"#/$defs/Node\"}}}}}"
        "}}]}";
    cJSON *req = cJSON_Parse(body);
    assert_non_null(req);
    prov_ctx c = base_ctx();
    prov_http_req hr = {0};
    prov_err e = {0};
    assert_int_equal(prov_vertex_gemini.chat_request(&c, req, &hr, &e), -1);
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "nested deeper"));
    prov_err_free(&e);
    cJSON_Delete(req);

    req = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":"
                      "\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"$ref\":"
                      "\"#/$defs/Missing\"}}}]}");
    assert_int_equal(prov_gemini.chat_request(&c, req, &hr, &e), -1);
    assert_non_null(strstr(e.message, "Missing"));
    prov_err_free(&e);
    cJSON_Delete(req);
}

/* The same request translates to the same bytes (tool call ids included). */
static void test_deterministic(void **state)
{
    (void)state;
    const char *resp = "{\"candidates\":[{\"content\":{\"parts\":[{\"functionCall\":{\"name\":"
                       "\"f\",\"args\":{\"a\":1}}}]},\"finishReason\":\"STOP\"}]}";
    prov_ctx c = base_ctx();
    char *first = NULL;
    for (int i = 0; i < 2; i++) {
        sbuf out;
        sbuf_init(&out);
        prov_err e = {0};
        assert_int_equal(prov_vertex_gemini.chat_response(&c, resp, strlen(resp), &out, NULL, &e),
                         0);
        assert_non_null(strstr(out.p, "\"call_chatcmpl-x_0\""));
        if (!first) {
            first = strdup(out.p);
        } else {
            assert_string_equal(first, out.p);
        }
        sbuf_free(&out);
    }
    free(first);
}

/* Missing optional context: no response id, no client model, no credentials. */
static void test_sparse_ctx(void **state)
{
    (void)state;
    prov_ctx c = {0};
    c.upstream_model = "gemini-2.0-flash";
    cJSON *req = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    prov_http_req hr = {0};
    prov_err e = {0};
    /* Vertex needs a project */
    assert_int_equal(prov_vertex_gemini.chat_request(&c, req, &hr, &e), -1);
    prov_err_free(&e);
    /* AI Studio without a key still builds a request (the upstream will say 403) */
    assert_int_equal(prov_gemini.chat_request(&c, req, &hr, &e), 0);
    assert_int_equal(hr.nheaders, 1);
    prov_http_req_free(&hr);
    cJSON_Delete(req);

    const char *resp = "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]}}]}";
    sbuf out;
    sbuf_init(&out);
    assert_int_equal(prov_gemini.chat_response(&c, resp, strlen(resp), &out, NULL, &e), 0);
    cJSON *j = cJSON_Parse(out.p);
    assert_string_equal(cJSON_GetObjectItem(j, "model")->valuestring, "gemini-2.0-flash");
    assert_string_equal(cJSON_GetObjectItem(j, "id")->valuestring, "chatcmpl-gemini");
    cJSON_Delete(j);
    sbuf_free(&out);

    prov_stream *s = prov_gemini.stream_new(&c);
    assert_non_null(s);
    sbuf_init(&out);
    assert_int_equal(prov_gemini.stream_end(s, &out, NULL), 0);
    assert_non_null(strstr(out.p, "\"finish_reason\":\"stop\""));
    sbuf_free(&out);
    prov_gemini.stream_free(s);

    prov_gemini.error(&c, 502, NULL, 0, &e);
    assert_int_equal(e.status, 500);
    assert_string_equal(e.message,
                        "litellm.InternalServerError: VertexAIException - upstream returned "
                        "HTTP 502");
    prov_err_free(&e);
}

/* Requests that are not what the API says: refused with 400, never a crash. */
static void test_hostile_requests(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "[]",
        "{}",
        "{\"messages\":5}",
        "{\"messages\":[5]}",
        "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[5,{\"type\":\"image_url\"},"
        "{\"type\":\"image_url\",\"image_url\":\"data:image/png,notbase64\"}]}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{}}]}]}",
        "{\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":"
        "\"[1]\"}}]}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{}}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\",\"properties\":{\"a\":"
        "{\"anyOf\":[{\"type\":\"null\"}]}}}}}]}",
        "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tool_choice\":5}",
    };
    prov_ctx c = base_ctx();
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        cJSON *req = cJSON_Parse(bodies[i]);
        assert_non_null(req);
        prov_http_req hr = {0};
        prov_err e = {0};
        int rc = prov_vertex_gemini.chat_request(&c, req, &hr, &e);
        if (rc != -1)
            fail_msg("accepted: %s", bodies[i]);
        assert_int_equal(e.status, 400);
        assert_non_null(e.message);
        prov_err_free(&e);
        cJSON_Delete(req);
    }
}

int main(void)
{
    tcase *cases = NULL;
    size_t n = 0, cap = 0;
    for (size_t r = 0; r < sizeof ROOTS / sizeof *ROOTS; r++) {
        DIR *d = opendir(ROOTS[r].dir);
        if (!d) {
            fprintf(stderr, "cannot open %s (run from tests/unit)\n", ROOTS[r].dir);
            return 1;
        }
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                cases = realloc(cases, cap * sizeof *cases);
                if (!cases)
                    return 1;
            }
            tcase *tc = &cases[n];
            snprintf(tc->dir, sizeof tc->dir, "%s/%.255s", ROOTS[r].dir, de->d_name);
            snprintf(tc->name, sizeof tc->name, "%.32s/%.255s", strrchr(ROOTS[r].dir, '/') + 1,
                     de->d_name);
            tc->ops = ROOTS[r].ops;
            if (exists(tc->dir, "ctx.json"))
                n++;
        }
        closedir(d);
    }
    qsort(cases, n, sizeof *cases, by_name);

    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_hostile_responses), cmocka_unit_test(test_hostile_stream),
        cmocka_unit_test(test_schema_cycle),      cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_sparse_ctx),        cmocka_unit_test(test_hostile_requests),
    };
    size_t nfixed = sizeof fixed / sizeof *fixed;
    struct CMUnitTest *tests = calloc(n + nfixed, sizeof *tests);
    if (!tests)
        return 1;
    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = run_case;
        tests[i].initial_state = &cases[i];
    }
    memcpy(tests + n, fixed, sizeof fixed);
    int rc = _cmocka_run_group_tests("gemini", tests, n + nfixed, NULL, NULL);
    free(tests);
    free(cases);
    return rc;
}
