/* fuzz_openai_request — a client's /v1/chat/completions body through providers/openai:
 * oai_parse_request, then oai_build_upstream_body (inject_usage false and true, several upstream
 * model names, the recycling _buf variant), plus the usage readers on the same bytes.
 *
 * Oracles: whenever parsing succeeded, every rebuilt body is one JSON object; re-parsed, its
 * "model" is the upstream model, gateway-only members are gone, and with inject_usage the
 * stream_options.include_usage flag is true. The rebuild must not depend on whether the output
 * buffer is fresh or recycled. */
#include "fuzz_common.h"

#include <cjson/cJSON.h>

static const char *const upstream_models[] = {
    "gpt-4o-mini",
    "", /* no model written when the client sent none */
    "org/we\"ird\\model\n\x01\x7f\xc3\xa9", /* needs escaping */
};

static void check_rebuilt(const char *body, size_t len, const oai_request *r, const char *um,
                          bool inject, const char *out, size_t out_len)
{
    if (!fz_is_json_object(out, out_len)) {
        fz_dump("client body", body, len);
        fz_dump("upstream body", out, out_len);
        fz_fail("oai_build_upstream_body(inject_usage=%d, model=\"%s\") is not a JSON object",
                inject, um);
    }
    oai_request r2;
    char err[256];
    if (oai_parse_request(out, out_len, &r2, err, sizeof err) != 0) {
        /* only legitimate refusal: one more member than the cap after adding model/options */
        FZ_CHECK(r->count + 2 > OAI_MAX_MEMBERS, "rebuilt body refused: %s", err);
        oai_request_free(&r2);
        return;
    }
    if (um[0]) {
        if (!r2.model || strcmp(r2.model, um) != 0) {
            fz_dump("upstream body", out, out_len);
            fz_fail("rebuilt body's model is \"%s\", want the upstream model",
                    r2.model ? r2.model : "(none)");
        }
    } else {
        FZ_CHECK(!r2.model == !r->model, "model appeared or vanished");
    }
    for (int i = 0; i < r2.count && i < OAI_MAX_MEMBERS; i++)
        FZ_CHECK(!oai_is_gateway_param(out + r2.m[i].key_off, r2.m[i].key_len),
                 "gateway-only member %.*s forwarded", (int)r2.m[i].key_len, out + r2.m[i].key_off);
    if (inject && !r2.include_usage) {
        fz_dump("client body", body, len);
        fz_dump("upstream body", out, out_len);
        fz_fail("inject_usage did not leave stream_options.include_usage true");
    }
    if (!inject)
        FZ_CHECK(r2.include_usage == r->include_usage, "include_usage changed without injection");
    oai_request_free(&r2);
    /* What the upstream sees: JSON parsers decode escapes in keys ("mod\u0065l" IS "model"
     * there) and most keep the last of duplicate keys. The members the gateway acts on —
     * model (routing, pricing), stream (how the answer is read and usage found),
     * stream_options (injected include_usage), max_tokens and user — must mean the same to both
     * sides: at most one of each, and gateway-only members not forwarded under another spelling.
     */
    if (fz_known("escaped_keys"))
        return;
    cJSON *j = cJSON_ParseWithLength(out, out_len);
    if (!j)
        return; /* cJSON refuses some valid JSON (lone surrogates); nothing to compare */
    /* read by the gateway for budget estimates and spend logs (oai_request.max_tokens, .user) */
    static const char *const read_once[] = {"max_tokens", "max_completion_tokens", "user"};
    int nmodel = 0, nso = 0, nstream = 0, nread[3] = {0, 0, 0};
    const cJSON *c;
    cJSON_ArrayForEach(c, j) {
        const char *k = c->string;
        for (int i = 0; i < 3; i++)
            if (strcmp(k, read_once[i]) == 0 && ++nread[i] > 1) {
                fz_dump("client body", body, len);
                fz_dump("upstream body", out, out_len);
                fz_fail("\"%s\" twice once keys are decoded: the gateway reads the first, the "
                        "upstream most likely the last",
                        k);
            }
        if (strcmp(k, "model") == 0)
            nmodel++;
        else if (strcmp(k, "stream_options") == 0)
            nso++;
        else if (strcmp(k, "stream") == 0)
            nstream += 1 + (cJSON_IsTrue(c) != r->stream) * 100;
        else if (oai_is_gateway_param(k, strlen(k))) {
            fz_dump("client body", body, len);
            fz_dump("upstream body", out, out_len);
            fz_fail("gateway-only member \"%s\" reaches the upstream (escaped key)", k);
        }
    }
    cJSON_Delete(j);
    if ((um[0] && nmodel != 1) || nmodel > 1 || (inject && nso != 1) || nso > 1 || nstream > 1) {
        fz_dump("client body", body, len);
        fz_dump("upstream body", out, out_len);
        fz_fail("the upstream reads this body differently from the gateway: %d \"model\", %d "
                "\"stream_options\" once keys are decoded (want %d and %d); \"stream\" %s",
                nmodel, nso, um[0] ? 1 : nmodel ? 1 : 0, inject ? 1 : nso ? 1 : 0,
                nstream > 1 ? "duplicated or not what the gateway read" : "ok");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    size_t len = size;
    oai_request r;
    char err[256];
    err[0] = 0;
    int rc = oai_parse_request(body, len, &r, err, sizeof err);
    if (rc != 0) {
        FZ_CHECK(rc == -1 && err[0], "parse failed without a message");
        oai_request_free(&r);
    } else {
        FZ_CHECK(r.count >= 0 && r.count <= OAI_MAX_MEMBERS, "count %d", r.count);
        FZ_CHECK(!r.stream_options || body[r.stream_options->val_off] == '{',
                 "stream_options is not an object");
        char *recycled = NULL;
        size_t cap = 0;
        for (size_t mi = 0; mi < sizeof upstream_models / sizeof *upstream_models; mi++) {
            for (int inject = 0; inject <= 1; inject++) {
                size_t ol = 0;
                char *out = oai_build_upstream_body(body, &r, upstream_models[mi], inject, &ol);
                FZ_CHECK(out != NULL, "oai_build_upstream_body failed");
                check_rebuilt(body, len, &r, upstream_models[mi], inject, out, ol);
                size_t ol2 = 0;
                FZ_CHECK(oai_build_upstream_body_buf(body, &r, upstream_models[mi], inject,
                                                     &recycled, &cap, &ol2),
                         "oai_build_upstream_body_buf failed");
                FZ_CHECK(ol2 == ol && memcmp(out, recycled, ol) == 0,
                         "recycled buffer gives a different body");
                free(out);
            }
        }
        free(recycled);
        oai_request_free(&r);
    }

    /* the same bytes as a non-streamed response and as one stream chunk */
    oai_usage u;
    oai_usage_init(&u);
    oai_response_usage(body, len, &u);
    oai_usage_init(&u);
    oai_chunk_kind k = oai_classify_chunk(body, len, &u);
    FZ_CHECK(k >= OAI_CHUNK_CONTENT && k <= OAI_CHUNK_OTHER, "chunk kind %d", (int)k);
    if (len && body[0] == '{') {
        oai_usage_init(&u);
        oai_usage_parse(body, len, &u);
    }
    return 0;
}
