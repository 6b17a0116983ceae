/* tests/fuzz/fuzz_prov — driving a translating provider (prov_ops) and the /v1/messages ingress
 * the way src/gateway.c does, with output oracles:
 *   chat_request   0 → a sendable request (fz_check_http_req); -1 → an error with a message
 *   chat_response  0 → a JSON object
 *   stream         every output event is "data: {json object}" or [DONE]; stream_end ends with
 *                  [DONE]; an error event stops the stream with err set (and, as in the gateway,
 *                  no stream_end follows)
 *   error          a 4xx/5xx status, a type and a message
 *   anth_out_stream  Anthropic's event grammar (message_start, blocks with matching indexes and
 *                  delta kinds, one message_delta, message_stop), event name == data.type */
#ifndef SLUICE_FUZZ_PROV_H
#define SLUICE_FUZZ_PROV_H

#include "fuzz_common.h"

#include <cjson/cJSON.h>

#include "providers/anthropic.h"
#include "providers/prov.h"

/* The gateway's SSE event bound (src/gateway.c MAX_SSE_EVENT). */
#define FZ_MAX_SSE_EVENT (16u * 1024 * 1024)

static inline prov_ctx fz_ctx(const char *upstream_model, uint8_t flags, bool stream)
{
    prov_ctx c;
    memset(&c, 0, sizeof c);
    c.upstream_model = upstream_model;
    c.api_base = (flags & 0x08) ? "https://proxy.example.test/base/" : NULL;
    c.api_key = "fuzz-api-key";
    c.project = "fuzz-project";
    c.location = (flags & 0x10) ? "global" : "us-central1";
    c.access_token = "ya29.fuzz-token";
    c.stream = stream;
    c.include_usage = (flags & 0x02) != 0;
    c.drop_params = (flags & 0x04) != 0;
    c.anthropic_version = (flags & 0x20) ? "2023-06-01" : NULL;
    c.anthropic_beta = (flags & 0x20) ? "prompt-caching-2024-07-31" : NULL;
    c.response_id = "chatcmpl-fuzz";
    c.created = 1700000000L;
    c.client_model = "fuzz-model";
    return c;
}

static inline void fz_check_err(const char *who, const prov_err *e)
{
    FZ_CHECK(e->status >= 400 && e->status <= 599, "%s: error status %d", who, e->status);
    FZ_CHECK(e->type != NULL, "%s: error without a type", who);
    FZ_CHECK(e->message != NULL, "%s: error without a message", who);
}

/* ---- upstream direction ------------------------------------------------------------------- */

static inline void fz_chat_request(const char *who, const prov_ops *ops, const prov_ctx *c,
                                   const cJSON *req)
{
    prov_http_req h;
    memset(&h, 0, sizeof h);
    prov_err e = {0};
    int rc = ops->chat_request(c, req, &h, &e);
    FZ_CHECK(rc == 0 || rc == -1, "%s: chat_request returned %d", who, rc);
    if (rc == 0)
        fz_check_http_req(who, &h);
    else
        fz_check_err(who, &e);
    prov_http_req_free(&h);
    prov_err_free(&e);
}

/* req (the payload as an embeddings request) may be NULL; the response side always runs with
 * a fixed two-input request, since the gateway only gets there with a request it accepted. */
static inline void fz_embed(const char *who, const prov_ops *ops, const prov_ctx *c,
                            const cJSON *req, const char *body, size_t len)
{
    if (!ops->embed_request)
        return;
    static cJSON *fixed;
    if (!fixed)
        fixed = cJSON_Parse("{\"model\":\"text-embedding-004\",\"input\":[\"a\",\"b c\"]}");
    if (req) {
        prov_http_req h;
        memset(&h, 0, sizeof h);
        prov_err e = {0};
        int rc = ops->embed_request(c, req, &h, &e);
        FZ_CHECK(rc == 0 || rc == -1, "%s: embed_request returned %d", who, rc);
        if (rc == 0)
            fz_check_http_req(who, &h);
        else
            fz_check_err(who, &e);
        prov_http_req_free(&h);
        prov_err_free(&e);
    }
    if (!ops->embed_response || !body)
        return;
    sbuf out;
    sbuf_init(&out);
    oai_usage u;
    oai_usage_init(&u);
    prov_err e2 = {0};
    int rrc = ops->embed_response(c, fixed, body, len, &out, &u, &e2);
    FZ_CHECK(rrc == 0 || rrc == -1, "%s: embed_response returned %d", who, rrc);
    if (rrc == 0 && !out.failed && !fz_is_json_object(out.p, out.len)) {
        fz_dump("output", out.p, out.len);
        fz_fail("%s: embed_response output is not a JSON object", who);
    }
    sbuf_free(&out);
    prov_err_free(&e2);
}

static inline void fz_chat_response(const char *who, const prov_ops *ops, const prov_ctx *c,
                                    const char *body, size_t len)
{
    sbuf out;
    sbuf_init(&out);
    oai_usage u;
    oai_usage_init(&u);
    prov_err e = {0};
    int rc = ops->chat_response(c, body, len, &out, &u, &e);
    FZ_CHECK(rc == 0 || rc == -1, "%s: chat_response returned %d", who, rc);
    if (rc == 0 && !out.failed && !fz_is_json_object(out.p, out.len)) {
        fz_dump("upstream body", body, len);
        fz_dump("output", out.p, out.len);
        fz_fail("%s: chat_response output is not a JSON object", who);
    }
    sbuf_free(&out);
    prov_err_free(&e);
}

static inline void fz_error(const char *who, const prov_ops *ops, const prov_ctx *c, int status,
                            const char *body, size_t len)
{
    prov_err e = {0};
    ops->error(c, status, body, len, &e);
    fz_check_err(who, &e);
    prov_err_free(&e);
}

typedef struct {
    const prov_ops *ops;
    prov_stream *st;
    sbuf *all; /* every output byte, for the oracle */
    oai_usage *u;
    prov_err *err;
    int rc;
} fz_stream_run;

static inline int fz_on_upstream_event(void *ud, const sse_event *ev)
{
    fz_stream_run *r = ud;
    sbuf b; /* a fresh buffer per event, as the gateway does */
    sbuf_init(&b);
    r->rc = r->ops->stream_event(r->st, ev, &b, r->u, r->err);
    if (b.len)
        sbuf_add(r->all, b.p, b.len);
    sbuf_free(&b);
    return r->rc < 0 ? 1 : 0;
}

/* Runs one streamed response through ops; the OpenAI SSE output is appended to all. */
static inline void fz_stream(const char *who, const prov_ops *ops, const prov_ctx *c, fz_input *in,
                             sbuf *all)
{
    oai_usage u;
    oai_usage_init(&u);
    prov_err e = {0};
    fz_stream_run r = {ops, ops->stream_new(c), all, &u, &e, 0};
    FZ_CHECK(r.st != NULL, "%s: stream_new failed", who);
    sse_parser p;
    sse_init(&p, FZ_MAX_SSE_EVENT);
    fz_chunker ch = {in, 0};
    int frc = 0;
    for (size_t off = 0; off < in->n && frc == 0;) {
        size_t k = fz_next_chunk(&ch, in->n - off);
        frc = sse_feed(&p, in->p + off, k, fz_on_upstream_event, &r);
        off += k;
    }
    if (frc == 0 && sse_pending(&p))
        frc = sse_feed(&p, "\n\n", 2, fz_on_upstream_event, &r);
    sse_free(&p);
    FZ_CHECK(r.rc == 0 || r.rc == -1, "%s: stream_event returned %d", who, r.rc);
    if (r.rc < 0) {
        fz_check_err(who, &e);
        fz_check_oai_sse(who, all->p, all->len, false);
    } else {
        FZ_CHECK(frc == 0, "%s: sse_feed failed (%d) without an error event", who, frc);
        sbuf b;
        sbuf_init(&b);
        int erc = ops->stream_end(r.st, &b, &u);
        FZ_CHECK(erc == 0 || erc == -1, "%s: stream_end returned %d", who, erc);
        if (b.len)
            sbuf_add(all, b.p, b.len);
        sbuf_free(&b);
        if (!all->failed)
            fz_check_oai_sse(who, all->p, all->len, erc == 0);
    }
    ops->stream_free(r.st);
    prov_err_free(&e);
}

/* ---- ingress: OpenAI → Anthropic ---------------------------------------------------------- */

typedef struct {
    int state; /* 0 before message_start, 1 in the message, 2 after message_delta, 3 stopped */
    int open, next;
    char kind[32];
    int events;
} fz_anth_grammar;

static inline void fz_anth_event(fz_anth_grammar *g, const char *ev, size_t n, const char *all,
                                 size_t alln)
{
    char name[64] = "";
    cJSON *d = NULL;
    size_t i = 0;
    int datalines = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && ev[e] != '\n')
            e++;
        if (e - i > 7 && memcmp(ev + i, "event: ", 7) == 0)
            snprintf(name, sizeof name, "%.*s", (int)(e - i - 7), ev + i + 7);
        else if (e - i >= 6 && memcmp(ev + i, "data: ", 6) == 0) {
            datalines++;
            if (!fz_is_json_object(ev + i + 6, e - i - 6)) {
                fz_dump("stream", all, alln);
                fz_fail("anth_out_stream: data is not a JSON object");
            }
            d = cJSON_ParseWithLength(ev + i + 6, e - i - 6);
        }
        i = e + 1;
    }
    if (datalines != 1 || !d) {
        /* cJSON refuses lone surrogates jscan accepts; nothing more to check then */
        FZ_CHECK(datalines == 1, "anth_out_stream: %d data lines in one event", datalines);
        return;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(d, "type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "";
    const cJSON *ix = cJSON_GetObjectItemCaseSensitive(d, "index");
    int index = cJSON_IsNumber(ix) ? (int)ix->valuedouble : -1;
    const char *err = NULL;
    if (strcmp(name, type) != 0)
        err = "event name and data.type differ";
    else if (strcmp(type, "ping") == 0)
        ;
    else if (strcmp(type, "message_start") == 0) {
        if (g->state != 0)
            err = "message_start not first";
        g->state = 1;
    } else if (strcmp(type, "content_block_start") == 0) {
        const cJSON *cb = cJSON_GetObjectItemCaseSensitive(d, "content_block");
        const cJSON *bt = cJSON_GetObjectItemCaseSensitive(cb, "type");
        if (g->state != 1 || g->open >= 0 || index != g->next)
            err = "content_block_start out of order";
        g->open = index;
        g->next++;
        snprintf(g->kind, sizeof g->kind, "%s", cJSON_IsString(bt) ? bt->valuestring : "?");
    } else if (strcmp(type, "content_block_delta") == 0) {
        const cJSON *dl = cJSON_GetObjectItemCaseSensitive(d, "delta");
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(dl, "type");
        const char *dts = cJSON_IsString(dt) ? dt->valuestring : "";
        bool fits = (strcmp(g->kind, "text") == 0 && strcmp(dts, "text_delta") == 0) ||
                    (strcmp(g->kind, "tool_use") == 0 && strcmp(dts, "input_json_delta") == 0) ||
                    (strcmp(g->kind, "thinking") == 0 &&
                     (strcmp(dts, "thinking_delta") == 0 || strcmp(dts, "signature_delta") == 0));
        if (g->state != 1 || index != g->open || !fits)
            err = "content_block_delta not on the open block, or of the wrong kind";
    } else if (strcmp(type, "content_block_stop") == 0) {
        if (g->state != 1 || index != g->open)
            err = "content_block_stop for a block that is not open";
        g->open = -1;
    } else if (strcmp(type, "message_delta") == 0) {
        if (g->state != 1 || g->open >= 0)
            err = "message_delta with a block open, or twice";
        g->state = 2;
    } else if (strcmp(type, "message_stop") == 0) {
        if (g->state != 2)
            err = "message_stop before message_delta";
        g->state = 3;
    } else {
        err = "unknown event type";
    }
    if (err) {
        fz_dump("anthropic stream", all, alln);
        fz_fail("anth_out_stream: event #%d (%s): %s", g->events, type, err);
    }
    g->events++;
    cJSON_Delete(d);
}

static inline void fz_check_anth_sse(const char *s, size_t n)
{
    fz_anth_grammar g;
    memset(&g, 0, sizeof g);
    g.open = -1;
    size_t i = 0;
    while (i < n) {
        const char *end = memmem(s + i, n - i, "\n\n", 2);
        if (!end) {
            fz_dump("anthropic stream", s, n);
            fz_fail("anth_out_stream: output ends inside an event");
        }
        fz_anth_event(&g, s + i, (size_t)(end - (s + i)), s, n);
        i = (size_t)(end - s) + 2;
    }
    if (g.state != 3) {
        fz_dump("anthropic stream", s, n);
        fz_fail("anth_out_stream: stream does not end with message_stop");
    }
}

typedef struct {
    anth_out_stream *as;
    sbuf *out;
} fz_anth_run;

static inline int fz_on_oai_chunk(void *ud, const sse_event *ev)
{
    fz_anth_run *r = ud;
    if (!ev->data)
        return 0;
    oai_usage u;
    oai_usage_init(&u);
    if (oai_classify_chunk(ev->data, ev->data_len, &u) == OAI_CHUNK_DONE)
        return 0;
    int rc = anth_out_stream_chunk(r->as, ev->data, ev->data_len, r->out);
    FZ_CHECK(rc == 0 || rc == -1, "anth_out_stream_chunk returned %d", rc);
    return 0;
}

/* An OpenAI chunk stream (SSE bytes, cut by in's chunker when in is non-NULL) → Anthropic
 * events, as the gateway does for /v1/messages clients of OpenAI-shaped or translated
 * upstreams. */
static inline void fz_anth_out_stream(const char *p, size_t n, fz_input *in)
{
    sbuf out;
    sbuf_init(&out);
    fz_anth_run r = {anth_out_stream_new("claude-fuzz", "msg_fuzz"), &out};
    FZ_CHECK(r.as != NULL, "anth_out_stream_new failed");
    sse_parser sp;
    sse_init(&sp, FZ_MAX_SSE_EVENT);
    fz_chunker ch = {in, 0};
    int frc = 0;
    for (size_t off = 0; off < n && frc == 0;) {
        size_t k = in ? fz_next_chunk(&ch, n - off) : n - off;
        frc = sse_feed(&sp, p + off, k, fz_on_oai_chunk, &r);
        off += k;
    }
    if (frc == 0 && sse_pending(&sp))
        sse_feed(&sp, "\n\n", 2, fz_on_oai_chunk, &r);
    sse_free(&sp);
    int rc = anth_out_stream_end(r.as, &out);
    FZ_CHECK(rc == 0 || rc == -1, "anth_out_stream_end returned %d", rc);
    if (!out.failed && !fz_known("anth_grammar"))
        fz_check_anth_sse(out.p, out.len);
    anth_out_stream_free(r.as);
    sbuf_free(&out);
}

#endif
