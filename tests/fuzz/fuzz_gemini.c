/* fuzz_gemini — providers/gemini (prov_vertex_gemini, prov_gemini) on one input:
 *   the payload as a generateContent response body (chat_response), as a streamGenerateContent
 *   SSE stream cut where the fuzzer says (stream_new/stream_event/stream_end), as an error body
 *   (error, status picked by flags), as an OpenAI chat request (chat_request on cJSON_Parse)
 *   and as an embeddings request and response (embed_request/embed_response).
 * The translated stream is also re-split and sent through anth_out_stream, the gateway's path
 * for /v1/messages clients of a Gemini deployment. Oracles are in fuzz_prov.h. */
#include "fuzz_prov.h"

static const int statuses[] = {400, 401, 403, 404, 408, 413, 422, 429,
                               500, 502, 503, 504, 529, 418, 599, 520};

static const char *const models[] = {"gemini-2.0-flash", "gemini-3-pro-preview",
                                     "gemini-2.5-flash-lite", "tunedModels/fuzz-123"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_input in = fz_split(data, size);
    int status = statuses[(in.flags >> 4) % (sizeof statuses / sizeof *statuses)];
    const char *model = models[(in.flags >> 6) & 3];
    cJSON *req = cJSON_ParseWithLength(in.p, in.n);

    const prov_ops *ops[2] = {&prov_vertex_gemini, &prov_gemini};
    for (int i = 0; i < 2; i++) {
        prov_ctx c = fz_ctx(model, in.flags, false);
        fz_chat_response(ops[i]->name, ops[i], &c, in.p, in.n);
        fz_error(ops[i]->name, ops[i], &c, status, in.p, in.n);
        if (req) {
            for (int v = 0; v < 2; v++) {
                prov_ctx rc = fz_ctx(model, (uint8_t)(in.flags ^ (v ? 0x04 : 0)), v == 1);
                fz_chat_request(ops[i]->name, ops[i], &rc, req);
            }
        }
        fz_embed(ops[i]->name, ops[i], &c, req, in.p, in.n);

        c.stream = true;
        sbuf all;
        sbuf_init(&all);
        fz_input sin = in;
        fz_stream(ops[i]->name, ops[i], &c, &sin, &all);
        if (i == 0 && !all.failed && all.len)
            fz_anth_out_stream(all.p, all.len, NULL);
        sbuf_free(&all);
    }
    cJSON_Delete(req);
    return 0;
}
