/* fuzz_anthropic — providers/anthropic, both directions, on one input:
 *   upstream (prov_anthropic, prov_vertex_claude): the payload as a Messages API response body
 *     (chat_response), as an SSE event stream cut where the fuzzer says (stream_new/stream_event/
 *     stream_end), and as an error body (error, with a status picked by flags);
 *   ingress (/v1/messages): the payload as an Anthropic request (anth_to_openai_request on
 *     cJSON_Parse, then — as the gateway does — serialised for an OpenAI-shaped upstream and
 *     handed to every translator), as an OpenAI response (anth_from_openai_response), as an
 *     OpenAI chunk stream (anth_out_stream_chunk per event, anth_out_stream_end), and as a body
 *     for Vertex rawPredict (anth_vertex_body).
 * Oracles are in fuzz_prov.h; here additionally: a translated ingress request always survives
 * the gateway's serialise-and-reparse step, and anth_vertex_body of a JSON object is a JSON
 * object with "anthropic_version" and without "model". */
#include "fuzz_prov.h"

static const int statuses[] = {400, 401, 403, 404, 408, 413, 422, 429,
                               500, 502, 503, 504, 529, 418, 599, 520};

static const prov_ops *const translators[] = {&prov_anthropic, &prov_vertex_claude,
                                              &prov_vertex_gemini, &prov_gemini};

static void ingress_request(const fz_input *in)
{
    cJSON *areq = cJSON_ParseWithLength(in->p, in->n);
    if (!areq)
        return;
    prov_err e = {0};
    cJSON *oreq = anth_to_openai_request(areq, &e);
    cJSON_Delete(areq);
    if (!oreq) {
        fz_check_err("anth_to_openai_request", &e);
        prov_err_free(&e);
        return;
    }
    FZ_CHECK(e.message == NULL, "anth_to_openai_request succeeded with an error set");
    FZ_CHECK(cJSON_IsObject(oreq), "anth_to_openai_request did not return an object");
    /* the gateway only gets here with a string "model", which the translation keeps */
    cJSON *model = cJSON_CreateString("fuzz-model");
    if (!cJSON_ReplaceItemInObjectCaseSensitive(oreq, "model", model))
        cJSON_Delete(model);
    /* OpenAI-shaped upstream: print once, reparse with the fast-path parser, rebuild */
    char *t = cJSON_PrintUnformatted(oreq);
    FZ_CHECK(t != NULL, "cJSON_PrintUnformatted failed");
    oai_request o;
    char err[256];
    if (oai_parse_request(t, strlen(t), &o, err, sizeof err) != 0) {
        if (cJSON_GetArraySize(oreq) <= OAI_MAX_MEMBERS) {
            fz_dump("translated request", t, strlen(t));
            fz_fail("a translated /v1/messages request fails the gateway's reparse (500): %s", err);
        }
    } else {
        size_t ol = 0;
        char *ub = oai_build_upstream_body(t, &o, "gpt-4o", true, &ol);
        FZ_CHECK(ub && fz_is_json_object(ub, ol), "rebuilt translated request is not JSON");
        free(ub);
    }
    oai_request_free(&o);
    free(t);
    /* translated upstream: every translator */
    for (size_t i = 0; i < sizeof translators / sizeof *translators; i++) {
        prov_ctx c = fz_ctx(i < 2 ? "claude-3-5-sonnet-20241022" : "gemini-2.0-flash", in->flags,
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(oreq, "stream")));
        fz_chat_request(translators[i]->name, translators[i], &c, oreq);
    }
    cJSON_Delete(oreq);
}

static void ingress_response(const fz_input *in)
{
    sbuf out;
    sbuf_init(&out);
    prov_err e = {0};
    int rc = anth_from_openai_response(in->p, in->n, "claude-fuzz", &out, &e);
    FZ_CHECK(rc == 0 || rc == -1, "anth_from_openai_response returned %d", rc);
    if (rc == 0 && !out.failed && !fz_is_json_object(out.p, out.len)) {
        fz_dump("output", out.p, out.len);
        fz_fail("anth_from_openai_response output is not a JSON object");
    }
    if (rc != 0)
        fz_check_err("anth_from_openai_response", &e);
    sbuf_free(&out);
    prov_err_free(&e);
}

static void vertex_body(const fz_input *in)
{
    size_t ol = 0;
    char *vb = anth_vertex_body(in->p, in->n, &ol);
    int n = jscan_object(in->p, in->n, NULL, 0, NULL);
    if (n < 0) {
        FZ_CHECK(vb == NULL, "anth_vertex_body accepted a body that is not a JSON object");
        return;
    }
    FZ_CHECK(vb != NULL, "anth_vertex_body refused a JSON object");
    jmember m[64];
    int k = jscan_object(vb, ol, m, 64, NULL);
    if (k < 0) {
        fz_dump("input", in->p, in->n);
        fz_dump("output", vb, ol);
        fz_fail("anth_vertex_body output is not a JSON object");
    }
    if (k > 64)
        k = 64;
    FZ_CHECK(jscan_find(vb, m, k, "model") == NULL, "anth_vertex_body kept \"model\"");
    FZ_CHECK(k == 64 || jscan_find(vb, m, k, "anthropic_version") != NULL,
             "anth_vertex_body without anthropic_version");
    free(vb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_input in = fz_split(data, size);
    int status = statuses[(in.flags >> 4) % (sizeof statuses / sizeof *statuses)];

    const prov_ops *ops[2] = {&prov_anthropic, &prov_vertex_claude};
    for (int i = 0; i < 2; i++) {
        prov_ctx c = fz_ctx("claude-3-5-sonnet-20241022", in.flags, false);
        fz_chat_response(ops[i]->name, ops[i], &c, in.p, in.n);
        fz_error(ops[i]->name, ops[i], &c, status, in.p, in.n);
        c.stream = true;
        sbuf all;
        sbuf_init(&all);
        fz_input sin = in; /* each stream gets the same cuts */
        fz_stream(ops[i]->name, ops[i], &c, &sin, &all);
        sbuf_free(&all);
    }

    ingress_request(&in);
    ingress_response(&in);
    fz_input sin = in;
    fz_anth_out_stream(in.p, in.n, &sin);
    vertex_body(&in);

    char *msg = fz_strndup(in.p, in.n);
    size_t el = 0;
    char *eb = anth_error_body(status, msg, &el);
    FZ_CHECK(eb && fz_is_json_object(eb, el), "anth_error_body is not a JSON object");
    free(eb);
    free(msg);
    return 0;
}
