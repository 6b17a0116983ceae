/* Unit tests for providers/anthropic (upstream direction: prov_anthropic, prov_vertex_claude) and
 * the shared helpers in providers/prov.c.
 *
 * Translation cases are data under tests/fixtures/anthropic/<case>/ — one runner walks them all:
 *   ctx.json               prov_ctx fields, plus "provider" ("anthropic" | "vertex_claude") and
 *                          "upstream_status" (for upstream_error.txt)
 *   request.json           client OpenAI request → chat_request, compared with
 *     upstream_request.json  the expected upstream body (semantic JSON comparison)
 *     upstream_url.txt       the expected URL
 *     upstream_headers.json  {"name": "value" | null}: each header present with that value, or
 *                            absent for null (names compared case-insensitively)
 *     request_error.json     {"status", "message" | "message_contains"}: the request is refused
 *   upstream_response.json → chat_response, compared with response.json (+ usage.json)
 *   upstream_stream.sse    → stream_new/stream_event/stream_end, compared event by event with
 *                            response.sse (data payloads as JSON); stream_error.json when an
 *                            error event must end the stream (+ usage.json)
 *   upstream_error.txt     → error(upstream_status), compared with error.json
 * Adding a case is adding files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "providers/anthropic.h"
#include "providers/prov.h"

#define FIXTURES "../fixtures/anthropic"

/* ---- file and comparison helpers ---------------------------------------------------------- */

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

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        s[--n] = 0;
}

static void compare_json_text(const char *cs, const char *what, const char *got, size_t len,
                              const cJSON *want)
{
    cJSON *g = cJSON_ParseWithLength(got, len);
    if (!g) {
        failf(cs, "%s: output is not JSON: %.*s", what, (int)len, got);
        return;
    }
    if (!cJSON_Compare(g, want, true)) {
        char *w = cJSON_Print(want);
        char *p = cJSON_Print(g);
        failf(cs, "%s differs\n--- got:\n%s\n--- want:\n%s", what, p, w);
        free(w);
        free(p);
    }
    cJSON_Delete(g);
}

/* Splits an SSE text into events (separated by blank lines). Returns the count; events[] point
 * into the (modified) buffer. */
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

static bool line_equal(const char *a, const char *b)
{
    if (strncmp(a, "data: ", 6) == 0 && strncmp(b, "data: ", 6) == 0 && a[6] == '{') {
        cJSON *ja = cJSON_Parse(a + 6), *jb = cJSON_Parse(b + 6);
        bool eq = ja && jb && cJSON_Compare(ja, jb, true);
        cJSON_Delete(ja);
        cJSON_Delete(jb);
        return eq;
    }
    return strcmp(a, b) == 0;
}

static bool event_equal(char *a, char *b)
{
    char *sa, *sb;
    char *la = strtok_r(a, "\n", &sa), *lb = strtok_r(b, "\n", &sb);
    while (la && lb) {
        if (!line_equal(la, lb))
            return false;
        la = strtok_r(NULL, "\n", &sa);
        lb = strtok_r(NULL, "\n", &sb);
    }
    return !la && !lb;
}

static void compare_sse(const char *cs, const char *got, size_t got_len, const char *want)
{
    char *g = strndup(got, got_len), *w = strdup(want);
    char *gc = strdup(g), *wc = strdup(w);
    char *ge[512], *we[512];
    int ng = split_events(g, ge, 512), nw = split_events(w, we, 512);
    bool ok = ng == nw;
    for (int i = 0; ok && i < ng; i++)
        if (!event_equal(ge[i], we[i])) {
            ok = false;
            fprintf(stderr, "[case %s] first differing event: #%d\n", cs, i);
        }
    if (!ok)
        failf(cs, "SSE output differs (%d events, want %d)\n--- got:\n%s\n--- want:\n%s", ng, nw,
              gc, wc);
    free(g);
    free(w);
    free(gc);
    free(wc);
}

/* ---- context ------------------------------------------------------------------------------ */

static const char *jstr(const cJSON *o, const char *k, const char *dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsNull(v))
        return NULL;
    return cJSON_IsString(v) ? v->valuestring : dflt;
}

static bool jbool(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

/* Strings stay owned by j. Defaults describe a plain anthropic/claude deployment. */
static void ctx_from_json(const cJSON *j, prov_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->upstream_model = jstr(j, "upstream_model", "claude-3-5-sonnet-20241022");
    c->api_base = jstr(j, "api_base", NULL);
    c->api_key = jstr(j, "api_key", "sk-ant-test");
    c->project = jstr(j, "project", "my-project");
    c->location = jstr(j, "location", "us-east5");
    c->access_token = jstr(j, "access_token", "ya29.token");
    c->stream = jbool(j, "stream");
    c->include_usage = jbool(j, "include_usage");
    c->drop_params = jbool(j, "drop_params");
    c->anthropic_version = jstr(j, "anthropic_version", NULL);
    c->anthropic_beta = jstr(j, "anthropic_beta", NULL);
    c->response_id = jstr(j, "response_id", "chatcmpl-test");
    const cJSON *cr = cJSON_GetObjectItemCaseSensitive(j, "created");
    c->created = cJSON_IsNumber(cr) ? (long)cr->valuedouble : 1700000000L;
    c->client_model = jstr(j, "client_model", "claude-3-5-sonnet");
}

static const char *header_value(const prov_http_req *r, const char *name)
{
    size_t n = strlen(name);
    for (int i = 0; i < r->nheaders; i++)
        if (strncasecmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    return NULL;
}

static void check_err(const char *cs, const char *what, const prov_err *e, const cJSON *want)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(want, "status");
    if (cJSON_IsNumber(st) && e->status != (int)st->valuedouble)
        failf(cs, "%s: status %d, want %d", what, e->status, (int)st->valuedouble);
    const char *type = jstr(want, "type", NULL);
    if (type && (!e->type || strcmp(type, e->type) != 0))
        failf(cs, "%s: type %s, want %s", what, e->type ? e->type : "(null)", type);
    const char *msg = jstr(want, "message", NULL);
    if (msg && (!e->message || strcmp(msg, e->message) != 0))
        failf(cs, "%s: message\n  got:  %s\n  want: %s", what, e->message ? e->message : "(null)",
              msg);
    const char *sub = jstr(want, "message_contains", NULL);
    if (sub && (!e->message || !strstr(e->message, sub)))
        failf(cs, "%s: message %s does not contain %s", what, e->message ? e->message : "(null)",
              sub);
}

static void check_usage(const char *cs, const oai_usage *u, const cJSON *want)
{
    static const char *const k[] = {"prompt_tokens", "completion_tokens", "total_tokens",
                                    "cached_tokens"};
    const int64_t v[] = {u->prompt_tokens, u->completion_tokens, u->total_tokens,
                         u->cached_tokens};
    for (int i = 0; i < 4; i++) {
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(want, k[i]);
        if (cJSON_IsNumber(w) && (int64_t)w->valuedouble != v[i])
            failf(cs, "usage.%s = %lld, want %lld", k[i], (long long)v[i],
                  (long long)w->valuedouble);
    }
}

/* ---- one case ----------------------------------------------------------------------------- */

typedef struct {
    const prov_ops *ops;
    prov_stream *st;
    sbuf *out;
    oai_usage *u;
    prov_err *err;
    int rc;
} stream_run;

static int on_event(void *ud, const sse_event *ev)
{
    stream_run *r = ud;
    r->rc = r->ops->stream_event(r->st, ev, r->out, r->u, r->err);
    return r->rc < 0 ? 1 : 0;
}

static void run_case(const char *dir, const char *cs)
{
    cJSON *ctxj = read_json(dir, "ctx.json", cs);
    prov_ctx c;
    ctx_from_json(ctxj, &c);
    const char *prov = jstr(ctxj, "provider", "anthropic");
    const prov_ops *ops =
        strcmp(prov, "vertex_claude") == 0 ? &prov_vertex_claude : &prov_anthropic;
    int steps = 0;

    cJSON *req = read_json(dir, "request.json", cs);
    if (req) {
        steps++;
        prov_http_req hr;
        prov_err e = {0};
        int rc = ops->chat_request(&c, req, &hr, &e);
        cJSON *want_err = read_json(dir, "request_error.json", cs);
        if (want_err) {
            if (rc != -1)
                failf(cs, "chat_request succeeded, expected an error");
            else
                check_err(cs, "chat_request", &e, want_err);
            cJSON_Delete(want_err);
        } else if (rc != 0) {
            failf(cs, "chat_request failed: %d %s", e.status, e.message ? e.message : "");
        } else {
            cJSON *want = read_json(dir, "upstream_request.json", cs);
            if (want)
                compare_json_text(cs, "upstream request body", hr.body, hr.body_len, want);
            cJSON_Delete(want);
            char *url = read_file(dir, "upstream_url.txt", NULL);
            if (url) {
                trim(url);
                if (strcmp(url, hr.url) != 0)
                    failf(cs, "url\n  got:  %s\n  want: %s", hr.url, url);
                free(url);
            }
            cJSON *hdrs = read_json(dir, "upstream_headers.json", cs);
            const cJSON *h;
            cJSON_ArrayForEach(h, hdrs) {
                const char *got = header_value(&hr, h->string);
                if (cJSON_IsNull(h) && got)
                    failf(cs, "header %s must be absent, got %s", h->string, got);
                else if (cJSON_IsString(h) && (!got || strcmp(got, h->valuestring) != 0))
                    failf(cs, "header %s = %s, want %s", h->string, got ? got : "(absent)",
                          h->valuestring);
            }
            cJSON_Delete(hdrs);
            prov_http_req_free(&hr);
        }
        prov_err_free(&e);
        cJSON_Delete(req);
    }

    size_t blen;
    char *body = read_file(dir, "upstream_response.json", &blen);
    if (body) {
        steps++;
        sbuf out;
        sbuf_init(&out);
        oai_usage u;
        oai_usage_init(&u);
        prov_err e = {0};
        if (ops->chat_response(&c, body, blen, &out, &u, &e) != 0) {
            cJSON *want_err = read_json(dir, "response_error.json", cs);
            if (want_err)
                check_err(cs, "chat_response", &e, want_err);
            else
                failf(cs, "chat_response failed: %s", e.message ? e.message : "");
            cJSON_Delete(want_err);
        } else {
            cJSON *want = read_json(dir, "response.json", cs);
            if (!want)
                failf(cs, "response.json missing");
            else
                compare_json_text(cs, "response", out.p, out.len, want);
            cJSON_Delete(want);
            cJSON *wu = read_json(dir, "usage.json", cs);
            if (wu)
                check_usage(cs, &u, wu);
            cJSON_Delete(wu);
        }
        prov_err_free(&e);
        sbuf_free(&out);
        free(body);
    }

    char *sse = read_file(dir, "upstream_stream.sse", &blen);
    if (sse) {
        steps++;
        sbuf out;
        sbuf_init(&out);
        oai_usage u;
        oai_usage_init(&u);
        prov_err e = {0};
        stream_run r = {ops, ops->stream_new(&c), &out, &u, &e, 0};
        assert_non_null(r.st);
        sse_parser p;
        sse_init(&p, 1 << 20);
        /* feed in small slices: events cut anywhere must come out the same */
        for (size_t off = 0; off < blen && r.rc == 0; off += 13) {
            size_t n = blen - off < 13 ? blen - off : 13;
            if (sse_feed(&p, sse + off, n, on_event, &r) < 0 && r.rc == 0)
                failf(cs, "sse_feed failed");
        }
        sse_free(&p);
        cJSON *want_err = read_json(dir, "stream_error.json", cs);
        if (want_err) {
            if (r.rc != -1)
                failf(cs, "stream succeeded, expected an error event");
            else
                check_err(cs, "stream", &e, want_err);
            cJSON_Delete(want_err);
        } else if (r.rc != 0) {
            failf(cs, "stream_event failed: %s", e.message ? e.message : "");
        } else if (ops->stream_end(r.st, &out, &u) != 0) {
            failf(cs, "stream_end failed");
        }
        char *want = read_file(dir, "response.sse", NULL);
        if (!want)
            failf(cs, "response.sse missing");
        else
            compare_sse(cs, out.p ? out.p : "", out.len, want);
        free(want);
        cJSON *wu = read_json(dir, "usage.json", cs);
        if (wu)
            check_usage(cs, &u, wu);
        cJSON_Delete(wu);
        ops->stream_free(r.st);
        prov_err_free(&e);
        sbuf_free(&out);
        free(sse);
    }

    char *eb = read_file(dir, "upstream_error.txt", &blen);
    if (eb) {
        steps++;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(ctxj, "upstream_status");
        prov_err e = {0};
        ops->error(&c, cJSON_IsNumber(st) ? (int)st->valuedouble : 400, eb, blen, &e);
        cJSON *want = read_json(dir, "error.json", cs);
        if (!want)
            failf(cs, "error.json missing");
        else
            check_err(cs, "error", &e, want);
        cJSON_Delete(want);
        prov_err_free(&e);
        free(eb);
    }
    if (steps == 0)
        failf(cs, "no inputs (request.json, upstream_response.json, upstream_stream.sse or "
                  "upstream_error.txt)");
    cJSON_Delete(ctxj);
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
    fprintf(stderr, "anthropic fixtures: %d cases, %d failures\n", n, failures);
    assert_true(n >= 20);
    assert_int_equal(failures, 0);
}

/* ---- prov.c helpers ----------------------------------------------------------------------- */

static void test_status_mapping(void **state)
{
    (void)state;
    assert_int_equal(prov_map_status(400), 400);
    assert_int_equal(prov_map_status(413), 400);
    assert_int_equal(prov_map_status(401), 401);
    assert_int_equal(prov_map_status(403), 403);
    assert_int_equal(prov_map_status(404), 404);
    assert_int_equal(prov_map_status(408), 408);
    assert_int_equal(prov_map_status(422), 422);
    assert_int_equal(prov_map_status(429), 429);
    assert_int_equal(prov_map_status(409), 400);
    assert_int_equal(prov_map_status(500), 500);
    assert_int_equal(prov_map_status(502), 500);
    assert_int_equal(prov_map_status(503), 503);
    assert_int_equal(prov_map_status(529), 500);
    assert_string_equal(prov_exception_class(400), "BadRequestError");
    assert_string_equal(prov_exception_class(401), "AuthenticationError");
    assert_string_equal(prov_exception_class(403), "PermissionDeniedError");
    assert_string_equal(prov_exception_class(404), "NotFoundError");
    assert_string_equal(prov_exception_class(408), "Timeout");
    assert_string_equal(prov_exception_class(422), "UnprocessableEntityError");
    assert_string_equal(prov_exception_class(429), "RateLimitError");
    assert_string_equal(prov_exception_class(500), "InternalServerError");
    assert_string_equal(prov_exception_class(503), "ServiceUnavailableError");
}

static void test_http_req_and_err(void **state)
{
    (void)state;
    prov_http_req r = {0};
    prov_http_req_add_header(&r, "x-api-key", "k");
    prov_http_req_add_header(&r, "empty", NULL);
    assert_int_equal(r.nheaders, 2);
    assert_string_equal(r.headers[0], "x-api-key: k");
    assert_string_equal(r.headers[1], "empty: ");
    prov_http_req_free(&r);
    assert_null(r.headers);
    assert_int_equal(r.nheaders, 0);
    prov_http_req_free(&r); /* idempotent */

    prov_err e = {0};
    prov_err_set(&e, 429, "rate_limit_error", "model", "%s %d", "slow down", 7);
    assert_int_equal(e.status, 429);
    assert_string_equal(e.type, "rate_limit_error");
    assert_string_equal(e.param, "model");
    assert_string_equal(e.message, "slow down 7");
    prov_err_set(&e, 400, "invalid_request_error", NULL, "again"); /* replaces, no leak */
    assert_null(e.param);
    assert_string_equal(e.message, "again");
    prov_err_free(&e);
    assert_null(e.message);
}

/* ---- URLs, headers and Vertex bodies ------------------------------------------------------ */

static char *request_url(const prov_ops *ops, prov_ctx *c, const char *req_json)
{
    cJSON *req = cJSON_Parse(req_json);
    assert_non_null(req);
    prov_http_req hr;
    prov_err e = {0};
    int rc = ops->chat_request(c, req, &hr, &e);
    cJSON_Delete(req);
    if (rc != 0) {
        char *m = strdup(e.message ? e.message : "error");
        prov_err_free(&e);
        return m;
    }
    char *url = strdup(hr.url);
    prov_http_req_free(&hr);
    return url;
}

static void expect_url(const prov_ops *ops, prov_ctx *c, bool stream, const char *want)
{
    char *got = request_url(ops, c,
                            stream ? "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
                                     "\"stream\":true}"
                                   : "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    if (strcmp(got, want) != 0)
        fail_msg("url\n  got:  %s\n  want: %s", got, want);
    free(got);
}

static void test_vertex_urls(void **state)
{
    (void)state;
    prov_ctx c = {0};
    c.upstream_model = "claude-3-5-sonnet-v2@20241022";
    c.project = "proj-1";
    c.location = "us-east5";
    c.access_token = "tok";
    expect_url(&prov_vertex_claude, &c, false,
               "https://us-east5-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-east5/"
               "publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict");
    expect_url(&prov_vertex_claude, &c, true,
               "https://us-east5-aiplatform.googleapis.com/v1/projects/proj-1/locations/us-east5/"
               "publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:streamRawPredict");
    c.location = "global";
    expect_url(&prov_vertex_claude, &c, false,
               "https://aiplatform.googleapis.com/v1/projects/proj-1/locations/global/publishers/"
               "anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict");
    c.location = NULL; /* LiteLLM's default region */
    expect_url(&prov_vertex_claude, &c, false,
               "https://us-central1-aiplatform.googleapis.com/v1/projects/proj-1/locations/"
               "us-central1/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022:rawPredict");
    c.location = "europe-west1";
    c.api_base = "http://127.0.0.1:8123/"; /* host only: replaces Google's host */
    expect_url(&prov_vertex_claude, &c, true,
               "http://127.0.0.1:8123/v1/projects/proj-1/locations/europe-west1/publishers/"
               "anthropic/models/claude-3-5-sonnet-v2@20241022:streamRawPredict");
    c.api_base = "https://gateway.ai.cloudflare.com/v1/acct/gw/google-vertex-ai/v1/projects/p/"
                 "locations/us-east5/publishers/anthropic/models/claude"; /* LiteLLM style */
    expect_url(&prov_vertex_claude, &c, false,
               "https://gateway.ai.cloudflare.com/v1/acct/gw/google-vertex-ai/v1/projects/p/"
               "locations/us-east5/publishers/anthropic/models/claude:rawPredict");
    expect_url(&prov_vertex_claude, &c, true,
               "https://gateway.ai.cloudflare.com/v1/acct/gw/google-vertex-ai/v1/projects/p/"
               "locations/us-east5/publishers/anthropic/models/claude:streamRawPredict?alt=sse");

    c.api_base = NULL;
    c.project = NULL;
    char *msg = request_url(&prov_vertex_claude, &c,
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_non_null(strstr(msg, "vertex_project"));
    free(msg);
}

static void test_anthropic_urls(void **state)
{
    (void)state;
    prov_ctx c = {0};
    c.upstream_model = "claude-3-haiku-20240307";
    c.api_key = "k";
    expect_url(&prov_anthropic, &c, false, "https://api.anthropic.com/v1/messages");
    c.api_base = "http://127.0.0.1:9000";
    expect_url(&prov_anthropic, &c, true, "http://127.0.0.1:9000/v1/messages");
    c.api_base = "http://127.0.0.1:9000/";
    expect_url(&prov_anthropic, &c, false, "http://127.0.0.1:9000/v1/messages");
    c.api_base = "https://proxy.example/anthropic/v1/messages";
    expect_url(&prov_anthropic, &c, false, "https://proxy.example/anthropic/v1/messages");
    c.api_base = "https://proxy.example/anthropic/v1";
    expect_url(&prov_anthropic, &c, false, "https://proxy.example/anthropic/v1/messages");
}

static void test_oauth_key_headers(void **state)
{
    (void)state;
    prov_ctx c = {0};
    c.upstream_model = "claude-sonnet-4-20250514";
    c.api_key = "sk-ant-oat01-abc";
    c.anthropic_beta = "prompt-caching-2024-07-31";
    cJSON *req = cJSON_Parse("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    prov_http_req hr;
    prov_err e = {0};
    assert_int_equal(prov_anthropic.chat_request(&c, req, &hr, &e), 0);
    assert_null(header_value(&hr, "x-api-key"));
    assert_string_equal(header_value(&hr, "authorization"), "Bearer sk-ant-oat01-abc");
    assert_string_equal(header_value(&hr, "anthropic-beta"),
                        "prompt-caching-2024-07-31,oauth-2025-04-20");
    prov_http_req_free(&hr);
    cJSON_Delete(req);
}

static void test_vertex_body(void **state)
{
    (void)state;
    const char *in = "{\"model\":\"claude-3-5-sonnet@20240620\", \"max_tokens\": 1024,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"Hi \\u00e9 \"}],"
                     "\"big\":12345678901234567890,\"stream\":true}";
    size_t n = 0;
    char *out = anth_vertex_body(in, strlen(in), &n);
    assert_non_null(out);
    assert_int_equal(strlen(out), n);
    /* untouched members keep their exact bytes (escapes, big numbers, spacing after ':') */
    assert_string_equal(out, "{\"anthropic_version\":\"vertex-2023-10-16\",\"max_tokens\": 1024,"
                             "\"messages\":[{\"role\":\"user\",\"content\":\"Hi \\u00e9 \"}],"
                             "\"big\":12345678901234567890,\"stream\":true}");
    free(out);

    const char *keep = "{\"anthropic_version\":\"vertex-2023-10-16\",\"messages\":[],"
                       "\"model\":\"x\"}";
    out = anth_vertex_body(keep, strlen(keep), &n);
    assert_string_equal(out, "{\"anthropic_version\":\"vertex-2023-10-16\",\"messages\":[]}");
    free(out);

    out = anth_vertex_body("{}", 2, &n);
    assert_string_equal(out, "{\"anthropic_version\":\"vertex-2023-10-16\"}");
    free(out);
    assert_null(anth_vertex_body("{\"model\":", 9, &n));
    assert_null(anth_vertex_body("[1]", 3, &n));
}

/* A stream cut before message_delta still ends with [DONE]; usage from message_start counts. */
static void test_stream_truncated(void **state)
{
    (void)state;
    prov_ctx c = {0};
    c.client_model = "m";
    c.created = 1;
    c.include_usage = true;
    prov_stream *s = prov_anthropic.stream_new(&c);
    sbuf out;
    sbuf_init(&out);
    oai_usage u;
    oai_usage_init(&u);
    prov_err e = {0};
    const char *d = "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":"
                    "{\"input_tokens\":5,\"output_tokens\":1}}}";
    sse_event ev = {.raw = d, .raw_len = strlen(d), .data = d, .data_len = strlen(d)};
    assert_int_equal(prov_anthropic.stream_event(s, &ev, &out, &u, &e), 0);
    sse_event junk = {.raw = ": keepalive", .raw_len = 11, .data = NULL, .data_len = 0};
    assert_int_equal(prov_anthropic.stream_event(s, &junk, &out, &u, &e), 0);
    sse_event notjson = {.raw = "data: x", .raw_len = 7, .data = "x", .data_len = 1};
    assert_int_equal(prov_anthropic.stream_event(s, &notjson, &out, &u, &e), 0);
    assert_int_equal(prov_anthropic.stream_end(s, &out, &u), 0);
    assert_int_equal(u.prompt_tokens, 5);
    assert_int_equal(u.completion_tokens, 1);
    assert_non_null(strstr(out.p, "\"choices\":[],\"usage\":{\"prompt_tokens\":5"));
    assert_non_null(strstr(out.p, "data: [DONE]\n\n"));
    prov_anthropic.stream_free(s);
    sbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_http_req_and_err),
        cmocka_unit_test(test_vertex_urls),
        cmocka_unit_test(test_anthropic_urls),
        cmocka_unit_test(test_oauth_key_headers),
        cmocka_unit_test(test_vertex_body),
        cmocka_unit_test(test_stream_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
